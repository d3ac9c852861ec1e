// Exact GELU, as Hugging Face's "gelu": 0.5·x·(1 + erf(x/√2)), with its gradient written out. Left to autodiff, the
// formula puts five FFN-wide tensors on the tape per layer (x·0.5, x/√2, erf, 1 + erf and the product) and costs
// about ten kernels in the backward pass; the written-out gradient, Φ(x) + x·φ(x), keeps only x (the intermediate
// dense layer's output, alive anyway) and costs six. The FFN-wide tensors are the largest of a layer (4x hidden).
// On the wasm backend both directions are one fused SIMD kernel each (wasm-gelu.ts): tfjs-wasm's Erf and Exp are
// scalar loops, and there GELU as tfjs ops was ~20% of a training step.

import * as tf from '@tensorflow/tfjs';
import { geluGradOnWasm, geluOnWasm, wasmGeluAvailable } from './wasm-gelu';

const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** 'auto': the fused kernel where it runs (wasm); 'ops' forces tfjs ops everywhere (parity tests, benchmarks). */
export type GeluPath = 'auto' | 'ops';

/** Starting setting from the environment where there is one (a worker thread reads its own copy, as a benchmark's). */
export const GELU_PATH_ENV = 'FEDLORA_GELU_PATH';
const fromEnv = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[
  GELU_PATH_ENV
];
let configured: GeluPath = fromEnv === 'ops' ? 'ops' : 'auto';

/** Chooses how GELU runs in this thread; returns the previous setting. */
export function setGeluPath(path: GeluPath): GeluPath {
  const previous = configured;
  configured = path;
  return previous;
}

const fused = () => configured === 'auto' && wasmGeluAvailable();

const geluWithGrad = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
  save([x]);
  const value = fused() ? geluOnWasm(x) : tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
  return {
    value,
    // d/dx [x·Φ(x)] = Φ(x) + x·φ(x), Φ the normal CDF (0.5·(1 + erf(x/√2))) and φ its density
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs] = saved;
      if (fused()) return geluGradOnWasm(xs, dy);
      const cdf = tf.mul(tf.add(1, tf.erf(tf.mul(xs, Math.SQRT1_2))), 0.5);
      const pdf = tf.mul(tf.exp(tf.mul(tf.square(xs), -0.5)), INV_SQRT_2PI);
      return tf.mul(dy, tf.add(cdf, tf.mul(xs, pdf)));
    },
  };
});

export const gelu = (x: tf.Tensor): tf.Tensor => geluWithGrad(x);
