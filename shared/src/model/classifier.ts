// Sequence classification on a frozen BERT: LoRA adapter + pooling + a linear head trained with the adapter.
// Trainable state = the adapter's lora_A/lora_B + "classifier.weight" [labels, hidden] + "classifier.bias" [labels].

import * as tf from '@tensorflow/tfjs';
import { FedloraError } from '../errors';
import { sameShape, type NamedTensors } from '../tensor';
import type { BertBatch, BertModel } from './bert';
import { freeVariableName } from './variable-name';
import type { LoraAdapter } from '../lora/adapter';

/**
 * How the sequence vector is formed. 'mean' (average of last-layer vectors over real tokens) is the default: on the
 * shipped model (whose pooler is untrained: it had no next-sentence task) it beat the [CLS] vector on held-out data.
 */
export type Pooling = 'mean' | 'cls' | 'pooler';
export const POOLINGS: readonly Pooling[] = ['mean', 'cls', 'pooler'];

export class SequenceClassifier {
  readonly headW: tf.Variable; // [labels, hidden], HF Linear orientation
  readonly headB: tf.Variable; // [labels]

  constructor(
    readonly bert: BertModel,
    readonly adapter: LoraAdapter,
    readonly labels: string[],
    readonly pooling: Pooling = 'mean',
    seed = 0,
  ) {
    if (labels.length < 2) throw new FedloraError('CONFIG_INVALID', `a classifier needs ≥ 2 labels, got ${labels.length}`);
    if (pooling === 'pooler' && !bert.hasPooler) throw new FedloraError('CONFIG_INVALID', 'pooling "pooler" needs a checkpoint with a pooler');
    const H = bert.config.hiddenSize;
    // PyTorch nn.Linear default init: U(-1/√in, 1/√in)
    const bound = 1 / Math.sqrt(H);
    this.headW = tf.variable(tf.randomUniform([labels.length, H], -bound, bound, 'float32', seed + 7919), true, freeVariableName('classifier.weight'));
    this.headB = tf.variable(tf.zeros([labels.length]), true, freeVariableName('classifier.bias'));
  }

  get numLabels(): number {
    return this.labels.length;
  }

  trainableVariables(): tf.Variable[] {
    return [...this.adapter.variables(), this.headW, this.headB];
  }

  /** Hidden states entering the lowest adapted layer: all-frozen computation, cacheable per example. [B, T, H] */
  frozenPrefix(b: BertBatch): tf.Tensor3D {
    return tf.tidy(() => this.bert.encode(this.bert.embed(b), this.bert.maskBias(b), { toLayer: this.adapter.lowestLayer }));
  }

  /**
   * Logits [B, labels]. `prefix` (from frozenPrefix, possibly cached) skips the frozen lower layers.
   * Not wrapped in tidy: callers run it inside tf.variableGrads / tf.tidy.
   */
  logits(b: BertBatch, training: boolean, prefix?: tf.Tensor3D, baseDropout = false): tf.Tensor2D {
    const hook = this.adapter.hook(training);
    const from = prefix ? this.adapter.lowestLayer : 0;
    const start = prefix ?? this.bert.embed(b);
    const c = this.bert.config;
    const dropout = training && baseDropout ? { hidden: c.hiddenDropout, attention: c.attentionDropout } : null;
    const hidden = this.bert.encode(start, this.bert.maskBias(b), { hook, fromLayer: from, dropout }); // [B, T, H]
    return tf.add(tf.matMul(this.pool(hidden, b), this.headW, false, true), this.headB) as tf.Tensor2D;
  }

  /** [B, T, H] → [B, H] */
  pool(hidden: tf.Tensor3D, b: BertBatch): tf.Tensor2D {
    if (this.pooling === 'pooler') return this.bert.pooler(hidden);
    if (this.pooling === 'cls') return tf.squeeze(tf.slice(hidden, [0, 0, 0], [-1, 1, -1]), [1]) as tf.Tensor2D;
    // float32 from the host, not int32 + toFloat(): tfjs-webgpu's cast only relabels the i32 buffer, and the sum over
    // axis 1 below then transposes it with an f32 shader that fails to compile (wrong mean; webgpu-lora.test.ts)
    const mask = tf.tensor3d(Float32Array.from(b.attentionMask), [b.batch, b.seqLen, 1], 'float32');
    return tf.div(tf.sum(tf.mul(hidden, mask), 1), tf.maximum(tf.sum(mask, 1), 1)) as tf.Tensor2D;
  }

  getTrainableState(): NamedTensors {
    return {
      ...this.adapter.getState(),
      'classifier.weight': { shape: this.headW.shape, data: this.headW.dataSync() as Float32Array },
      'classifier.bias': { shape: this.headB.shape, data: this.headB.dataSync() as Float32Array },
    };
  }

  /** Same as getTrainableState, without synchronous reads (which tfjs-webgpu in Node does not support). */
  async readTrainableState(): Promise<NamedTensors> {
    return {
      ...(await this.adapter.readState()),
      'classifier.weight': { shape: this.headW.shape, data: (await this.headW.data()) as Float32Array },
      'classifier.bias': { shape: this.headB.shape, data: (await this.headB.data()) as Float32Array },
    };
  }

  trainableShapes(): Record<string, number[]> {
    return { ...this.adapter.stateShapes(), 'classifier.weight': this.headW.shape, 'classifier.bias': this.headB.shape };
  }

  setTrainableState(state: NamedTensors): void {
    for (const [name, v] of [['classifier.weight', this.headW], ['classifier.bias', this.headB]] as const) {
      const t = state[name];
      if (!t) throw new FedloraError('ADAPTER_INVALID', `state lacks ${name}`);
      if (!sameShape(t.shape, v.shape))
        throw new FedloraError('SHAPE_MISMATCH', `${name} has shape [${t.shape}], expected [${v.shape}] (${this.numLabels} labels)`);
      if (!t.data.every(Number.isFinite)) throw new FedloraError('NON_FINITE', `${name} has NaN/Inf`);
    }
    this.adapter.setState(state);
    this.headW.assign(tf.tensor(state['classifier.weight'].data, this.headW.shape));
    this.headB.assign(tf.tensor(state['classifier.bias'].data, this.headB.shape));
  }

  trainableParamCount(): number {
    return this.trainableVariables().reduce((n, v) => n + v.size, 0);
  }

  dispose(): void {
    this.adapter.dispose();
    this.headW.dispose();
    this.headB.dispose();
  }
}
