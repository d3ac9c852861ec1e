// a [G, M, K] · b [G, K, N] → [G, M, N] on the wasm backend as G plain 2-D products in one tfjs kernel of our own.
// Why: tfjs-wasm runs a product on XNNPACK only when both operands are 2-D (batch 1) without transpose flags, and runs
// a batched one through a scalar loop ~10x slower (matmul-path.ts). Doing the G products as G tfjs ops costs an
// unstack of each operand and a stack of the results, ~67 kernels per product; here each slice of a, b and the output
// is registered with the wasm module as a tensor that *views* the operand's memory (no copy), and tfjs-wasm's own
// BatchMatMul function runs on the views, so XNNPACK's path is taken with no tfjs op per slice. No gradient: it is used
// inside a tf.customGrad whose gradient is written out (attention-matmul.ts).

import * as tf from '@tensorflow/tfjs';
import { byteOffset, runWasmKernel, type WasmKernel } from './wasm-kernel';

const KERNEL = 'FedloraSliceMatMul';

let batchMatMul: ((...args: unknown[]) => void) | null = null;

const sliceMatMul: WasmKernel = ({ inputs, backend: be }) => {
  const a = inputs.a as tf.TensorInfo;
  const b = inputs.b as tf.TensorInfo;
  const [G, M, K] = a.shape;
  const N = b.shape[2];
  // tfjs-wasm's exported BatchMatMul(a_id, a_shape, a_rank, b_id, b_shape, b_rank, transpose_a, transpose_b, out_id)
  batchMatMul ??= be.wasm.cwrap('BatchMatMul', null, [
    'number',
    'array',
    'number',
    'number',
    'array',
    'number',
    'number',
    'number',
    'number',
  ]);
  const out = be.makeOutput([G, M, N], 'float32');
  const aAt = byteOffset(be, a);
  const bAt = byteOffset(be, b);
  const outAt = byteOffset(be, out);
  const aShape = new Uint8Array(new Int32Array([1, M, K]).buffer);
  const bShape = new Uint8Array(new Int32Array([1, K, N]).buffer);
  for (let g = 0; g < G; g++) {
    // fresh ids from the backend's own counter, so they never meet a real tensor's
    const [ai, bi, oi] = [be.dataIdNextNumber++, be.dataIdNextNumber++, be.dataIdNextNumber++];
    be.wasm.tfjs.registerTensor(ai, M * K, aAt + g * M * K * 4);
    be.wasm.tfjs.registerTensor(bi, K * N, bAt + g * K * N * 4);
    be.wasm.tfjs.registerTensor(oi, M * N, outAt + g * M * N * 4);
    batchMatMul(ai, aShape, 3, bi, bShape, 3, false, false, oi);
    // forget the views in the wasm module only (their memory belongs to a, b and out); this also drops the XNNPACK
    // operator cached on b's id, which would otherwise be found again by a later tensor given the same id
    be.wasm.tfjs.disposeData(ai);
    be.wasm.tfjs.disposeData(bi);
    be.wasm.tfjs.disposeData(oi);
  }
  return out;
};

/** a [G, M, K] · b [G, K, N] → [G, M, N], float32 on the wasm backend (the caller checks). */
export function sliceMatMulOnWasm(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  return runWasmKernel(KERNEL, sliceMatMul, { a, b }) as tf.Tensor3D;
}
