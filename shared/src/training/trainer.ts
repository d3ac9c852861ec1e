// Local training and evaluation of a SequenceClassifier (LoRA adapter + head on a frozen BERT), shared by the Node
// site agent, the browser site, the simulator and the coordinator's held-out evaluation: one implementation.
// Speed levers: dynamic padding with length grouping (batches.ts) and, when LoRA skips the lower layers, a per-example
// cache of the frozen layers' output (computed once per dataset). FedProx adds (mu/2)·‖w − w_global‖² to the loss.
// Robustness: a run is a number of optimizer steps (several epochs when the data is small), gradients are clipped to
// a global norm, and the loss can weight classes (imbalanced data). Validation and early stopping wrap this loop
// from outside (fit.ts), through onStep and shouldStop.

import * as tf from '@tensorflow/tfjs';
import { FedloraError } from '../errors';
import type { NamedTensors } from '../tensor';
import type { SequenceClassifier } from '../model/classifier';
import type { BertBatch } from '../model/bert';
import { AdamW, clipOnDevice, squaredNorm } from './optimizer';
import { collate, epochBatches, evalBatches, type EncodedExample } from './batches';
import { seededRandom } from '../random';

export interface TrainOptions {
  epochs: number;
  batchSize: number;
  learningRate: number;
  warmupSteps?: number;
  weightDecay?: number;
  seed?: number;
  /** FedProx proximal coefficient (Li et al. 2020); 0 = plain local SGD (FedAvg) */
  proximalMu?: number;
  /** group batches by length to cut padding (default true) */
  groupByLength?: boolean;
  /** cache frozen lower-layer activations when LoRA skips layers (default true) */
  cacheFrozen?: boolean;
  /**
   * dropout inside the frozen encoder as in HF training mode (config's hidden/attention dropout), the recipe of the
   * model's PyTorch yardstick; default false (deterministic, and the frozen-layer cache stays exact)
   */
  baseDropout?: boolean;
  /** keep the learning rate flat after warm-up (federated rounds) instead of decaying it to 0 */
  constantRate?: boolean;
  /** stop after this many optimizer steps (benchmarks, capped rounds) */
  maxSteps?: number;
  /**
   * run exactly this many optimizer steps, as many epochs as that takes (the recipe's step budget, recipe.ts);
   * overrides `epochs`; `maxSteps` still caps it
   */
  steps?: number;
  /** clip the global L2 norm of each step's gradient to this (0 or absent: no clipping) */
  clipNorm?: number;
  /** per-class loss weights (class weighting for imbalanced data); absent = every example weighs 1 */
  classWeights?: readonly number[];
  /**
   * read the loss (and gradient norm) from the device at step 1, every `lossEvery` steps and at the last step, not at
   * every step (default DEFAULT_LOSS_EVERY): between reads the per-step losses stay on the device, so a GPU step does
   * not wait for the host. 1 reads every step. A non-finite loss is found at the read (naming its step) and fails the run.
   */
  lossEvery?: number;
  /**
   * after every step; a returned promise is awaited (e.g. a held-out evaluation mid-run) and its time is in `seconds`.
   * `loss` and `gradNorm` are as of the latest read (see lossEvery and StepProgress.lossStep).
   */
  onStep?: (p: StepProgress) => unknown;
  /**
   * at most this many examples per forward/backward pass (training-shape.ts chooses it for the backend's memory); the
   * passes' gradients are summed, so the step is the whole batch's. Absent: one pass per batch (per thread).
   */
  microBatch?: number;
  /** helpers that compute part of each batch's gradient in parallel (Node worker threads: node/training/parallel.ts) */
  pool?: GradientPool;
  /** called between steps; return true to stop early (e.g. the round was cancelled) */
  shouldStop?: () => boolean;
}

