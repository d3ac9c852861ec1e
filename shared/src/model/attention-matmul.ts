// The batched products of self-attention (scores Q·Kᵀ, context P·V, and their gradients), as one plain 2-D product
// per (example, head) where plain products are the fast path (tfjs-wasm: matmul-path.ts). Same math; each output
// element is the same dot product, summed in XNNPACK's order instead of the scalar loop's.

import * as tf from '@tensorflow/tfjs';
import { plainProducts } from './matmul-path';
import { sliceMatMulOnWasm } from './wasm-slice-matmul';

/** a [G, M, K] · b [G, K, N] → [G, M, N] as G plain 2-D products: one kernel on wasm, G tf.matMul elsewhere. */
function perSlice(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  if (tf.getBackend() === 'wasm' && a.dtype === 'float32' && b.dtype === 'float32')
    return sliceMatMulOnWasm(a, b);
  const bs = tf.unstack(b) as tf.Tensor2D[];
  return tf.stack(tf.unstack(a).map((ai, i) => tf.matMul(ai as tf.Tensor2D, bs[i]))) as tf.Tensor3D;
}

const swapLast = (t: tf.Tensor3D) => tf.transpose(t, [0, 2, 1]);

/** perSlice with a gradient that is itself two perSlice products (da = dy·bᵀ, db = aᵀ·dy): no batched matMul anywhere. */
const splitMatMul = tf.customGrad(((a: tf.Tensor3D, b: tf.Tensor3D, save: tf.GradSaveFunc) => {
  save([a, b]); // saved, not closed over: an enclosing tidy may dispose the inputs before the backward pass
  return {
    value: perSlice(a, b),
    gradFunc: (dy: tf.Tensor3D, [sa, sb]: tf.Tensor3D[]) => [
      perSlice(dy, swapLast(sb)),
      perSlice(swapLast(sa), dy),
    ],
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (
  a: tf.Tensor3D,
  b: tf.Tensor3D,
) => tf.Tensor3D;

/**
 * a [B, h, M, K] · b [B, h, K, N] (or bᵀ when transposeB, b [B, h, N, K]) → [B, h, M, N], as tf.matMul(a, b, false,
 * transposeB) computes it.
 */
export function attentionMatMul(a: tf.Tensor4D, b: tf.Tensor4D, transposeB = false): tf.Tensor4D {
  if (!plainProducts()) return tf.matMul(a, b, false, transposeB);
  const [B, h, M, K] = a.shape;
  const a3 = tf.reshape(a, [B * h, M, K]) as tf.Tensor3D;
  const b3 = tf.reshape(b, [B * h, b.shape[2], b.shape[3]]) as tf.Tensor3D;
  const out = splitMatMul(a3, transposeB ? swapLast(b3) : b3);
  return tf.reshape(out, [B, h, M, out.shape[2]]) as tf.Tensor4D;
}
