// Tests for the robust strategies (median, trimmed-mean, multi-krum): issue 17 must-show 5 (20 sites, 4 attackers,
// 1000 coordinates, one test per attack) and hand-computed unit cases for each rule and its refusals.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedloraError } from '../errors';
import { Rng } from '../random';
import type { NamedTensors } from '../tensor';
import {
  aggregateAll,
  createStrategy,
  krumScores,
  strategyNames,
  trimCount,
  type AggregateOutcome,
  type ClientResult,
} from './index';

const code = (c: string) => (err: unknown) => isFedloraError(err) && err.code === c;
const t = (...xs: number[]): NamedTensors => ({ w: { shape: [xs.length], data: new Float32Array(xs) } });
const res = (siteId: string, delta: NamedTensors, numExamples = 10, metrics: Record<string, number> = {}): ClientResult => ({
  siteId,
  numExamples,
  delta,
  metrics,
});
const close = (actual: Float32Array, expected: number[], atol = 1e-6) =>
  expected.forEach((e, i) => assert.ok(Math.abs(actual[i] - e) <= atol, `[${i}] ${actual[i]} != ${e}`));
/** global 0, so the new adapter is the combined delta */
const zero = (d: number): NamedTensors => ({ w: { shape: [d], data: new Float32Array(d) } });

// --- must-show 5 ---------------------------------------------------------------------------------------------------

const N = 20;
const F = 4;
const D = 1000;
/** the honest sites' deltas scatter by this much per coordinate around a mean of about ±0.01 */
const HONEST_SD = 0.002;

type Attack = 'sign-flip' | 'scale' | 'gaussian';
/** what an attacker uploads instead of its honest delta (the simulator's attacks, restated here on plain arrays) */
const ATTACKS: Record<Attack, (honest: Float32Array, rng: Rng) => Float32Array> = {
  'sign-flip': (h) => h.map((x) => -10 * x),
  scale: (h) => h.map((x) => 100 * x),
  gaussian: (h, rng) => h.map(() => rng.normal()),
};

/** 20 sites' deltas: every site draws an honest delta; sites 16..19 replace theirs with the attack's. */
function poisonedRound(attack: Attack): { results: ClientResult[]; honestMean: Float64Array; attackers: Set<string> } {
  const rng = new Rng(17);
  const mu = Float32Array.from({ length: D }, () => (rng.next() < 0.5 ? -1 : 1) * (0.005 + 0.01 * rng.next()));
  const honestMean = new Float64Array(D);
  const attackers = new Set<string>();
  const results: ClientResult[] = [];
  for (let s = 0; s < N; s++) {
    const honest = mu.map((m) => m + HONEST_SD * rng.normal());
    const id = `site-${s}`;
    const isAttacker = s >= N - F;
    if (isAttacker) attackers.add(id);
    else for (let i = 0; i < D; i++) honestMean[i] += honest[i] / (N - F);
    // equal example counts, so FedAvg is the plain mean (the unit cases below show counts buy no weight)
    results.push(res(id, { w: { shape: [D], data: isAttacker ? ATTACKS[attack](honest, rng) : honest } }, 50));
  }
  return { results, honestMean, attackers };
}

/** ‖agg − honest mean‖ / ‖honest mean‖ */
function relativeError(outcome: AggregateOutcome | null, honestMean: Float64Array): number {
  assert.ok(outcome, 'the strategy kept the old adapter');
  const agg = outcome.adapter.w.data;
  let err = 0;
  let norm = 0;
  for (let i = 0; i < D; i++) {
    err += (agg[i] - honestMean[i]) ** 2;
    norm += honestMean[i] ** 2;
  }
  return Math.sqrt(err / norm);
}