/**
 * Computes the summed cross-entropy loss and gradients of a subset of the training examples on another thread.
 * The trainer splits every batch between itself and the pool's helpers and sums the results: data parallelism,
 * exact up to float summation order (LoRA gradients are tiny, so the exchange is cheap).
 */
export interface GradientPool {
  readonly helpers: number;
  compute(helper: number, state: NamedTensors, indices: number[], opts?: GradientOptions): Promise<{ lossSum: number; gradSums: Record<string, Float32Array> }>;
}

/** How a gradient is computed, the same on every thread. */
export interface GradientOptions {
  baseDropout?: boolean;
  /** loss weight of each requested example, aligned with the indices (absent: 1 each) */
  weights?: number[];
  /** examples per forward/backward pass on this thread (training-shape.ts); absent: its whole share at once */
  microBatch?: number;
}

export interface StepProgress {
  epoch: number;
  step: number;
  totalSteps: number;
  /**
   * mean training loss over the steps from the read before the latest to the latest read (TrainOptions.lossEvery):
   * with lossEvery 1, this step's loss
   */
  loss: number;
  /** global L2 norm, before clipping, of the gradient of the latest read step (lossStep) */
  gradNorm: number;
  /** the step at which loss and gradNorm were read (≤ step; equal to it with lossEvery 1); absent from older reporters */
  lossStep?: number;
  samplesSeen: number;
  samplesPerSecond: number;
}

export interface TrainResult {
  steps: number;
  samples: number;
  seconds: number;
  samplesPerSecond: number;
  meanLoss: number;
  stopped: boolean;
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/**
 * Loss reads per run: step 1, then every this many steps, and the last step. On a GPU a read makes the host wait for
 * the whole queue; every 10 steps costs a tenth of that and still finds a diverged step within 10 steps.
 */
export const DEFAULT_LOSS_EVERY = 10;

/** Per-example cache of frozen lower-layer outputs ([len, H] each), filled lazily. */
class FrozenCache {
  private readonly rows = new Map<number, Float32Array>();
  constructor(private readonly clf: SequenceClassifier, private readonly examples: EncodedExample[], private readonly padId: number) {}

