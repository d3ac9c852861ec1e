// Exact GELU, as Hugging Face's "gelu": 0.5·x·(1 + erf(x/√2)), with its gradient written out. Left to autodiff, the
// formula puts five FFN-wide tensors on the tape per layer (x·0.5, x/√2, erf, 1 + erf and the product) and costs
// about ten kernels in the backward pass; the written-out gradient, Φ(x) + x·φ(x), keeps only x (the intermediate
// dense layer's output, alive anyway) and costs six. The FFN-wide tensors are the largest of a layer (4x hidden).
// On the wasm backend both directions are one fused SIMD kernel each (wasm-gelu.ts): tfjs-wasm's Erf and Exp are
// scalar loops, and there GELU as tfjs ops was ~20% of a training step. On webgpu both are one WGSL program each
// (webgpu-gelu.ts): a GPU step is bound by dispatches, and the ops are 5 forward and 9 backward.

import * as tf from '@tensorflow/tfjs';
import { geluGradOnWasm, geluOnWasm, wasmGeluAvailable } from './wasm-gelu';
import { geluGradOnWebGPU, geluOnWebGPU } from './webgpu-gelu';
import { onWebGPU } from './webgpu-kernel';
import { kernelPathSwitch, type KernelPath } from './kernel-path';

const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** 'auto': the fused kernels where they run (wasm, webgpu); 'ops' forces tfjs ops everywhere (parity tests, benchmarks). */
export type GeluPath = KernelPath;

/** Starting setting from the environment where there is one (a worker thread reads its own copy, as a benchmark's). */
export const GELU_PATH_ENV = 'FEDLORA_GELU_PATH';
const pathSwitch = kernelPathSwitch(GELU_PATH_ENV);

/** Chooses how GELU runs in this thread; returns the previous setting. */
export const setGeluPath = (p: GeluPath): GeluPath => pathSwitch.set(p);

/** The fused pair for the active backend, or null for tfjs ops. */
function fusedKernels(): { forward: (x: tf.Tensor) => tf.Tensor; gradient: (x: tf.Tensor, dy: tf.Tensor) => tf.Tensor } | null {
  if (!pathSwitch.auto()) return null;
  if (wasmGeluAvailable()) return { forward: geluOnWasm, gradient: geluGradOnWasm };
  if (onWebGPU()) return { forward: geluOnWebGPU, gradient: geluGradOnWebGPU };
  return null;
}

const geluWithGrad = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
  save([x]);
  const fused = fusedKernels();
  const value = fused ? fused.forward(x) : tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
  return {
    value,
    // d/dx [x·Φ(x)] = Φ(x) + x·φ(x), Φ the normal CDF (0.5·(1 + erf(x/√2))) and φ its density
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs] = saved;
      if (fused) return fused.gradient(xs, dy);
      const cdf = tf.mul(tf.add(1, tf.erf(tf.mul(xs, Math.SQRT1_2))), 0.5);
      const pdf = tf.mul(tf.exp(tf.mul(tf.square(xs), -0.5)), INV_SQRT_2PI);
      return tf.mul(dy, tf.add(cdf, tf.mul(xs, pdf)));
    },
  };
});

export const gelu = (x: tf.Tensor): tf.Tensor => geluWithGrad(x);
