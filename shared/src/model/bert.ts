// BERT encoder (Devlin et al. 2019) in tfjs, read top to bottom: config → embeddings → self-attention → feed-forward
// → layer → encoder → pooler. Matches Hugging Face BertModel's forward pass (eval mode) to ~1e-6; see tests/fixtures.
// Base weights are plain tensors (never tf.Variables), so no optimizer can touch them. LoRA enters through the
// `LinearHook` each linear layer consults; the encoder itself knows nothing about adapters.

import * as tf from '@tensorflow/tfjs';
import type { BertCheckpoint, BertConfig } from './checkpoint';

export type { BertConfig } from './checkpoint';

/** Token ids as produced by the tokenizer's padBatch (row-major, [batch, seq]). */
export interface BertBatch {
  inputIds: Int32Array;
  attentionMask: Int32Array;
  tokenTypeIds: Int32Array;
  batch: number;
  seqLen: number;
}

/** The six linear layers of a BERT layer, by the HF module path below "encoder.layer.{l}.". */
export const LINEAR_PATHS = {
  query: 'attention.self.query',
  key: 'attention.self.key',
  value: 'attention.self.value',
  'attention.output': 'attention.output.dense',
  intermediate: 'intermediate.dense',
  output: 'output.dense',
} as const;
export type LinearName = keyof typeof LINEAR_PATHS;

/** Adds a term to a linear layer's output: y = x·W + b + hook(x). Returns null when the layer is not adapted. */
export type LinearHook = (layer: number, linear: LinearName, x: tf.Tensor2D) => tf.Tensor2D | null;

// HF uses torch.finfo(float32).min as the additive mask for padded keys; the parity fixtures assume it.
const MASK_VALUE = -3.4028234663852886e38;

export class BertModel {
  readonly config: BertConfig;
  /** frozen weights; linear weights are stored transposed to [in, out] so x·W needs no transpose per step */
  private readonly w = new Map<string, tf.Tensor>();
  /** the [out, in] originals of linear weights, for the backward pass (see frozenMatMul) */
  private readonly wT = new Map<string, tf.Tensor2D>();
  private readonly matMuls = new Map<string, (x: tf.Tensor2D) => tf.Tensor2D>();
  readonly hasPooler: boolean;

  constructor(ckpt: BertCheckpoint) {
    this.config = ckpt.config;
    this.hasPooler = ckpt.hasPooler;
    for (const [name, t] of Object.entries(ckpt.weights)) {
      const isLinear = name.endsWith('.weight') && t.shape.length === 2 && !name.startsWith('embeddings.');
      const tensor = tf.tensor(t.data, t.shape, 'float32');
      if (isLinear) {
        this.w.set(name, tf.keep(tf.transpose(tensor)));
        this.wT.set(name, tf.keep(tensor as tf.Tensor2D));
      } else this.w.set(name, tf.keep(tensor));
    }
  }

  weight(name: string): tf.Tensor {
    const t = this.w.get(name);
    if (!t) throw new Error(`BertModel: no weight ${name}`);
    return t;
  }

  /** Replaces a frozen linear weight ([in, out] orientation); used by LoRA merge/unmerge. */
  replaceLinearWeight(name: string, value: tf.Tensor2D): void {
    const old = [this.weight(name), this.wT.get(name)];
    this.w.set(name, tf.keep(value));
    this.wT.set(name, tf.keep(tf.transpose(value)));
    tf.dispose(old);
  }

