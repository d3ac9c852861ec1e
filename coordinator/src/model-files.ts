// The base-model files a site must hold, with their SHA-256 (streamed: model.safetensors is tens of MB), as listed
// in the manifest and served chunk by chunk over 'model:chunk'. A model may bring tokenizer.json instead of vocab.txt
// and sharded safetensors instead of one file.

import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { parseSafetensorsIndex, SAFETENSORS_INDEX } from '@fedlora/shared/model/safetensors-index.ts';
import type { ModelFile } from './socket/site-handlers';

/**
 * The files of a base model, in manifest order: config.json; the tokenizer (tokenizer.json when present, else
 * vocab.txt); the weights (model.safetensors, else model.safetensors.index.json and its shards); then
 * tokenizer_config.json when present. The shipped model's list (config.json, vocab.txt, model.safetensors,
 * tokenizer_config.json) and so its base-model hash are what they were before the alternatives existed.
 */
export function modelFileNames(modelDir: string): string[] {
  const has = (name: string) => existsSync(join(modelDir, name));
  const lacks = (what: string) => new FedloraError('FILE_NOT_FOUND', `model directory ${modelDir} lacks ${what}`);
  if (!has('config.json')) throw lacks('config.json');
  const names = ['config.json'];
  if (has('tokenizer.json')) names.push('tokenizer.json');
  else if (has('vocab.txt')) names.push('vocab.txt');
  else throw lacks('vocab.txt (or tokenizer.json)');
  if (has('model.safetensors')) names.push('model.safetensors');
  else if (has(SAFETENSORS_INDEX))
    names.push(SAFETENSORS_INDEX, ...parseSafetensorsIndex(readFileSync(join(modelDir, SAFETENSORS_INDEX), 'utf8'), join(modelDir, SAFETENSORS_INDEX)).shards);
  else throw lacks(`model.safetensors (or ${SAFETENSORS_INDEX} with its shards)`);
  if (has('tokenizer_config.json')) names.push('tokenizer_config.json');
  return names;
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export async function hashModelFiles(modelDir: string): Promise<ModelFile[]> {
  const out: ModelFile[] = [];
  for (const path of modelFileNames(modelDir)) {
    const absPath = join(modelDir, path);
    if (!existsSync(absPath)) throw new FedloraError('FILE_NOT_FOUND', `model directory ${modelDir} lacks ${path}`);
    out.push({ path, absPath, sha256: await sha256File(absPath), bytes: statSync(absPath).size });
  }
  return out;
}
