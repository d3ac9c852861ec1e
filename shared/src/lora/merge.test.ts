// Tests for lora/merge.ts: W + (alpha/r)·B·A on hand-computed numbers in HF's [out, in] layout, and the adapters a
// base must refuse (wrong shapes, missing or extra tensors, a classification head, NaN) with their error codes.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isFedloraError, type FedloraErrorCode } from '../errors';
import type { NamedTensors } from '../tensor';
import * as tf from '@tensorflow/tfjs';
import { checkpointFromTensors, parseBertConfig } from '../model/checkpoint';
import { BertModel, type BertBatch } from '../model/bert';
import { initNodeBackend } from '../node/backend';
import { LoraAdapter } from './adapter';
import { importPeft } from './peft';
import { parseSafetensors } from '../model/safetensors';
import { addLowRank, mergeLoraWeights, type LoraAdapterWeights } from './merge';
import type { LoraConfig } from './config';

const FIXTURE = fileURLToPath(new URL('../../../tests/fixtures/bert-reference/', import.meta.url));
const config = parseBertConfig(JSON.parse(readFileSync(`${FIXTURE}config.json`, 'utf8'))); // 2 layers, hidden 64, FFN 128
const base = parseSafetensors(new Uint8Array(readFileSync(`${FIXTURE}model.safetensors`))).tensors; // "bert."-prefixed

before(async () => {
  await initNodeBackend({ force: 'cpu', log: () => {} });
});

function assertCode(fn: () => unknown, code: FedloraErrorCode, message: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isFedloraError(err, code), `expected ${code}, got ${String(err)}`);
    assert.match(err.message, message);
    return true;
  });
}

const filled = (shape: number[], v: number) => ({ shape, data: new Float32Array(shape[0] * shape[1]).fill(v) });

/** layer 1's output.dense only (W [64, 128]): A [2, 128] = 0.5, B [64, 2] = 0.25, alpha 4 → scaling 2 */
function outputAdapter(): LoraAdapterWeights {
  const cfg: LoraConfig = { r: 2, alpha: 4, dropout: 0, targetModules: ['output'], layers: [1] };
  return { config: cfg, state: { 'encoder.layer.1.output.dense.lora_A': filled([2, 128], 0.5), 'encoder.layer.1.output.dense.lora_B': filled([64, 2], 0.25) } };
}

test('when W, A and B are small known matrices, then addLowRank gives W + s·B·A in [out, in] layout', () => {
  // W [2 out, 3 in]; A [1, 3] = [1 2 3]; B [2, 1] = [10; -1]; s = 0.5 → s·B·A = [[5 10 15], [-0.5 -1 -1.5]]
  const w = { shape: [2, 3], data: Float32Array.from([1, 1, 1, 2, 2, 2]) };
  const a = { shape: [1, 3], data: Float32Array.from([1, 2, 3]) };
  const b = { shape: [2, 1], data: Float32Array.from([10, -1]) };
  assert.deepEqual(Array.from(addLowRank(w, a, b, 0.5).data), [6, 11, 16, 1.5, 1, 0.5]);
});

test('when an adapter names one linear weight, then only that weight changes, by (alpha/r)·B·A, and the others keep their arrays', () => {
  const r = mergeLoraWeights(base, config, outputAdapter());
  const name = 'bert.encoder.layer.1.output.dense.weight';
  assert.deepEqual(r.mergedWeights, [name]);
  assert.deepEqual(r.headTensors, []);
  // every element of B·A is 2 · 0.25 · 0.5 = 0.25; times scaling 2 → +0.5
  const before = base[name].data;
  const after = r.tensors[name].data;
  assert.equal(after.length, 64 * 128);
  for (const i of [0, 1, 127, 128, 64 * 128 - 1]) assert.equal(after[i], Math.fround(before[i] + 0.5));
  for (const n of Object.keys(base)) if (n !== name) assert.equal(r.tensors[n], base[n], `${n} untouched`);
  assert.deepEqual(Object.keys(r.tensors).sort(), Object.keys(base).sort());
});

test('when the base stores its tensors without the family prefix, then the same weights are merged under those names', () => {
  const bare: NamedTensors = {};
  for (const [n, t] of Object.entries(base)) bare[n.replace(/^bert\./, '')] = t;
  assert.deepEqual(mergeLoraWeights(bare, config, outputAdapter()).mergedWeights, ['encoder.layer.1.output.dense.weight']);
});

