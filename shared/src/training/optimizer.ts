// AdamW (Loshchilov & Hutter 2019) over tf.Variables with a linear warm-up / linear decay learning-rate schedule —
// the recipe of the model's PyTorch yardstick. tfjs's built-in Adam has neither decoupled weight decay nor schedules.

import * as tf from '@tensorflow/tfjs';

export interface AdamWOptions {
  learningRate: number;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  /** decoupled weight decay, applied to matrices only (not biases), as the PyTorch recipe does */
  weightDecay?: number;
  warmupSteps?: number;
  /** total steps for the linear decay to 0; 0 = constant after warm-up */
  totalSteps?: number;
}

export class AdamW {
  private step = 0;
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  private readonly o: Required<AdamWOptions>;

  constructor(opts: AdamWOptions) {
    this.o = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01, warmupSteps: 0, totalSteps: 0, ...opts };
  }

  /** learning rate at step t (1-based) */
  rateAt(t: number): number {
    const { learningRate: lr, warmupSteps: w, totalSteps: n } = this.o;
    if (w > 0 && t <= w) return (lr * t) / w;
    if (n > 0) return lr * Math.max(0, (n - t) / Math.max(1, n - w));
    return lr;
  }

  applyGradients(vars: tf.Variable[], grads: Record<string, tf.Tensor>): void {
    this.step++;
    const lr = this.rateAt(this.step);
    const { beta1: b1, beta2: b2, epsilon: eps, weightDecay: wd } = this.o;
    const c1 = 1 - b1 ** this.step;
    const c2 = 1 - b2 ** this.step;
    tf.tidy(() => {
      for (const v of vars) {
        const g = grads[v.name];
        if (!g) continue;
        let m = this.m.get(v.name);
        let s = this.v.get(v.name);
        if (!m || !s) {
          m = tf.variable(tf.zerosLike(v), false);
          s = tf.variable(tf.zerosLike(v), false);
          this.m.set(v.name, m);
          this.v.set(v.name, s);
        }
        m.assign(tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1)));
        s.assign(tf.add(tf.mul(s, b2), tf.mul(tf.square(g), 1 - b2)));
        const update = tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(s, c2)), eps));
        let next = tf.sub(v, tf.mul(update, lr));
        if (wd > 0 && v.rank >= 2) next = tf.sub(next, tf.mul(v, lr * wd));
        v.assign(next);
      }
    });
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
    this.m.clear();
    this.v.clear();
  }
}

/**
 * Σ‖t‖² over the tensors, as a scalar tensor. A chain of adds, not tf.addN: WebGPU's addN binds every input to one
 * shader and fails past the device's storage-buffer limit (8 on SwiftShader; a LoRA state has 10+ tensors), and the
 * failure only shows as a lost device at the next read. Read the result with await data(): a synchronous read on
 * WebGPU is slow and, in Chromium, stalls the page.
 */
export function squaredNorm(tensors: tf.Tensor[]): tf.Scalar {
  return tf.tidy(() => tensors.map((t) => tf.sum(tf.square(t))).reduce((a, b) => tf.add(a, b), tf.scalar(0)) as tf.Scalar);
}
