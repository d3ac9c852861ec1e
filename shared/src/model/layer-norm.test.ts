// The written-out LayerNorm gradient equals autodiff of the formula bert.ts used before (and still uses for a model
// whose weights train), on wasm, including a constant row (variance 0, where only eps keeps rstd finite).

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../node/backend';
import { frozenLayerNorm } from './layer-norm';

before(async () => {
  await initNodeBackend({ force: 'wasm', log: () => {} });
});

const EPS = 1e-12;
function formula(x: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor): tf.Tensor {
  const { mean, variance } = tf.moments(x, -1, true);
  return tf.add(tf.mul(tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, EPS))), gamma), beta);
}

test("when LayerNorm and its input gradient are taken on [3, 37, 256] (one row constant), then both equal autodiff of the formula to 1e-4 (relative to 1 + |value|: the constant row's gradient is ~1e6, rstd = 1/√eps), and no tensor leaks", async () => {
  const x = tf.tidy(() => {
    const r = tf.randomNormal([3, 37, 256], 0.5, 3, 'float32', 11);
    return tf.concat([tf.fill([3, 1, 256], 0.25), tf.slice(r, [0, 1, 0], [3, 36, 256])], 1); // a constant row
  });
  const gamma = tf.randomNormal([256], 1, 0.2, 'float32', 12);
  const beta = tf.randomNormal([256], 0, 0.2, 'float32', 13);
  const dy = tf.randomNormal([3, 37, 256], 0, 1, 'float32', 14); // an upstream gradient, not all ones
  const gradOf = (f: (t: tf.Tensor) => tf.Tensor) => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(f(t), dy)))(x);
  const before = tf.memory().numTensors;
  const mine = gradOf((t) => frozenLayerNorm(t, gamma, beta, EPS));
  assert.equal(tf.memory().numTensors, before + 1, 'only the gradient is new');
  const theirs = gradOf((t) => formula(t, gamma, beta));
  const maxDiff = async (a: tf.Tensor, b: tf.Tensor) => (await tf.max(tf.abs(tf.sub(a, b))).data())[0];
  assert.ok((await maxDiff(frozenLayerNorm(x, gamma, beta, EPS), formula(x, gamma, beta))) <= 1e-5);
  const d = (await tf.max(tf.div(tf.abs(tf.sub(mine, theirs)), tf.add(1, tf.abs(theirs)))).data())[0];
  assert.ok(d <= 1e-4, `gradient max diff ${d}`);
  assert.ok((await tf.max(tf.abs(mine)).data())[0] > 0.1, 'the gradient is not trivially zero');
  assert.ok((await mine.data()).every(Number.isFinite), 'finite even on the constant row');
  tf.dispose([x, gamma, beta, dy, mine, theirs]);
});
