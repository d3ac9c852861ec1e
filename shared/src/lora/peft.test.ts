// Tests for the PEFT adapter format (peft.ts) against the fixture's PEFT-written lora.safetensors, and for
// LoraAdapter.setState/getState: round trips are bit-exact, names are PEFT's, bad adapters map to error codes.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isFedloraError, type FedloraErrorCode } from '../errors';
import { cloneNamed, type NamedTensors } from '../tensor';
import { initNodeBackend } from '../node/backend';
import { parseSafetensors } from '../model/safetensors';
import { parseBertConfig } from '../model/checkpoint';
import { LoraAdapter } from './adapter';
import { exportPeft, fromPeftName, importPeft, toPeftName, type PeftAdapterFiles } from './peft';
import type { LoraConfig } from './config';

const FIXTURE = fileURLToPath(new URL('../../../tests/fixtures/bert-reference/', import.meta.url));
const fixtureFiles: PeftAdapterFiles = {
  adapterConfig: JSON.parse(readFileSync(join(FIXTURE, 'adapter_config.json'), 'utf8')),
  weights: new Uint8Array(readFileSync(join(FIXTURE, 'lora.safetensors'))),
};
const bertConfig = parseBertConfig(JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8')));
const fixtureRaw = parseSafetensors(fixtureFiles.weights).tensors;

before(async () => {
  await initNodeBackend({ force: 'cpu', log: () => {} });
});

function assertCode(fn: () => unknown, code: FedloraErrorCode, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isFedloraError(err, code), `expected ${code}, got ${String(err)}`);
    if (message) assert.match(err.message, message);
    return true;
  });
}

function assertSameTensors(actual: NamedTensors, expected: NamedTensors): void {
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort());
  for (const k of Object.keys(expected)) {
    assert.deepEqual(actual[k].shape, expected[k].shape, `${k} shape`);
    assert.deepEqual(actual[k].data, expected[k].data, `${k} data`); // Float32Array deepEqual: bit-exact values
  }
}

test('when the fixture adapter is imported, then config and fedlora keys follow PEFT (r=4, alpha=8, query/value)', () => {
  const { config, state, labels } = importPeft(fixtureFiles);
  assert.deepEqual(config, { r: 4, alpha: 8, dropout: 0, targetModules: ['query', 'value'], layers: null });
  assert.equal(labels, null);
  const keys = Object.keys(state).sort();
  assert.equal(keys.length, 8); // 2 layers × 2 modules × (A, B)
  assert.equal(keys[0], 'encoder.layer.0.attention.self.query.lora_A');
  assert.deepEqual(state['encoder.layer.0.attention.self.query.lora_A'].shape, [4, 64]); // [r, in]
  assert.deepEqual(state['encoder.layer.1.attention.self.value.lora_B'].shape, [64, 4]); // [out, r]
  assert.deepEqual(state['encoder.layer.1.attention.self.value.lora_B'].data, fixtureRaw['base_model.model.bert.encoder.layer.1.attention.self.value.lora_B.weight'].data);
});

test('when the fixture adapter is exported and re-imported, then tensors are bit-equal, config the same, names PEFT\'s', () => {
  const first = importPeft(fixtureFiles);
  const files = exportPeft(first.config, first.state, { baseModel: 'bert-parity' });
  const second = importPeft(files);
  assert.deepEqual(second.config, first.config);
  assertSameTensors(second.state, first.state);
  // the exported file names its tensors exactly as the PEFT-written fixture does
  assert.deepEqual(Object.keys(parseSafetensors(files.weights).tensors).sort(), Object.keys(fixtureRaw).sort());
  assertSameTensors(parseSafetensors(files.weights).tensors, fixtureRaw);
  const c = files.adapterConfig;
  assert.equal(c.peft_type, 'LORA');
  assert.equal(c.task_type, 'FEATURE_EXTRACTION');
  assert.deepEqual(c.target_modules, ['query', 'value']);
  assert.equal(c.r, 4);
  assert.equal(c.lora_alpha, 8);
  assert.equal(c.base_model_name_or_path, 'bert-parity');
});

