// The base-model files a coordinator lists in its manifest: the shipped model's list is unchanged; a model that
// brings tokenizer.json and sharded safetensors lists those instead; a directory missing a part is refused by name.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isFedloraError } from '@fedlora/shared/errors.ts';
import { DEFAULT_MODEL_DIR } from '@fedlora/shared/node/default-model.ts';
import { parseSafetensors } from '@fedlora/shared/model/safetensors.ts';
import { SAFETENSORS_INDEX, shardSafetensors } from '@fedlora/shared/model/safetensors-index.ts';
import { baseModelSha256, hashModelFiles, modelFileNames } from './model-files';
import { baseModelRecord } from './app';

const ROBERTA = fileURLToPath(new URL('../../tests/fixtures/roberta-reference/', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'fedlora-model-files-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

test('when the shipped model is listed, then its files (and so its base-model hash) are the four it always had', () => {
  assert.deepEqual(modelFileNames(DEFAULT_MODEL_DIR), ['config.json', 'vocab.txt', 'model.safetensors', 'tokenizer_config.json']);
});

test('when the base-model hash is taken from the files, then it is the one the data dir records (so a merged base names its parent by it)', async () => {
  const files = await hashModelFiles(DEFAULT_MODEL_DIR);
  const reversed = [...files].reverse();
  assert.equal(baseModelSha256(reversed), baseModelRecord({ modelId: 'fedlora-bert-mini', modelFiles: files }).sha256);
  assert.match(baseModelSha256(files), /^[0-9a-f]{64}$/);
});

test('when a model brings tokenizer.json and 2 safetensors shards, then the manifest lists the index and each shard', async () => {
  const dir = join(scratch, 'sharded');
  mkdirSync(dir);
  for (const f of ['config.json', 'tokenizer.json']) copyFileSync(join(ROBERTA, f), join(dir, f));
  const { indexJson, shards } = shardSafetensors(parseSafetensors(new Uint8Array(readFileSync(join(ROBERTA, 'model.safetensors')))).tensors, 2);
  writeFileSync(join(dir, SAFETENSORS_INDEX), indexJson);
  for (const [name, bytes] of Object.entries(shards)) writeFileSync(join(dir, name), bytes);
  const files = await hashModelFiles(dir);
  assert.deepEqual(
    files.map((f) => f.path),
    ['config.json', 'tokenizer.json', SAFETENSORS_INDEX, 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'],
  );
  assert.ok(files.every((f) => /^[0-9a-f]{64}$/.test(f.sha256) && f.bytes > 0));
});

test('when a model directory has no tokenizer or no weights, then FILE_NOT_FOUND names what is missing', () => {
  const dir = join(scratch, 'partial');
  mkdirSync(dir);
  copyFileSync(join(ROBERTA, 'config.json'), join(dir, 'config.json'));
  assert.throws(() => modelFileNames(dir), (err: unknown) => isFedloraError(err, 'FILE_NOT_FOUND') && err.message.endsWith('lacks vocab.txt (or tokenizer.json)'));
  copyFileSync(join(ROBERTA, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  assert.throws(() => modelFileNames(dir), (err: unknown) => isFedloraError(err, 'FILE_NOT_FOUND') && err.message.includes(`lacks model.safetensors (or ${SAFETENSORS_INDEX}`));
});
