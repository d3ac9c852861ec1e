// Hugging Face PEFT format for adapters: adapter_config.json + adapter_model.safetensors with PEFT tensor names, in the
// base model family's own module names: "base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight",
// "base_model.model.roberta.encoder...", "base_model.model.distilbert.transformer.layer.0.attention.q_lin.lora_A.weight".
// Inside fedlora the keys are canonical (BERT's names, families.ts). A classification head travels as PEFT's
// modules_to_save ("base_model.model.classifier.weight" / ".bias"), and a masked-LM adapter's head as
// "base_model.model.cls.predictions.transform.dense.weight" and the like.

import { FedloraError } from '../errors';
import type { NamedTensors } from '../tensor';
import { parseSafetensors, serializeSafetensors } from '../model/safetensors';
import { FAMILIES, LINEAR_PATHS, MODEL_FAMILIES, type LinearName, type ModelFamily } from '../model/families';
import { LORA_TARGETS, validateLoraConfig, type LoraConfig, type LoraTarget } from './config';

const PEFT_PREFIX = 'base_model.model.';

export interface PeftAdapterFiles {
  adapterConfig: Record<string, unknown>;
  /** adapter_model.safetensors bytes */
  weights: Uint8Array;
}

const LINEAR_BY_PATH = new Map(Object.entries(LINEAR_PATHS).map(([linear, path]) => [path as string, linear as LinearName]));
const LORA_KEY = /^encoder\.layer\.(\d+)\.(.+)\.(lora_[AB])$/;

/** fedlora state key → PEFT tensor name, in `family`'s module names */
export function toPeftName(key: string, family: ModelFamily = 'bert'): string {
  if (key.startsWith('classifier.') || key.startsWith('cls.predictions.')) return `${PEFT_PREFIX}${key}`;
  const m = LORA_KEY.exec(key);
  const linear = m && LINEAR_BY_PATH.get(m[2]);
  if (!m || !linear) throw new FedloraError('ADAPTER_INVALID', `${key} is not a LoRA tensor of an encoder layer`);
  const f = FAMILIES[family];
  return `${PEFT_PREFIX}${f.prefix}${f.modulePath(Number(m[1]), linear)}.${m[3]}.weight`;
}

/**
 * PEFT tensor name (any family, with or without the family prefix, with the adapter-name infix ".default." that some
 * versions keep) → fedlora state key.
 */
export function fromPeftName(name: string): string {
  let k = name.replace('.default.', '.').replace('.modules_to_save.', '.');
  if (k.startsWith(PEFT_PREFIX)) k = k.slice(PEFT_PREFIX.length);
  if (k.startsWith('classifier.')) return k;
  for (const f of MODEL_FAMILIES) if (k.startsWith(FAMILIES[f].prefix)) k = k.slice(FAMILIES[f].prefix.length);
  if (k.endsWith('.weight') && k.includes('.lora_')) k = k.slice(0, -'.weight'.length);
  // a family's module path (DistilBERT's transformer.layer.0.attention.q_lin) → the canonical one
  const m = /^(.+)\.(lora_[AB])$/.exec(k);
  if (m)
    for (const f of MODEL_FAMILIES)
      for (const linear of LORA_TARGETS) {
        const layer = /\.(\d+)\./.exec(m[1])?.[1];
        if (layer !== undefined && FAMILIES[f].modulePath(Number(layer), linear) === m[1])
          return `encoder.layer.${layer}.${LINEAR_PATHS[linear]}.${m[2]}`;
      }
  return k;
}

/**
 * PEFT target_modules: leaf names when unambiguous (BERT's "query", DistilBERT's "q_lin"), else a full-match regex
 * (PEFT's "output.dense" also matches attention.output.dense).
 */
function peftTargets(c: LoraConfig, family: ModelFamily): string[] | string {
  const paths = c.targetModules.map((t) => FAMILIES[family].modulePath(0, t).replace(/^.*?\.0\./, ''));
  const leaves = paths.map((p) => p.split('.').pop() as string);
  const everyLeaf = LORA_TARGETS.map((t) => FAMILIES[family].modulePath(0, t).split('.').pop());
  if (leaves.every((leaf) => everyLeaf.filter((x) => x === leaf).length === 1)) return leaves;
  const layers = FAMILIES[family].modulePath(0, 'query').replace(/\.0\..*$/, '').replaceAll('.', '\\.');
  return `.*${layers}\\.\\d+\\.(${paths.map((p) => p.replaceAll('.', '\\.')).join('|')})`;
}

