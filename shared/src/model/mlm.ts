// Masked-language-model head and masking of BERT (Devlin et al. 2019, §3.1 and appendix A.1), as Hugging Face
// BertOnlyMLMHead + DataCollatorForLanguageModeling: transform = LayerNorm(GELU(h·W + b)), logits = transform·Eᵀ + bias
// with the decoder tied to the word embeddings E. Loss only on masked positions, gathered before the vocab projection.

import * as tf from '@tensorflow/tfjs';
import { FedloraError } from '../errors';
import { sameShape, type NamedTensors } from '../tensor';
import type { SpecialTokenIds } from '../tokenizer/wordpiece';
import { gatherRows, plainMatMul, type BertModel } from './bert';

export const MLM_HEAD_NAMES = {
  denseW: 'cls.predictions.transform.dense.weight',
  denseB: 'cls.predictions.transform.dense.bias',
  lnW: 'cls.predictions.transform.LayerNorm.weight',
  lnB: 'cls.predictions.transform.LayerNorm.bias',
  bias: 'cls.predictions.bias',
} as const;

/** HF BertConfig.initializer_range: std of the normal init of a fresh dense layer. */
const INIT_STD = 0.02;
let heads = 0;

export class MlmHead {
  /** [in, out] (the transpose of HF's [out, in]) so the forward pass is a plain 2-D matMul */
  readonly denseW: tf.Variable;
  readonly denseB: tf.Variable;
  readonly lnW: tf.Variable;
  readonly lnB: tf.Variable;
  readonly bias: tf.Variable;
  /** true when the checkpoint had no head and this one was freshly initialised */
  readonly fresh: boolean;

  /** head: the checkpoint's cls.predictions.* tensors, or null for a fresh head initialised as HF does. */
  constructor(readonly bert: BertModel, head: NamedTensors | null, seed = 0) {
    const { hiddenSize: H, vocabSize: V } = bert.config;
    const want: Record<string, number[]> = {
      [MLM_HEAD_NAMES.denseW]: [H, H],
      [MLM_HEAD_NAMES.denseB]: [H],
      [MLM_HEAD_NAMES.lnW]: [H],
      [MLM_HEAD_NAMES.lnB]: [H],
      [MLM_HEAD_NAMES.bias]: [V],
    };
    if (head)
      for (const [name, shape] of Object.entries(want))
        if (!head[name] || !sameShape(head[name].shape, shape))
          throw new FedloraError('SHAPE_MISMATCH', `MLM head ${name} has shape [${head[name]?.shape ?? 'missing'}], expected [${shape}]`);
    this.fresh = head === null;
    const id = `mlm${heads++}/`; // tf.Variable names are engine-global
    const v = (name: string, init: () => tf.Tensor) => tf.variable(tf.tidy(init), true, id + name);
    const host = (name: string) => tf.tensor((head as NamedTensors)[name].data, want[name]);
    this.denseW = v(MLM_HEAD_NAMES.denseW, () =>
      head ? tf.transpose(host(MLM_HEAD_NAMES.denseW)) : tf.truncatedNormal([H, H], 0, INIT_STD, 'float32', seed + 104729),
    );
    this.denseB = v(MLM_HEAD_NAMES.denseB, () => (head ? host(MLM_HEAD_NAMES.denseB) : tf.zeros([H])));
    this.lnW = v(MLM_HEAD_NAMES.lnW, () => (head ? host(MLM_HEAD_NAMES.lnW) : tf.ones([H])));
    this.lnB = v(MLM_HEAD_NAMES.lnB, () => (head ? host(MLM_HEAD_NAMES.lnB) : tf.zeros([H])));
    this.bias = v(MLM_HEAD_NAMES.bias, () => (head ? host(MLM_HEAD_NAMES.bias) : tf.zeros([V])));
  }

  variables(): tf.Variable[] {
    return [this.denseW, this.denseB, this.lnW, this.lnB, this.bias];
  }

  /** The transform's variables (dense and LayerNorm), which LoRA-mode MLM training may train beside the adapter. */
  transformVariables(): tf.Variable[] {
    return [this.denseW, this.denseB, this.lnW, this.lnB];
  }

