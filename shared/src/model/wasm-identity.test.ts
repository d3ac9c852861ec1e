// On wasm, Identity (tf.clone, and every tensor tfjs keeps for a backward pass) shares the data instead of copying
// it (wasm-identity.ts), and sharing changes no value: tensors stay immutable.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../node/backend';

before(async () => {
  await initNodeBackend({ force: 'wasm', log: () => {} });
});

test('wasm: when a tensor is cloned, then the clone shares its data (no copy), and disposing either leaves the other readable', async () => {
  const x = tf.randomNormal([256, 1024], 0, 1, 'float32', 3);
  const want = await x.data();
  const y = tf.clone(x);
  assert.equal(y.dataId, x.dataId, 'one buffer');
  x.dispose();
  assert.deepEqual(await y.data(), want);
  y.dispose();
  const s = tf.tensor1d(['a', 'b'], 'string'); // strings keep tfjs-wasm's own kernel
  assert.deepEqual(await tf.clone(s).data(), ['a', 'b']);
});

test('wasm: when a variable a saved clone came from is assigned, then the clone keeps the old values', async () => {
  const v = tf.variable(tf.tensor1d([1, 2, 3]), true, 'wasm-identity-test');
  const saved = tf.clone(v);
  v.assign(tf.tensor1d([7, 8, 9]));
  assert.deepEqual(Array.from(await saved.data()), [1, 2, 3]);
  assert.deepEqual(Array.from(await v.data()), [7, 8, 9]);
  tf.dispose([v, saved]);
});

test('wasm: when tfjs keeps a tensor for a backward pass (a customGrad save), then the kept tensor is the same buffer, not a copy, and the gradient is right', () => {
  const x = tf.tensor1d([1, 2, 3]);
  let sameBuffer: boolean | null = null;
  const square = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [t, save] = args as [tf.Tensor, tf.GradSaveFunc];
    save([t]);
    return {
      value: tf.square(t),
      gradFunc: (dy: tf.Tensor, [kept]: tf.Tensor[]) => {
        sameBuffer = kept.dataId === t.dataId;
        return tf.mul(dy, tf.mul(kept, 2));
      },
    };
  });
  const g = tf.grad((t: tf.Tensor) => tf.sum(square(t)))(x);
  assert.equal(sameBuffer, true, 'the saved tensor shares its buffer');
  assert.deepEqual(Array.from(g.dataSync()), [2, 4, 6]);
  tf.dispose([x, g]);
});
