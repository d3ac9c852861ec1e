// GELU forward and gradient as two tfjs kernels of our own on the wasm backend, each one pass of wasm SIMD over
// tfjs-wasm's memory (wasm-gelu.wat). Why: as tfjs ops, GELU's Erf and Exp run as scalar loops in tfjs-wasm and the
// formula takes ~10 kernels per layer forward and backward: ~40 ms per [1024, 1024] tensor, ~160 ms of a ~700 ms
// step at the reference shape; fused, ~3 ms. Our module imports tfjs-wasm's WebAssembly.Memory, so it reads the
// input tensors and writes the output where tfjs-wasm keeps them: no copy in or out.
//
// Used by gelu.ts when the active backend is wasm and the kernel can run there (wasmGeluAvailable). It cannot where
// the engine has no SIMD or runs tfjs-wasm's threaded build (a shared memory, which our import does not declare):
// gelu.ts then keeps the tfjs ops.

import * as tf from '@tensorflow/tfjs';
import { WASM_GELU_BASE64 } from './wasm-gelu-bytes';
import {
  byteOffset as offset,
  registerWasmKernel,
  type WasmBackendLike,
  type WasmKernel,
} from './wasm-kernel';

const FORWARD = 'FedloraGelu';
const GRADIENT = 'FedloraGeluGrad';

interface GeluExports {
  gelu(x: number, out: number, n: number): void;
  gelu_grad(x: number, dy: number, out: number, n: number): void;
}

function decodeBase64(b64: string): Uint8Array {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

// One instance per tfjs-wasm memory (one per thread: a worker thread has its own tfjs and its own module).
let instance: { memory: WebAssembly.Memory; exports: GeluExports } | null = null;
let unavailable: string | null = null;

function kernelFor(backend: WasmBackendLike): GeluExports {
  const memory = backend.wasm.asm?.memory;
  if (instance !== null && instance.memory === memory) return instance.exports;
  if (!(memory instanceof WebAssembly.Memory)) throw new Error('tfjs-wasm exposes no WebAssembly.Memory');
  // ~1 KB of code: synchronous compilation is allowed even on a browser's main thread
  const module = new WebAssembly.Module(decodeBase64(WASM_GELU_BASE64) as Uint8Array<ArrayBuffer>);
  const exports = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as GeluExports;
  instance = { memory, exports };
  return exports;
}

const geluKernel: WasmKernel = ({ inputs, backend: be }) => {
  const x = inputs.x as tf.TensorInfo;
  const run = kernelFor(be);
  const out = be.makeOutput(x.shape, 'float32');
  run.gelu(offset(be, x), offset(be, out), tf.util.sizeFromShape(x.shape));
  return out;
};

const geluGradKernel: WasmKernel = ({ inputs, backend: be }) => {
  const x = inputs.x as tf.TensorInfo;
  const dy = inputs.dy as tf.TensorInfo;
  const run = kernelFor(be);
  const out = be.makeOutput(x.shape, 'float32');
  run.gelu_grad(offset(be, x), offset(be, dy), offset(be, out), tf.util.sizeFromShape(x.shape));
  return out;
};

/**
 * True when the active backend is wasm and our kernel can run on it; checked once per thread. The reason it cannot
 * is kept for wasmGeluUnavailableReason (benchmarks print it).
 */
export function wasmGeluAvailable(): boolean {
  if (tf.getBackend() !== 'wasm') return false;
  if (instance !== null) return true;
  if (unavailable !== null) return false;
  try {
    const bytes = decodeBase64(WASM_GELU_BASE64) as Uint8Array<ArrayBuffer>;
    if (!WebAssembly.validate(bytes)) throw new Error('this engine has no wasm SIMD');
    kernelFor(tf.backend() as unknown as WasmBackendLike);
    registerWasmKernel(FORWARD, geluKernel);
    registerWasmKernel(GRADIENT, geluGradKernel);
    return true;
  } catch (e) {
    unavailable = (e as Error).message;
    return false;
  }
}

/** Why the kernel cannot run here, or null if it can (or was not tried yet). */
export function wasmGeluUnavailableReason(): string | null {
  return unavailable;
}

/** gelu(x), float32, on the wasm backend (the caller checked wasmGeluAvailable). No gradient: see gelu.ts. */
export function geluOnWasm(x: tf.Tensor): tf.Tensor {
  return tf.engine().runKernel(FORWARD, { x }, {}) as tf.Tensor;
}

/** dy·gelu'(x), float32, on the wasm backend. */
export function geluGradOnWasm(x: tf.Tensor, dy: tf.Tensor): tf.Tensor {
  return tf.engine().runKernel(GRADIENT, { x, dy }, {}) as tf.Tensor;
}
