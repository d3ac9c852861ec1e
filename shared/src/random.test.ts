// Tests for the seeded PRNG: determinism, ranges, and moments of the normal / gamma / Dirichlet samplers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng, seededRandom } from './random';

function moments(xs: number[]): { mean: number; variance: number } {
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  const variance = xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length;
  return { mean, variance };
}

test('when two generators get the same seed, then they give the same stream; a different seed gives another', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  const c = new Rng(43);
  const sa = Array.from({ length: 20 }, () => a.nextUint32());
  const sb = Array.from({ length: 20 }, () => b.nextUint32());
  const sc = Array.from({ length: 20 }, () => c.nextUint32());
  assert.deepEqual(sa, sb);
  assert.notDeepEqual(sa, sc);
});

test('when seeded with 0, then the stream is not degenerate (splitmix32 fills the state)', () => {
  const r = new Rng(0);
  const xs = new Set(Array.from({ length: 100 }, () => r.nextUint32()));
  assert.equal(xs.size, 100);
});

test('when the algorithm is unchanged, then seed 1 still yields the pinned first outputs', () => {
  // Pinned from this implementation (not hand-computed): guards against silent changes that would reshuffle every
  // split and benchmark made so far.
  const r = new Rng(1);
  const first = Array.from({ length: 3 }, () => r.nextUint32());
  assert.deepEqual(first, [1130556604, 2591592147, 3014952990]);
});

test('when seededRandom and an Rng get the same seed, then the function draws exactly the Rng\'s next() stream', () => {
  // training batch order and MLM masking take the function form; it must be the same generator, not a second one
  const r = new Rng(5);
  const f = seededRandom(5);
  assert.deepEqual(
    Array.from({ length: 5 }, () => f()),
    Array.from({ length: 5 }, () => r.next()),
  );
});

test('when drawing next() 20k times, then every value is in [0, 1) with mean near 1/2 and variance near 1/12', () => {
  const r = new Rng(7);
  const xs = Array.from({ length: 20000 }, () => r.next());
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const { mean, variance } = moments(xs);
  assert.ok(Math.abs(mean - 0.5) < 0.01, `mean ${mean}`);
  assert.ok(Math.abs(variance - 1 / 12) < 0.005, `variance ${variance}`);
});

test('when drawing int(6) 60k times, then each face 0..5 appears about 10k times and nothing else appears', () => {
  const r = new Rng(3);
  const counts = new Array(6).fill(0);
  for (let i = 0; i < 60000; i++) counts[r.int(6)]++;
  for (const c of counts) assert.ok(Math.abs(c - 10000) < 400, `counts ${counts}`);
  assert.throws(() => r.int(0), RangeError);
  assert.throws(() => r.int(2.5), RangeError);
});

test('when shuffling, then the result is a permutation of the input and the same seed gives the same order', () => {
  const xs = Array.from({ length: 50 }, (_, i) => i);
  const s1 = new Rng(9).shuffle([...xs]);
  const s2 = new Rng(9).shuffle([...xs]);
  assert.deepEqual(s1, s2);
  assert.notDeepEqual(s1, xs);
  assert.deepEqual(
    [...s1].sort((a, b) => a - b),
    xs,
  );
});

test('when drawing 20k normals, then mean is near 0 and variance near 1', () => {
  const r = new Rng(11);
  const { mean, variance } = moments(Array.from({ length: 20000 }, () => r.normal()));
  assert.ok(Math.abs(mean) < 0.03, `mean ${mean}`);
  assert.ok(Math.abs(variance - 1) < 0.05, `variance ${variance}`);
});

for (const shape of [0.1, 0.5, 1, 2.5, 10]) {
  test(`when drawing 20k Gamma(${shape}), then mean and variance are both near ${shape}`, () => {
    const r = new Rng(5);
    const xs = Array.from({ length: 20000 }, () => r.gamma(shape));
    assert.ok(xs.every((x) => x >= 0 && Number.isFinite(x)));
    const { mean, variance } = moments(xs);
    // Standard error of the mean is sqrt(shape / 20000); allow ~5 of them.
    assert.ok(Math.abs(mean - shape) < 5 * Math.sqrt(shape / 20000) + 1e-3, `mean ${mean}`);
    assert.ok(Math.abs(variance - shape) / shape < 0.1, `variance ${variance}`);
  });
}

test('when sampling Dir(1, 1, 2), then every draw sums to 1 and the means approach 1/4, 1/4, 1/2', () => {
  const r = new Rng(17);
  const sums = [0, 0, 0];
  const n = 10000;
  for (let i = 0; i < n; i++) {
    const p = r.dirichlet([1, 1, 2]);
    assert.ok(Math.abs(p.reduce((s, x) => s + x, 0) - 1) < 1e-9);
    p.forEach((x, k) => (sums[k] += x));
  }
  const means = sums.map((s) => s / n);
  [0.25, 0.25, 0.5].forEach((m, k) => assert.ok(Math.abs(means[k] - m) < 0.01, `means ${means}`));
});

test('when alpha is so small that all gammas underflow, then the Dirichlet draw puts all mass on one coordinate', () => {
  const r = new Rng(1);
  const p = r.dirichlet([1e-300, 1e-300, 1e-300]);
  assert.equal(
    p.reduce((s, x) => s + x, 0),
    1,
  );
  assert.equal(p.filter((x) => x === 1).length, 1);
});
