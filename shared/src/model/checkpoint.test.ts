// Tests for loading Hugging Face BERT directories (checkpoint.ts + node/model/load.ts): the parity fixture as shipped and
// rewritten copies in a temp dir (no "bert." prefix, extra MLM tensors, missing/mis-shaped/truncated tensors, a
// pytorch_model.bin, an unsupported activation), and the shipped model's special token ids.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isFedloraError, type FedloraErrorCode } from '../errors';
import type { NamedTensors } from '../tensor';
import { expectedBertShapes } from './checkpoint';
import { loadBertCheckpoint } from '../node/model/load';
import { parseSafetensors, serializeSafetensors } from './safetensors';
import { loadTokenizer } from '../node/tokenizer/load';
import { DEFAULT_MODEL_DIR } from '../node/default-model';

const FIXTURE = fileURLToPath(new URL('../../../tests/fixtures/bert-reference/', import.meta.url));
const fixtureBytes = new Uint8Array(readFileSync(join(FIXTURE, 'model.safetensors')));
const fixtureTensors = parseSafetensors(fixtureBytes).tensors;
const fixtureConfig = JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8')) as Record<string, unknown>;

const scratch = mkdtempSync(join(tmpdir(), 'fedlora-ckpt-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
let dirCount = 0;

/** A fresh model dir in the temp folder with config.json (fixture's, plus overrides) and optional weights. */
function modelDir(weights: NamedTensors | Uint8Array | null, config: Record<string, unknown> = {}): string {
  const dir = join(scratch, `model-${dirCount++}`);
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...fixtureConfig, ...config }));
  if (weights) writeFileSync(join(dir, 'model.safetensors'), weights instanceof Uint8Array ? weights : serializeSafetensors(weights));
  return dir;
}

/** The fixture's tensors with `fn` applied to every name (undefined drops the tensor). */
function renamed(fn: (name: string) => string | undefined): NamedTensors {
  const out: NamedTensors = {};
  for (const [name, t] of Object.entries(fixtureTensors)) {
    const to = fn(name);
    if (to !== undefined) out[to] = t;
  }
  return out;
}

function assertCode(fn: () => unknown, code: FedloraErrorCode, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isFedloraError(err, code), `expected ${code}, got ${String(err)}`);
    if (message) assert.match(err.message, message);
    return true;
  });
}

test('when the fixture dir is loaded, then config and every encoder weight (prefix stripped) match the file', () => {
  const ckpt = loadBertCheckpoint(FIXTURE);
  assert.deepEqual(ckpt.config, {
    family: 'bert',
    vocabSize: 1000,
    hiddenSize: 64,
    numLayers: 2,
    numHeads: 4,
    intermediateSize: 128,
    maxPositions: 128,
    positionOffset: 0,
    padTokenId: 0,
    typeVocabSize: 2,
    sinusoidalPositions: false,
    layerNormEps: 1e-12,
    hiddenAct: 'gelu',
    hiddenDropout: 0.1, // the fixture's hidden_dropout_prob
    attentionDropout: 0.1, // its attention_probs_dropout_prob
  });
  assert.equal(ckpt.hasPooler, true);
  assert.equal(ckpt.mlmHead, null, 'the fixture has no cls.predictions.*');
  // 5 embedding tensors + 16 per layer × 2 + 2 pooler
  assert.equal(Object.keys(ckpt.weights).length, 5 + 16 * 2 + 2);
  assert.deepEqual(Object.keys(ckpt.weights).sort(), Object.keys(expectedBertShapes(ckpt.config, true)).sort());
  for (const [name, t] of Object.entries(ckpt.weights)) {
    assert.deepEqual(t.data, fixtureTensors[`bert.${name}`].data, name);
    assert.deepEqual(t.shape, fixtureTensors[`bert.${name}`].shape, name);
  }
  assert.deepEqual(ckpt.weights['encoder.layer.1.intermediate.dense.weight'].shape, [128, 64]); // HF Linear [out, in]
});

test('when a copy saves the tensors without the "bert." prefix (BertModel.save_pretrained), then it loads identically', () => {
  const plain = modelDir(renamed((n) => n.replace(/^bert\./, '')));
  const a = loadBertCheckpoint(FIXTURE);
  const b = loadBertCheckpoint(plain);
  assert.deepEqual(b.config, a.config);
  assert.equal(b.hasPooler, a.hasPooler);
  assert.deepEqual(Object.keys(b.weights).sort(), Object.keys(a.weights).sort());
  for (const name of Object.keys(a.weights)) assert.deepEqual(b.weights[name].data, a.weights[name].data, name);
});