  prefixFor(indices: number[], b: BertBatch): tf.Tensor3D {
    const H = this.clf.bert.config.hiddenSize;
    const missing = indices.filter((i) => !this.rows.has(i));
    if (missing.length) {
      const mb = collate(missing.map((i) => this.examples[i]), this.padId);
      const prefix = this.clf.frozenPrefix(mb);
      const data = prefix.dataSync() as Float32Array;
      prefix.dispose();
      missing.forEach((ex, r) => {
        const len = this.examples[ex].inputIds.length;
        this.rows.set(ex, data.slice(r * mb.seqLen * H, (r * mb.seqLen + len) * H));
      });
    }
    // padded positions stay zero: they are masked as keys and never pooled, so real-token outputs are exact
    const out = new Float32Array(b.batch * b.seqLen * H);
    indices.forEach((ex, r) => out.set(this.rows.get(ex) as Float32Array, r * b.seqLen * H));
    return tf.tensor3d(out, [b.batch, b.seqLen, H]);
  }
}

export async function trainClassifier(
  clf: SequenceClassifier,
  examples: EncodedExample[],
  padId: number,
  opts: TrainOptions,
): Promise<TrainResult> {
  if (examples.length === 0) throw new FedloraError('DATA_INVALID', 'no training examples');
  for (const e of examples)
    if (e.label < 0 || e.label >= clf.numLabels || !Number.isInteger(e.label))
      throw new FedloraError('DATA_INVALID', `label id ${e.label} outside 0..${clf.numLabels - 1}`);
  const rand = seededRandom(opts.seed ?? 0);
  const lengths = examples.map((e) => e.inputIds.length);
  const perEpoch = Math.ceil(examples.length / opts.batchSize);
  const totalSteps = Math.min(opts.maxSteps ?? Infinity, opts.steps ?? perEpoch * opts.epochs);
  if (!(totalSteps >= 1)) throw new FedloraError('CONFIG_INVALID', `a training run needs at least 1 step (got ${totalSteps})`);
  const weights = opts.classWeights;
  if (weights && (weights.length !== clf.numLabels || !weights.every((w) => Number.isFinite(w) && w >= 0)))
    throw new FedloraError('CONFIG_INVALID', `class weights must be ${clf.numLabels} finite numbers >= 0`);
  const clipNorm = opts.clipNorm ?? 0;
  if (!(clipNorm >= 0)) throw new FedloraError('CONFIG_INVALID', `clipNorm must be >= 0, got ${clipNorm}`);
  const optimizer = new AdamW({
    learningRate: opts.learningRate,
    weightDecay: opts.weightDecay ?? 0.01,
    warmupSteps: opts.warmupSteps ?? Math.min(50, Math.floor(totalSteps / 10)),
    totalSteps: opts.constantRate ? 0 : totalSteps,
  });
  const vars = clf.trainableVariables();
  const mu = opts.proximalMu ?? 0;
  const anchor = mu > 0 ? vars.map((v) => tf.keep(v.clone())) : [];
  const dropout = opts.baseDropout ?? false;
  // with dropout in the frozen layers their output is random, so it cannot be cached
  const cache = (opts.cacheFrozen ?? true) && !dropout && clf.adapter.lowestLayer > 0 ? new FrozenCache(clf, examples, padId) : null;

  const lossEvery = opts.lossEvery ?? DEFAULT_LOSS_EVERY;
  if (!(Number.isInteger(lossEvery) && lossEvery >= 1)) throw new FedloraError('CONFIG_INVALID', `lossEvery must be an integer >= 1, got ${lossEvery}`);

  const start = performance.now();
  let step = 0;
  let samples = 0;
  let lossSum = 0;
  let stopped = false;
  // per-step losses not read yet (scalars on the device), the first of them being step pendingFrom
  const pending: tf.Scalar[] = [];
  let pendingFrom = 1;
  let shown = { loss: NaN, gradNorm: NaN, lossStep: 0 };
  /** One read: the pending losses (and the gradient norm of the last step) in one tensor; throws on a non-finite loss. */
  const readPending = async (normSq: tf.Scalar | null) => {
    if (pending.length === 0) return;
    const all = tf.tidy(() => tf.stack(normSq ? [...pending, normSq] : pending));
    const values = await all.data();
    tf.dispose([all, ...pending, normSq ?? []]);
    const n = pending.length;
    pending.length = 0;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      if (!Number.isFinite(values[i])) {
        const at = pendingFrom + i;
        const window = lossEvery > 1 ? ` (losses read every ${lossEvery} steps, this read at step ${pendingFrom + n - 1})` : '';
        throw new FedloraError('NON_FINITE', `training loss became ${values[i]} at step ${at}${window}; lower the learning rate`);
      }
      sum += values[i];
    }
    lossSum += sum;
    shown = { loss: sum / n, gradNorm: normSq ? Math.sqrt(values[n]) : NaN, lossStep: pendingFrom + n - 1 };
    pendingFrom += n;
  };
  try {
    outer: for (let epoch = 0; step < totalSteps; epoch++) {
      for (const idx of epochBatches(lengths, opts.batchSize, rand, opts.groupByLength === false ? 1 : 20)) {
        if (step >= totalSteps) break outer;
        if (opts.shouldStop?.()) {
          stopped = true;
          break outer;
        }
        const grad = { baseDropout: dropout, weights: weights ? idx.map((i) => weights[examples[i].label]) : undefined, microBatch: opts.microBatch };
        const { loss, grads } = await batchGradients(clf, examples, idx, padId, cache, opts.pool, mu, anchor, grad);
        pending.push(loss);
        step++;
        // read at step 1 (an early check and a first figure to show), every lossEvery steps and at the last step
        const read = step === 1 || step % lossEvery === 0 || step === totalSteps;
        // the norm is taken when it will be read or clipping needs it
        const normSq = optimizer.applyGradients(vars, grads, read || clipNorm > 0 ? { maxNorm: clipNorm } : undefined);
        tf.dispose(Object.values(grads));
        samples += idx.length;
        if (read) await readPending(normSq);
        else normSq?.dispose();
        const seconds = (performance.now() - start) / 1000;
        await opts.onStep?.({ epoch, step, totalSteps, ...shown, samplesSeen: samples, samplesPerSecond: samples / seconds });
        await yieldToEventLoop();
      }
    }
    // a stop (shouldStop) leaves the steps since the last read unread: read them, so meanLoss covers every step
    await readPending(null);
  } finally {
    tf.dispose([...pending, ...anchor]);
    optimizer.dispose();
  }
  const seconds = (performance.now() - start) / 1000;
  return { steps: step, samples, seconds, samplesPerSecond: samples / seconds, meanLoss: step ? lossSum / step : NaN, stopped };
}

