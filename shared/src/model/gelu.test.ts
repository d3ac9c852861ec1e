// The written-out GELU gradient equals autodiff of the formula, on wasm, over the range BERT's FFN produces.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../node/backend';
import { gelu } from './gelu';
import { seededRandom } from '../random';

before(async () => {
  await initNodeBackend({ force: 'wasm', log: () => {} });
});

const formula = (x: tf.Tensor) => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));

test('when GELU and its gradient are taken at 4,096 points in [-8, 8] (and at 0, ±1e-3), then both equal autodiff of the formula to 1e-6', async () => {
  const rand = seededRandom(7);
  const xs = [0, 1e-3, -1e-3, ...Array.from({ length: 4096 }, () => (rand() - 0.5) * 16)];
  const x = tf.tensor1d(xs);
  const dy = tf.tensor1d(xs.map(() => rand() * 2 - 1)); // an upstream gradient, not all ones
  const [mine, theirs] = [gelu, formula].map((f) => tf.tidy(() => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(f(t), dy)))(x)));
  const maxDiff = async (a: tf.Tensor, b: tf.Tensor) => (await tf.max(tf.abs(tf.sub(a, b))).data())[0];
  assert.ok((await maxDiff(gelu(x), formula(x))) <= 1e-6);
  const g = await maxDiff(mine, theirs);
  assert.ok(g <= 1e-6, `gradient max diff ${g}`);
  assert.ok((await tf.max(tf.abs(mine)).data())[0] > 0.5, 'the gradient is not trivially zero');
  tf.dispose([x, dy, mine, theirs]);
});

test('when GELU is differentiated inside a larger graph, then only x is kept: tensors after the backward pass return to the count before', () => {
  const x = tf.randomNormal([64, 128]);
  const before = tf.memory().numTensors;
  const g = tf.grad((t: tf.Tensor) => tf.sum(gelu(t)))(x);
  assert.equal(tf.memory().numTensors, before + 1, 'no tensor leaks: only the gradient is new');
  tf.dispose([x, g]);
});
