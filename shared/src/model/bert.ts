// BERT encoder (Devlin et al. 2019) in tfjs, read top to bottom: config → embeddings → self-attention → feed-forward
// → layer → encoder → pooler. Matches Hugging Face BertModel's forward pass (eval mode) to ~1e-6, and DistilBertModel's
// and RobertaModel's, whose encoders are the same (families.ts: only their embeddings differ); see tests/fixtures.
// Base weights are plain tensors (never tf.Variables), so no optimizer can touch them. LoRA enters through the
// `LinearHook` each linear layer consults; the encoder itself knows nothing about adapters. The one exception is
// `{ trainable: true }` (continued MLM pretraining): every weight is then a tf.Variable with fast-path gradients.

import * as tf from '@tensorflow/tfjs';
import { FedloraError } from '../errors';
import type { BertCheckpoint, BertConfig } from './checkpoint';
import type { NamedTensors } from '../tensor';
import { LINEAR_PATHS, type LinearName } from './families';
import { gelu } from './gelu';
import { frozenLayerNorm } from './layer-norm';
import { attentionOnWebGPU, fusedAttentionAvailable } from './webgpu-attention';
import { attentionMatMul } from './attention-matmul';
import { gatherRowsOnWasm } from './wasm-gather-rows';

export type { BertConfig } from './checkpoint';

/** Token ids as produced by the tokenizer's padBatch (row-major, [batch, seq]). */
export interface BertBatch {
  inputIds: Int32Array;
  attentionMask: Int32Array;
  tokenTypeIds: Int32Array;
  batch: number;
  seqLen: number;
}

export { LINEAR_PATHS, type LinearName } from './families';

/**
 * Dropout inside the frozen encoder, as HF applies it in training mode (model.train()): after the embeddings, on
 * attention probabilities, and on each sub-layer's output before the residual. Off (null) for inference.
 */
export interface BaseDropout {
  hidden: number;
  attention: number;
}

const drop = <T extends tf.Tensor>(x: T, rate: number | undefined): T => (rate ? (tf.dropout(x, rate) as T) : x);

/**
 * Adapts a linear layer: given its input x and its frozen output y = x·W + b, returns the adapted output (y plus the
 * adapter's term for x), or null when the layer is not adapted. It receives y, not only x, so that the term and the
 * sum can be one kernel (webgpu: lora/webgpu-lora-up.ts).
 */
export type LinearHook = (layer: number, linear: LinearName, x: tf.Tensor2D, y: tf.Tensor2D) => tf.Tensor2D | null;

export interface BertModelOptions {
  /** every weight a tf.Variable (full-weight training, e.g. MLM pretraining); default false: frozen plain tensors */
  trainable?: boolean;
}

/**
 * a·b for 2-D a [N, K], b [K, M], with gradients da = dy·bᵀ and db = aᵀ·dy formed by explicit transposes and plain
 * 2-D matMuls. Why: tfjs-wasm runs transposed or batched matMuls through a naive loop, ~13x slower than plain
 * ones (see frozenLinear); the default matMul gradient uses transposeA/transposeB. tfjs-wasm's Transpose is itself a
 * scalar loop (~2.4 ms for [1024, 256]), so db transposes whichever side is smaller: for LoRA's x·Aᵀ, a is the layer
 * input [N, hidden] and dy only [N, r], and (dyᵀ·a)ᵀ takes 0.16 ms where aᵀ·dy took 2.5.
 */