test('when a state with a classifier head and ambiguous targets is exported, then it travels as modules_to_save and comes back', () => {
  const config: LoraConfig = { r: 2, alpha: 4, dropout: 0.1, targetModules: ['attention.output', 'output'], layers: [1] };
  const state: NamedTensors = {
    'encoder.layer.1.attention.output.dense.lora_A': { shape: [2, 64], data: new Float32Array(128).fill(0.25) },
    'encoder.layer.1.attention.output.dense.lora_B': { shape: [64, 2], data: new Float32Array(128).fill(-0.5) },
    'encoder.layer.1.output.dense.lora_A': { shape: [2, 128], data: new Float32Array(256).fill(1) },
    'encoder.layer.1.output.dense.lora_B': { shape: [64, 2], data: new Float32Array(128).fill(2) },
    'classifier.weight': { shape: [3, 64], data: new Float32Array(192).fill(0.125) },
    'classifier.bias': { shape: [3], data: new Float32Array([1, 2, 3]) },
  };
  const files = exportPeft(config, state, { baseModel: 'm', labels: ['a', 'b', 'c'] });
  const names = Object.keys(parseSafetensors(files.weights).tensors);
  assert.ok(names.includes('base_model.model.classifier.weight'));
  assert.ok(names.includes('base_model.model.bert.encoder.layer.1.output.dense.lora_A.weight'));
  assert.equal(files.adapterConfig.task_type, 'SEQ_CLS');
  assert.deepEqual(files.adapterConfig.modules_to_save, ['classifier']);
  // "output.dense" would also match attention.output.dense in PEFT, so a full-match regex is written instead
  assert.equal(files.adapterConfig.target_modules, '.*encoder\\.layer\\.\\d+\\.(attention\\.output\\.dense|output\\.dense)');
  assert.ok(!new RegExp(`^${files.adapterConfig.target_modules as string}$`).test('bert.encoder.layer.1.intermediate.dense'));
  assert.deepEqual(files.adapterConfig.layers_to_transform, [1]);
  const back = importPeft(files);
  assert.deepEqual(back.config, config);
  assert.deepEqual(back.labels, ['a', 'b', 'c']);
  assertSameTensors(back.state, state);
});

test('when PEFT names carry the ".default." adapter infix or modules_to_save, then they map to the same fedlora keys', () => {
  assert.equal(fromPeftName('base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.default.weight'), 'encoder.layer.0.attention.self.query.lora_A');
  assert.equal(fromPeftName('base_model.model.classifier.modules_to_save.default.weight'), 'classifier.weight');
  assert.equal(toPeftName('encoder.layer.0.attention.self.query.lora_B'), 'base_model.model.bert.encoder.layer.0.attention.self.query.lora_B.weight');
  assert.equal(toPeftName('classifier.bias'), 'base_model.model.classifier.bias');
});

test('when LoraAdapter.setState gets the fixture tensors, then getState returns them bit-equal', () => {
  const { config, state } = importPeft(fixtureFiles);
  const adapter = new LoraAdapter(config, bertConfig, 123);
  try {
    const fresh = adapter.getState();
    // a fresh adapter is PEFT-initialised: B = 0, A ≠ 0, so it differs from the fixture before setState
    assert.ok(fresh['encoder.layer.0.attention.self.query.lora_B'].data.every((x) => x === 0));
    assert.ok(fresh['encoder.layer.0.attention.self.query.lora_A'].data.some((x) => x !== 0));
    adapter.setState(state);
    assertSameTensors(adapter.getState(), state);
    assert.deepEqual(adapter.stateShapes(), Object.fromEntries(Object.entries(state).map(([k, t]) => [k, t.shape])));
  } finally {
    adapter.dispose();
  }
});

