// The adapter state of a federated masked-LM (`mlm`) round (issue 24), as both ends see it: LoRA tensors on the encoder
// (adapter.ts keys) and, when the federation trains it, the MLM head's transform (HF names and orientation, as
// mlm-round.ts returns it) — no classifier head. The coordinator makes version 0 from it (mlmInitialState) and checks
// uploads against that layout; a site checks a global adapter against mlmStateShapes before it trains.

import { FedloraError } from '../errors';
import { adaptedLayers, validateLoraConfig, type LoraConfig } from '../lora/config';
import { linearShape, LoraAdapter, loraModulePath } from '../lora/adapter';
import type { BertCheckpoint, BertConfig } from '../model/checkpoint';
import type { NamedTensors } from '../tensor';
import { MLM_TRANSFORM_NAMES } from './mlm-round';

/** Names and shapes of an mlm federation's adapter: LoRA A [r, in] and B [out, r] per adapted linear, then the transform. */
export function mlmStateShapes(lora: LoraConfig, bert: BertConfig, headTransform: boolean): Record<string, number[]> {
  const c = validateLoraConfig(lora, bert.numLayers);
  const out: Record<string, number[]> = {};
  for (const layer of adaptedLayers(c, bert.numLayers))
    for (const target of c.targetModules) {
      const [inF, outF] = linearShape(bert, target);
      const path = loraModulePath(layer, target);
      out[`${path}.lora_A`] = [c.r, inF];
      out[`${path}.lora_B`] = [outF, c.r];
    }
  if (headTransform) {
    const H = bert.hiddenSize;
    out[MLM_TRANSFORM_NAMES[0]] = [H, H]; // dense weight, HF's [out, in]
    for (const name of MLM_TRANSFORM_NAMES.slice(1)) out[name] = [H];
  }
  return out;
}

/**
 * Version 0 of an mlm federation: a fresh LoRA adapter seeded with `seed` (A random, B zero, as LoraAdapter makes it)
 * and, with the transform, the base's own cls.predictions.transform tensors, so the first round starts from the base.
 * A site's round from this state with seed `seed` trains what `fedlora-site pretrain --lora --seed <seed>` trains.
 */
export async function mlmInitialState(ckpt: BertCheckpoint, lora: LoraConfig, headTransform: boolean, seed: number): Promise<NamedTensors> {
  if (ckpt.config.family !== 'bert')
    throw new FedloraError('MODEL_UNSUPPORTED', `masked-LM federations need a BERT checkpoint (its cls.predictions head); this one is ${ckpt.config.family}`);
  if (!ckpt.mlmHead)
    throw new FedloraError('MODEL_UNSUPPORTED', 'masked-LM federations need a base with its MLM head (cls.predictions.*, a BertForMaskedLM checkpoint)');
  const adapter = new LoraAdapter(lora, ckpt.config, seed);
  try {
    const state: NamedTensors = {};
    for (const [name, t] of Object.entries(await adapter.readState())) state[name] = { shape: [...t.shape], data: new Float32Array(t.data) };
    if (headTransform)
      for (const name of MLM_TRANSFORM_NAMES) {
        const t = ckpt.mlmHead[name];
        state[name] = { shape: [...t.shape], data: new Float32Array(t.data) };
      }
    return state;
  } finally {
    adapter.dispose();
  }
}
