// Parity of the DistilBERT and RoBERTa families with independent PyTorch implementations of transformers'
// DistilBertModel and RobertaModel (tests/fixtures/<family>-reference, scripts/family_reference.py): last hidden states
// within 1e-4 on padded, pair and unpadded batches, with and without a LoRA adapter in the family's PEFT names; each
// family's own tensor names, prefix and config fields.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { isFedloraError } from '../errors';
import { loadBertCheckpoint } from '../node/model/load';
import { BertModel, type BertBatch } from './bert';
import { checkpointFromTensors, type BertCheckpoint } from './checkpoint';
import { FAMILIES } from './families';
import { parseSafetensors } from './safetensors';
import { LoraAdapter } from '../lora/adapter';
import { exportPeft, importPeft } from '../lora/peft';

const FIXTURES = fileURLToPath(new URL('../../../tests/fixtures/', import.meta.url));
const ATOL = 1e-4;

interface HiddenCase {
  name: string;
  input_ids: number[][];
  attention_mask: number[][];
  token_type_ids: number[][];
  last_hidden_state: number[][][];
}

const dirOf = (family: string) => join(FIXTURES, `${family}-reference`);
const fixturesOf = (family: string) => JSON.parse(readFileSync(join(dirOf(family), 'fixtures.json'), 'utf8')) as { cases: HiddenCase[] };

function batchOf(c: Pick<HiddenCase, 'input_ids' | 'attention_mask' | 'token_type_ids'>): BertBatch {
  return {
    inputIds: Int32Array.from(c.input_ids.flat()),
    attentionMask: Int32Array.from(c.attention_mask.flat()),
    tokenTypeIds: Int32Array.from(c.token_type_ids.flat()),
    batch: c.input_ids.length,
    seqLen: c.input_ids[0].length,
  };
}

function maxAbsDiff(actual: Float32Array, expected: number[]): number {
  assert.equal(actual.length, expected.length, 'length');
  let m = 0;
  for (let i = 0; i < expected.length; i++) m = Math.max(m, Math.abs(actual[i] - expected[i]));
  return m;
}

/** Max |difference| over every case of the family's fixture (padded positions included). */
function worstDiff(ckpt: BertCheckpoint, family: string): number {
  const model = new BertModel(ckpt);
  let worst = 0;
  for (const c of fixturesOf(family).cases) {
    const hidden = model.forward(batchOf(c));
    const d = maxAbsDiff(hidden.dataSync() as Float32Array, c.last_hidden_state.flat(2));
    assert.ok(d < ATOL, `${family}, ${c.name}: max |diff| ${d}`);
    worst = Math.max(worst, d);
    hidden.dispose();
  }
  model.dispose();
  return worst;
}

for (const family of ['distilbert', 'roberta']) {
  test(`when the ${family} fixture runs every case, then last_hidden_state matches the PyTorch reference within 1e-4`, (t) => {
    const worst = worstDiff(loadBertCheckpoint(dirOf(family)), family);
    t.diagnostic(`${family}: max |diff| ${worst.toExponential(2)} over ${fixturesOf(family).cases.length} cases`);
  });
}

test('when the DistilBERT config is read, then its own field names map onto the encoder and it has no token types or pooler', () => {
  const ckpt = loadBertCheckpoint(dirOf('distilbert'));
  assert.deepEqual(
    { ...ckpt.config },
    {
      family: 'distilbert',
      vocabSize: 266,
      hiddenSize: 32, // dim
      numLayers: 2, // n_layers
      numHeads: 4, // n_heads
      intermediateSize: 64, // hidden_dim
      maxPositions: 128,
      positionOffset: 0,
      padTokenId: 0,
      typeVocabSize: 0,
      sinusoidalPositions: true,
      layerNormEps: 1e-12,
      hiddenAct: 'gelu', // activation
      hiddenDropout: 0.1,
      attentionDropout: 0.1,
    },
  );
  assert.equal(ckpt.hasPooler, false);
  assert.ok(!('embeddings.token_type_embeddings.weight' in ckpt.weights));
  // canonical names inside: transformer.layer.1.attention.q_lin is encoder.layer.1.attention.self.query
  const stored = parseSafetensors(new Uint8Array(readFileSync(join(dirOf('distilbert'), 'model.safetensors')))).tensors;
  assert.deepEqual(ckpt.weights['encoder.layer.1.attention.self.query.weight'].data, stored['transformer.layer.1.attention.q_lin.weight'].data);
  assert.deepEqual(ckpt.weights['encoder.layer.0.output.LayerNorm.bias'].data, stored['transformer.layer.0.output_layer_norm.bias'].data);
});