test('when an adapter state is wrong (shape, missing or extra tensor, NaN, Inf), then setState refuses it with a code and changes nothing', () => {
  const { config, state } = importPeft(fixtureFiles);
  const adapter = new LoraAdapter(config, bertConfig, 0);
  try {
    const before = adapter.getState();
    const key = 'encoder.layer.1.attention.self.query.lora_A';
    const wrongShape = cloneNamed(state);
    wrongShape[key] = { shape: [8, 64], data: new Float32Array(512) };
    assertCode(() => adapter.setState(wrongShape), 'SHAPE_MISMATCH', /encoder\.layer\.1\.attention\.self\.query\.lora_A has shape \[8,64\], expected \[4,64\]/);
    const missing = cloneNamed(state);
    delete missing[key];
    assertCode(() => adapter.setState(missing), 'ADAPTER_INVALID', /lacks encoder\.layer\.1\.attention\.self\.query\.lora_A/);
    const extra = cloneNamed(state);
    extra['encoder.layer.0.attention.self.key.lora_A'] = { shape: [4, 64], data: new Float32Array(256) };
    assertCode(() => adapter.setState(extra), 'ADAPTER_INVALID', /unexpected LoRA tensors: encoder\.layer\.0\.attention\.self\.key\.lora_A/);
    for (const bad of [NaN, Infinity]) {
      const poisoned = cloneNamed(state);
      poisoned[key].data[17] = bad;
      assertCode(() => adapter.setState(poisoned), 'NON_FINITE', /lora_A has NaN\/Inf/);
    }
    assertSameTensors(adapter.getState(), before);
  } finally {
    adapter.dispose();
  }
});

test('when adapter files are not LoRA or target unknown modules, then importPeft fails with a code naming the problem', () => {
  const withConfig = (c: Record<string, unknown>) => ({ adapterConfig: { ...fixtureFiles.adapterConfig, ...c }, weights: fixtureFiles.weights });
  assertCode(() => importPeft(withConfig({ peft_type: 'IA3' }), 'site-3'), 'ADAPTER_INVALID', /^site-3: peft_type is IA3, expected LORA/);
  assertCode(() => importPeft(withConfig({ target_modules: ['query', 'dense_h_to_4h'] })), 'ADAPTER_INVALID', /unsupported target module "dense_h_to_4h"/);
  assertCode(() => importPeft(withConfig({ target_modules: '.*query' })), 'ADAPTER_INVALID', /target_modules must be a list/);
  assertCode(() => importPeft(withConfig({ r: 0 })), 'CONFIG_INVALID', /LoRA config: r must be an integer/);
  assertCode(() => importPeft({ ...fixtureFiles, weights: fixtureFiles.weights.subarray(0, 100) }), 'FILE_CORRUPT');
});

test('when the fixture adapter is loaded, then its dense update equals (B·A)ᵀ·alpha/r at hand-picked entries', () => {
  // checks that the imported (A, B) orientation is the one merge folds in: ΔW = B·A·scaling, stored [in, out]
  const { config, state } = importPeft(fixtureFiles);
  const adapter = new LoraAdapter(config, bertConfig, 0);
  adapter.setState(state);
  const m = adapter.modules.get('encoder.layer.0.attention.self.query');
  assert.ok(m);
  const delta = m.deltaWeight().dataSync(); // [in, out]
  const A = state['encoder.layer.0.attention.self.query.lora_A'].data; // [4, 64]
  const B = state['encoder.layer.0.attention.self.query.lora_B'].data; // [64, 4]
  // delta[i][o] = 2 · Σ_k B[o][k]·A[k][i]  (scaling = alpha / r = 8 / 4)
  for (const [i, o] of [[0, 0], [5, 63], [63, 7]]) {
    let s = 0;
    for (let k = 0; k < 4; k++) s += B[o * 4 + k] * A[k * 64 + i];
    assert.ok(Math.abs(delta[i * 64 + o] - 2 * s) < 1e-6, `delta[${i}][${o}]`);
  }
  adapter.dispose();
});