for (const attack of Object.keys(ATTACKS) as Attack[]) {
  test(`when 4 of 20 sites attack by ${attack}, then median and trimmed mean stay within 0.5 of the honest mean, FedAvg is off by ≥ 2 and Multi-Krum selects no attacker`, (ctx) => {
    // Arrange
    const { results, honestMean, attackers } = poisonedRound(attack);
    const run = (name: string, options = {}) => aggregateAll(createStrategy(name, options), 1, zero(D), results);

    // Act
    const fedavg = run('fedavg');
    const median = run('median');
    const trimmed = run('trimmed-mean', { beta: F / N });
    const krum = run('multi-krum', { byzantineFraction: F / N });

    // Assert
    const errors = {
      fedavg: relativeError(fedavg, honestMean),
      median: relativeError(median, honestMean),
      'trimmed-mean': relativeError(trimmed, honestMean),
      'multi-krum': relativeError(krum, honestMean),
    };
    ctx.diagnostic(`${attack}: relative error ${JSON.stringify(errors)}`);
    assert.ok(errors.median <= 0.5, `median ${errors.median}`);
    assert.ok(errors['trimmed-mean'] <= 0.5, `trimmed mean ${errors['trimmed-mean']}`);
    assert.ok(errors.fedavg >= 2.0, `fedavg ${errors.fedavg}`);
    assert.ok(krum?.contributors, 'multi-krum names the sites it selected');
    assert.deepEqual(krum.contributors.filter((id) => attackers.has(id)), []);
    assert.equal(krum.contributors.length, N - F); // m defaults to n − f
    assert.equal(krum.numResults, N - F);
    assert.ok(errors['multi-krum'] <= 0.5, `multi-krum ${errors['multi-krum']}`);
  });
}

// --- unit cases ----------------------------------------------------------------------------------------------------

test('when the robust strategies are registered, then they are listed after the mean-based ones', () => {
  assert.deepEqual(
    strategyNames().filter((n) => ['median', 'trimmed-mean', 'multi-krum'].includes(n)),
    ['median', 'trimmed-mean', 'multi-krum'],
  );
});

test('when the median aggregates an odd count, then each coordinate is its middle value, whatever the example counts', () => {
  // coordinate 0: {1, 100, -3} → 1; coordinate 1: {2, 2, -50} → 2
  const out = aggregateAll(createStrategy('median'), 1, t(10, 20), [
    res('a', t(1, 2), 1, { loss: 1 }),
    res('b', t(100, 2), 1_000_000, { loss: 2 }),
    res('c', t(-3, -50), 1, { loss: 6 }),
  ]);
  assert.ok(out);
  close(out.adapter.w.data, [11, 22]);
  assert.deepEqual(out.metrics, { loss: 3 }); // unweighted: (1 + 2 + 6) / 3
  assert.deepEqual([out.numResults, out.numExamples, out.contributors], [3, 1_000_002, undefined]);
});

test('when the median aggregates an even count, then each coordinate is the mean of its two middle values', () => {
  // coordinate 0: {-1, 2, 4, 9} → (2 + 4)/2 = 3; coordinate 1: {0, 0, 1, 1} → 0.5
  const out = aggregateAll(createStrategy('median'), 1, t(0, 0), [
    res('a', t(9, 1)),
    res('b', t(2, 0)),
    res('c', t(-1, 1)),
    res('d', t(4, 0)),
  ]);
  assert.ok(out);
  close(out.adapter.w.data, [3, 0.5]);
});

test('when the trimmed mean cuts β = 0.2 of 10 values, then the 2 smallest and 2 largest of each coordinate are dropped', () => {
  // coordinate 0: 1..10 with 10 → 1000 and 1 → -1000; kept 3..8 → mean 5.5
  const xs = [-1000, 2, 3, 4, 5, 6, 7, 8, 9, 1000];
  const out = aggregateAll(
    createStrategy('trimmed-mean', { beta: 0.2 }),
    1,
    t(0),
    xs.map((x, i) => res(`s${i}`, t(x))),
  );
  assert.ok(out);
  close(out.adapter.w.data, [5.5]);
});

test('when the trimmed mean’s β rounds down to no cut, then it is the plain unweighted mean', () => {
  // β = 0.2 of 4 values: ⌊0.8⌋ = 0 cut; mean of {1, 2, 3, 10} = 4 (not weighted by the 1 vs 100 examples)
  const out = aggregateAll(createStrategy('trimmed-mean', { beta: 0.2 }), 1, t(0), [
    res('a', t(1), 1),
    res('b', t(2), 1),
    res('c', t(3), 1),
    res('d', t(10), 100),
  ]);
  assert.ok(out);
  close(out.adapter.w.data, [4]);
});

