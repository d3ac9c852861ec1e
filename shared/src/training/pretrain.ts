// Continued masked-LM pretraining (domain-adaptive pretraining, Gururangan et al. 2020 "Don't Stop Pretraining") of a
// BERT on a site's unlabelled text: documents → packed token sequences → a seeded held-out split with fixed masks →
// AdamW steps on freshly masked batches (dynamic masking, as RoBERTa) → held-out MLM loss and masked-token accuracy.

import * as tf from '@tensorflow/tfjs';
import { FedloraError } from '../errors';
import type { BertModel } from '../model/bert';
import type { LoraAdapter } from '../lora/adapter';
import { maskTokens, type MaskedSequence, type MlmHead } from '../model/mlm';
import type { SpecialTokenIds, Tokenizer } from '../tokenizer/tokenizer';
import { AdamW, squaredNorm } from './optimizer';
import { collate, epochBatches, evalBatches, shuffleInPlace } from './batches';
import { seededRandom } from '../random';
import { DEFAULT_LOSS_EVERY } from './trainer';

/**
 * One document per line; or, when the text has blank lines, blank-line separated paragraphs (their line breaks
 * become spaces). Whitespace-only documents are dropped.
 */
export function splitDocuments(text: string): string[] {
  const normalized = text.replace(/\r\n?/g, '\n');
  const parts = /\n[ \t]*\n/.test(normalized) ? normalized.split(/\n[ \t]*\n+/).map((p) => p.replace(/\s*\n\s*/g, ' ')) : normalized.split('\n');
  return parts.map((p) => p.trim()).filter((p) => p.length > 0);
}

/**
 * Token-id sequences of at most maxLength: a document longer than maxLength − 2 word pieces is cut into consecutive
 * pieces (nothing is dropped), and consecutive short documents are packed into one sequence, [CLS] a [SEP] b [SEP] …,
 * so that batches carry text rather than padding (RoBERTa's FULL-SENTENCES packing).
 */
export function packSequences(docs: readonly string[], tok: Tokenizer, maxLength: number): number[][] {
  if (!Number.isInteger(maxLength) || maxLength < 3) throw new FedloraError('CONFIG_INVALID', `maxLength must be ≥ 3, got ${maxLength}`);
  const { cls, sep } = tok.special;
  const out: number[][] = [];
  let cur: number[] = [cls];
  for (const doc of docs) {
    const ids = tok.tokenize(doc).map((t) => tok.tokenToId(t));
    for (let s = 0; s < ids.length; s += maxLength - 2) {
      const piece = ids.slice(s, s + maxLength - 2);
      if (cur.length + piece.length + 1 > maxLength) {
        out.push(cur);
        cur = [cls];
      }
      cur.push(...piece, sep);
    }
  }
  if (cur.length > 1) out.push(cur);
  return out;
}

export interface MlmCorpus {
  /** unmasked training sequences (masked afresh for every batch) */
  train: number[][];
  /** held-out sequences with masks fixed once, so losses before and after compare */
  heldout: MaskedSequence[];
  trainDocuments: number;
  heldoutDocuments: number;
}

/** Splits documents into a seeded held-out fraction (at least one document) and the rest, then packs and masks. */
export function prepareCorpus(
  docs: readonly string[],
  tok: Tokenizer,
  opts: { maxLength: number; seed: number; heldoutFraction?: number; vocabSize?: number },
): MlmCorpus {
  if (docs.length < 2)
    throw new FedloraError('DATA_INVALID', `need at least 2 documents (one is held out), got ${docs.length}`);
  const order = shuffleInPlace(docs.map((_, i) => i), seededRandom(opts.seed + 7));
  const nHeld = Math.max(1, Math.round(docs.length * (opts.heldoutFraction ?? 0.1)));
  // keep document order inside each part so packing joins neighbouring (related) documents
  const held = order.slice(0, nHeld).sort((a, b) => a - b).map((i) => docs[i]);
  const train = order.slice(nHeld).sort((a, b) => a - b).map((i) => docs[i]);
  const rand = seededRandom(opts.seed + 13);
  const vocab = opts.vocabSize ?? tok.vocabSize;
  const heldout = packSequences(held, tok, opts.maxLength).map((ids) => maskTokens(ids, tok.special, vocab, rand));
  const trainSeqs = packSequences(train, tok, opts.maxLength);
  if (trainSeqs.length === 0 || heldout.every((m) => m.positions.length === 0))
    throw new FedloraError('DATA_INVALID', 'the text has no tokens to mask (only whitespace or special tokens)');
  return { train: trainSeqs, heldout, trainDocuments: train.length, heldoutDocuments: held.length };
}

