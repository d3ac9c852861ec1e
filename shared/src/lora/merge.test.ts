// Tests for lora/merge.ts: W + (alpha/r)·B·A on hand-computed numbers in HF's [out, in] layout, and the adapters a
// base must refuse (wrong shapes, missing or extra tensors, a classification head, NaN) with their error codes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isFedloraError, type FedloraErrorCode } from '../errors';
import type { NamedTensors } from '../tensor';
import { parseBertConfig } from '../model/checkpoint';
import { parseSafetensors } from '../model/safetensors';
import { addLowRank, mergeLoraWeights, type LoraAdapterWeights } from './merge';
import type { LoraConfig } from './config';

const FIXTURE = fileURLToPath(new URL('../../../tests/fixtures/bert-reference/', import.meta.url));
const config = parseBertConfig(JSON.parse(readFileSync(`${FIXTURE}config.json`, 'utf8'))); // 2 layers, hidden 64, FFN 128
const base = parseSafetensors(new Uint8Array(readFileSync(`${FIXTURE}model.safetensors`))).tensors; // "bert."-prefixed

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
