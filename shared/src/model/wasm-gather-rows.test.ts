// The wasm row-gather kernel equals tf.gather, and refuses an index outside the table without leaking a tensor.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../node/backend';
import { gatherRowsOnWasm } from './wasm-gather-rows';
import { FedloraError } from '../errors';

before(async () => {
  await initNodeBackend({ force: 'wasm', log: () => {} });
});

test('when rows are gathered at 1,000 indices (repeats, first and last row), then the result equals tf.gather exactly', async () => {
  const table = tf.randomNormal([300, 17]) as tf.Tensor2D; // 17: rows not a multiple of 4 floats
  const ids = [0, 299, 5, 5, ...Array.from({ length: 996 }, (_, i) => (i * 7919) % 300)];
  const idx = tf.tensor1d(ids, 'int32');
  const mine = gatherRowsOnWasm(table, idx);
  assert.deepEqual(mine.shape, [1000, 17]);
  assert.deepEqual(await mine.data(), await tf.gather(table, idx).data());
  tf.dispose([table, idx, mine]);
});

test('when an index is negative or past the last row, then SHAPE_MISMATCH names it, and no tensor is left behind', () => {
  const table = tf.zeros([4, 8]) as tf.Tensor2D;
  for (const bad of [4, -1]) {
    const idx = tf.tensor1d([0, bad], 'int32');
    const before = tf.memory().numTensors;
    assert.throws(
      () => gatherRowsOnWasm(table, idx),
      (e: unknown) =>
        e instanceof FedloraError &&
        e.code === 'SHAPE_MISMATCH' &&
        e.message.includes(`row index ${bad} at position 1 is outside [0, 4)`),
    );
    assert.equal(tf.memory().numTensors, before);
    idx.dispose();
  }
  table.dispose();
});