/**
 * Scales the gradients in place so their global L2 norm is at most maxNorm (PyTorch's clip_grad_norm_; 0 = leave
 * them); returns the norm before clipping, read. Without clipping a run at lr 2e-3 diverged on a small imbalanced set.
 * The training loop clips without the read (AdamW.applyGradients with `clip`).
 */
export async function clipToNorm(grads: Record<string, tf.Tensor>, maxNorm: number): Promise<number> {
  const squared = clipOnDevice(grads, maxNorm);
  const norm = Math.sqrt((await squared.data())[0]);
  squared.dispose();
  return norm;
}

/**
 * Mean (example-weighted) loss and gradients of one batch, split between this thread and the pool's helpers when
 * there is a pool. Weighted losses are divided by the example count, not the weights' sum, so parts add up exactly and
 * weights that average 1 over the data (recipe.ts's balanced weights) keep the loss scale.
 */
async function batchGradients(
  clf: SequenceClassifier,
  examples: EncodedExample[],
  idx: number[],
  padId: number,
  cache: FrozenCache | null,
  pool: GradientPool | undefined,
  mu: number,
  anchor: tf.Tensor[],
  grad: GradientOptions,
): Promise<{ loss: tf.Scalar; grads: Record<string, tf.Tensor> }> {
  const vars = clf.trainableVariables();
  const parts = pool ? Math.min(pool.helpers + 1, idx.length) : 1;
  const chunks = Array.from({ length: parts }, (_, p) => idx.filter((_, i) => i % parts === p));
  const state = parts > 1 ? await clf.readTrainableState() : null;
  const weightOf = new Map(grad.weights?.map((w, k) => [idx[k], w]));
  const part = (c: number[]): GradientOptions => ({ baseDropout: grad.baseDropout, weights: grad.weights && c.map((i) => weightOf.get(i) as number), microBatch: grad.microBatch });
  const remote = chunks.slice(1).map((c, h) => (pool as GradientPool).compute(h, state as NamedTensors, c, part(c)));
  // this thread's share, in passes of at most microBatch examples whose summed losses and gradients add up exactly
  const mine = chunks[0];
  const n = idx.length;
  const micro = Math.max(1, Math.min(grad.microBatch ?? mine.length, mine.length));
  let value: tf.Scalar | null = null;
  let grads: Record<string, tf.Tensor> = {};
  for (let s = 0; s < mine.length; s += micro) {
    const piece = mine.slice(s, s + micro);
    const b = collate(piece.map((i) => examples[i]), padId);
    const labels = tf.tensor1d(piece.map((i) => examples[i].label), 'int32');
    const prefix = cache?.prefixFor(piece, b);
    // the loss is divided by the batch's example count before the backward pass, so the gradients come out as means:
    // one division of a scalar instead of one per trainable variable (18 GPU programs per step fewer on webgpu)
    const r = tf.variableGrads(
      () => tf.div(summedCrossEntropy(clf.logits(b, true, prefix, grad.baseDropout ?? false), labels, clf.numLabels, part(piece).weights), n) as tf.Scalar,
      vars,
    );
    tf.dispose([labels, prefix]);
    if (value === null) {
      value = r.value;
      grads = r.grads;
    } else {
      const prev: tf.Scalar = value;
      value = tf.add(prev, r.value) as tf.Scalar;
      for (const name of Object.keys(r.grads)) {
        const sum = tf.add(grads[name], r.grads[name]);
        tf.dispose([grads[name], r.grads[name]]);
        grads[name] = sum;
      }
      tf.dispose([prev, r.value]);
    }
  }
  if (value === null) throw new FedloraError('INTERNAL', 'a batch with no examples on this thread');
  const others = await Promise.all(remote);
  const out: Record<string, tf.Tensor> = {};
  for (const [i, v] of vars.entries()) {
    const g = grads[v.name];
    if (others.length === 0 && mu === 0) {
      out[v.name] = g;
      continue;
    }
    out[v.name] = tf.tidy(() => {
      let total: tf.Tensor = g;
      // the helpers' sums are divided here, on the host, as this thread's were through its loss
      for (const o of others) total = tf.add(total, tf.tensor(o.gradSums[v.name].map((x) => x / n), v.shape));
      // FedProx: the gradient of (mu/2)·‖w − w_global‖² is mu·(w − w_global)
      return mu > 0 ? tf.add(total, tf.mul(tf.sub(v, anchor[i]), mu)) : total;
    });
    g.dispose();
  }
  // the loss stays on the device (the caller reads it every few steps): this thread's mean share plus the helpers'
  const remoteSum = others.reduce((a, o) => a + o.lossSum, 0);
  const loss = tf.tidy(() => {
    let l: tf.Scalar = others.length ? tf.add(value, remoteSum / n) : value;
    if (mu > 0) l = tf.add(l, tf.mul(squaredNorm(vars.map((v, i) => tf.sub(v, anchor[i]))), mu / 2));
    return l;
  });
  if (loss !== value) value.dispose();
  return { loss, grads: out };
}