test('when the RoBERTa config is read, then positions start after padding_idx and 128 of the 130 rows hold tokens', () => {
  const ckpt = loadBertCheckpoint(dirOf('roberta'));
  assert.equal(ckpt.config.family, 'roberta');
  assert.equal(ckpt.config.positionOffset, 2);
  assert.equal(ckpt.config.padTokenId, 1);
  assert.equal(ckpt.config.maxPositions, 128);
  assert.equal(ckpt.config.typeVocabSize, 1);
  assert.equal(ckpt.config.layerNormEps, 1e-5);
  assert.deepEqual(ckpt.weights['embeddings.position_embeddings.weight'].shape, [130, 32]);
  assert.equal(ckpt.hasPooler, false, 'RobertaForMaskedLM has no pooler');
  assert.equal(ckpt.mlmHead, null, 'lm_head.* is not read');
});

test('when a sinusoidal DistilBERT leaves its position table out, then the table is rebuilt from the config and outputs still match', () => {
  const dir = dirOf('distilbert');
  const tensors = parseSafetensors(new Uint8Array(readFileSync(join(dir, 'model.safetensors')))).tensors;
  const stored = tensors['embeddings.position_embeddings.weight'];
  delete tensors['embeddings.position_embeddings.weight'];
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const ckpt = checkpointFromTensors(config, tensors, dir);
  const rebuilt = ckpt.weights['embeddings.position_embeddings.weight'];
  assert.deepEqual(rebuilt.shape, stored.shape);
  assert.ok(maxAbsDiff(rebuilt.data, Array.from(stored.data)) < 1e-6);
  worstDiff(ckpt, 'distilbert');
  // a learned (not sinusoidal) table cannot be rebuilt: it is missing, by its DistilBERT name
  assert.throws(
    () => checkpointFromTensors({ ...config, sinusoidal_pos_embds: false }, tensors, dir),
    (err: unknown) => isFedloraError(err, 'MODEL_INVALID') && err.message.includes('missing 1 encoder tensor(s) (distilbert names): embeddings.position_embeddings.weight'),
  );
});

test('when a DistilBERT tensor is missing or a RoBERTa tensor has another shape, then the error names it as the file does', () => {
  const tensorsOf = (family: string) => parseSafetensors(new Uint8Array(readFileSync(join(dirOf(family), 'model.safetensors')))).tensors;
  const configOf = (family: string) => JSON.parse(readFileSync(join(dirOf(family), 'config.json'), 'utf8'));
  const distil = tensorsOf('distilbert');
  delete distil['transformer.layer.1.ffn.lin2.bias'];
  assert.throws(
    () => checkpointFromTensors(configOf('distilbert'), distil),
    (err: unknown) => isFedloraError(err, 'MODEL_INVALID') && err.message.includes('transformer.layer.1.ffn.lin2.bias'),
  );
  // RoBERTa's positions: a config that forgets the offset (max_position_embeddings 128) disagrees with the 130 rows
  assert.throws(
    () => checkpointFromTensors({ ...configOf('roberta'), max_position_embeddings: 128 }, tensorsOf('roberta')),
    (err: unknown) => isFedloraError(err, 'SHAPE_MISMATCH') && err.message.includes('embeddings.position_embeddings.weight has shape [130,32], config.json implies [128,32]'),
  );
});