/** Which LoRA target a PEFT target_modules entry means, in any family's names ("q_lin" is query). */
function targetOf(module: string): LoraTarget | undefined {
  for (const t of LORA_TARGETS) {
    if (module === t) return t;
    for (const f of MODEL_FAMILIES) {
      const path = FAMILIES[f].modulePath(0, t).replace(/^.*?\.0\./, '');
      // a leaf counts only when it names one module ("dense" would be four)
      if (module === path || (path.endsWith(`.${module}`) && !module.includes('dense'))) return t;
    }
  }
  return undefined;
}

export function exportPeft(
  config: LoraConfig,
  state: NamedTensors,
  opts: { baseModel: string; numLabels?: number; labels?: string[]; family?: ModelFamily; pooling?: string; baseModelSha256?: string },
): PeftAdapterFiles {
  const family = opts.family ?? 'bert';
  const tensors: NamedTensors = {};
  for (const [k, t] of Object.entries(state)) tensors[toPeftName(k, family)] = t;
  const hasHead = Object.keys(state).some((k) => k.startsWith('classifier.'));
  // a masked-LM adapter's head: the transform alone, or the whole prediction head when its bias trained too
  const mlmHead = Object.keys(state).filter((k) => k.startsWith('cls.predictions.'));
  const mlmModule = mlmHead.length === 0 ? [] : mlmHead.every((k) => k.startsWith('cls.predictions.transform.')) ? ['cls.predictions.transform'] : ['cls.predictions'];
  const modulesToSave = [...(hasHead ? ['classifier'] : []), ...mlmModule];
  const adapterConfig: Record<string, unknown> = {
    peft_type: 'LORA',
    task_type: hasHead ? 'SEQ_CLS' : 'FEATURE_EXTRACTION',
    r: config.r,
    lora_alpha: config.alpha,
    lora_dropout: config.dropout,
    target_modules: peftTargets(config, family),
    layers_to_transform: config.layers,
    bias: 'none',
    fan_in_fan_out: false,
    modules_to_save: modulesToSave.length ? modulesToSave : null,
    base_model_name_or_path: opts.baseModel,
    // fedlora's own fields (ignored by PEFT): the exact targets, the head's labels, the base model's family, how the
    // head pools token vectors (model/classifier.ts), and the base-model hash (node/model/model-hash.ts), when known
    fedlora: {
      target_modules: config.targetModules,
      labels: opts.labels ?? null,
      family,
      ...(opts.pooling ? { pooling: opts.pooling } : {}),
      ...(opts.baseModelSha256 ? { base_model_sha256: opts.baseModelSha256 } : {}),
    },
  };
  return { adapterConfig, weights: serializeSafetensors(tensors) };
}

export function importPeft(files: PeftAdapterFiles, source = 'adapter'): { config: LoraConfig; state: NamedTensors; labels: string[] | null } {
  const c = files.adapterConfig;
  if (c.peft_type !== 'LORA') throw new FedloraError('ADAPTER_INVALID', `${source}: peft_type is ${String(c.peft_type)}, expected LORA`);
  const fed = (c.fedlora ?? {}) as { target_modules?: LoraTarget[]; labels?: string[] | null };
  let targets: LoraTarget[];
  if (fed.target_modules) targets = fed.target_modules;
  else if (Array.isArray(c.target_modules)) {
    targets = (c.target_modules as string[]).map((m) => {
      const t = targetOf(m);
      if (!t) throw new FedloraError('ADAPTER_INVALID', `${source}: unsupported target module "${m}"`);
      return t;
    });
  } else throw new FedloraError('ADAPTER_INVALID', `${source}: target_modules must be a list (or carry fedlora.target_modules)`);
  const rawLayers = c.layers_to_transform;
  const config = validateLoraConfig({
    r: Number(c.r),
    alpha: Number(c.lora_alpha),
    dropout: Number(c.lora_dropout ?? 0),
    targetModules: targets,
    layers: rawLayers === null || rawLayers === undefined ? null : typeof rawLayers === 'number' ? [rawLayers] : (rawLayers as number[]),
  });
  const file = parseSafetensors(files.weights, `${source}/adapter_model.safetensors`);
  const state: NamedTensors = {};
  for (const [name, t] of Object.entries(file.tensors)) state[fromPeftName(name)] = t;
  return { config, state, labels: fed.labels ?? null };
}
