// Tests for the RDP accountant: issue 17 must-show 4 (Opacus's and TF Privacy's published test values), the log-space
// helpers it rests on, composition, and the refusals of bad parameters.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedloraError } from '../errors';
import { logAdd, logErfc, logSub } from './log-space';
import { epsilonFromRdp, privacySpent, RdpAccountant, sampledGaussianRdp } from './rdp-accountant';

const configInvalid = (err: unknown) => isFedloraError(err, 'CONFIG_INVALID');

// --- must-show 4: published reference values ----------------------------------------------------------------------

test('when z = 1.5, q = 0.04, T = 2250, δ = 1e-5 on Opacus\'s orders, then ε = 7.32911117 (Opacus test_rdp_accountant)', () => {
  // Opacus tests/accountants_test.py: steps = int(90 / 0.04), expected 7.32911117143
  const spent = privacySpent({ noiseMultiplier: 1.5, sampleRate: 0.04, rounds: 2250, delta: 1e-5, orders: 'opacus' });
  assert.ok(Math.abs(spent.epsilon - 7.32911117) <= 1e-6, `ε = ${spent.epsilon}`);
  // the optimum lies at a fractional order, so this value also checks the fractional-order series
  assert.ok(!Number.isInteger(spent.order), `order ${spent.order}`);
});

// TF Privacy compute_dp_sgd_privacy_test.py, rows (n, batch_size, noise_multiplier, epochs, delta, eps, order):
// q = batch_size / n and steps = ceil(epochs · n / batch_size), on TF's orders.
const TF_CASES = [
  { name: 'Test0', n: 60000, batchSize: 150, z: 1.3, epochs: 15, delta: 1e-5, epsilon: 0.72422340, order: 19 },
  { name: 'Test1', n: 100000, batchSize: 100, z: 1.0, epochs: 30, delta: 1e-7, epsilon: 1.41549885, order: 13 },
];
for (const c of TF_CASES) {
  test(`when TF Privacy's DP-SGD ${c.name} runs (n ${c.n}, batch ${c.batchSize}, z ${c.z}, ${c.epochs} epochs, δ ${c.delta}), then ε = ${c.epsilon} at order ${c.order}`, () => {
    const spent = privacySpent({
      noiseMultiplier: c.z,
      sampleRate: c.batchSize / c.n,
      rounds: Math.ceil((c.epochs * c.n) / c.batchSize),
      delta: c.delta,
      orders: 'tf',
    });
    assert.ok(Math.abs(spent.epsilon - c.epsilon) <= 1e-6, `ε = ${spent.epsilon}`);
    assert.equal(spent.order, c.order);
  });
}

// --- the mechanism ---------------------------------------------------------------------------------------------------

test('when every site is sampled (q = 1), then the RDP is the plain Gaussian mechanism\'s α/(2z²)', () => {
  assert.equal(sampledGaussianRdp(1, 2, 3), 3 / 8);
  assert.equal(sampledGaussianRdp(1, 0.5, 1.5), 1.5 / 0.5);
});

test('when the order approaches an integer, then the fractional series meets the integer binomial sum', () => {
  for (const [q, z, a] of [[0.04, 1.5, 3], [0.01, 0.8, 7], [0.3, 2, 12]]) {
    const integer = sampledGaussianRdp(q, z, a);
    const fractional = sampledGaussianRdp(q, z, a + 1e-9);
    assert.ok(Math.abs(fractional - integer) <= 1e-7 * integer, `order ${a}: ${fractional} vs ${integer}`);
  }
});

test('when q = 0.5, z = 1, α = 2, then the RDP is log(1 − q + q·e^(1/z²)) by hand', () => {
  // A_2 = (1−q)² + 2q(1−q) + q²·e^(1/σ²) = 1 − q² + q²e, so RDP = log A_2 / (2 − 1)
  const expected = Math.log(1 - 0.25 + 0.25 * Math.E);
  assert.ok(Math.abs(sampledGaussianRdp(0.5, 1, 2) - expected) <= 1e-14);
});

test('when one more round runs, then ε grows; when z grows, then ε falls', () => {
  const base = { sampleRate: 0.01, delta: 1e-5 };
  const e = (noiseMultiplier: number, rounds: number) => privacySpent({ ...base, noiseMultiplier, rounds }).epsilon;
  assert.ok(e(1, 101) > e(1, 100));
  assert.ok(e(1.1, 100) < e(1, 100));
});