/** Summed (not mean) cross-entropy, each example times its weight: parts of a batch on different threads add up exactly. */
export function summedCrossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D, numLabels: number, weights?: number[]): tf.Scalar {
  const w = weights ? tf.tensor1d(weights) : undefined;
  return tf.losses.softmaxCrossEntropy(tf.oneHot(labels, numLabels), logits, w, undefined, tf.Reduction.SUM) as tf.Scalar;
}

export interface EvalResult {
  predictions: number[];
  /** mean cross-entropy */
  loss: number;
}

export async function evaluateClassifier(
  clf: SequenceClassifier,
  examples: EncodedExample[],
  padId: number,
  opts: { batchSize?: number } = {},
): Promise<EvalResult> {
  const predictions = new Array<number>(examples.length);
  let lossSum = 0;
  for (const idx of evalBatches(examples.map((e) => e.inputIds.length), opts.batchSize ?? 64)) {
    const b = collate(idx.map((i) => examples[i]), padId);
    const [pred, losses] = tf.tidy(() => {
      const logits = clf.logits(b, false);
      const labels = tf.oneHot(tf.tensor1d(idx.map((i) => examples[i].label), 'int32'), clf.numLabels);
      const l = tf.losses.softmaxCrossEntropy(labels, logits, undefined, undefined, tf.Reduction.NONE);
      return [tf.argMax(logits, 1), l];
    });
    const p = (await pred.data()) as Int32Array;
    const l = (await losses.data()) as Float32Array;
    idx.forEach((ex, r) => {
      predictions[ex] = p[r];
      lossSum += l[r];
    });
    tf.dispose([pred, losses]);
    await yieldToEventLoop();
  }
  return { predictions, loss: lossSum / Math.max(1, examples.length) };
}
