// Inference at the site: a Predictor is the base model with one adapter merged into its weights (PEFT's merge: one
// matmul per layer instead of the LoRA side path), classifying many texts per forward pass. Adapters come from the
// coordinator (agent/predict.ts) or from a directory saved earlier, so prediction and serving work offline:
//   - native: fedlora-adapter.json (version, LoRA config, labels, pooling, max length, sha256) + adapter.fedlora (the
//     coordinator's encodeAdapter bytes), as `fedlora-site predict --save-adapter DIR` writes it;
//   - Hugging Face PEFT: adapter_config.json + adapter_model.safetensors (as `train-local --save` writes it), with the
//     classification head as modules_to_save.

import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { sha256Hex } from '@fedlora/shared/crypto/hash.ts';
import { POOLINGS, type Pooling } from '@fedlora/shared/model/classifier.ts';
import { tokenLimit } from '@fedlora/shared/model/local-model.ts';
import { validateLoraConfig, type LoraConfig } from '@fedlora/shared/lora/config.ts';
import { importPeft } from '@fedlora/shared/lora/peft.ts';
import { loadLocalModel, type LocalModel } from '@fedlora/shared/node/model/local-model.ts';
import { checkAdapterShapes, openAdapter } from '@fedlora/shared/round/participant.ts';
import { encodeAdapter } from '@fedlora/shared/protocol/codec.ts';
import { collate, type EncodedExample } from '@fedlora/shared/training/batches.ts';
import { DEFAULT_RECIPE } from '@fedlora/shared/training/recipe.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';

/** Everything needed to classify with an adapter on a base model. */
export interface AdapterSpec {
  versionId: string;
  /** LoRA tensors + classifier.weight/bias, canonical names */
  state: NamedTensors;
  lora: LoraConfig;
  /** class labels in output-index order */
  labels: string[];
  pooling: Pooling;
  /** tokens per text (capped to the model's limit) */
  maxLength: number;
  /** where it came from, for logs: "coordinator", a directory */
  source: string;
}

export interface LabelPrediction {
  label: string;
  /** label → probability, in the adapter's label order */
  probabilities: Record<string, number>;
}

export const NATIVE_META = 'fedlora-adapter.json';
export const NATIVE_WEIGHTS = 'adapter.fedlora';
const PEFT_CONFIG = 'adapter_config.json';
const PEFT_WEIGHTS = 'adapter_model.safetensors';

interface NativeMeta {
  format: 'fedlora-adapter';
  v: 1;
  versionId: string;
  round: number;
  sha256: string;
  lora: LoraConfig;
  labels: string[];
  pooling: Pooling;
  maxSeqLength: number;
  baseModel: string;
}

/** Writes a native adapter directory (atomically per file) that readAdapterDir reads back. */
export async function writeNativeAdapterDir(
  dir: string,
  a: { versionId: string; round: number; state: NamedTensors; lora: LoraConfig; labels: string[]; pooling: Pooling; maxSeqLength: number; baseModel: string },
): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const bytes = encodeAdapter({ versionId: a.versionId, round: a.round, adapter: a.state });
  const meta: NativeMeta = {
    format: 'fedlora-adapter', v: 1, versionId: a.versionId, round: a.round, sha256: await sha256Hex(bytes),
    lora: a.lora, labels: a.labels, pooling: a.pooling, maxSeqLength: a.maxSeqLength, baseModel: a.baseModel,
  };
  const put = (name: string, data: string | Uint8Array) => {
    writeFileSync(join(dir, `${name}.tmp`), data);
    renameSync(join(dir, `${name}.tmp`), join(dir, name));
  };
  put(NATIVE_WEIGHTS, bytes);
  put(NATIVE_META, JSON.stringify(meta, null, 2) + '\n');
}

export interface ReadAdapterOptions {
  /** class labels, when the directory does not name them (a PEFT adapter trained outside fedlora) */
  labels?: string[];
  /** overrides the directory's pooling (default: the recorded one; 'pooler' for PEFT adapters from outside fedlora) */
  pooling?: Pooling;
  /** overrides the directory's max length (default: the recorded one, else the recipe's 128) */
  maxLength?: number;
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new FedloraError('ADAPTER_INVALID', `${path} is not valid JSON (${err instanceof Error ? err.message : String(err)})`, { cause: err });
  }
}