export const plainMatMul = tf.customGrad(((a: tf.Tensor2D, b: tf.Tensor2D, save: tf.GradSaveFunc) => {
  save([a, b]); // saved, not closed over: an enclosing tidy may dispose the inputs before the backward pass
  return {
    value: tf.matMul(a, b),
    gradFunc: (dy: tf.Tensor2D, [sa, sb]: tf.Tensor2D[]) => {
      const [n, k] = sa.shape;
      const m = dy.shape[1];
      const db = n * m + k * m < n * k ? tf.transpose(tf.matMul(tf.transpose(dy), sa)) : tf.matMul(tf.transpose(sa), dy);
      return [tf.matMul(dy, tf.transpose(sb)), db];
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D;

/**
 * Rows of x [N, D] at int32 indices [M] → [M, D], with the gradient scattered back by scatterND (which sums repeated
 * indices). Why: tf.gather's gradient needs UnsortedSegmentSum, which tfjs-wasm lacks.
 */
export const gatherRows = tf.customGrad(((x: tf.Tensor2D, indices: tf.Tensor1D, save: tf.GradSaveFunc) => {
  save([indices]);
  const shape = x.shape;
  return {
    value: tf.getBackend() === 'wasm' ? gatherRowsOnWasm(x, indices) : tf.gather(x, indices),
    gradFunc: (dy: tf.Tensor2D, [si]: tf.Tensor[]) => [tf.scatterND(tf.reshape(si, [-1, 1]), dy, shape), tf.zerosLike(si)],
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (x: tf.Tensor2D, indices: tf.Tensor1D) => tf.Tensor2D;

/** Linear-layer weights (not embedding tables) are kept transposed to [in, out]. */
const isLinearWeight = (name: string, rank: number) => name.endsWith('.weight') && rank === 2 && !name.startsWith('embeddings.');

// tf.Variable names are global to the tfjs engine: each trainable model gets its own prefix.
let trainableModels = 0;

// HF uses torch.finfo(float32).min as the additive mask for padded keys; the parity fixtures assume it.
const MASK_VALUE = -3.4028234663852886e38;

export class BertModel {
  readonly config: BertConfig;
  /** the weights (frozen plain tensors unless trainable); linear weights are stored transposed to [in, out] so x·W needs no transpose per step */
  private readonly w = new Map<string, tf.Tensor>();
  /** the [out, in] originals of linear weights, for the backward pass (see frozenLinear) */
  private readonly wT = new Map<string, tf.Tensor2D>();
  private readonly matMuls = new Map<string, (x: tf.Tensor2D) => tf.Tensor2D>();
  readonly hasPooler: boolean;
  readonly trainable: boolean;
  /** trainable mode: HF name → variable (linear weights in the [in, out] orientation) */
  private readonly vars = new Map<string, tf.Variable>();

  constructor(ckpt: BertCheckpoint, opts: BertModelOptions = {}) {
    this.config = ckpt.config;
    this.hasPooler = ckpt.hasPooler;
    this.trainable = opts.trainable ?? false;
    const prefix = this.trainable ? `bert${trainableModels++}/` : '';
    for (const [name, t] of Object.entries(ckpt.weights)) {
      const isLinear = isLinearWeight(name, t.shape.length);
      const tensor = tf.tensor(t.data, t.shape, 'float32');
      if (this.trainable) {
        // no stored [out, in] copy: plainMatMul transposes the live variable in the backward pass
        const init = isLinear ? tf.transpose(tensor) : tensor;
        const v = tf.variable(init, true, prefix + name); // shares init's data, so init can be released
        tf.dispose([init, tensor]);
        this.w.set(name, v);
        this.vars.set(name, v);
      } else if (isLinear) {
        this.w.set(name, tf.keep(tf.transpose(tensor)));
        this.wT.set(name, tf.keep(tensor as tf.Tensor2D));
      } else this.w.set(name, tf.keep(tensor));
    }
  }

  weight(name: string): tf.Tensor {
    const t = this.w.get(name);
    if (!t) throw new FedloraError('MODEL_INVALID', `BertModel: no weight ${name}`);
    return t;
  }

  /** Trainable mode: the variables by HF name (linear weights [in, out]); empty for a frozen model. */
  variables(): Map<string, tf.Variable> {
    return this.vars;
  }

  /** All weights as host tensors with HF names and orientation (linear weights [out, in]), e.g. for saving. */
  async getWeights(): Promise<NamedTensors> {
    const out: NamedTensors = {};
    for (const [name, t] of this.w) {
      const hf = this.wT.get(name) ?? (isLinearWeight(name, t.rank) ? tf.transpose(t) : t);
      out[name] = { shape: [...hf.shape], data: new Float32Array((await hf.data()) as Float32Array) };
      if (hf !== t && hf !== this.wT.get(name)) hf.dispose();
    }
    return out;
  }

  /** Replaces a frozen linear weight ([in, out] orientation); used by LoRA merge/unmerge. */
  replaceLinearWeight(name: string, value: tf.Tensor2D): void {
    const v = this.vars.get(name);
    if (v) {
      v.assign(value);
      value.dispose();
      return;
    }
    const old = [this.weight(name), this.wT.get(name)];
    this.w.set(name, tf.keep(value));
    this.wT.set(name, tf.keep(tf.transpose(value)));
    tf.dispose(old);
  }

  /**
   * x·W + b for a frozen W and b, with a hand-written gradient dx = dy·Wᵀ that uses the stored transposed copy. Why:
   * tfjs-wasm runs plain 2-D matMuls through XNNPACK (~30 GFLOP/s here) but any transposed or batched matMul through
   * a naive loop (~2.4 GFLOP/s); the default gradient of matMul uses transposeB, which made backward passes 10x
   * slower. The bias rides in the product (tf.fused.matMul): one kernel, not two (on webgpu one dispatch fewer per
   * linear; on wasm XNNPACK starts its sums from the bias, a pass over the output saved).
   */
  private frozenLinear(name: string, biasName: string): (x: tf.Tensor2D) => tf.Tensor2D {
    let f = this.matMuls.get(name);
    if (!f) {
      f = tf.customGrad(((x: tf.Tensor) => {
        return {
          value: tf.fused.matMul({ a: x as tf.Tensor2D, b: this.weight(name) as tf.Tensor2D, bias: this.weight(biasName) }),
          gradFunc: (dy: tf.Tensor) => tf.matMul(dy as tf.Tensor2D, this.wT.get(name) as tf.Tensor2D),
        };
      }) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (x: tf.Tensor2D) => tf.Tensor2D;
      this.matMuls.set(name, f);
    }
    return f;
  }

  /** x·W + b: frozen (frozenLinear), or trainable with dx and dW on the plain-matMul fast path. */
  private linearProduct(name: string, biasName: string): (x: tf.Tensor2D) => tf.Tensor2D {
    return this.trainable
      ? (x) => tf.add(plainMatMul(x, this.weight(name) as tf.Tensor2D), this.weight(biasName)) as tf.Tensor2D
      : this.frozenLinear(name, biasName);
  }

  /** Embedding rows for ids [B, T] → [B, T, H]; gatherRows when trained (tf.gather has no wasm gradient) or on wasm. */
  private lookup(name: string, ids: Int32Array, b: BertBatch): tf.Tensor3D {
    const table = this.weight(name) as tf.Tensor2D;
    if (!this.trainable && tf.getBackend() !== 'wasm')
      return tf.gather(table, tf.tensor2d(ids, [b.batch, b.seqLen], 'int32')) as unknown as tf.Tensor3D;
    // on wasm, both go through our row-copy kernel (wasm-gather-rows.ts: tfjs-wasm's GatherV2 is a scalar index loop)
    const rows = gatherRows(table, tf.tensor1d(ids, 'int32')); // [B*T, H]
    return tf.reshape(rows, [b.batch, b.seqLen, -1]) as tf.Tensor3D;
  }

  // ---- embeddings: word + position (+ token type), then LayerNorm ------------------------------------------------
  embed(b: BertBatch): tf.Tensor3D {
    return tf.tidy(() => {
      const words = this.lookup('embeddings.word_embeddings.weight', b.inputIds, b); // [B, T, H]
      const pos =
        this.config.positionOffset === 0
          ? tf.slice(this.weight('embeddings.position_embeddings.weight'), [0, 0], [b.seqLen, -1]) // [T, H]
          : this.lookup('embeddings.position_embeddings.weight', this.positionIds(b), b); // [B, T, H]
      const sum = tf.add(words, pos);
      // DistilBERT has no token types (typeVocabSize 0)
      const typed = this.config.typeVocabSize > 0 ? tf.add(sum, this.lookup('embeddings.token_type_embeddings.weight', b.tokenTypeIds, b)) : sum;
      return this.layerNorm(typed, 'embeddings.LayerNorm') as tf.Tensor3D;
    });
  }

  /**
   * RoBERTa's position ids (create_position_ids_from_input_ids): real tokens count up from padding_idx + 1, padding
   * sits at padding_idx. Real tokens are those whose id is not the pad id, as HF decides it. [B*T]
   */
  private positionIds(b: BertBatch): Int32Array {
    const { padTokenId: pad } = this.config;
    const out = new Int32Array(b.batch * b.seqLen);
    for (let row = 0; row < b.batch; row++)
      for (let t = 0, seen = 0; t < b.seqLen; t++) {
        const i = row * b.seqLen + t;
        out[i] = b.inputIds[i] === pad ? pad : pad + ++seen;
      }
    return out;
  }

  /** Additive attention bias from the padding mask: 0 for real tokens, float32-min for padding. [B, 1, 1, T] */
  maskBias(b: BertBatch): tf.Tensor4D {
    return tf.tidy(() => {
      const m = tf.tensor4d(b.attentionMask, [b.batch, 1, 1, b.seqLen], 'int32').toFloat();
      return tf.mul(tf.sub(1, m), MASK_VALUE) as tf.Tensor4D;
    });
  }

  // ---- building blocks ------------------------------------------------------------------------------------------
  /** LayerNorm(x + residual), or LayerNorm(x) */
  private layerNorm(x: tf.Tensor, prefix: string, residual?: tf.Tensor): tf.Tensor {
    if (!this.trainable)
      return frozenLayerNorm(x, this.weight(`${prefix}.weight`), this.weight(`${prefix}.bias`), this.config.layerNormEps, residual);
    if (residual) x = tf.add(x, residual);
    const { mean, variance } = tf.moments(x, -1, true);
    const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.config.layerNormEps)));
    return tf.add(tf.mul(normed, this.weight(`${prefix}.weight`)), this.weight(`${prefix}.bias`));
  }

  /** y = x·W + b (+ LoRA term). x: [N, in] → [N, out] */
  private linear(x: tf.Tensor2D, layer: number, name: LinearName, hook?: LinearHook): tf.Tensor2D {
    const prefix = `encoder.layer.${layer}.${LINEAR_PATHS[name]}`;
    const y = this.linearProduct(`${prefix}.weight`, `${prefix}.bias`)(x);
    return hook?.(layer, name, x, y) ?? y;
  }

  // ---- self-attention: softmax(Q·Kᵀ/√d + mask)·V over heads, then output projection + residual + LayerNorm --------
  private attention(x: tf.Tensor2D, B: number, T: number, bias: tf.Tensor4D, layer: number, hook?: LinearHook, d?: BaseDropout | null) {
    const { hiddenSize: H, numHeads: nh } = this.config;
    const hd = H / nh;
    // [B*T, H] → [B, nh, T, hd]
    const heads = (t: tf.Tensor2D) => tf.transpose(tf.reshape(t, [B, T, nh, hd]), [0, 2, 1, 3]) as tf.Tensor4D;
    const [q2, k2, v2] = (['query', 'key', 'value'] as const).map((name) => this.linear(x, layer, name, hook));
    let merged: tf.Tensor2D; // [B*T, H]
    if (!d?.attention && fusedAttentionAvailable(T)) {
      // webgpu: our programs read the heads in place and write the merged context (webgpu-attention.ts)
      merged = attentionOnWebGPU(q2, k2, v2, tf.reshape(bias, [B, T]) as tf.Tensor2D, { batch: B, seqLen: T, heads: nh, headSize: hd });
    } else {
      const [q, k, v] = [q2, k2, v2].map(heads);
      // attentionMatMul: tf.matMul, except on wasm, where batched products leave XNNPACK (see attention-matmul.ts)
      const scores = tf.add(tf.mul(attentionMatMul(q, k, true), 1 / Math.sqrt(hd)), bias); // [B, nh, T, T]
      const ctx = attentionMatMul(drop(tf.softmax(scores), d?.attention) as tf.Tensor4D, v); // [B, nh, T, hd]
      merged = tf.reshape(tf.transpose(ctx, [0, 2, 1, 3]), [B * T, H]) as tf.Tensor2D;
    }
    const out = drop(this.linear(merged, layer, 'attention.output', hook), d?.hidden);
    return this.layerNorm(out, `encoder.layer.${layer}.attention.output.LayerNorm`, x) as tf.Tensor2D;
  }

  // ---- feed-forward: GELU(x·W1)·W2 + residual + LayerNorm ----------------------------------------------------------
  private feedForward(x: tf.Tensor2D, layer: number, hook?: LinearHook, d?: BaseDropout | null): tf.Tensor2D {
    const h = this.linear(x, layer, 'intermediate', hook);
    // exact GELU, as HF "gelu", with its gradient written out (gelu.ts: less memory and fewer kernels than autodiff)
    const out = drop(this.linear(gelu(h) as tf.Tensor2D, layer, 'output', hook), d?.hidden);
    return this.layerNorm(out, `encoder.layer.${layer}.output.LayerNorm`, x) as tf.Tensor2D;
  }

  /** One transformer layer. hidden: [B, T, H] → [B, T, H] */
  layer(hidden: tf.Tensor3D, bias: tf.Tensor4D, layer: number, hook?: LinearHook, d?: BaseDropout | null): tf.Tensor3D {
    const [B, T, H] = hidden.shape;
    const x = tf.reshape(hidden, [B * T, H]) as tf.Tensor2D;
    const attended = this.attention(x, B, T, bias, layer, hook, d);
    return tf.reshape(this.feedForward(attended, layer, hook, d), [B, T, H]) as tf.Tensor3D;
  }

  /**
   * The encoder: layers [fromLayer, numLayers) applied to `hidden` (the embeddings when fromLayer = 0, or cached
   * activations of frozen lower layers). Returns last_hidden_state [B, T, H].
   */
  encode(
    hidden: tf.Tensor3D,
    bias: tf.Tensor4D,
    opts: { hook?: LinearHook; fromLayer?: number; toLayer?: number; dropout?: BaseDropout | null } = {},
  ) {
    const from = opts.fromLayer ?? 0;
    // HF drops out the embeddings' output too; it enters here when the encoder starts from the embeddings
    let h = from === 0 ? drop(hidden, opts.dropout?.hidden) : hidden;
    for (let l = from; l < (opts.toLayer ?? this.config.numLayers); l++) h = this.layer(h, bias, l, opts.hook, opts.dropout);
    return h;
  }

  /** Full forward pass: token ids → last_hidden_state [B, T, H]. */
  forward(b: BertBatch, hook?: LinearHook): tf.Tensor3D {
    return tf.tidy(() => this.encode(this.embed(b), this.maskBias(b), { hook }));
  }

  /** HF pooler: tanh(W·h[CLS] + b). hidden: [B, T, H] → [B, H] */
  pooler(hidden: tf.Tensor3D): tf.Tensor2D {
    if (!this.hasPooler) throw new FedloraError('MODEL_UNSUPPORTED', 'BertModel: this checkpoint has no pooler');
    return tf.tidy(() => {
      const cls = tf.squeeze(tf.slice(hidden, [0, 0, 0], [-1, 1, -1]), [1]) as tf.Tensor2D;
      return tf.tanh(tf.add(tf.matMul(cls, this.weight('pooler.dense.weight') as tf.Tensor2D), this.weight('pooler.dense.bias'))) as tf.Tensor2D;
    });
  }

  dispose(): void {
    tf.dispose([...this.w.values(), ...this.wT.values()]);
    this.w.clear();
    this.wT.clear();
    this.vars.clear();
  }
}
