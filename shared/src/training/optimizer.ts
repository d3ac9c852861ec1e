// AdamW (Loshchilov & Hutter 2019) over tf.Variables with a linear warm-up / linear decay learning-rate schedule —
// the recipe of the model's PyTorch yardstick. tfjs's built-in Adam has neither decoupled weight decay nor schedules.

import * as tf from '@tensorflow/tfjs';
import { FedloraError } from '../errors';
import { onWebGPU } from '../model/webgpu-kernel';
import { adamwFitsOnWebGPU, adamwStepOnWebGPU } from './webgpu-adamw';

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

/**
 * The moments are kept as two flat vectors over all the variables, and each step's arithmetic runs once on the
 * concatenated gradient: ~16 kernels plus 2–3 per variable, where a loop over the variables took ~15 per variable
 * (~270 for a LoRA adapter, ~1,500 for full-weight pretraining). On WebGPU every kernel is a dispatch; on wasm each
 * costs a fixed ~20 µs. The per-element math and its order are the loop's, so the weights are bit-identical to it.
 * On webgpu the whole update is one program (webgpu-adamw.ts) and a slice per variable.
 */
export class AdamW {
  private step = 0;
  private flat: { names: string[]; sizes: number[]; m: tf.Variable; v: tf.Variable; decayMask: tf.Tensor | null } | null = null;
  /**
   * webgpu: the last step's output [weights′ | m′ | s′] and the data ids it gave the variables. While every variable
   * still holds what the step assigned it (nothing assigned to it since), the next step reads weights and moments
   * from here: no concatenation of the weights, no slices for the moments. The moments live here, not in flat.m/v.
   */
  private packed: { state: tf.Tensor1D; weightIds: object[] } | null = null;
  private readonly o: Required<AdamWOptions>;

  constructor(opts: AdamWOptions) {
    this.o = {
      beta1: 0.9,
      beta2: 0.999,
      epsilon: 1e-8,
      weightDecay: 0.01,
      warmupSteps: 0,
      totalSteps: 0,
      ...opts,
    };
  }

  /** learning rate at step t (1-based) */
  rateAt(t: number): number {
    const { learningRate: lr, warmupSteps: w, totalSteps: n } = this.o;
    if (w > 0 && t <= w) return (lr * t) / w;
    if (n > 0) return lr * Math.max(0, (n - t) / Math.max(1, n - w));
    return lr;
  }

