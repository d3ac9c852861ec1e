// LoRA configuration (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"):
// the type, its defaults, and a validator that names the bad field. Mirrors the fields of HF PEFT's LoraConfig.

import { FedloraError } from '../errors';

/** Linear layers of a BERT layer that LoRA can adapt (PEFT's names for them). */
export const LORA_TARGETS = ['query', 'key', 'value', 'attention.output', 'intermediate', 'output'] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];

export interface LoraConfig {
  /** rank r of the update B·A */
  r: number;
  /** scaling = alpha / r */
  alpha: number;
  /** dropout on the LoRA branch's input during training (0 = off) */
  dropout: number;
  /** which linear layers of each BERT layer get an adapter */
  targetModules: LoraTarget[];
  /** which encoder layers get adapters; null = all of them */
  layers: number[] | null;
}

export const DEFAULT_LORA_CONFIG: LoraConfig = {
  r: 8,
  alpha: 16,
  dropout: 0.0,
  targetModules: ['query', 'value'],
  layers: null,
};

export function validateLoraConfig(c: LoraConfig, numLayers?: number): LoraConfig {
  const bad = (field: string, why: string) =>
    new FedloraError('CONFIG_INVALID', `LoRA config: ${field} ${why}`);
  if (!Number.isInteger(c.r) || c.r < 1 || c.r > 1024) throw bad('r', `must be an integer in 1..1024, got ${c.r}`);
  if (!Number.isFinite(c.alpha) || c.alpha <= 0) throw bad('alpha', `must be a positive number, got ${c.alpha}`);
  if (!Number.isFinite(c.dropout) || c.dropout < 0 || c.dropout >= 1)
    throw bad('dropout', `must be in [0, 1), got ${c.dropout}`);
  if (!Array.isArray(c.targetModules) || c.targetModules.length === 0)
    throw bad('targetModules', 'must name at least one module');
  for (const t of c.targetModules)
    if (!(LORA_TARGETS as readonly string[]).includes(t))
      throw bad('targetModules', `has unknown module "${t}" (known: ${LORA_TARGETS.join(', ')})`);
  if (c.layers !== null) {
    if (!Array.isArray(c.layers) || c.layers.length === 0) throw bad('layers', 'must be null (all) or a non-empty list');
    for (const l of c.layers)
      if (!Number.isInteger(l) || l < 0 || (numLayers !== undefined && l >= numLayers))
        throw bad('layers', `has ${l}, outside 0..${numLayers === undefined ? '?' : numLayers - 1}`);
  }
  return { ...c, targetModules: [...new Set(c.targetModules)], layers: c.layers ? [...new Set(c.layers)].sort((a, b) => a - b) : null };
}

export function loraScaling(c: LoraConfig): number {
  return c.alpha / c.r;
}

/** The encoder layers that carry adapters. */
export function adaptedLayers(c: LoraConfig, numLayers: number): number[] {
  return c.layers ?? Array.from({ length: numLayers }, (_, i) => i);
}
