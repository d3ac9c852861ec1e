// Hugging Face PEFT format for adapters: adapter_config.json + adapter_model.safetensors with PEFT tensor names
// ("base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight"). A classification head travels as
// PEFT's modules_to_save ("base_model.model.classifier.weight" / ".bias").

import { FedloraError } from '../errors';
import type { NamedTensors } from '../tensor';
import { parseSafetensors, serializeSafetensors } from '../model/safetensors';
import { LINEAR_PATHS } from '../model/bert';
import { LORA_TARGETS, validateLoraConfig, type LoraConfig, type LoraTarget } from './config';

const PEFT_PREFIX = 'base_model.model.';

export interface PeftAdapterFiles {
  adapterConfig: Record<string, unknown>;
  /** adapter_model.safetensors bytes */
  weights: Uint8Array;
}

/** fedlora state key → PEFT tensor name */
export function toPeftName(key: string): string {
  if (key.startsWith('classifier.')) return `${PEFT_PREFIX}${key}`;
  return `${PEFT_PREFIX}bert.${key}.weight`;
}

/** PEFT tensor name → fedlora state key (accepts the adapter-name infix ".default." that some versions keep). */
export function fromPeftName(name: string): string {
  let k = name.replace('.default.', '.').replace('.modules_to_save.', '.');
  if (k.startsWith(PEFT_PREFIX)) k = k.slice(PEFT_PREFIX.length);
  if (k.startsWith('classifier.')) return k;
  if (k.startsWith('bert.')) k = k.slice(5);
  return k.endsWith('.weight') && k.includes('.lora_') ? k.slice(0, -'.weight'.length) : k;
}

/** PEFT target_modules: leaf names when unambiguous, else a full-match regex (PEFT's "output.dense" also matches attention.output.dense). */
function peftTargets(c: LoraConfig): string[] | string {
  const ambiguous = c.targetModules.some((t) => t === 'attention.output' || t === 'output' || t === 'intermediate');
  if (!ambiguous) return c.targetModules.map((t) => LINEAR_PATHS[t].split('.').pop() as string);
  const alts = c.targetModules.map((t) => LINEAR_PATHS[t].replaceAll('.', '\\.')).join('|');
  return `.*encoder\\.layer\\.\\d+\\.(${alts})`;
}

export function exportPeft(
  config: LoraConfig,
  state: NamedTensors,
  opts: { baseModel: string; numLabels?: number; labels?: string[] },
): PeftAdapterFiles {
  const tensors: NamedTensors = {};
  for (const [k, t] of Object.entries(state)) tensors[toPeftName(k)] = t;
  const hasHead = Object.keys(state).some((k) => k.startsWith('classifier.'));
  const adapterConfig: Record<string, unknown> = {
    peft_type: 'LORA',
    task_type: hasHead ? 'SEQ_CLS' : 'FEATURE_EXTRACTION',
    r: config.r,
    lora_alpha: config.alpha,
    lora_dropout: config.dropout,
    target_modules: peftTargets(config),
    layers_to_transform: config.layers,
    bias: 'none',
    fan_in_fan_out: false,
    modules_to_save: hasHead ? ['classifier'] : null,
    base_model_name_or_path: opts.baseModel,
    // fedlora's own fields (ignored by PEFT): the exact targets and the head's labels
    fedlora: { target_modules: config.targetModules, labels: opts.labels ?? null },
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
      const t = LORA_TARGETS.find((x) => x === m || LINEAR_PATHS[x] === m || LINEAR_PATHS[x].endsWith(`.${m}`) && !m.includes('dense'));
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