  /**
   * One step over vars, each of which must have a gradient; the same vars, in the same order, at every step.
   * With `clip`, the gradients' global L2 norm is taken first and returned squared (a scalar the caller disposes),
   * and gradients over clip.maxNorm > 0 are scaled down to it (clipOnDevice; maxNorm 0 only measures). On webgpu the
   * norm is 2 programs on the flat gradient and the scaling happens inside the AdamW program, where clipOnDevice
   * costs ~4 programs per variable (~75 a step for a LoRA adapter).
   */
  applyGradients(vars: tf.Variable[], grads: Record<string, tf.Tensor>, clip?: { maxNorm: number }): tf.Scalar | null {
    const missing = vars.filter((v) => !grads[v.name]).map((v) => v.name);
    if (missing.length) throw new FedloraError('INTERNAL', `AdamW: no gradient for ${missing.join(', ')}`);
    const names = vars.map((v) => v.name);
    if (this.flat === null) {
      const sizes = vars.map((v) => v.size);
      const total = sizes.reduce((a, b) => a + b, 0);
      this.flat = {
        names,
        sizes,
        // in a tidy: it disposes the zeros each variable was made from (a variable keeps its own reference)
        m: tf.tidy(() => tf.variable(tf.zeros([total]), false)),
        v: tf.tidy(() => tf.variable(tf.zeros([total]), false)),
        decayMask: null,
      };
    } else if (names.join('\n') !== this.flat.names.join('\n'))
      throw new FedloraError('INTERNAL', 'AdamW: the variables changed between steps');
    const { m, v: s, sizes } = this.flat;
    this.step++;
    const lr = this.rateAt(this.step);
    const { beta1: b1, beta2: b2, epsilon: eps, weightDecay: wd } = this.o;
    const c1 = 1 - b1 ** this.step;
    const c2 = 1 - b2 ** this.step;
    const flatten = (ts: tf.Tensor[]) => (ts.length === 1 ? tf.reshape(ts[0], [-1]) : tf.concat(ts.map((t) => tf.reshape(t, [-1]))));
    if (onWebGPU() && adamwFitsOnWebGPU(m.size)) {
      // 1 where decoupled weight decay applies (matrices), made once; kept past any tidy the caller runs us in
      this.flat.decayMask ??= tf.keep(tf.tidy(() => flatten(vars.map((v) => tf.fill(v.shape, wd > 0 && v.rank >= 2 ? 1 : 0)))));
      const decayMask = this.flat.decayMask;
      const previous = this.packed;
      const n = m.size;
      const [packed, normSq] = tf.tidy(() => {
        const grad = flatten(vars.map((v) => grads[v.name]));
        const norm = clip ? (tf.sum(tf.square(grad)) as tf.Scalar) : null;
        let state: tf.Tensor;
        if (previous === null) state = tf.concat([flatten(vars), m, s]);
        else if (vars.every((v, i) => v.dataId === previous.weightIds[i])) state = previous.state;
        else state = tf.concat([flatten(vars), tf.slice(previous.state, n, 2 * n)]); // weights set from outside
        const next = adamwStepOnWebGPU(
          { grad, state, decayMask },
          { beta1: b1, beta2: b2, epsilon: eps, c1, c2, learningRate: lr, decay: lr * wd },
          clip && norm ? { normSq: norm, maxNorm: clip.maxNorm } : undefined,
        );
        let offset = 0;
        for (const [i, v] of vars.entries()) {
          v.assign(tf.reshape(tf.slice(next, offset, sizes[i]), v.shape));
          offset += sizes[i];
        }
        return norm ? [next, norm] : [next]; // a tidy returns no null
      });
      previous?.state.dispose();
      // kept past any tidy the caller runs us in, like the variables
      this.packed = { state: tf.keep(packed) as tf.Tensor1D, weightIds: vars.map((v) => v.dataId) };
      return (normSq as tf.Scalar | undefined) ?? null;
    }
    if (this.packed) {
      // the backend changed since the last step (a page that lost its GPU device): the moments move to the ops' variables
      const { state } = this.packed;
      m.assign(tf.slice(state, m.size, m.size));
      s.assign(tf.slice(state, 2 * m.size, m.size));
      state.dispose();
      this.packed = null;
    }
    const normSq = clip ? clipOnDevice(grads, clip.maxNorm) : null;
    tf.tidy(() => {
      const g = flatten(vars.map((v) => grads[v.name]));
      m.assign(tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1)));
      s.assign(tf.add(tf.mul(s, b2), tf.mul(tf.square(g), 1 - b2)));
      const update = tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(s, c2)), eps));
      const step = tf.mul(update, lr);
      const pieces = vars.length === 1 ? [step] : tf.split(step, sizes);
      for (const [i, v] of vars.entries()) {
        let next = tf.sub(v, tf.reshape(pieces[i], v.shape));
        // decoupled weight decay, on matrices only
        if (wd > 0 && v.rank >= 2) next = tf.sub(next, tf.mul(v, lr * wd));
        v.assign(next);
      }
    });
    return normSq;
  }

  dispose(): void {
    if (this.flat) tf.dispose([this.flat.m, this.flat.v, ...(this.flat.decayMask ? [this.flat.decayMask] : [])]);
    this.packed?.state.dispose();
    this.flat = null;
    this.packed = null;
  }
}

/**
 * Σ‖t‖² over the tensors, as a scalar tensor. A chain of adds, not tf.addN: WebGPU's addN binds every input to one
 * shader and fails past the device's storage-buffer limit (8 on SwiftShader; a LoRA state has 10+ tensors), and the
 * failure only shows as a lost device at the next read. Read the result with await data(): a synchronous read on
 * WebGPU is slow and, in Chromium, stalls the page.
 */
export function squaredNorm(tensors: tf.Tensor[]): tf.Scalar {
  return tf.tidy(
    () => tensors.map((t) => tf.sum(tf.square(t))).reduce((a, b) => tf.add(a, b), tf.scalar(0)) as tf.Scalar,
  );
}

/**
 * Scales the gradients in place on the device so their global L2 norm is at most maxNorm (0: leaves them), as
 * PyTorch's clip_grad_norm_, without a read (trainer.ts's clipToNorm reads it): returns the squared norm before
 * clipping as a scalar tensor, for the caller to read (or not).
 */
export function clipOnDevice(grads: Record<string, tf.Tensor>, maxNorm: number): tf.Scalar {
  const names = Object.keys(grads);
  const squared = squaredNorm(names.map((n) => grads[n]));
  if (maxNorm > 0) {
    const scale = tf.tidy(() => {
      const norm = tf.sqrt(squared);
      return tf.where(tf.greater(norm, maxNorm), tf.div(maxNorm, tf.add(norm, 1e-6)), tf.onesLike(norm));
    });
    for (const n of names) {
      const scaled = tf.mul(grads[n], scale);
      grads[n].dispose();
      grads[n] = scaled;
    }
    scale.dispose();
  }
  return squared;
}
