// LayerNorm over the last axis with frozen scale and shift, y = (x − mean)·rstd·γ + β, with the gradient to x written
// out: dx = rstd·(g − mean(g) − x̂·mean(g·x̂)), g = dy·γ, x̂ = (x − mean)·rstd. Why: autodiff of the formula (moments,
// broadcasts, rsqrt) costs ~20 kernels per LayerNorm backward, among them reductions whose gradient broadcasts back;
// on wasm that was ~11 ms for [1024, 256], ~85 ms of a step at the reference shape (8 LayerNorms on the gradient's
// path), and on WebGPU every kernel is one more dispatch. Written out: 8 row-wise kernels.
// Only for frozen γ and β (a LoRA-trained model): they are closed over, not inputs, so no gradient is formed for them.
// A model whose weights train (full-weight masked-LM pretraining) keeps autodiff of the formula (bert.ts).
// On webgpu each direction is one WGSL program (webgpu-layer-norm.ts): there every kernel is a dispatch.

import * as tf from '@tensorflow/tfjs';
import { layerNormGradOnWebGPU, layerNormOnWebGPU } from './webgpu-layer-norm';
import { onWebGPU } from './webgpu-kernel';
import { kernelPathSwitch, type KernelPath } from './kernel-path';

/** 'auto': one program per direction where that runs (webgpu); 'ops' forces tfjs ops (parity tests, benchmarks). */
export type LayerNormPath = KernelPath;

/** Starting setting from the environment where there is one (a worker thread reads its own copy). */
export const LAYER_NORM_PATH_ENV = 'FEDLORA_LAYER_NORM_PATH';
const pathSwitch = kernelPathSwitch(LAYER_NORM_PATH_ENV);

/** Chooses how frozen LayerNorms run in this thread; returns the previous setting. */
export const setLayerNormPath = (p: LayerNormPath): LayerNormPath => pathSwitch.set(p);

/**
 * x [..., H] → LayerNorm(x + residual)·gamma + beta (LayerNorm(x) without a residual), gamma and beta [H] frozen
 * (long-lived: the model's own weights). The residual sum of a transformer layer is taken here so that on webgpu it
 * is part of the LayerNorm's program.
 */
export function frozenLayerNorm(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number, residual?: tf.Tensor): tf.Tensor {
  if (pathSwitch.auto() && onWebGPU()) return residual ? fusedResidualOnWebGPU(x, residual, gamma, beta, eps) : fusedOnWebGPU(x, gamma, beta, eps);
  if (residual) x = tf.add(x, residual);
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

function fusedOnWebGPU(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, save] = args as [tf.Tensor, tf.GradSaveFunc];
    save([input]);
    return {
      value: layerNormOnWebGPU(input, gamma, beta, eps),
      gradFunc: (dy: tf.Tensor, [saved]: tf.Tensor[]) => layerNormGradOnWebGPU(saved, dy, gamma, eps),
    };
  });
  return f(x);
}

function fusedResidualOnWebGPU(x: tf.Tensor, residual: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, eps: number): tf.Tensor {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, res, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([input, res]);
    return {
      value: layerNormOnWebGPU(input, gamma, beta, eps, res),
      gradFunc: (dy: tf.Tensor, [xs, rs]: tf.Tensor[]) => {
        const d = layerNormGradOnWebGPU(xs, dy, gamma, eps, rs);
        return [d, d.clone()]; // the sum's two terms get the same gradient (a clone shares the buffer: no program)
      },
    };
  });
  return f(x, residual);
}
