// GELU on wasm: the fused SIMD kernels (wasm-gelu.ts) run, and their values and gradient equal autodiff of the
// formula as tfjs ops, and a float64 reference, over the range BERT's FFN produces.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../node/backend';
import { gelu, setGeluPath } from './gelu';
import { wasmGeluAvailable } from './wasm-gelu';
import { seededRandom } from '../random';

before(async () => {
  await initNodeBackend({ force: 'wasm', log: () => {} });
});

const formula = (x: tf.Tensor) => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));

test("when GELU and its gradient are taken at 4,099 points in [-8, 8] (0, ±1e-3 and 4,096 random; not a multiple of 4, so the kernel's one-at-a-time tail runs too), then both equal autodiff of the formula as tfjs ops to 1e-6", async () => {
  const rand = seededRandom(7);
  const xs = [0, 1e-3, -1e-3, ...Array.from({ length: 4096 }, () => (rand() - 0.5) * 16)];
  const x = tf.tensor1d(xs);
  const dy = tf.tensor1d(xs.map(() => rand() * 2 - 1)); // an upstream gradient, not all ones
  const [mine, theirs] = [gelu, formula].map((f) =>
    tf.tidy(() => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(f(t), dy)))(x)),
  );
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

/** erf in float64: its Maclaurin series below 3, the continued fraction of erfc above (both to ~1e-15 there). */
function erf64(x: number): number {
  const a = Math.abs(x);
  let r: number;
  if (a < 3) {
    let sum = 0;
    for (let n = 0, term = a; n < 120; n++, term *= (-a * a) / n) sum += term / (2 * n + 1);
    r = (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    let f = 0;
    for (let k = 80; k >= 1; k--) f = k / 2 / (a + f);
    r = 1 - Math.exp(-a * a) / Math.sqrt(Math.PI) / (a + f);
  }
  return x < 0 ? -r : r;
}

test('when the fused kernels run on 20,001 evenly spaced points in [-10, 10], then GELU and its gradient are within 2 float32 ulps (or 1e-6 absolute, where 1 + erf cancels) of float64', async () => {
  const xs = Array.from({ length: 20_001 }, (_, i) => -10 + i / 1000);
  const x = tf.tensor1d(xs);
  const ones = tf.onesLike(x);
  const value = await gelu(x).data();
  const grad = await tf
    .grad((t: tf.Tensor) => tf.sum(tf.mul(gelu(t), ones)))(x)
    .data();
  let worst = { what: '', at: 0, err: 0 };
  for (let i = 0; i < xs.length; i++) {
    const v = Math.fround(xs[i]);
    const cdf = 0.5 * (1 + erf64(v / Math.SQRT2));
    const exact = { value: v * cdf, grad: cdf + (v * Math.exp(-0.5 * v * v)) / Math.sqrt(2 * Math.PI) };
    for (const [what, got] of [
      ['value', value[i]],
      ['grad', grad[i]],
    ] as const) {
      const want = exact[what];
      const err = Math.abs(got - want) / Math.max(1e-6, 2 * 2 ** -23 * Math.abs(want)); // in units of the bound
      if (err > worst.err) worst = { what, at: v, err };
    }
  }
  assert.ok(worst.err <= 1, `worst: ${worst.what} at x = ${worst.at}, ${worst.err.toFixed(2)} x the bound`);
  tf.dispose([x, ones]);
});

test('when GELU runs on wasm, then it is the fused kernel (one kernel each way); with setGeluPath("ops") it is the tfjs ops', async () => {
  assert.ok(wasmGeluAvailable(), 'the fused kernel runs on this wasm backend (SIMD, single-threaded build)');
  const x = tf.randomNormal([8, 16]);
  const kernelsOf = async () =>
    (await tf.profile(() => tf.grad((t: tf.Tensor) => tf.sum(gelu(t)))(x))).kernels.map((k) => k.name);
  const fusedKernels = await kernelsOf();
  assert.ok(
    fusedKernels.includes('FedloraGelu') && fusedKernels.includes('FedloraGeluGrad'),
    fusedKernels.join(),
  );
  assert.ok(!fusedKernels.includes('Erf'), fusedKernels.join());
  const previous = setGeluPath('ops');
  try {
    const opsKernels = await kernelsOf();
    assert.ok(opsKernels.includes('Erf') && !opsKernels.includes('FedloraGelu'), opsKernels.join());
  } finally {
    setGeluPath(previous);
  }
  x.dispose();
});