/** Reads a saved adapter directory, native or PEFT (see the header); ADAPTER_INVALID / FILE_NOT_FOUND otherwise. */
export async function readAdapterDir(dir: string, o: ReadAdapterOptions = {}): Promise<AdapterSpec> {
  if (!existsSync(dir)) throw new FedloraError('FILE_NOT_FOUND', `adapter directory not found: ${dir}`);
  if (existsSync(join(dir, NATIVE_META))) {
    const meta = readJson(join(dir, NATIVE_META)) as Partial<NativeMeta>;
    if (meta.format !== 'fedlora-adapter' || meta.v !== 1 || typeof meta.sha256 !== 'string' || !Array.isArray(meta.labels))
      throw new FedloraError('ADAPTER_INVALID', `${join(dir, NATIVE_META)} is not a fedlora adapter description (format, v, sha256, labels)`);
    if (!existsSync(join(dir, NATIVE_WEIGHTS))) throw new FedloraError('ADAPTER_INVALID', `${dir} has ${NATIVE_META} but no ${NATIVE_WEIGHTS}`);
    const a = await openAdapter(new Uint8Array(readFileSync(join(dir, NATIVE_WEIGHTS))), meta.sha256, meta.versionId);
    const pooling = o.pooling ?? meta.pooling ?? DEFAULT_RECIPE.pooling;
    return {
      versionId: a.versionId,
      state: a.adapter,
      lora: validateLoraConfig(meta.lora as LoraConfig),
      labels: o.labels ?? meta.labels,
      pooling,
      maxLength: o.maxLength ?? meta.maxSeqLength ?? DEFAULT_RECIPE.maxLength,
      source: dir,
    };
  }
  if (existsSync(join(dir, PEFT_CONFIG))) {
    if (!existsSync(join(dir, PEFT_WEIGHTS))) throw new FedloraError('ADAPTER_INVALID', `${dir} has ${PEFT_CONFIG} but no ${PEFT_WEIGHTS}`);
    const weights = new Uint8Array(readFileSync(join(dir, PEFT_WEIGHTS)));
    const adapterConfig = readJson(join(dir, PEFT_CONFIG)) as Record<string, unknown>;
    const peft = importPeft({ adapterConfig, weights }, dir);
    const labels = o.labels ?? peft.labels;
    if (!labels)
      throw new FedloraError('CONFIG_INVALID', `${dir} does not name its labels (no fedlora.labels in ${PEFT_CONFIG}): give them with --labels a,b,…`);
    if (!('classifier.weight' in peft.state))
      throw new FedloraError('ADAPTER_INVALID', `${dir} has no classification head (modules_to_save "classifier"): it cannot classify`);
    const fed = (adapterConfig.fedlora ?? null) as { pooling?: Pooling } | null;
    // HF's *ForSequenceClassification classifies the pooler output; fedlora records its own pooling
    const pooling = o.pooling ?? fed?.pooling ?? (fed ? DEFAULT_RECIPE.pooling : 'pooler');
    // a version id the wire format accepts: the directory's name and the weights' hash
    const name = basename(resolve(dir)).replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 40) || 'adapter';
    return {
      versionId: `${name}-${(await sha256Hex(weights)).slice(0, 12)}`,
      state: peft.state,
      lora: peft.config,
      labels,
      pooling,
      maxLength: o.maxLength ?? DEFAULT_RECIPE.maxLength,
      source: dir,
    };
  }
  throw new FedloraError('ADAPTER_INVALID', `${dir} holds neither a fedlora adapter (${NATIVE_META}) nor a PEFT adapter (${PEFT_CONFIG})`);
}

/**
 * Index batches of at most `batchSize`, longest first, cut early where a text is under `ratio` of its batch's longest:
 * padding a short text to a long one costs more than another forward pass (measured on wasm: 32 texts of 10-59 words
 * in file order ran at 22 texts/s, one at a time at 37, grouped by length at 52; scripts/serve-bench.ts).
 */
export function lengthBatches(lengths: number[], batchSize: number, ratio = 0.6): number[][] {
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b] - lengths[a]);
  const out: number[][] = [];
  let cur: number[] = [];
  for (const i of order) {
    if (cur.length === batchSize || (cur.length > 0 && lengths[i] < ratio * lengths[cur[0]])) {
      out.push(cur);
      cur = [];
    }
    cur.push(i);
  }
  if (cur.length) out.push(cur);
  return out;
}