test('when RDP at an order is r, then ε follows Balle et al. 2020: r + log((α−1)/α) − (log δ + log α)/(α−1)', () => {
  const spent = epsilonFromRdp([2, 4], [1, 0.5], 1e-5);
  const at = (a: number, r: number) => r + Math.log((a - 1) / a) - (Math.log(1e-5) + Math.log(a)) / (a - 1);
  assert.deepEqual(spent, { epsilon: Math.min(at(2, 1), at(4, 0.5)), order: 4 });
  // a bound below 0 still certifies (0, δ)
  assert.equal(epsilonFromRdp([2], [0], 0.9).epsilon, 0);
});

// --- the running accountant ------------------------------------------------------------------------------------------

test('when an accountant composes T equal rounds one at a time, then it agrees with T rounds at once', () => {
  const accountant = new RdpAccountant('opacus');
  for (let t = 0; t < 50; t++) accountant.compose(0.1, 1.2);
  const once = privacySpent({ noiseMultiplier: 1.2, sampleRate: 0.1, rounds: 50, delta: 1e-5 });
  assert.ok(Math.abs(accountant.spent(1e-5).epsilon - once.epsilon) <= 1e-9);
});

test('when an accountant is rebuilt from its ledger, then it reports the same ε and keeps counting', () => {
  const a = new RdpAccountant('tf');
  a.compose(0.2, 1.0, 3);
  const b = new RdpAccountant('tf', JSON.parse(JSON.stringify(a.ledger())));
  assert.deepEqual(b.spent(1e-6), a.spent(1e-6));
  const after = b.spentAfter(0.5, 1.0, 1e-6);
  b.compose(0.5, 1.0);
  assert.deepEqual(b.spent(1e-6), after);
  assert.ok(after.epsilon > a.spent(1e-6).epsilon);
});

test('when no round has run, then ε is 0', () => {
  assert.equal(new RdpAccountant().spent(1e-5).epsilon, 0);
});

// --- refusals --------------------------------------------------------------------------------------------------------

test('when q is outside (0, 1], z ≤ 0, δ outside (0, 1) or T is fractional, then CONFIG_INVALID', () => {
  const ok = { noiseMultiplier: 1, sampleRate: 0.1, rounds: 10, delta: 1e-5 };
  for (const bad of [
    { sampleRate: 0 }, { sampleRate: 1.5 }, { sampleRate: NaN },
    { noiseMultiplier: 0 }, { noiseMultiplier: -1 }, { noiseMultiplier: Infinity },
    { delta: 0 }, { delta: 1 }, { delta: -1e-5 },
    { rounds: 2.5 }, { rounds: -1 },
  ])
    assert.throws(() => privacySpent({ ...ok, ...bad }), configInvalid, JSON.stringify(bad));
  assert.throws(() => sampledGaussianRdp(0.1, 1, 1), configInvalid);
});

// --- log space -------------------------------------------------------------------------------------------------------

test('when erfc is taken in log space, then it matches reference values across the series/fraction switch and deep in the tail', () => {
  // reference values of erfc (Python math.erfc / mpmath)
  const cases: [number, number][] = [
    [-3, 1.9999779095030015], [-1, 1.8427007929497148], [0, 1], [0.5, 0.4795001221869535],
    [1.9999, 0.004679802092970608], [2, 0.004677734981047266], [3, 2.209049699858544e-5], [10, 2.088487583762545e-45],
  ];
  for (const [x, erfc] of cases)
    assert.ok(Math.abs(logErfc(x) - Math.log(erfc)) <= 1e-12, `x = ${x}: ${Math.exp(logErfc(x))} vs ${erfc}`);
  // erfc(40) underflows a double; its log is −x² − log(x√π) − 1/(2x²) + … (the asymptotic series)
  const x = 40;
  assert.ok(Math.abs(logErfc(x) - (-x * x - Math.log(x * Math.sqrt(Math.PI)) - 0.5 / (x * x) + 0.625 / x ** 4)) <= 1e-9);
});

test('when numbers are added and subtracted as logs, then the results match plain arithmetic, with −∞ as zero', () => {
  assert.ok(Math.abs(logAdd(Math.log(2), Math.log(3)) - Math.log(5)) <= 1e-15);
  assert.ok(Math.abs(logSub(Math.log(5), Math.log(3)) - Math.log(2)) <= 1e-15);
  assert.equal(logAdd(-Infinity, 1), 1);
  assert.equal(logSub(1, 1), -Infinity);
  assert.equal(logAdd(1000, 1000), 1000 + Math.LN2);
  assert.throws(() => logSub(1, 2), RangeError);
});
