// AdamW over flat moments equals the textbook loop over the variables, bit for bit, on wasm.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../node/backend';
import { AdamW } from './optimizer';
import { FedloraError } from '../errors';

before(async () => {
  await initNodeBackend({ force: 'wasm', log: () => {} });
});

/** The per-variable loop AdamW ran before its moments were flattened: the yardstick. */
function loopAdamW(
  vars: tf.Tensor[],
  gradsPerStep: tf.Tensor[][],
  o: { lr: (t: number) => number; wd: number },
) {
  const [b1, b2, eps] = [0.9, 0.999, 1e-8];
  const m = vars.map((v) => tf.zerosLike(v));
  const s = vars.map((v) => tf.zerosLike(v));
  const w = vars.map((v) => tf.clone(v));
  gradsPerStep.forEach((grads, k) => {
    const t = k + 1;
    const [c1, c2, lr] = [1 - b1 ** t, 1 - b2 ** t, o.lr(t)];
    vars.forEach((v, i) => {
      const g = grads[i];
      m[i] = tf.add(tf.mul(m[i], b1), tf.mul(g, 1 - b1));
      s[i] = tf.add(tf.mul(s[i], b2), tf.mul(tf.square(g), 1 - b2));
      const update = tf.div(tf.div(m[i], c1), tf.add(tf.sqrt(tf.div(s[i], c2)), eps));
      let next = tf.sub(w[i], tf.mul(update, lr));
      if (o.wd > 0 && v.rank >= 2) next = tf.sub(next, tf.mul(w[i], lr * o.wd));
      w[i] = next;
    });
  });
  return w;
}

test('when AdamW takes 6 steps (warm-up, then decay; weight decay on matrices only) over a matrix, a vector and a [2,3,5] tensor, then the weights equal the per-variable loop bit for bit', async () => {
  const shapes = [[8, 5], [7], [2, 3, 5]];
  const vars = shapes.map((sh, i) =>
    tf.variable(tf.randomNormal(sh, 0, 1, 'float32', i + 1), true, `adamw-test-${i}`),
  );
  const start = vars.map((v) => tf.clone(v));
  const gradsPerStep = Array.from({ length: 6 }, (_, k) =>
    Object.fromEntries(
      vars.map((v, i) => [v.name, tf.randomNormal(v.shape, 0, 0.5 + k, 'float32', 100 * k + i)]),
    ),
  );
  const opt = new AdamW({ learningRate: 0.05, warmupSteps: 2, totalSteps: 6, weightDecay: 0.1 });
  for (const grads of gradsPerStep) opt.applyGradients(vars, grads);
  const want = loopAdamW(
    start,
    gradsPerStep.map((g) => vars.map((v) => g[v.name])),
    { lr: (t) => opt.rateAt(t), wd: 0.1 },
  );
  for (const [i, v] of vars.entries()) {
    assert.deepEqual(await v.data(), await want[i].data(), `variable ${i}`);
    assert.notDeepEqual(await v.data(), await start[i].data(), 'the weights moved');
  }
  opt.dispose();
});

test('when a variable has no gradient, or the variables change between steps, then AdamW refuses with INTERNAL and leaves the weights as they were', async () => {
  const a = tf.variable(tf.ones([2, 2]), true, 'adamw-test-a');
  const b = tf.variable(tf.ones([3]), true, 'adamw-test-b');
  const opt = new AdamW({ learningRate: 0.1 });
  const isInternal = (re: RegExp) => (e: unknown) =>
    e instanceof FedloraError && e.code === 'INTERNAL' && re.test(e.message);
  assert.throws(
    () => opt.applyGradients([a, b], { [a.name]: tf.ones([2, 2]) }),
    isInternal(/no gradient for adamw-test-b/),
  );
  assert.deepEqual(await a.data(), new Float32Array([1, 1, 1, 1]));
  opt.applyGradients([a], { [a.name]: tf.ones([2, 2]) });
  assert.throws(
    () => opt.applyGradients([a, b], { [a.name]: tf.ones([2, 2]), [b.name]: tf.ones([3]) }),
    isInternal(/changed between steps/),
  );
  assert.deepEqual(await b.data(), new Float32Array([1, 1, 1]));
  opt.dispose();
});