  /** Vocabulary logits for hidden vectors h [M, H] → [M, V]. */
  logits(h: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const d = tf.add(plainMatMul(h, this.denseW as unknown as tf.Tensor2D), this.denseB);
      const g = tf.mul(tf.mul(d, 0.5), tf.add(1, tf.erf(tf.mul(d, Math.SQRT1_2)))); // exact GELU, as HF "gelu"
      const { mean, variance } = tf.moments(g, -1, true);
      const t = tf.add(tf.mul(tf.mul(tf.sub(g, mean), tf.rsqrt(tf.add(variance, this.bert.config.layerNormEps))), this.lnW), this.lnB);
      // tied decoder: t·Eᵀ, with Eᵀ formed explicitly so both gradients stay plain 2-D matMuls
      const embT = tf.transpose(this.bert.weight('embeddings.word_embeddings.weight') as tf.Tensor2D);
      return tf.add(plainMatMul(t as tf.Tensor2D, embT), this.bias) as tf.Tensor2D;
    });
  }

  /**
   * Summed cross-entropy and the number of correct argmax predictions at the masked positions of one batch.
   * hidden: last_hidden_state [B, T, H]; positions: flat indices into B·T; labels: the original token ids there.
   */
  lossAt(hidden: tf.Tensor3D, positions: Int32Array, labels: Int32Array): { lossSum: tf.Scalar; correct: tf.Scalar } {
    return tf.tidy(() => {
      const [B, T, H] = hidden.shape;
      const h = gatherRows(tf.reshape(hidden, [B * T, H]) as tf.Tensor2D, tf.tensor1d(positions, 'int32')); // [M, H]
      const logits = this.logits(h); // [M, V]
      const y = tf.tensor1d(labels, 'int32');
      const logp = tf.logSoftmax(logits);
      const lossSum = tf.neg(tf.sum(tf.mul(logp, tf.oneHot(y, this.bert.config.vocabSize)))) as tf.Scalar;
      const correct = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), y), 'float32')) as tf.Scalar;
      return { lossSum, correct };
    });
  }

  /** The head as HF names and orientation (dense weight [out, in]). */
  async getState(): Promise<NamedTensors> {
    const out: NamedTensors = {};
    const put = async (name: string, t: tf.Tensor) => {
      out[name] = { shape: [...t.shape], data: new Float32Array((await t.data()) as Float32Array) };
    };
    const w = tf.transpose(this.denseW);
    await put(MLM_HEAD_NAMES.denseW, w);
    w.dispose();
    await put(MLM_HEAD_NAMES.denseB, this.denseB);
    await put(MLM_HEAD_NAMES.lnW, this.lnW);
    await put(MLM_HEAD_NAMES.lnB, this.lnB);
    await put(MLM_HEAD_NAMES.bias, this.bias);
    return out;
  }

  dispose(): void {
    tf.dispose(this.variables());
  }
}

export interface MaskedSequence {
  /** input ids after masking */
  inputIds: number[];
  /** positions (within the sequence) whose original token is predicted */
  positions: number[];
  /** the original ids at those positions */
  labels: number[];
}

/**
 * BERT masking of one sequence: each non-special token is chosen with probability `prob` (at least one when any is
 * maskable, so no sequence is wasted on short texts); a chosen token becomes [MASK] 80% of the time, a random
 * non-special token 10%, and stays itself 10%. Special ids come from the tokenizer.
 */
export function maskTokens(
  ids: readonly number[],
  special: SpecialTokenIds,
  vocabSize: number,
  rand: () => number,
  prob = 0.15,
): MaskedSequence {
  const specials = new Set(Object.values(special));
  const maskable = ids.flatMap((id, i) => (specials.has(id) ? [] : [i]));
  const chosen = maskable.filter(() => rand() < prob);
  if (chosen.length === 0 && maskable.length > 0) chosen.push(maskable[Math.floor(rand() * maskable.length)]);
  const inputIds = [...ids];
  for (const i of chosen) {
    const r = rand();
    if (r < 0.8) inputIds[i] = special.mask;
    else if (r < 0.9) inputIds[i] = randomNonSpecial(specials, vocabSize, rand);
  }
  return { inputIds, positions: chosen, labels: chosen.map((i) => ids[i]) };
}

// Rejection sampling: specials are a handful of ids out of thousands, so this loops once or twice.
function randomNonSpecial(specials: ReadonlySet<number>, vocabSize: number, rand: () => number): number {
  if (vocabSize <= specials.size) throw new FedloraError('MODEL_INVALID', `vocab of ${vocabSize} tokens holds only special tokens`);
  for (;;) {
    const id = Math.floor(rand() * vocabSize);
    if (!specials.has(id)) return id;
  }
}