/**
 * The base model with one adapter merged in; predict() classifies a batch of texts in one forward pass. After the
 * merge the adapter's and head's tf variables are released (their names are global in tfjs: a second model could not
 * be loaded beside them, and serve's hot swap holds two for a moment); the head is kept as plain tensors.
 */
export class Predictor {
  private disposed = false;

  private constructor(
    private readonly model: Pick<LocalModel, 'bert' | 'tokenizer' | 'classifier'>,
    private readonly headW: tf.Tensor2D,
    private readonly headB: tf.Tensor1D,
    readonly versionId: string,
    readonly labels: string[],
    readonly maxLength: number,
  ) {}

  static load(modelDir: string, spec: AdapterSpec): Predictor {
    if (!POOLINGS.includes(spec.pooling)) throw new FedloraError('CONFIG_INVALID', `pooling must be one of ${POOLINGS.join(', ')}`);
    const model = loadLocalModel({ modelDir, lora: spec.lora, labels: spec.labels, pooling: spec.pooling, seed: 0 });
    const clf = model.classifier;
    try {
      checkAdapterShapes(spec.state, clf.trainableShapes());
      clf.setTrainableState(spec.state);
      clf.adapter.merge(model.bert); // one matmul per layer instead of the LoRA side path
    } catch (err) {
      model.dispose();
      throw err;
    }
    const headW = tf.keep(clf.headW.clone()) as tf.Tensor2D;
    const headB = tf.keep(clf.headB.clone()) as tf.Tensor1D;
    clf.dispose();
    return new Predictor(model, headW, headB, spec.versionId, spec.labels, Math.min(spec.maxLength, tokenLimit(model)));
  }

  private encode(texts: string[]): EncodedExample[] {
    const tok = this.model.tokenizer;
    return texts.map((t) => {
      const enc = tok.encode(t, undefined, { maxLength: this.maxLength });
      return { inputIds: enc.inputIds, tokenTypeIds: enc.tokenTypeIds, label: 0 };
    });
  }

  /** One forward pass over `texts` (padded to the longest); results in input order. */
  async predict(texts: string[]): Promise<LabelPrediction[]> {
    if (this.disposed) throw new FedloraError('INTERNAL', `predictor for ${this.versionId} is disposed`);
    if (texts.length === 0) return [];
    return this.forward(this.encode(texts));
  }

  /**
   * Classifies `texts` in forward passes of `batchSize`, grouped by token count (texts of like length share a batch,
   * so little is padded); results in input order. onBatch gets the number of texts done after each pass.
   */
  async predictAll(texts: string[], batchSize: number, onBatch?: (done: number) => void): Promise<LabelPrediction[]> {
    if (this.disposed) throw new FedloraError('INTERNAL', `predictor for ${this.versionId} is disposed`);
    const examples = this.encode(texts);
    const out = new Array<LabelPrediction>(texts.length);
    let done = 0;
    for (const idx of lengthBatches(examples.map((e) => e.inputIds.length), batchSize)) {
      const preds = await this.forward(idx.map((i) => examples[i]));
      idx.forEach((i, j) => (out[i] = preds[j]));
      done += idx.length;
      onBatch?.(done);
    }
    return out;
  }

  private async forward(examples: EncodedExample[]): Promise<LabelPrediction[]> {
    const { bert, tokenizer: tok, classifier: clf } = this.model;
    const batch = collate(examples, tok.special.pad);
    // SequenceClassifier.logits with the adapter merged (no LoRA hook) and the kept head
    const probs = tf.tidy(() => {
      const hidden = bert.encode(bert.embed(batch), bert.maskBias(batch));
      return tf.softmax(tf.add(tf.matMul(clf.pool(hidden, batch), this.headW, false, true), this.headB));
    });
    let data: Float32Array;
    try {
      data = (await probs.data()) as Float32Array;
    } finally {
      probs.dispose();
    }
    const L = this.labels.length;
    return examples.map((_, i) => {
      const probabilities: Record<string, number> = {};
      let best = 0;
      for (let j = 0; j < L; j++) {
        probabilities[this.labels[j]] = data[i * L + j];
        if (data[i * L + j] > data[i * L + best]) best = j;
      }
      return { label: this.labels[best], probabilities };
    });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.model.bert.dispose();
    tf.dispose([this.headW, this.headB]);
  }
}
