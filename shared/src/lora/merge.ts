// Merging a LoRA adapter into its base checkpoint for good (Hu et al. 2021, §4.1: "W = W0 + BA", no inference
// latency), as PEFT's merge_and_unload: for every adapted linear layer W' = W + (alpha/r)·B·A, in the checkpoint's own
// layout (HF Linear [out, in]; A is [r, in] and B [out, r], so B·A is [out, in] and needs no transpose; tfjs keeps W as
// [in, out], which is why adapter.ts's deltaWeight is Aᵀ·Bᵀ). An MLM adapter may also carry the masked-LM head it was
// trained with (cls.predictions.*, HF orientation): those tensors replace the base's. Pure (host tensors in, host
// tensors out) and isomorphic; node/model/merge-base.ts reads and writes the directories.

import { FedloraError } from '../errors';
import { sameShape, type HostTensor, type NamedTensors } from '../tensor';
import type { BertConfig } from '../model/checkpoint';
import { FAMILIES, LINEAR_PATHS } from '../model/families';
import { MLM_HEAD_NAMES } from '../model/mlm';
import { adaptedLayers, loraScaling, validateLoraConfig, type LoraConfig } from './config';

/** An adapter as merge needs it: its config and its tensors under fedlora's canonical keys (adapter.ts). */
export interface LoraAdapterWeights {
  config: LoraConfig;
  /** "encoder.layer.{l}.{module}.lora_A|lora_B", and optionally cls.predictions.* (an MLM adapter's head) */
  state: NamedTensors;
}

export interface MergedWeights {
  /** the adapter's config, validated against the base */
  config: LoraConfig;
  /** every tensor of the base under its stored name: the adapted linear weights and the head replaced, the rest as they were */
  tensors: NamedTensors;
  /** stored names of the linear weights that took B·A */
  mergedWeights: string[];
  /** stored names of the head tensors the adapter replaced (or added) */
  headTensors: string[];
}

const HEAD_NAMES: ReadonlySet<string> = new Set(Object.values(MLM_HEAD_NAMES));

/** The name a canonical tensor has in the stored file: the family's own name, with its prefix when the file uses one. */
function storedName(tensors: NamedTensors, config: BertConfig, canonical: string): string {
  const family = FAMILIES[config.family];
  const own = family.tensorName(canonical);
  if (own === null) throw new FedloraError('MODEL_INVALID', `a ${config.family} checkpoint has no ${canonical}`);
  if (family.prefix + own in tensors) return family.prefix + own;
  if (own in tensors) return own;
  throw new FedloraError('MODEL_INVALID', `the base checkpoint lacks ${family.prefix}${own}`);
}

function checkTensor(name: string, t: HostTensor | undefined, shape: number[], what: string): HostTensor {
  if (!t) throw new FedloraError('ADAPTER_INVALID', `the adapter lacks ${name}`);
  if (!sameShape(t.shape, shape))
    throw new FedloraError('SHAPE_MISMATCH', `adapter tensor ${name} has shape [${t.shape}], but ${what} needs [${shape}]: was the adapter made for another base?`);
  if (!t.data.every(Number.isFinite)) throw new FedloraError('NON_FINITE', `adapter tensor ${name} has NaN/Inf`);
  return t;
}

/** W + s·B·A for W [out, in], A [r, in], B [out, r]; sums in float64, one float32 rounding per element. */
export function addLowRank(w: HostTensor, a: HostTensor, b: HostTensor, scaling: number): HostTensor {
  const [out, inF] = w.shape;
  const r = a.shape[0];
  const next = new Float32Array(w.data.length);
  const row = new Float64Array(inF);
  for (let o = 0; o < out; o++) {
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const bok = b.data[o * r + k];
      if (bok === 0) continue;
      const aRow = k * inF;
      for (let i = 0; i < inF; i++) row[i] += bok * a.data[aRow + i];
    }
    for (let i = 0; i < inF; i++) next[o * inF + i] = w.data[o * inF + i] + scaling * row[i];
  }
  return { shape: [...w.shape], data: next };
}

/**
 * Folds the adapter into the base's stored tensors (`tensors`: every tensor of the checkpoint under its file name,
 * with or without the family prefix; `config`: its config.json). The adapter must fit the base exactly: every tensor
 * its config implies, each of the shape the base's layer needs (SHAPE_MISMATCH otherwise), nothing else but an MLM
 * head's cls.predictions.* tensors (BERT only). The merged weights must be finite (PEFT's safe_merge).
 */
export function mergeLoraWeights(tensors: NamedTensors, config: BertConfig, adapter: LoraAdapterWeights): MergedWeights {
  let lora: LoraConfig;
  try {
    lora = validateLoraConfig(adapter.config, config.numLayers);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new FedloraError('SHAPE_MISMATCH', `the adapter does not fit this ${config.numLayers}-layer base (${why})`, { cause: err });
  }
  const scaling = loraScaling(lora);
  const out: NamedTensors = { ...tensors };
  const used = new Set<string>();
  const mergedWeights: string[] = [];
  for (const layer of adaptedLayers(lora, config.numLayers))
    for (const target of lora.targetModules) {
      const module = `encoder.layer.${layer}.${LINEAR_PATHS[target]}`;
      const name = storedName(tensors, config, `${module}.weight`);
      const w = tensors[name];
      const [outF, inF] = w.shape;
      const a = checkTensor(`${module}.lora_A`, adapter.state[`${module}.lora_A`], [lora.r, inF], `${name} [${w.shape}] with r = ${lora.r}`);
      const b = checkTensor(`${module}.lora_B`, adapter.state[`${module}.lora_B`], [outF, lora.r], `${name} [${w.shape}] with r = ${lora.r}`);
      used.add(`${module}.lora_A`).add(`${module}.lora_B`);
      const merged = addLowRank(w, a, b, scaling);
      if (!merged.data.every(Number.isFinite)) throw new FedloraError('NON_FINITE', `NaNs detected in the merged weights of ${module}`);
      out[name] = merged;
      mergedWeights.push(name);
    }
  const headTensors: string[] = [];
  for (const [key, t] of Object.entries(adapter.state)) {
    if (used.has(key)) continue;
    if (key.startsWith('classifier.'))
      throw new FedloraError('ADAPTER_INVALID', `the adapter holds a classification head (${key}): a base has no place for it, and merging would drop it`);
    if (!HEAD_NAMES.has(key)) throw new FedloraError('ADAPTER_INVALID', `the adapter holds ${key}, which is neither a LoRA tensor its config names nor an MLM head tensor`);
    if (config.family !== 'bert') throw new FedloraError('MODEL_UNSUPPORTED', `the adapter carries an MLM head (${key}); only BERT checkpoints store one (cls.predictions.*)`);
    const shape = key === MLM_HEAD_NAMES.denseW ? [config.hiddenSize, config.hiddenSize] : key === MLM_HEAD_NAMES.bias ? [config.vocabSize] : [config.hiddenSize];
    out[key] = checkTensor(key, t, shape, `the MLM head of a hidden-${config.hiddenSize} base`);
    headTensors.push(key);
  }
  // a base without a head gets the adapter's only when it brings the whole head (else the result could not be loaded)
  const missingHead = headTensors.length > 0 ? [...HEAD_NAMES].filter((n) => !(n in out)) : [];
  if (missingHead.length)
    throw new FedloraError('ADAPTER_INVALID', `the base has no MLM head and the adapter brings only part of one (missing ${missingHead.join(', ')})`);
  return { config: lora, tensors: out, mergedWeights, headTensors: headTensors.sort() };
}