test('when --targets names query and value, then each family maps them onto its own modules', () => {
  assert.equal(FAMILIES.distilbert.modulePath(1, 'query'), 'transformer.layer.1.attention.q_lin');
  assert.equal(FAMILIES.distilbert.modulePath(0, 'value'), 'transformer.layer.0.attention.v_lin');
  assert.equal(FAMILIES.distilbert.modulePath(0, 'intermediate'), 'transformer.layer.0.ffn.lin1');
  assert.equal(FAMILIES.roberta.modulePath(1, 'query'), 'encoder.layer.1.attention.self.query');
  assert.equal(FAMILIES.bert.modulePath(1, 'attention.output'), 'encoder.layer.1.attention.output.dense');
});

test('when the RoBERTa batch pads with its pad id, then the padded rows do not move the real tokens', () => {
  // the empty text's row: <s> </s> then padding; alone (no padding) it must give the same two vectors
  const model = new BertModel(loadBertCheckpoint(dirOf('roberta')));
  const c = fixturesOf('roberta').cases[0];
  const row = c.input_ids.findIndex((ids) => ids.filter((id) => id !== 1).length === 2);
  assert.ok(row >= 0, 'the fixture has the empty text in its padded batch');
  const alone = model.forward(batchOf({ input_ids: [c.input_ids[row].slice(0, 2)], attention_mask: [[1, 1]], token_type_ids: [[0, 0]] }));
  const d = maxAbsDiff(alone.dataSync() as Float32Array, c.last_hidden_state[row].slice(0, 2).flat());
  assert.ok(d < ATOL, `max |diff| ${d}`);
  tf.dispose(alone);
  model.dispose();
});

for (const family of ['distilbert', 'roberta'] as const) {
  test(`when the ${family} PEFT adapter (its own module names) is applied, then hidden states match the reference and exportPeft writes those names back`, (t) => {
    const dir = dirOf(family);
    const files = {
      adapterConfig: JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')),
      weights: new Uint8Array(readFileSync(join(dir, 'lora.safetensors'))),
    };
    const peft = importPeft(files);
    assert.deepEqual(peft.config.targetModules, ['query', 'value'], `${files.adapterConfig.target_modules} are query and value`);
    const model = new BertModel(loadBertCheckpoint(dir));
    const adapter = new LoraAdapter(peft.config, model.config);
    adapter.setState(peft.state);
    const fixtures = JSON.parse(readFileSync(join(dir, 'fixtures.json'), 'utf8'));
    const input = batchOf(fixtures.cases[fixtures.lora_case.case]);
    const hidden = model.forward(input, adapter.hook(false));
    const d = maxAbsDiff(hidden.dataSync() as Float32Array, fixtures.lora_case.last_hidden_state.flat(2));
    assert.ok(d < ATOL, `with LoRA: max |diff| ${d}`);
    const plain = model.forward(input);
    assert.ok(maxAbsDiff(plain.dataSync() as Float32Array, fixtures.lora_case.last_hidden_state.flat(2)) > 1e-3, 'the adapter has an effect');
    t.diagnostic(`${family} with LoRA: max |diff| ${d.toExponential(2)}`);
    tf.dispose([hidden, plain]);
    // exported for this family: the fixture's names (DistilBERT's under the "distilbert." prefix a *For* model has)
    const out = exportPeft(peft.config, peft.state, { baseModel: `${family}-reference`, family });
    const names = Object.keys(parseSafetensors(out.weights).tensors);
    const expected = Object.keys(parseSafetensors(files.weights).tensors).map((n) =>
      family === 'distilbert' ? n.replace('base_model.model.', 'base_model.model.distilbert.') : n,
    );
    assert.deepEqual(names.sort(), expected.sort());
    assert.deepEqual(out.adapterConfig.target_modules, files.adapterConfig.target_modules);
    assert.deepEqual(importPeft(out).state, peft.state);
    adapter.dispose();
    model.dispose();
  });
}
