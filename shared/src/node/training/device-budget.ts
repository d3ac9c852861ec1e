// The memory a training pass may use on the active Node backend (training/training-shape.ts turns it into a
// micro-batch and max length). WebGPU has no API for the card's memory, so on NVIDIA machines nvidia-smi is asked,
// and elsewhere a conservative figure is assumed; FEDLORA_DEVICE_MEMORY overrides any of them.

import { execFileSync } from 'node:child_process';
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { FedloraError } from '../../errors';
import type { BackendInfo } from '../backend';
import type { DeviceBudget } from '../../training/training-shape';

export const DEVICE_MEMORY_ENV = 'FEDLORA_DEVICE_MEMORY';
/** tfjs-backend-wasm's Emscripten heap cannot grow past this (getHeapMax in its build): 4 GiB less one page */
const WASM_HEAP_MAX = 4294901760;
/** what a GPU of unknown size is assumed to spare for one pass: the smallest discrete cards have 4 GiB */
const UNKNOWN_GPU_BYTES = 4 * 2 ** 30;

/** "8GiB", "512 MiB", "2G", "1073741824" → bytes; CONFIG_INVALID otherwise. */
export function parseByteSize(text: string, name = DEVICE_MEMORY_ENV): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib|t|tb|tib)?\s*$/i.exec(text);
  const units: Record<string, number> = { b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };
  const bytes = m ? Number(m[1]) * units[(m[2] ?? 'b')[0].toLowerCase()] : NaN;
  if (!(bytes >= 2 ** 20)) throw new FedloraError('CONFIG_INVALID', `${name} must be a size of at least 1 MiB like "8GiB" or "512MiB", got "${text}"`);
  return bytes;
}

/** Free memory of the first NVIDIA GPU in bytes, or undefined when nvidia-smi is absent or says nothing usable. */
function nvidiaFreeBytes(): number | undefined {
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=memory.free', '--format=csv,noheader,nounits'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] });
    const mib = Number(out.trim().split('\n')[0]);
    return mib > 0 ? mib * 2 ** 20 : undefined;
  } catch {
    return undefined;
  }
}

/** The largest storage buffer tfjs-backend-webgpu's device may bind (it requests the adapter's own limit). */
function webgpuMaxBinding(): number {
  const device = (tf.backend() as unknown as { device?: { limits?: { maxStorageBufferBindingSize?: number } } }).device;
  return device?.limits?.maxStorageBufferBindingSize ?? 128 * 2 ** 20; // WebGPU's default limit
}

/** Call after the model is loaded: on wasm and cpu the weights already sit in the memory being budgeted. */
export function deviceBudget(info: Pick<BackendInfo, 'name' | 'hardware'>, env: NodeJS.ProcessEnv = process.env): DeviceBudget {
  const override = env[DEVICE_MEMORY_ENV];
  const held = tf.memory().numBytes;
  const maxBufferBytes = info.name === 'webgpu' ? webgpuMaxBinding() : Infinity;
  if (override !== undefined && override !== '')
    return { backend: info.name, memoryBytes: parseByteSize(override), maxBufferBytes, source: DEVICE_MEMORY_ENV };
  switch (info.name) {
    case 'wasm': {
      // 90%: the heap is one linear memory that fragments, and growing it past the limit aborts the run
      const heap = (WASM_HEAP_MAX - held) * 0.9;
      const memoryBytes = Math.min(heap, os.freemem() * 0.8);
      return { backend: 'wasm', memoryBytes, maxBufferBytes, source: memoryBytes < heap ? '80% of free RAM' : `90% of the wasm heap limit 4 GiB less ${Math.round(held / 2 ** 20)} MiB held` };
    }
    case 'webgpu': {
      const free = info.hardware ? nvidiaFreeBytes() : undefined;
      return free !== undefined
        ? { backend: 'webgpu', memoryBytes: free * 0.8, maxBufferBytes, source: "80% of the GPU's free memory (nvidia-smi)" }
        : { backend: 'webgpu', memoryBytes: UNKNOWN_GPU_BYTES, maxBufferBytes, source: `GPU memory unknown, 4 GiB assumed (set ${DEVICE_MEMORY_ENV})` };
    }
    default: {
      const free = info.hardware ? nvidiaFreeBytes() : undefined; // tfjs-node-gpu: CUDA's memory
      if (free !== undefined) return { backend: info.name, memoryBytes: free * 0.8, maxBufferBytes, source: "80% of the GPU's free memory (nvidia-smi)" };
      return { backend: info.name, memoryBytes: os.freemem() * 0.8, maxBufferBytes, source: '80% of free RAM' };
    }
  }
}
