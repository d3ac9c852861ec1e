// The browser site's one tfjs backend entry: WebGPU first, then WebGL, then wasm (CPU SIMD), the first that
// initializes wins. The wasm binaries are copied next to the page by vite.config.ts (tfjs-wasm/), so setWasmPaths
// points there instead of a CDN: the page fetches nothing from anywhere but its coordinator.

import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { FedloraError } from '@fedlora/shared/errors.ts';
import type { DeviceBudget } from '@fedlora/shared/training/training-shape.ts';
import { shareIdentityOnWasm } from '@fedlora/shared/model/wasm-identity.ts';

export type WebBackendName = 'webgpu' | 'webgl' | 'wasm';
export const BACKEND_ORDER: readonly WebBackendName[] = ['webgpu', 'webgl', 'wasm'];

export interface WebBackendInfo {
  name: WebBackendName;
  /** why the earlier backends were skipped, one line each */
  skipped: string[];
}

async function tryBackend(name: WebBackendName): Promise<string | null> {
  if (name === 'webgpu' && !('gpu' in navigator)) return 'navigator.gpu is absent (no WebGPU in this browser)';
  if (name === 'wasm') {
    setWasmPaths(new URL('tfjs-wasm/', document.baseURI).href);
    shareIdentityOnWasm();
  }
  try {
    if (!(await tf.setBackend(name))) return 'failed to initialize';
    await tf.ready();
    // one tiny op proves the backend really runs (a WebGPU adapter can exist and still fail on first use)
    const probe = tf.tensor1d([1, 2]).square().sum();
    const v = (await probe.data())[0];
    probe.dispose();
    return v === 5 ? null : `probe computed ${v}, expected 5`;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/** Picks the first working backend of `order` (default WebGPU → WebGL → wasm); `force` tries only that one. */
export async function initWebBackend(force?: WebBackendName): Promise<WebBackendInfo> {
  const skipped: string[] = [];
  for (const name of force ? [force] : BACKEND_ORDER) {
    const why = await tryBackend(name);
    if (why === null) return { name, skipped };
    skipped.push(`${name}: ${why}`);
  }
  throw new FedloraError('BACKEND_UNAVAILABLE', `no tfjs backend works in this browser (${skipped.join('; ')})`);
}

/**
 * What one training pass may use in this tab (training-shape.ts cuts bigger batches into micro-batches). Browsers do
 * not say how much GPU memory there is; navigator.deviceMemory (RAM in GiB, rounded down and capped at 8 by the
 * browser) bounds all three backends, a quarter of it for one tab, and WebGPU adds its largest binding.
 */
export function browserDeviceBudget(name: WebBackendName): DeviceBudget {
  const ramGiB = (navigator as Navigator & { deviceMemory?: number }).deviceMemory;
  const memoryBytes = ((ramGiB ?? 4) * 2 ** 30) / 4;
  const source = ramGiB === undefined ? 'a quarter of 4 GiB assumed (no navigator.deviceMemory)' : `a quarter of navigator.deviceMemory ${ramGiB} GiB`;
  const device = name === 'webgpu' ? (tf.backend() as unknown as { device?: { limits?: { maxStorageBufferBindingSize?: number } } }).device : undefined;
  // WebGPU's default binding limit (128 MiB) unless the device was granted more
  const maxBufferBytes = name === 'webgpu' ? device?.limits?.maxStorageBufferBindingSize ?? 128 * 2 ** 20 : Infinity;
  return { backend: name, memoryBytes, maxBufferBytes, source };
}
