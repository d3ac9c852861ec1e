// LayerNorm over the last axis with frozen scale and shift, y = (x − mean)·rstd·γ + β, with the gradient to x written
// out: dx = rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dy·γ, x̂ = (x − mean)·rstd. Why: autodiff of the formula (moments,
// broadcasts, rsqrt) costs ~20 kernels per LayerNorm backward, among them reductions whose gradient broadcasts back;
// on wasm that was ~11 ms for [1024, 256], ~85 ms of a step at the reference shape (8 LayerNorms on the gradient's
// path), and on WebGPU every kernel is one more dispatch. Written out: 8 row-wise kernels.
// Only for frozen γ and β (a LoRA-trained model): they are closed over, not inputs, so no gradient is formed for them.
// A model whose weights train (full-weight masked-LM pretraining) keeps autodiff of the formula (bert.ts).

import * as tf from '@tensorflow/tfjs';

/** x [..., H] → LayerNorm(x)·gamma + beta, gamma and beta [H] frozen (long-lived: the model's own weights). */
export function frozenLayerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const { mean, variance } = tf.moments(input, -1, true);
    const rstd = tf.rsqrt(tf.add(variance, eps));
    const normed = tf.mul(tf.sub(input, mean), rstd);
    save([normed, rstd]);
    return {
      value: tf.add(tf.mul(normed, gamma), beta),
      gradFunc: (dy: tf.Tensor, [xhat, r]: tf.Tensor[]) => {
        const g = tf.mul(dy, gamma);
        const meanG = tf.mean(g, -1, true);
        const meanGx = tf.mean(tf.mul(g, xhat), -1, true);
        return tf.mul(tf.sub(tf.sub(g, meanG), tf.mul(xhat, meanGx)), r);
      },
    };
  });
  return f(x);
}
