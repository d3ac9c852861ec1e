// Tests for DP-FedAvg's halves (dp-fedavg.ts): the clip norm on the round config and the site's training config, and
// the aggregator that clips again, divides by the expected participants and adds N(0, (z·S/m)²) before the strategy's
// own server step. Scripted uniforms make the noise hand-computable; one test measures the real noise's std.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedloraError } from '../errors';
import type { NamedTensors } from '../tensor';
import { createStrategy } from '../aggregation/index';
import { localTrainConfig } from '../round/participant';
import { dpClipNormOf, DpMeanAggregator, withDpClipNorm } from './dp-fedavg';

const BASE_CONFIG = { localEpochs: 1, batchSize: 8, learningRate: 1e-3, proximalMu: 0 };
const vec = (...xs: number[]): NamedTensors => ({ w: { shape: [xs.length], data: new Float32Array(xs) } });
const result = (siteId: string, delta: NamedTensors, numExamples = 10) => ({ siteId, numExamples, delta, metrics: { loss: 1 } });
/** Box–Muller on u1 = e^(−1/2), u2 = 0 gives the normals std·1, std·0, std·1, …: noise a test can write down */
const scriptedUniforms = (n: number) => new Float64Array(n).map((_, i) => (i % 2 === 0 ? Math.exp(-0.5) : 0));
const near = (actual: Float32Array, expected: number[], atol = 1e-6) =>
  expected.forEach((e, i) => assert.ok(Math.abs(actual[i] - e) <= atol, `[${i}] ${actual[i]} != ${e}`));

test('when a round config carries the DP clip norm, then the site\'s training config clips to it; without it, no DP clip', () => {
  const config = withDpClipNorm(BASE_CONFIG, 0.5);
  assert.equal(dpClipNormOf(config), 0.5);
  assert.equal(localTrainConfig(config).dpClipNorm, 0.5);
  assert.equal(dpClipNormOf(BASE_CONFIG), null);
  assert.equal('dpClipNorm' in localTrainConfig(BASE_CONFIG), false);
  assert.equal(dpClipNormOf({ ...BASE_CONFIG, dpClipNorm: -1 }), null, 'a malformed value is not a clip norm');
});

test('when 2 of m = 4 expected sites deliver, then the new adapter is global + Σ clipped Δ / 4 + noise of std z·S/4', () => {
  const global = vec(1, 1);
  const agg = new DpMeanAggregator(createStrategy('fedavg', {}).createAggregator(1, global), global, {
    clipNorm: 1,
    noiseMultiplier: 2,
    expectedParticipants: () => 4,
    uniforms: scriptedUniforms,
  });
  agg.accumulate(result('a', vec(0.6, 0.8))); // norm 1: within S
  agg.accumulate(result('b', vec(0, 5), 30)); // norm 5: the coordinator clips it to (0, 1)
  const out = agg.finish([]);
  // mean over m: (0.6 + 0, 0.8 + 1) / 4 = (0.15, 0.45); noise std 2·1/4 = 0.5, scripted as (+0.5, 0)
  near(out?.adapter.w.data as Float32Array, [1 + 0.15 + 0.5, 1 + 0.45]);
  assert.deepEqual(agg.report, { expectedParticipants: 4, noiseStd: 0.5, clippedByCoordinator: 1 });
  assert.equal(out?.numResults, 2);
  assert.equal(out?.numExamples, 40);
  assert.deepEqual(out?.metrics, { loss: 1 });
});

test('when the strategy is FedAvgM, then its server step runs on the noisy mean (DP wraps any averaging strategy)', () => {
  const global = vec(0);
  const fedavgm = createStrategy('fedavgm', { eta: 0.5 });
  const agg = new DpMeanAggregator(fedavgm.createAggregator(1, global), global, {
    clipNorm: 1,
    noiseMultiplier: 1,
    expectedParticipants: () => 2,
    uniforms: scriptedUniforms,
  });
  agg.accumulate(result('a', vec(1)));
  agg.accumulate(result('b', vec(1)));
  const out = agg.finish([]);
  // noisy mean: (1 + 1)/2 + 1·1/2 = 1.5; FedAvgM from zero velocity: m = 1.5, x = 0 + η·m = 0.75
  near(out?.adapter.w.data as Float32Array, [0.75]);
  near(fedavgm.getState()?.tensors.w.data as Float32Array, [1.5]);
});