/** Collates masked sequences into a padded batch plus flat (row·seqLen + position) indices of the masked tokens. */
function maskedBatch(seqs: MaskedSequence[], padId: number) {
  const b = collate(seqs.map((s) => ({ inputIds: s.inputIds, tokenTypeIds: s.inputIds.map(() => 0), label: 0 })), padId);
  const positions = Int32Array.from(seqs.flatMap((s, r) => s.positions.map((p) => r * b.seqLen + p)));
  const labels = Int32Array.from(seqs.flatMap((s) => s.labels));
  return { b, positions, labels };
}

export interface MlmEval {
  /** mean cross-entropy per masked token (nats) */
  loss: number;
  /** fraction of masked tokens whose argmax prediction is the original token */
  accuracy: number;
  maskedTokens: number;
}

/** Held-out MLM loss and accuracy; with `adapter`, through its LoRA branches (inference mode). */
export async function evaluateMlm(
  bert: BertModel,
  head: MlmHead,
  seqs: MaskedSequence[],
  padId: number,
  batchSize = 32,
  adapter?: LoraAdapter,
): Promise<MlmEval> {
  let lossSum = 0;
  let correct = 0;
  let n = 0;
  for (const idx of evalBatches(seqs.map((s) => s.inputIds.length), batchSize)) {
    const { b, positions, labels } = maskedBatch(idx.map((i) => seqs[i]), padId);
    if (positions.length === 0) continue;
    const r = tf.tidy(() => head.lossAt(bert.forward(b, adapter?.hook(false)), positions, labels));
    lossSum += (await r.lossSum.data())[0];
    correct += (await r.correct.data())[0];
    n += positions.length;
    tf.dispose([r.lossSum, r.correct]);
  }
  return { loss: n ? lossSum / n : NaN, accuracy: n ? correct / n : NaN, maskedTokens: n };
}

export interface PretrainOptions {
  epochs: number;
  batchSize: number;
  learningRate: number;
  seed?: number;
  maxSteps?: number;
  /** train only the top K encoder layers + the head (embeddings and lower layers frozen); default all layers */
  trainLayers?: number;
  /**
   * LoRA mode (issue 24's federated MLM rounds): train this adapter, and the head's transform when asked, on a frozen
   * encoder (a BertModel built without `trainable`) instead of the encoder's own weights; trainLayers does not apply
   */
  lora?: { adapter: LoraAdapter; trainHeadTransform: boolean };
  warmupSteps?: number;
  weightDecay?: number;
  /** global gradient-norm clip (HF Trainer's max_grad_norm); 0 = off */
  maxGradNorm?: number;
  /**
   * read the loss from the device at step 1, every `lossEvery` steps and at the last step (default DEFAULT_LOSS_EVERY,
   * as trainer.ts); a non-finite loss fails the run at the read, naming its step
   */
  lossEvery?: number;
  /** after every step; `loss` is the mean over the steps up to the latest read (`lossStep`) since the read before */
  onStep?: (p: { step: number; totalSteps: number; loss: number; lossStep: number; sequencesPerSecond: number }) => void;
}

