// Tests for the per-backend training shape: the batch (the optimization's) never changes; the pass is cut into
// micro-batches only when the estimate does not fit the budget or a single buffer; max length drops only when one
// example does not fit; and FEDLORA_DEVICE_MEMORY is parsed strictly.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseTrainingShape, estimatePassMemory, type DeviceBudget } from './training-shape';
import { parseByteSize } from '../node/training/device-budget';

// fedlora-bert-mini's shape
const MINI = { hiddenSize: 256, intermediateSize: 1024, numHeads: 4, numLayers: 4 };
const budget = (memoryBytes: number, maxBufferBytes = Infinity): DeviceBudget => ({ backend: 'test', memoryBytes, maxBufferBytes, source: 'test' });

test('when the whole batch fits, then it runs in one pass at the asked max length and the log line says so', () => {
  const s = chooseTrainingShape(MINI, budget(64 * 2 ** 30), 32, 128);
  assert.deepEqual([s.batchSize, s.microBatch, s.maxLength], [32, 32, 128]);
  assert.match(s.reason, /batch 32 × 128 in one pass/);
});

test('when memory holds about half the batch, then the batch stays 32 and passes are the largest halving that fits', () => {
  const full = estimatePassMemory(MINI, 32, 128).totalBytes;
  const s = chooseTrainingShape(MINI, budget(full * 0.6), 32, 128);
  assert.equal(s.batchSize, 32);
  assert.equal(s.microBatch, 16);
  assert.ok(estimatePassMemory(MINI, s.microBatch, 128).totalBytes <= full * 0.6);
  assert.match(s.reason, /micro-batches of ≤ 16 .*same step/);
});

test("when the largest tensor exceeds one WebGPU binding, then passes shrink until the attention scores fit it", () => {
  // 128 × 512: scores are 128·4·512·512·4 B = 512 MiB; a 128 MiB binding takes 32 examples' scores
  const s = chooseTrainingShape(MINI, budget(2 ** 50, 128 * 2 ** 20), 128, 512);
  assert.equal(s.microBatch, 32);
  assert.ok(estimatePassMemory(MINI, s.microBatch, 512).largestTensorBytes <= 128 * 2 ** 20);
  assert.ok(estimatePassMemory(MINI, s.microBatch * 2, 512).largestTensorBytes > 128 * 2 ** 20);
});

test('when the batch is shared by 2 threads, then each thread passes at most its share', () => {
  const s = chooseTrainingShape(MINI, budget(64 * 2 ** 30), 32, 128, 2);
  assert.equal(s.microBatch, 16);
  assert.match(s.reason, /2 threads/);
});

test('when one example at the asked length does not fit, then the max length halves until it does and the reason says so', () => {
  const one512 = estimatePassMemory(MINI, 1, 512).totalBytes;
  const s = chooseTrainingShape(MINI, budget(one512 * 0.5), 8, 512);
  assert.ok(s.maxLength < 512 && s.maxLength >= 16);
  assert.ok(estimatePassMemory(MINI, s.microBatch, s.maxLength).totalBytes <= one512 * 0.5);
  assert.match(s.reason, /max length lowered 512 → \d+/);
});

test('when FEDLORA_DEVICE_MEMORY is a size, then it parses with binary units; nonsense and sizes under 1 MiB are CONFIG_INVALID', () => {
  assert.equal(parseByteSize('8GiB'), 8 * 2 ** 30);
  assert.equal(parseByteSize('512 MiB'), 512 * 2 ** 20);
  assert.equal(parseByteSize('2g'), 2 * 2 ** 30);
  assert.equal(parseByteSize('1073741824'), 2 ** 30);
  for (const bad of ['', 'lots', '-1GiB', '12 parsecs', '1000'])
    assert.throws(() => parseByteSize(bad), (e: Error & { code?: string }) => e.code === 'CONFIG_INVALID' && /FEDLORA_DEVICE_MEMORY/.test(e.message), bad);
});