test('when the trimmed mean is given β that would cut every value, then it is refused', () => {
  assert.throws(() => createStrategy('trimmed-mean', { beta: 0.5 }), /trimmed-mean\.beta must be < 0\.5/);
  assert.throws(() => createStrategy('trimmed-mean', { beta: -0.1 }), code('CONFIG_INVALID'));
  // the rule itself, should a β reach it past the schema: 2 of 4 from each side leaves none
  assert.throws(() => trimCount(0.5, 4), /cuts 2 of 4 values from each side, leaving none/);
  assert.equal(trimCount(0.29, 100), 29); // not 28: 0.29·100 is 28.999999999999996 in floating point
});

test('when Multi-Krum scores 5 updates with f = 1, then each score sums the n − f − 2 = 2 nearest squared distances', () => {
  // points 0, 1, 2, 3 and 100 on a line; nearest two squared distances: 0 → 1 + 4; 1 → 1 + 1; 2 → 1 + 1;
  // 3 → 1 + 4; 100 → 97² + 98²
  const scores = krumScores([t(0), t(1), t(2), t(3), t(100)], 1);
  assert.deepEqual(scores, [5, 2, 2, 5, 97 ** 2 + 98 ** 2]);
});

test('when Multi-Krum selects m = 2 of 5 with f = 1, then it averages the two lowest-scored and names them', () => {
  // scores as above: sites b and c (score 2) are chosen; mean (1 + 2)/2 = 1.5
  const out = aggregateAll(createStrategy('multi-krum', { byzantineFraction: 0.2, select: 2 }), 1, t(0), [
    res('a', t(0), 1, { loss: 9 }),
    res('b', t(1), 1, { loss: 1 }),
    res('c', t(2), 1, { loss: 3 }),
    res('d', t(3), 1, { loss: 9 }),
    res('e', t(100), 1, { loss: 0 }),
  ]);
  assert.ok(out);
  close(out.adapter.w.data, [1.5]);
  assert.deepEqual(out.contributors, ['b', 'c']);
  assert.deepEqual([out.numResults, out.numExamples, out.metrics], [2, 2, { loss: 2 }]);
});

test('when Multi-Krum has n ≤ 2f + 2 updates, then finish refuses with the counts it needed', () => {
  // β = 0.4 of 5: f = 2, needs n > 6
  const agg = createStrategy('multi-krum', { byzantineFraction: 0.4 }).createAggregator(1, t(0));
  for (const [i, x] of [0, 1, 2, 3, 4].entries()) agg.accumulate(res(`s${i}`, t(x)));
  assert.throws(
    () => agg.finish([]),
    (err: unknown) => code('AGGREGATION_FAILED')(err) && /more than 2f \+ 2 = 6 updates for f = 2 Byzantine sites, got 5/.test(String(err)),
  );
  // and with f = 0, two updates have no neighbour to be scored against
  assert.throws(() => krumScores([t(0), t(1)], 0), /more than 2f \+ 2 = 2 updates/);
});

for (const name of ['median', 'trimmed-mean', 'multi-krum']) {
  test(`when ${name} gets a delta with the wrong layout, a NaN, a site twice or a bad example count, then accumulate refuses it`, () => {
    const agg = createStrategy(name).createAggregator(1, t(0, 0));
    agg.accumulate(res('a', t(1, 2)));
    assert.throws(() => agg.accumulate(res('b', t(1, 2, 3))), /delta of site b: tensor w has shape \[3\], expected \[2\]/);
    assert.throws(() => agg.accumulate(res('c', t(1, NaN))), /delta of site c: tensor w has a non-finite value at 1/);
    assert.throws(() => agg.accumulate(res('a', t(1, 2))), /site a reported twice/);
    assert.throws(() => agg.accumulate(res('d', t(1, 2), 0)), /numExamples must be a positive integer/);
    assert.equal(agg.count, 1);
  });

  test(`when ${name} aggregates, then it takes no pre-summed input (it needs the individual updates)`, () => {
    assert.equal(createStrategy(name).createAggregator(1, t(0)).acceptSum, undefined);
  });

  test(`when ${name} has fewer results than minResults or a failure it must not accept, then it keeps the old adapter`, () => {
    const few = createStrategy(name, { minResults: 2 }).createAggregator(1, t(0));
    few.accumulate(res('a', t(1)));
    assert.equal(few.finish([]), null);
    const strict = createStrategy(name, { acceptFailures: false }).createAggregator(1, t(0));
    strict.accumulate(res('a', t(1)));
    assert.equal(strict.finish([{ siteId: 'b', code: 'TIMEOUT' }]), null);
    assert.throws(() => strict.finish([]), /already aggregated/);
  });
}
