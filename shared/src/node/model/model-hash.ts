// Node-only: the files of a base model a site must hold, each with its SHA-256 (streamed: model.safetensors is tens of
// MB), and the base-model hash over them: what a coordinator lists in its manifest and records in its data dir, and
// what a merged checkpoint's lineage names. A model may bring tokenizer.json instead of vocab.txt and sharded
// safetensors instead of one file.

import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FedloraError } from '../../errors';
import { parseSafetensorsIndex, SAFETENSORS_INDEX } from '../../model/safetensors-index';

export interface ModelFile {
  /** the file's path in the model directory, as the manifest names it */
  path: string;
  absPath: string;
  sha256: string;
  bytes: number;
}

/**
 * The files of a base model, in manifest order: config.json; the tokenizer (tokenizer.json when present, else
 * vocab.txt); the weights (model.safetensors, else model.safetensors.index.json and its shards); then
 * tokenizer_config.json when present. The shipped model's list (config.json, vocab.txt, model.safetensors,
 * tokenizer_config.json) and so its base-model hash are what they were before the alternatives existed. Other files
 * (a README, fedlora-lineage.json) are not part of the model.
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

/**
 * The base-model hash: SHA-256 of "path<TAB>sha256<LF>" per file, sorted by path, so it names the whole model (and
 * not the order files were listed in). The coordinator records it in its data dir (coordinator/src/app.ts
 * baseModelRecord) and refuses a data dir made on another base.
 */
export function baseModelSha256(files: readonly Pick<ModelFile, 'path' | 'sha256'>[]): string {
  const listing = [...files]
    .sort((a, b) => (a.path < b.path ? -1 : 1))
    .map((f) => `${f.path}\t${f.sha256}\n`)
    .join('');
  return createHash('sha256').update(listing).digest('hex');
}

/** The base-model hash of a model directory. */
export async function modelDirSha256(modelDir: string): Promise<string> {
  return baseModelSha256(await hashModelFiles(modelDir));
}
