// Tests for the step profiler: a toy step with a known number of kernels and reads must count exactly those, so a
// tfjs upgrade that reroutes reads (or a wrapper that stops counting) fails here rather than in a benchmark table.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../node/backend';
import { countReads, profileSteps } from './step-profile';

before(async () => {
  await initNodeBackend({ force: 'wasm', log: () => {} });
});

/** One toy step: 2 kernels (Add, Multiply) and 4 reads (data, dataSync, arraySync, data), 2 of them synchronous. */
async function toyStep(x: tf.Tensor): Promise<number> {
  const y = tf.tidy(() => tf.mul(tf.add(x, 1), 2));
  const a = (await y.data())[0];
  const b = y.dataSync()[1];
  const c = (y.arraySync() as number[])[2];
  const d = (await y.data())[0];
  y.dispose();
  return a + b + c + d;
}

test('when a toy step reads 4 times (2 of them sync) and runs 2 kernels, then countReads and profileSteps count exactly that', async () => {
  const x = tf.tensor1d([1, 2, 3]);
  const counted = await countReads(() => toyStep(x));
  assert.equal(counted.result, 4 + 6 + 8 + 4);
  assert.equal(counted.reads, 4);
  assert.equal(counted.syncReads, 2);
  assert.equal(counted.backendReads, 4, "wasm's read calls its readSync: still one read each");
  assert.equal(counted.gpuPrograms, null, 'wasm has no GPU programs');

  const p = await profileSteps(3, async () => {
    for (let i = 0; i < 3; i++) await toyStep(x);
  });
  assert.equal(p.steps, 3);
  assert.equal(p.readsPerStep, 4);
  assert.equal(p.backendReadsPerStep, 4);
  // tf.add(x, 1) makes a scalar tensor, not a kernel; the scalar 2 likewise
  assert.equal(p.kernelsPerStep, 2, `kernels ${JSON.stringify(p.topKernels)}`);
  assert.deepEqual(p.topKernels.map(([n]) => n).sort(), ['Add', 'Multiply']);
  x.dispose();
});

test('when the counted function throws, then the backend read methods are restored and later reads are not counted', async () => {
  const backend = tf.backend() as unknown as Record<string, unknown>;
  assert.equal(Object.hasOwn(backend, 'read'), false);
  await assert.rejects(
    countReads(async () => {
      tf.scalar(1).dataSync();
      throw new Error('boom');
    }),
    /boom/,
  );
  assert.equal(Object.hasOwn(backend, 'read'), false);
  assert.equal(Object.hasOwn(backend, 'readSync'), false);
  assert.equal(Object.hasOwn(tf.engine(), 'read'), false);
  const t = tf.scalar(5);
  const outer = await countReads(async () => 0);
  assert.equal((await t.data())[0], 5);
  assert.equal(outer.reads, 0);
  t.dispose();
});

test('when a kernel reads its own input (wasm GatherV2 checks its indices), then it counts as a backend read, not a tensor read', async () => {
  const table = tf.tensor2d([
    [1, 2],
    [3, 4],
  ]);
  const ids = tf.tensor1d([1, 0], 'int32');
  const c = await countReads(() => tf.tidy(() => tf.gather(table, ids).sum()).dispose());
  assert.equal(c.reads, 0);
  assert.ok(c.backendReads >= 1, `backend reads ${c.backendReads}`);
  tf.dispose([table, ids]);
});
