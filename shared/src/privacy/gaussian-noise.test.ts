// Tests for DP noise: issue 17 must-show 4 (std within 1% of z·S/m over 10^5 draws), that it comes from the secure
// source and never from Math.random, and that adding it leaves the input alone.

import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { isFedloraError } from '../errors';
import { addGaussianNoise, gaussianSamples, meanNoiseStd, secureUniforms } from './gaussian-noise';

function meanAndStd(xs: Float64Array | Float32Array): { mean: number; std: number } {
  let sum = 0;
  for (const x of xs) sum += x;
  const mean = sum / xs.length;
  let squares = 0;
  for (const x of xs) squares += (x - mean) ** 2;
  return { mean, std: Math.sqrt(squares / (xs.length - 1)) };
}

test('when 10^5 draws are made for z = 1.1, S = 0.5, m = 10, then their std is within 1% of z·S/m = 0.055', () => {
  const std = meanNoiseStd(1.1, 0.5, 10);
  assert.ok(Math.abs(std - 0.055) <= 1e-15);
  const draws = gaussianSamples(100_000, std);
  const measured = meanAndStd(draws);
  // the sample std of 10^5 normals has a relative standard error of 1/√(2·10^5) ≈ 0.22%, so 1% is 4.5 of them
  assert.ok(Math.abs(measured.std / std - 1) <= 0.01, `std ${measured.std} vs ${std}`);
  assert.ok(Math.abs(measured.mean) <= 5 * (std / Math.sqrt(100_000)), `mean ${measured.mean}`);
});

test('when noise is drawn, then Math.random is never called', () => {
  const spy = mock.method(Math, 'random', () => {
    throw new Error('Math.random must not feed DP noise');
  });
  try {
    gaussianSamples(1001, 1);
    addGaussianNoise({ w: { shape: [3], data: new Float32Array(3) } }, 1);
    assert.equal(spy.mock.callCount(), 0);
  } finally {
    spy.mock.restore();
  }
});

test('when uniforms are drawn from the secure source, then they lie strictly inside (0, 1) and are not repeated', () => {
  const u = secureUniforms(50_000);
  assert.ok(u.every((x) => x > 0 && x < 1));
  assert.equal(new Set(u).size, u.length);
  assert.ok(Math.abs(meanAndStd(u).mean - 0.5) < 0.01);
});

test('when noise is added to tensors, then the input is unchanged and every coordinate moved', () => {
  const input = { a: { shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) }, b: { shape: [1], data: new Float32Array([5]) } };
  const noisy = addGaussianNoise(input, 0.1);
  assert.deepEqual([...input.a.data], [1, 2, 3, 4]);
  assert.deepEqual(noisy.a.shape, [2, 2]);
  assert.ok([...noisy.a.data, ...noisy.b.data].every((x, i) => x !== [1, 2, 3, 4, 5][i]));
  // a scripted uniform source makes the Box–Muller output checkable by hand: u1 = e^(−1/2), u2 = 0 → radius·1
  const scripted = (n: number) => new Float64Array(n).fill(0).map((_, i) => (i % 2 === 0 ? Math.exp(-0.5) : 0));
  assert.deepEqual([...gaussianSamples(2, 2, scripted)], [2, 0]);
});

test('when the std, clip norm or participants are invalid, then CONFIG_INVALID', () => {
  const invalid = (err: unknown) => isFedloraError(err, 'CONFIG_INVALID');
  assert.throws(() => gaussianSamples(3, -1), invalid);
  assert.throws(() => meanNoiseStd(1, 0, 10), invalid);
  assert.throws(() => meanNoiseStd(1, 1, 0), invalid);
  assert.throws(() => meanNoiseStd(-1, 1, 10), invalid);
});