test('when the adapter does not fit the base, then the merge is refused with a code that says why', () => {
  const a = outputAdapter();
  // made for a model whose FFN is 256 wide (A [2, 256])
  assertCode(
    () => mergeLoraWeights(base, config, { ...a, state: { ...a.state, 'encoder.layer.1.output.dense.lora_A': filled([2, 256], 0.5) } }),
    'SHAPE_MISMATCH',
    /lora_A has shape \[2,256\], but .* needs \[2,128\]: was the adapter made for another base/,
  );
  assertCode(() => mergeLoraWeights(base, config, { ...a, config: { ...a.config, layers: [5] } }), 'SHAPE_MISMATCH', /2-layer base/);
  assertCode(
    () => mergeLoraWeights(base, config, { ...a, state: { 'encoder.layer.1.output.dense.lora_A': a.state['encoder.layer.1.output.dense.lora_A'] } }),
    'ADAPTER_INVALID',
    /lacks encoder\.layer\.1\.output\.dense\.lora_B/,
  );
  assertCode(
    () => mergeLoraWeights(base, config, { ...a, state: { ...a.state, 'encoder.layer.0.output.dense.lora_A': filled([2, 128], 1) } }),
    'ADAPTER_INVALID',
    /neither a LoRA tensor its config names/,
  );
  assertCode(
    () => mergeLoraWeights(base, config, { ...a, state: { ...a.state, 'classifier.weight': filled([3, 64], 1) } }),
    'ADAPTER_INVALID',
    /classification head/,
  );
  const nan = filled([64, 2], 0.25);
  nan.data[5] = NaN;
  assertCode(() => mergeLoraWeights(base, config, { ...a, state: { ...a.state, 'encoder.layer.1.output.dense.lora_B': nan } }), 'NON_FINITE', /lora_B has NaN/);
  // this base has no MLM head: a transform alone cannot make one
  assertCode(
    () => mergeLoraWeights(base, config, { ...a, state: { ...a.state, 'cls.predictions.transform.dense.bias': { shape: [64], data: new Float32Array(64) } } }),
    'ADAPTER_INVALID',
    /no MLM head and the adapter brings only part of one/,
  );
});

for (const family of ['distilbert', 'roberta'] as const)
  test(`when the ${family} fixture's PEFT adapter is merged, then the ${family} names are found and the encoder equals base + adapter to 1e-5`, async () => {
    const dir = fileURLToPath(new URL(`../../../tests/fixtures/${family}-reference/`, import.meta.url));
    const configJson = JSON.parse(readFileSync(`${dir}config.json`, 'utf8'));
    const stored = parseSafetensors(new Uint8Array(readFileSync(`${dir}model.safetensors`))).tensors;
    const peft = importPeft({ adapterConfig: JSON.parse(readFileSync(`${dir}adapter_config.json`, 'utf8')), weights: new Uint8Array(readFileSync(`${dir}lora.safetensors`)) });
    const cfg = parseBertConfig(configJson);
    const merged = mergeLoraWeights(stored, cfg, peft);
    assert.equal(merged.mergedWeights.length, 2 * cfg.numLayers);
    assert.ok(merged.mergedWeights.every((n) => n in stored), `stored names: ${merged.mergedWeights.join(', ')}`);
    if (family === 'distilbert') assert.ok(merged.mergedWeights.some((n) => n.endsWith('transformer.layer.0.attention.q_lin.weight')));
    // ids 5..16 in two rows, the second padded (mask 0) at its end; the pad id is the family's
    const T = 6;
    const pad = cfg.padTokenId;
    const inputIds = Int32Array.from([5, 6, 7, 8, 9, 10, 11, 12, 13, 14, pad, pad]);
    const b: BertBatch = { inputIds, attentionMask: Int32Array.from([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]), tokenTypeIds: new Int32Array(12), batch: 2, seqLen: T };
    const forward = async (ckptTensors: typeof stored, lora: boolean) => {
      const bert = new BertModel(checkpointFromTensors(configJson, ckptTensors));
      const adapter = lora ? new LoraAdapter(peft.config, bert.config) : null;
      adapter?.setState(peft.state);
      const h = bert.forward(b, adapter?.hook(false));
      const data = (await h.data()) as Float32Array;
      tf.dispose(h);
      adapter?.dispose();
      bert.dispose();
      return data;
    };
    const want = await forward(stored, true);
    const plain = await forward(stored, false);
    const got = await forward(merged.tensors, false);
    let diff = 0;
    let change = 0;
    for (let i = 0; i < want.length; i++) {
      diff = Math.max(diff, Math.abs(want[i] - got[i]));
      change = Math.max(change, Math.abs(want[i] - plain[i]));
    }
    assert.ok(change > 1e-3, `the fixture's adapter changes the hidden states (by ${change})`);
    assert.ok(diff <= 1e-5, `merged ${family} differs from base + adapter by ${diff}`);
  });