export interface PretrainResult {
  steps: number;
  seconds: number;
  sequencesPerSecond: number;
  meanLoss: number;
  trainableParams: number;
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/** The variables a run trains: the head, the top `k` layers, and the embeddings only when every layer trains. */
export function pretrainVariables(bert: BertModel, head: MlmHead, k: number): tf.Variable[] {
  const L = bert.config.numLayers;
  const vars = [...bert.variables()].filter(([name]) => {
    if (name.startsWith('pooler.')) return false; // not used by the MLM objective
    if (name.startsWith('embeddings.')) return k >= L;
    const layer = Number(/^encoder\.layer\.(\d+)\./.exec(name)?.[1]);
    return layer >= L - k;
  });
  return [...vars.map(([, v]) => v), ...head.variables()];
}

export async function pretrainMlm(
  bert: BertModel,
  head: MlmHead,
  train: number[][],
  special: SpecialTokenIds,
  vocabSize: number,
  opts: PretrainOptions,
): Promise<PretrainResult> {
  const lora = opts.lora;
  if (lora && (bert.trainable || opts.trainLayers !== undefined))
    throw new FedloraError('CONFIG_INVALID', 'pretrainMlm with a LoRA adapter needs a frozen BertModel and no trainLayers');
  if (!lora && !bert.trainable) throw new FedloraError('CONFIG_INVALID', 'pretrainMlm needs a BertModel built with { trainable: true }');
  if (train.length === 0) throw new FedloraError('DATA_INVALID', 'no training sequences');
  const L = bert.config.numLayers;
  const k = opts.trainLayers ?? L;
  if (!Number.isInteger(k) || k < 1 || k > L) throw new FedloraError('CONFIG_INVALID', `trainLayers must be 1..${L}, got ${k}`);
  // layers below the lowest adapted one (LoRA) or below the top k (full weights) are frozen end to end
  const frozenBelow = lora ? lora.adapter.lowestLayer : L - k;
  const hook = lora?.adapter.hook(true);
  const rand = seededRandom(opts.seed ?? 0);
  const totalSteps = Math.min(opts.maxSteps ?? Infinity, Math.ceil(train.length / opts.batchSize) * opts.epochs);
  const optimizer = new AdamW({
    learningRate: opts.learningRate,
    weightDecay: opts.weightDecay ?? 0.01,
    warmupSteps: opts.warmupSteps ?? Math.min(50, Math.floor(totalSteps / 10)),
    totalSteps,
  });
  const vars = lora
    ? [...lora.adapter.variables(), ...(lora.trainHeadTransform ? head.transformVariables() : [])]
    : pretrainVariables(bert, head, k);
  const clip = opts.maxGradNorm ?? 1;
  const lossEvery = opts.lossEvery ?? DEFAULT_LOSS_EVERY;
  if (!(Number.isInteger(lossEvery) && lossEvery >= 1)) throw new FedloraError('CONFIG_INVALID', `lossEvery must be an integer >= 1, got ${lossEvery}`);
  const start = performance.now();
  let step = 0;
  let seen = 0;
  let lossSum = 0;
  // per-step losses on the device not read yet, the first being step pendingFrom; read together in one sync
  const pending: tf.Scalar[] = [];
  let pendingFrom = 1;
  let shown = { loss: NaN, lossStep: 0 };
  const readPending = async () => {
    if (pending.length === 0) return;
    const all = tf.tidy(() => tf.stack(pending));
    const values = await all.data();
    tf.dispose([all, ...pending]);
    const n = pending.length;
    pending.length = 0;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      if (!Number.isFinite(values[i]))
        throw new FedloraError('NON_FINITE', `MLM loss became ${values[i]} at step ${pendingFrom + i}; lower the learning rate`);
      sum += values[i];
    }
    lossSum += sum;
    shown = { loss: sum / n, lossStep: pendingFrom + n - 1 };
    pendingFrom += n;
  };
  try {
    outer: for (let epoch = 0; epoch < opts.epochs; epoch++) {
      for (const idx of epochBatches(train.map((s) => s.length), opts.batchSize, rand)) {
        if (step >= totalSteps) break outer;
        const masked = idx.map((i) => maskTokens(train[i], special, vocabSize, rand));
        const { b, positions, labels } = maskedBatch(masked, special.pad);
        if (positions.length === 0) continue;
        const bias = bert.maskBias(b);
        // frozen lower layers run outside the gradient tape: no activations kept, no backward pass through them
        const prefix = frozenBelow > 0 ? tf.tidy(() => bert.encode(bert.embed(b), bias, { toLayer: frozenBelow })) : null;
        const { value, grads } = tf.variableGrads(() => {
          const hidden = bert.encode(prefix ?? bert.embed(b), bias, { fromLayer: frozenBelow, hook });
          const { lossSum: s, correct } = head.lossAt(hidden, positions, labels);
          correct.dispose();
          return tf.div(s, positions.length) as tf.Scalar;
        }, vars);
        pending.push(value);
        tf.dispose(prefix ? [bias, prefix] : [bias]);
        const clipped = clip > 0 ? clipByGlobalNorm(grads, clip) : grads;
        optimizer.applyGradients(vars, clipped);
        tf.dispose([...Object.values(grads), ...Object.values(clipped)]);
        step++;
        seen += idx.length;
        if (step === 1 || step % lossEvery === 0 || step === totalSteps) await readPending();
        const seconds = (performance.now() - start) / 1000;
        opts.onStep?.({ step, totalSteps, ...shown, sequencesPerSecond: seen / seconds });
        await yieldToEventLoop();
      }
    }
    await readPending(); // the epochs ran out before totalSteps (skipped batches): nothing may stay unread
  } finally {
    tf.dispose(pending);
    optimizer.dispose();
  }
  const seconds = (performance.now() - start) / 1000;
  return {
    steps: step,
    seconds,
    sequencesPerSecond: seen / seconds,
    meanLoss: step ? lossSum / step : NaN,
    trainableParams: vars.reduce((n, v) => n + v.size, 0),
  };
}

/** Scales all gradients by min(1, maxNorm / ‖g‖₂) over their concatenation (PyTorch clip_grad_norm_). */
function clipByGlobalNorm(grads: Record<string, tf.Tensor>, maxNorm: number): Record<string, tf.Tensor> {
  return tf.tidy(() => {
    const norm = tf.sqrt(squaredNorm(Object.values(grads)));
    const scale = tf.minimum(1, tf.div(maxNorm, tf.add(norm, 1e-6)));
    const out: Record<string, tf.Tensor> = {};
    for (const [name, g] of Object.entries(grads)) out[name] = tf.mul(g, scale);
    return out;
  });
}
