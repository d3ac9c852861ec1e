// Parity of BertModel (+ LoRA) with an independent PyTorch implementation of HF BertModel (tests/fixtures/bert-reference).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { loadBertCheckpoint } from '../node/model/load';
import { BertModel, type BertBatch } from './bert';
import { LoraAdapter } from '../lora/adapter';
import { importPeft } from '../lora/peft';

const dir = new URL('../../../tests/fixtures/bert-reference/', import.meta.url).pathname;
const fixtures = JSON.parse(readFileSync(dir + 'fixtures.json', 'utf8'));
const ATOL = 1e-4;

function batchOf(c: { input_ids: number[][]; attention_mask: number[][]; token_type_ids: number[][] }): BertBatch {
  return {
    inputIds: Int32Array.from(c.input_ids.flat()),
    attentionMask: Int32Array.from(c.attention_mask.flat()),
    tokenTypeIds: Int32Array.from(c.token_type_ids.flat()),
    batch: c.input_ids.length,
    seqLen: c.input_ids[0].length,
  };
}

function maxAbsDiff(actual: Float32Array | number[], expected: number[]): number {
  assert.equal(actual.length, expected.length, 'length');
  let m = 0;
  for (let i = 0; i < expected.length; i++) m = Math.max(m, Math.abs(actual[i] - expected[i]));
  return m;
}

test('when the fixture checkpoint runs every case, then last_hidden_state and pooler_output match within 1e-4', async () => {
  const model = new BertModel(loadBertCheckpoint(dir));
  for (const c of fixtures.cases) {
    const hidden = model.forward(batchOf(c));
    const pooled = model.pooler(hidden);
    const dh = maxAbsDiff(hidden.dataSync() as Float32Array, c.last_hidden_state.flat(2));
    const dp = maxAbsDiff(pooled.dataSync() as Float32Array, c.pooler_output.flat());
    assert.ok(dh < ATOL, `${c.name}: hidden max diff ${dh}`);
    assert.ok(dp < ATOL, `${c.name}: pooler max diff ${dp}`);
    tf.dispose([hidden, pooled]);
  }
  model.dispose();
});

test('when the fixture LoRA adapter is applied, then the hidden states match the reference, merged and unmerged', () => {
  const model = new BertModel(loadBertCheckpoint(dir));
  const peft = importPeft({
    adapterConfig: JSON.parse(readFileSync(dir + 'adapter_config.json', 'utf8')),
    weights: new Uint8Array(readFileSync(dir + 'lora.safetensors')),
  });
  const adapter = new LoraAdapter(peft.config, model.config);
  adapter.setState(peft.state);
  const lc = fixtures.lora_case;
  const input = batchOf(lc.input_ids ? lc : fixtures.cases[0]);
  const expected = (lc.last_hidden_state as number[][][]).flat(2);
  const viaHook = model.forward(input, adapter.hook(false));
  assert.ok(maxAbsDiff(viaHook.dataSync() as Float32Array, expected) < ATOL);
  // without the adapter the output must differ (the test can fail)
  const plain = model.forward(input);
  assert.ok(maxAbsDiff(plain.dataSync() as Float32Array, expected) > 1e-3, 'adapter has no effect');
  adapter.merge(model);
  const merged = model.forward(input, adapter.hook(false));
  assert.ok(maxAbsDiff(merged.dataSync() as Float32Array, expected) < ATOL);
  adapter.unmerge(model);
  const back = model.forward(input);
  assert.ok(maxAbsDiff(back.dataSync() as Float32Array, Array.from(plain.dataSync())) < 1e-5);
  tf.dispose([viaHook, plain, merged, back]);
  adapter.dispose();
  model.dispose();
});

test('when base dropout is on, then training outputs vary and an encode without it equals the eval forward pass', () => {
  const model = new BertModel(loadBertCheckpoint(dir));
  const b = batchOf(fixtures.cases[0]);
  const run = (dropout: { hidden: number; attention: number } | null) =>
    tf.tidy(() => model.encode(model.embed(b), model.maskBias(b), { dropout }).dataSync() as Float32Array);
  const evalOut = model.forward(b);
  const plain = run(null);
  assert.ok(maxAbsDiff(plain, Array.from(evalOut.dataSync())) === 0, 'no dropout must be the eval pass');
  const a = run({ hidden: 0.1, attention: 0.1 });
  const c = run({ hidden: 0.1, attention: 0.1 });
  assert.ok(maxAbsDiff(a, Array.from(plain)) > 1e-3, 'dropout had no effect');
  assert.ok(maxAbsDiff(a, Array.from(c)) > 1e-3, 'two dropout passes drew the same mask');
  tf.dispose(evalOut);
  model.dispose();
});
