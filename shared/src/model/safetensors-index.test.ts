// Sharded checkpoints: a directory holding only tokenizer.json + config.json + model.safetensors.index.json and its
// shards loads as the single file does (Node loader and the isomorphic model-files path), and bad indexes are refused.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isFedloraError } from '../errors';
import { loadBertCheckpoint } from '../node/model/load';
import { loadTokenizer } from '../node/tokenizer/load';
import { localModelFromFiles, type ModelFiles } from './local-model';
import { parseSafetensors } from './safetensors';
import { parseSafetensorsIndex, SAFETENSORS_INDEX, shardSafetensors } from './safetensors-index';

const FIXTURES = fileURLToPath(new URL('../../../tests/fixtures/', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'fedlora-shards-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let dirs = 0;

/** The fixture's checkpoint re-saved as `count` shards beside only tokenizer.json and config.json. */
function shardedCopy(family: string, count: number): string {
  const src = join(FIXTURES, `${family}-reference`);
  const dir = join(scratch, `${family}-${dirs++}`);
  mkdirSync(dir);
  for (const f of ['tokenizer.json', 'config.json']) copyFileSync(join(src, f), join(dir, f));
  const { indexJson, shards } = shardSafetensors(parseSafetensors(new Uint8Array(readFileSync(join(src, 'model.safetensors')))).tensors, count);
  writeFileSync(join(dir, SAFETENSORS_INDEX), indexJson);
  for (const [name, bytes] of Object.entries(shards)) writeFileSync(join(dir, name), bytes);
  return dir;
}

for (const family of ['roberta', 'distilbert']) {
  test(`when a ${family} directory has only tokenizer.json, config.json and 3 safetensors shards, then it loads as the single file does`, () => {
    const dir = shardedCopy(family, 3);
    assert.deepEqual(readdirSync(dir).sort(), [
      'config.json',
      'model-00001-of-00003.safetensors',
      'model-00002-of-00003.safetensors',
      'model-00003-of-00003.safetensors',
      SAFETENSORS_INDEX,
      'tokenizer.json',
    ]);
    const single = loadBertCheckpoint(join(FIXTURES, `${family}-reference`));
    const sharded = loadBertCheckpoint(dir);
    assert.deepEqual(sharded.config, single.config);
    assert.deepEqual(Object.keys(sharded.weights).sort(), Object.keys(single.weights).sort());
    for (const [name, t] of Object.entries(single.weights)) assert.deepEqual(sharded.weights[name].data, t.data, name);
    assert.equal(loadTokenizer(dir).encode('Hello world').inputIds.length > 2, true);
  });
}

test('when the browser gets a sharded model as files, then localModelFromFiles builds the same classifier input', () => {
  const dir = shardedCopy('roberta', 2);
  const files: ModelFiles = {};
  for (const name of readdirSync(dir)) files[name] = new Uint8Array(readFileSync(join(dir, name)));
  const model = localModelFromFiles(files, { lora: { r: 2, alpha: 4, dropout: 0, targetModules: ['query', 'value'], layers: null }, labels: ['a', 'b'], pooling: 'mean' });
  assert.equal(model.bert.config.family, 'roberta');
  assert.equal(model.tokenizer.special.pad, 1);
  model.dispose();
});

test('when a shard is missing, holds a tensor the index puts elsewhere, or the index points outside the directory, then MODEL_INVALID says which', () => {
  const dir = shardedCopy('distilbert', 2);
  rmSync(join(dir, 'model-00002-of-00002.safetensors'));
  assert.throws(() => loadBertCheckpoint(dir), (err: unknown) => isFedloraError(err, 'MODEL_INVALID') && err.message.includes('names model-00002-of-00002.safetensors, which is missing'));

  const moved = shardedCopy('distilbert', 2);
  const index = JSON.parse(readFileSync(join(moved, SAFETENSORS_INDEX), 'utf8'));
  index.weight_map['embeddings.LayerNorm.bias'] = 'model-00002-of-00002.safetensors';
  writeFileSync(join(moved, SAFETENSORS_INDEX), JSON.stringify(index));
  assert.throws(
    () => loadBertCheckpoint(moved),
    (err: unknown) => isFedloraError(err, 'MODEL_INVALID') && /model-00001-of-00002\.safetensors holds embeddings\.LayerNorm\.bias, which .* puts in model-00002/.test(err.message),
  );

  for (const evil of ['../model.safetensors', '/etc/passwd', 'sub/model.safetensors', '.hidden.safetensors'])
    assert.throws(
      () => parseSafetensorsIndex(JSON.stringify({ weight_map: { x: evil } })),
      (err: unknown) => isFedloraError(err, 'MODEL_INVALID') && err.message.includes('not a .safetensors file name beside the index'),
      evil,
    );
});

test('when a directory has neither model.safetensors nor an index, then the error says a sharded checkpoint needs its index', () => {
  const dir = join(scratch, 'empty');
  mkdirSync(dir);
  copyFileSync(join(FIXTURES, 'roberta-reference/config.json'), join(dir, 'config.json'));
  assert.throws(
    () => loadBertCheckpoint(dir),
    (err: unknown) => isFedloraError(err, 'MODEL_INVALID') && err.message.includes(`has no model.safetensors. (A sharded checkpoint needs ${SAFETENSORS_INDEX} beside its shards.)`),
  );
});
