// Which matrix products the model issues: tfjs-wasm hands a matMul to XNNPACK (~30 GFLOP/s on this machine) only when
// both operands are plain 2-D (batch 1, no transpose flag); anything batched or transposed runs a scalar blocked loop
// (~2.3 GFLOP/s; tfjs-backend-wasm src/cc/batch_mat_mul_impl.cc). On wasm the model therefore rewrites attention's
// batched products (attention-matmul.ts) and LoRA's transposed ones (lora/layer.ts) as plain 2-D products with
// explicit transposes, forward and backward. Other backends keep tf.matMul as is: their batched and transposed
// kernels are not a slow loop, and one kernel beats several there.

import * as tf from '@tensorflow/tfjs';

/** 'auto': plain products on the wasm backend only; 'plain' and 'batched' force one path (parity tests, benchmarks). */
export type MatMulPath = 'auto' | 'plain' | 'batched';

const PATHS: readonly MatMulPath[] = ['auto', 'plain', 'batched'];

/**
 * The starting setting: FEDLORA_MATMUL_PATH where there is a process environment (Node; a worker thread gets its own
 * copy, which is how a benchmark sets the path of a gradient pool's helpers), else 'auto'.
 */
export const MATMUL_PATH_ENV = 'FEDLORA_MATMUL_PATH';
const fromEnv = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[
  MATMUL_PATH_ENV
] as MatMulPath | undefined;

let configured: MatMulPath = fromEnv !== undefined && PATHS.includes(fromEnv) ? fromEnv : 'auto';

/** Chooses the path for every model in this thread; returns the previous setting. */
export function setMatMulPath(path: MatMulPath): MatMulPath {
  const previous = configured;
  configured = path;
  return previous;
}

/** True when products should be plain 2-D matMuls (the active backend is wasm, or 'plain' is forced). */
export function plainProducts(): boolean {
  return configured === 'plain' || (configured === 'auto' && tf.getBackend() === 'wasm');
}