  /**
   * x·W for a frozen W, with a hand-written gradient dx = dy·Wᵀ that uses the stored transposed copy. Why: tfjs-wasm
   * runs plain 2-D matMuls through XNNPACK (~30 GFLOP/s here) but any transposed or batched matMul through a naive
   * loop (~2.4 GFLOP/s); the default gradient of matMul uses transposeB, which made backward passes 10x slower.
   */
  private frozenMatMul(name: string): (x: tf.Tensor2D) => tf.Tensor2D {
    let f = this.matMuls.get(name);
    if (!f) {
      f = tf.customGrad(((x: tf.Tensor) => {
        return {
          value: tf.matMul(x as tf.Tensor2D, this.weight(name) as tf.Tensor2D),
          gradFunc: (dy: tf.Tensor) => tf.matMul(dy as tf.Tensor2D, this.wT.get(name) as tf.Tensor2D),
        };
      }) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (x: tf.Tensor2D) => tf.Tensor2D;
      this.matMuls.set(name, f);
    }
    return f;
  }

  // ---- embeddings: word + position + token type, then LayerNorm ------------------------------------------------
  embed(b: BertBatch): tf.Tensor3D {
    return tf.tidy(() => {
      const ids = tf.tensor2d(b.inputIds, [b.batch, b.seqLen], 'int32');
      const types = tf.tensor2d(b.tokenTypeIds, [b.batch, b.seqLen], 'int32');
      const words = tf.gather(this.weight('embeddings.word_embeddings.weight'), ids); // [B, T, H]
      const pos = tf.slice(this.weight('embeddings.position_embeddings.weight'), [0, 0], [b.seqLen, -1]); // [T, H]
      const typ = tf.gather(this.weight('embeddings.token_type_embeddings.weight'), types); // [B, T, H]
      return this.layerNorm(tf.add(tf.add(words, pos), typ), 'embeddings.LayerNorm') as tf.Tensor3D;
    });
  }

  /** Additive attention bias from the padding mask: 0 for real tokens, float32-min for padding. [B, 1, 1, T] */
  maskBias(b: BertBatch): tf.Tensor4D {
    return tf.tidy(() => {
      const m = tf.tensor4d(b.attentionMask, [b.batch, 1, 1, b.seqLen], 'int32').toFloat();
      return tf.mul(tf.sub(1, m), MASK_VALUE) as tf.Tensor4D;
    });
  }

  // ---- building blocks ------------------------------------------------------------------------------------------
  private layerNorm(x: tf.Tensor, prefix: string): tf.Tensor {
    const { mean, variance } = tf.moments(x, -1, true);
    const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.config.layerNormEps)));
    return tf.add(tf.mul(normed, this.weight(`${prefix}.weight`)), this.weight(`${prefix}.bias`));
  }

  /** y = x·W + b (+ LoRA term). x: [N, in] → [N, out] */
  private linear(x: tf.Tensor2D, layer: number, name: LinearName, hook?: LinearHook): tf.Tensor2D {
    const prefix = `encoder.layer.${layer}.${LINEAR_PATHS[name]}`;
    const y = tf.add(this.frozenMatMul(`${prefix}.weight`)(x), this.weight(`${prefix}.bias`));
    const extra = hook?.(layer, name, x);
    return (extra ? tf.add(y, extra) : y) as tf.Tensor2D;
  }

  // ---- self-attention: softmax(Q·Kᵀ/√d + mask)·V over heads, then output projection + residual + LayerNorm --------
  private attention(x: tf.Tensor2D, B: number, T: number, bias: tf.Tensor4D, layer: number, hook?: LinearHook) {
    const { hiddenSize: H, numHeads: nh } = this.config;
    const hd = H / nh;
    const heads = (t: tf.Tensor2D) => tf.transpose(tf.reshape(t, [B, T, nh, hd]), [0, 2, 1, 3]); // [B, nh, T, hd]
    const q = heads(this.linear(x, layer, 'query', hook));
    const k = heads(this.linear(x, layer, 'key', hook));
    const v = heads(this.linear(x, layer, 'value', hook));
    const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(hd)), bias); // [B, nh, T, T]
    const ctx = tf.matMul(tf.softmax(scores), v); // [B, nh, T, hd]
    const merged = tf.reshape(tf.transpose(ctx, [0, 2, 1, 3]), [B * T, H]) as tf.Tensor2D; // [B*T, H]
    const out = this.linear(merged, layer, 'attention.output', hook);
    return this.layerNorm(tf.add(out, x), `encoder.layer.${layer}.attention.output.LayerNorm`) as tf.Tensor2D;
  }

  // ---- feed-forward: GELU(x·W1)·W2 + residual + LayerNorm ----------------------------------------------------------
  private feedForward(x: tf.Tensor2D, layer: number, hook?: LinearHook): tf.Tensor2D {
    const h = this.linear(x, layer, 'intermediate', hook);
    // exact GELU, as HF "gelu": 0.5·x·(1 + erf(x/√2))
    const gelu = tf.mul(tf.mul(h, 0.5), tf.add(1, tf.erf(tf.mul(h, Math.SQRT1_2))));
    const out = this.linear(gelu as tf.Tensor2D, layer, 'output', hook);
    return this.layerNorm(tf.add(out, x), `encoder.layer.${layer}.output.LayerNorm`) as tf.Tensor2D;
  }

  /** One transformer layer. hidden: [B, T, H] → [B, T, H] */
  layer(hidden: tf.Tensor3D, bias: tf.Tensor4D, layer: number, hook?: LinearHook): tf.Tensor3D {
    const [B, T, H] = hidden.shape;
    const x = tf.reshape(hidden, [B * T, H]) as tf.Tensor2D;
    const attended = this.attention(x, B, T, bias, layer, hook);
    return tf.reshape(this.feedForward(attended, layer, hook), [B, T, H]) as tf.Tensor3D;
  }

  /**
   * The encoder: layers [fromLayer, numLayers) applied to `hidden` (the embeddings when fromLayer = 0, or cached
   * activations of frozen lower layers). Returns last_hidden_state [B, T, H].
   */
  encode(hidden: tf.Tensor3D, bias: tf.Tensor4D, opts: { hook?: LinearHook; fromLayer?: number; toLayer?: number } = {}) {
    let h = hidden;
    for (let l = opts.fromLayer ?? 0; l < (opts.toLayer ?? this.config.numLayers); l++) h = this.layer(h, bias, l, opts.hook);
    return h;
  }

  /** Full forward pass: token ids → last_hidden_state [B, T, H]. */
  forward(b: BertBatch, hook?: LinearHook): tf.Tensor3D {
    return tf.tidy(() => this.encode(this.embed(b), this.maskBias(b), { hook }));
  }

  /** HF pooler: tanh(W·h[CLS] + b). hidden: [B, T, H] → [B, H] */
  pooler(hidden: tf.Tensor3D): tf.Tensor2D {
    if (!this.hasPooler) throw new Error('BertModel: this checkpoint has no pooler');
    return tf.tidy(() => {
      const cls = tf.squeeze(tf.slice(hidden, [0, 0, 0], [-1, 1, -1]), [1]) as tf.Tensor2D;
      return tf.tanh(tf.add(tf.matMul(cls, this.weight('pooler.dense.weight') as tf.Tensor2D), this.weight('pooler.dense.bias'))) as tf.Tensor2D;
    });
  }

  dispose(): void {
    tf.dispose([...this.w.values(), ...this.wT.values()]);
    this.w.clear();
    this.wT.clear();
  }
}
