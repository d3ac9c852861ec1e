// The adapter: every LoraLinear of a model, keyed by layer path. Extract / apply (get/set state), merge and unmerge
// into the frozen weights for inference, and the LinearHook that plugs the branches into BertModel.
// State keys are "encoder.layer.{l}.{module path}.lora_A|lora_B" (PEFT's names, minus "base_model.model.bert." and ".weight").

import * as tf from '@tensorflow/tfjs';
import { FedloraError } from '../errors';
import { sameShape, type NamedTensors } from '../tensor';
import { LINEAR_PATHS, type BertModel, type LinearHook, type LinearName } from '../model/bert';
import type { BertConfig } from '../model/checkpoint';
import { adaptedLayers, loraScaling, validateLoraConfig, type LoraConfig } from './config';
import { LoraLinear } from './layer';

export function linearShape(c: BertConfig, linear: LinearName): [number, number] {
  if (linear === 'intermediate') return [c.hiddenSize, c.intermediateSize];
  if (linear === 'output') return [c.intermediateSize, c.hiddenSize];
  return [c.hiddenSize, c.hiddenSize];
}

export function loraModulePath(layer: number, linear: LinearName): string {
  return `encoder.layer.${layer}.${LINEAR_PATHS[linear]}`;
}

export class LoraAdapter {
  readonly config: LoraConfig;
  readonly modules = new Map<string, LoraLinear>();
  private merged = false;

  constructor(config: LoraConfig, readonly bert: BertConfig, seed = 0) {
    this.config = validateLoraConfig(config, bert.numLayers);
    let s = seed;
    for (const layer of adaptedLayers(this.config, bert.numLayers))
      for (const target of this.config.targetModules) {
        const [inF, outF] = linearShape(bert, target);
        const path = loraModulePath(layer, target);
        this.modules.set(path, new LoraLinear(path, inF, outF, this.config.r, loraScaling(this.config), this.config.dropout, s++));
      }
  }

  /** Lowest encoder layer that has an adapter: layers below it are frozen end to end and can be cached. */
  get lowestLayer(): number {
    return Math.min(...adaptedLayers(this.config, this.bert.numLayers));
  }

  variables(): tf.Variable[] {
    return [...this.modules.values()].flatMap((m) => [m.A, m.B]);
  }

  hook(training: boolean): LinearHook {
    return (layer, linear, x, y) => {
      if (this.merged) return null;
      const m = this.modules.get(loraModulePath(layer, linear));
      return m ? m.addTo(y, x, training) : null;
    };
  }

  /** Adapter-only state (never base weights). */
  getState(): NamedTensors {
    const out: NamedTensors = {};
    for (const [path, m] of this.modules) {
      out[`${path}.lora_A`] = { shape: m.A.shape, data: m.A.dataSync() as Float32Array };
      out[`${path}.lora_B`] = { shape: m.B.shape, data: m.B.dataSync() as Float32Array };
    }
    return out;
  }

  /** Same as getState, without synchronous reads (which tfjs-webgpu in Node does not support). */
  async readState(): Promise<NamedTensors> {
    const out: NamedTensors = {};
    for (const [path, m] of this.modules) {
      out[`${path}.lora_A`] = { shape: m.A.shape, data: (await m.A.data()) as Float32Array };
      out[`${path}.lora_B`] = { shape: m.B.shape, data: (await m.B.data()) as Float32Array };
    }
    return out;
  }

  /** Names and shapes of the state, for validating anything received. */
  stateShapes(): Record<string, number[]> {
    const out: Record<string, number[]> = {};
    for (const [path, m] of this.modules) {
      out[`${path}.lora_A`] = m.A.shape;
      out[`${path}.lora_B`] = m.B.shape;
    }
    return out;
  }

  /** Loads adapter state; names and shapes must match exactly, values must be finite. */
  setState(state: NamedTensors): void {
    const expected = this.stateShapes();
    const extra = Object.keys(state).filter((k) => k.includes('.lora_') && !(k in expected));
    if (extra.length) throw new FedloraError('ADAPTER_INVALID', `unexpected LoRA tensors: ${extra.slice(0, 3).join(', ')}`);
    for (const [name, shape] of Object.entries(expected)) {
      const t = state[name];
      if (!t) throw new FedloraError('ADAPTER_INVALID', `adapter state lacks ${name}`);
      if (!sameShape(t.shape, shape))
        throw new FedloraError('SHAPE_MISMATCH', `adapter tensor ${name} has shape [${t.shape}], expected [${shape}]`);
      if (!t.data.every(Number.isFinite)) throw new FedloraError('NON_FINITE', `adapter tensor ${name} has NaN/Inf`);
    }
    for (const [path, m] of this.modules) {
      m.A.assign(tf.tensor(state[`${path}.lora_A`].data, m.A.shape));
      m.B.assign(tf.tensor(state[`${path}.lora_B`].data, m.B.shape));
    }
  }

  /** Folds B·A·scaling into the frozen weights (faster inference); checks the result is finite (PEFT's safe_merge). */
  merge(model: BertModel): void {
    if (this.merged) return;
    this.foldInto(model, +1);
    this.merged = true;
  }

  /** Undoes merge(). */
  unmerge(model: BertModel): void {
    if (!this.merged) return;
    this.foldInto(model, -1);
    this.merged = false;
  }

  get isMerged(): boolean {
    return this.merged;
  }

  private foldInto(model: BertModel, sign: 1 | -1): void {
    for (const [path, m] of this.modules) {
      const name = `${path}.weight`;
      const next = tf.tidy(() => tf.add(model.weight(name), tf.mul(m.deltaWeight(), sign)) as tf.Tensor2D);
      if (!(next.dataSync() as Float32Array).every(Number.isFinite)) {
        next.dispose();
        throw new FedloraError('NON_FINITE', `NaNs detected in the merged weights of ${path}`);
      }
      model.replaceLinearWeight(name, next);
    }
  }

  dispose(): void {
    for (const m of this.modules.values()) m.dispose();
    this.modules.clear();
  }
}