test('when the checkpoint carries extra tensors (MLM head, classifier), then they are accepted and the MLM head is kept aside', () => {
  const H = 64;
  const extra: NamedTensors = {
    'cls.predictions.transform.dense.weight': { shape: [H, H], data: new Float32Array(H * H).fill(0.5) },
    'cls.predictions.transform.dense.bias': { shape: [H], data: new Float32Array(H) },
    'cls.predictions.transform.LayerNorm.weight': { shape: [H], data: new Float32Array(H).fill(1) },
    'cls.predictions.transform.LayerNorm.bias': { shape: [H], data: new Float32Array(H) },
    'cls.predictions.bias': { shape: [1000], data: new Float32Array(1000).fill(-1) },
    'classifier.weight': { shape: [3, H], data: new Float32Array(3 * H) },
  };
  const ckpt = loadBertCheckpoint(modelDir({ ...renamed((n) => n), ...extra }));
  assert.equal(Object.keys(ckpt.weights).length, 5 + 16 * 2 + 2, 'extras are not encoder weights');
  assert.ok(ckpt.mlmHead);
  assert.deepEqual(Object.keys(ckpt.mlmHead).sort(), Object.keys(extra).filter((k) => k.startsWith('cls.')).sort());
  assert.equal(ckpt.mlmHead['cls.predictions.bias'].data[999], -1);
});

test('when the pooler is absent (add_pooling_layer=False), then the checkpoint loads with hasPooler false', () => {
  const ckpt = loadBertCheckpoint(modelDir(renamed((n) => (n.startsWith('bert.pooler.') ? undefined : n))));
  assert.equal(ckpt.hasPooler, false);
  assert.equal('pooler.dense.weight' in ckpt.weights, false);
});

test('when an encoder tensor is missing, then MODEL_INVALID names it', () => {
  const dir = modelDir(renamed((n) => (n === 'bert.encoder.layer.1.attention.self.key.bias' ? undefined : n)));
  assertCode(() => loadBertCheckpoint(dir), 'MODEL_INVALID', /missing 1 encoder tensor\(s\) \(bert names\): encoder\.layer\.1\.attention\.self\.key\.bias/);
});

test('when a tensor shape disagrees with config.json, then SHAPE_MISMATCH gives both shapes', () => {
  // a config claiming intermediate 256 against the fixture's 128-wide feed-forward
  const dir = modelDir(renamed((n) => n), { intermediate_size: 256 });
  assertCode(() => loadBertCheckpoint(dir), 'SHAPE_MISMATCH', /encoder\.layer\.0\.intermediate\.dense\.weight has shape \[128,64\], config\.json implies \[256,64\]/);
  const tensors = renamed((n) => n);
  tensors['bert.embeddings.LayerNorm.bias'] = { shape: [63], data: new Float32Array(63) };
  assertCode(() => loadBertCheckpoint(modelDir(tensors)), 'SHAPE_MISMATCH', /embeddings\.LayerNorm\.bias has shape \[63\]/);
});

test('when model.safetensors is truncated, then FILE_CORRUPT names the file', () => {
  const dir = modelDir(fixtureBytes.subarray(0, fixtureBytes.length - 1000));
  assertCode(() => loadBertCheckpoint(dir), 'FILE_CORRUPT', /model-\d+\/model\.safetensors: .*truncated/);
});

test('when the dir has pytorch_model.bin instead of model.safetensors, then MODEL_INVALID says how to convert it', () => {
  const dir = modelDir(null);
  writeFileSync(join(dir, 'pytorch_model.bin'), new Uint8Array([0x80, 0x02])); // a pickle's first bytes
  assertCode(() => loadBertCheckpoint(dir), 'MODEL_INVALID', /has no model\.safetensors\. It has pytorch_model\.bin.*save_pretrained\(DIR, safe_serialization=True\)/);
  // with pytorch_model.bin and nothing else (no config.json either), the first thing missing is named
  rmSync(join(dir, 'config.json'));
  assertCode(() => loadBertCheckpoint(dir), 'MODEL_INVALID', /has no config\.json/);
});

test('when the dir does not exist, then FILE_NOT_FOUND names it', () => {
  const missing = join(scratch, 'no-such-model');
  assertCode(() => loadBertCheckpoint(missing), 'FILE_NOT_FOUND', new RegExp(`model directory ${missing} does not exist`));
});

test('when config.json asks for hidden_act relu (or another model type), then MODEL_UNSUPPORTED says what is supported', () => {
  assertCode(() => loadBertCheckpoint(modelDir(fixtureBytes, { hidden_act: 'relu' })), 'MODEL_UNSUPPORTED', /hidden_act "relu" \(only exact "gelu"/);
  assertCode(
    () => loadBertCheckpoint(modelDir(fixtureBytes, { model_type: 'xlnet' })),
    'MODEL_UNSUPPORTED',
    /model_type "xlnet" is not supported \(supported: bert, distilbert, roberta\)/,
  );
  assertCode(() => loadBertCheckpoint(modelDir(fixtureBytes, { num_attention_heads: 5 })), 'MODEL_INVALID', /not divisible/);
});

test('when the shipped model is loaded, then its special token ids come from its vocab ([PAD]=0 … [MASK]=4)', () => {
  const tok = loadTokenizer(DEFAULT_MODEL_DIR);
  assert.deepEqual(tok.special, { pad: 0, unk: 1, cls: 2, sep: 3, mask: 4 });
  assert.equal(tok.maxLength, 512); // version 2: 512 positions
  const enc = tok.encode('hello');
  assert.equal(enc.inputIds[0], 2);
  assert.equal(enc.inputIds.at(-1), 3);
  // and the fixture's vocab puts them elsewhere ([UNK]=100, [CLS]=101, ...), so they are not hard-coded
  assert.deepEqual(loadTokenizer(FIXTURE).special, { pad: 0, unk: 100, cls: 101, sep: 102, mask: 103 });
});
