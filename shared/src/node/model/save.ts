// Node-only: writes a Hugging Face BERT directory that load.ts (and transformers' BertForMaskedLM) reads back:
// config.json and tokenizer files copied from the source directory, model.safetensors with "bert."-prefixed encoder
// tensors and the cls.predictions.* head. The decoder is tied to the word embeddings, so it is not stored (as HF).

import { copyFileSync, existsSync, mkdirSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FedloraError } from '../../errors';
import type { NamedTensors } from '../../tensor';
import { serializeSafetensors } from '../../model/safetensors';

/** Files copied verbatim from the source model directory; vocab.txt and config.json are required. */
const COPIED = ['config.json', 'vocab.txt', 'tokenizer_config.json', 'special_tokens_map.json'] as const;
const REQUIRED = new Set(['config.json', 'vocab.txt']);

/** Throws unless `dir` is absent, empty, or `force` is set (then existing files are overwritten, others kept). */
export function assertWritableDir(dir: string, force: boolean): void {
  if (!existsSync(dir)) return;
  if (!statSync(dir).isDirectory()) throw new FedloraError('CONFIG_INVALID', `${dir} exists and is not a directory`);
  if (!force && readdirSync(dir).length > 0)
    throw new FedloraError('CONFIG_INVALID', `${dir} is not empty; choose another directory or pass --force to overwrite`);
}

export interface SaveBertOptions {
  /** the model directory the weights came from: config.json and the tokenizer files are copied from it */
  sourceDir: string;
  /** encoder weights with HF names and orientation, without the "bert." prefix (BertModel.getWeights) */
  weights: NamedTensors;
  /** cls.predictions.* tensors (MlmHead.getState), or null to write an encoder-only checkpoint */
  mlmHead: NamedTensors | null;
  force?: boolean;
}

/** Writes the directory; returns the paths written. model.safetensors is written to a temp name then renamed. */
export function saveBertCheckpoint(dir: string, o: SaveBertOptions): string[] {
  assertWritableDir(dir, o.force ?? false);
  for (const f of REQUIRED)
    if (!existsSync(join(o.sourceDir, f))) throw new FedloraError('MODEL_INVALID', `${o.sourceDir} has no ${f} to copy`);
  const tensors: NamedTensors = {};
  for (const [name, t] of Object.entries(o.weights)) tensors[`bert.${name}`] = t;
  for (const [name, t] of Object.entries(o.mlmHead ?? {})) {
    if (!name.startsWith('cls.predictions.')) throw new FedloraError('MODEL_INVALID', `MLM head tensor ${name} is not cls.predictions.*`);
    tensors[name] = t;
  }
  mkdirSync(dir, { recursive: true });
  const written: string[] = [];
  for (const f of COPIED) {
    if (!existsSync(join(o.sourceDir, f))) continue;
    copyFileSync(join(o.sourceDir, f), join(dir, f));
    written.push(join(dir, f));
  }
  const path = join(dir, 'model.safetensors');
  writeFileSync(path + '.tmp', serializeSafetensors(tensors));
  renameSync(path + '.tmp', path);
  written.push(path);
  return written;
}