test('when 20,000 coordinates are noised with z = 1, S = 1, m = 10, then their std is within 3% of 0.1', () => {
  const d = 20_000;
  const global = { w: { shape: [d], data: new Float32Array(d) } };
  const agg = new DpMeanAggregator(createStrategy('fedavg', {}).createAggregator(1, global), global, {
    clipNorm: 1,
    noiseMultiplier: 1,
    expectedParticipants: () => 10,
  });
  agg.accumulate(result('a', { w: { shape: [d], data: new Float32Array(d) } }));
  const noise = (agg.finish([]) as { adapter: NamedTensors }).adapter.w.data;
  const std = Math.sqrt(noise.reduce((a, x) => a + x * x, 0) / d);
  // relative standard error of a std from 20,000 draws: 1/√40,000 = 0.5%, so 3% is 6 of them
  assert.ok(Math.abs(std / 0.1 - 1) <= 0.03, `std ${std}`);
});

test('when the strategy cannot take a summed input (median), then DP refuses it with CONFIG_INVALID', () => {
  const global = vec(0);
  assert.throws(
    () => new DpMeanAggregator(createStrategy('median', {}).createAggregator(1, global), global, { clipNorm: 1, noiseMultiplier: 1, expectedParticipants: () => 2 }),
    (err: unknown) => isFedloraError(err, 'CONFIG_INVALID') && /averages the updates/.test(err.message),
  );
});

test('when no update arrives, then nothing is noised or released', () => {
  const global = vec(0);
  const agg = new DpMeanAggregator(createStrategy('fedavg', {}).createAggregator(1, global), global, {
    clipNorm: 1,
    noiseMultiplier: 1,
    expectedParticipants: () => 3,
  });
  assert.equal(agg.finish([]), null);
  assert.equal(agg.report, null);
});

const dpFedAvg = (global: NamedTensors, expected: number) =>
  new DpMeanAggregator(createStrategy('fedavg', {}).createAggregator(1, global), global, {
    clipNorm: 1,
    noiseMultiplier: 2,
    expectedParticipants: () => expected,
    uniforms: scriptedUniforms,
  });

test('when secure aggregation hands over the sum of the clipped deltas, then the noisy mean equals the one from accumulating them', () => {
  // Arrange: two sites within S = 1, m = 4 expected; the sum is what unmasking would return (weights 1)
  const global = vec(1, 1);
  const viaAccumulate = dpFedAvg(global, 4);
  viaAccumulate.accumulate(result('a', vec(0.6, 0.8)));
  viaAccumulate.accumulate(result('b', vec(0, -1)));
  const viaSum = dpFedAvg(global, 4);
  // Act
  viaSum.acceptSum(vec(0.6, -0.2), 2, 2);
  const fromSum = viaSum.finish([]);
  const fromResults = viaAccumulate.finish([]);
  // Assert: Σ/m = (0.15, −0.05), noise std 2·1/4 = 0.5 scripted as (+0.5, 0) in both
  near(fromSum?.adapter.w.data as Float32Array, [1 + 0.15 + 0.5, 1 - 0.05]);
  near(fromSum?.adapter.w.data as Float32Array, Array.from(fromResults?.adapter.w.data as Float32Array));
  assert.deepEqual(viaSum.report, { expectedParticipants: 4, noiseStd: 0.5, clippedByCoordinator: 0 });
  assert.equal(fromSum?.numResults, 2);
});

test('when more sites arrive in the sum than were expected, then the mean is over n (m = max(expected, n))', () => {
  const global = vec(0);
  const agg = dpFedAvg(global, 2);
  agg.acceptSum(vec(3), 3, 3);
  // Σ/3 = 1; noise std 2·1/3 scripted as +2/3
  near(agg.finish([])?.adapter.w.data as Float32Array, [1 + 2 / 3], 1e-6);
  assert.equal(agg.report?.expectedParticipants, 3);
});

test('when a sum carries example-count weights, comes twice, or mixes with accumulated updates, then AggregationError', () => {
  const failed = (pattern: RegExp) => (err: unknown) => isFedloraError(err, 'AGGREGATION_FAILED') && pattern.test(err.message);
  const global = vec(0);
  assert.throws(() => dpFedAvg(global, 4).acceptSum(vec(1), 30, 2), failed(/total weight must equal its count/));

  const twice = dpFedAvg(global, 4);
  twice.acceptSum(vec(1), 2, 2);
  assert.throws(() => twice.acceptSum(vec(1), 2, 2), failed(/already has its secure-aggregation sum/));
  assert.throws(() => twice.accumulate(result('a', vec(0.5))), failed(/already came as one secure-aggregation sum/));

  const mixed = dpFedAvg(global, 4);
  mixed.accumulate(result('a', vec(0.5)));
  assert.throws(() => mixed.acceptSum(vec(1), 2, 2), failed(/cannot join 1 updates already accumulated/));

  const done = dpFedAvg(global, 4);
  done.acceptSum(vec(1), 1, 1);
  done.finish([]);
  assert.throws(() => done.acceptSum(vec(1), 1, 1), failed(/already aggregated/));
});
