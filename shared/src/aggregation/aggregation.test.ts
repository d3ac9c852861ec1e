// Tests for the strategies (hand-computed expected values), the streaming sum and its failure modes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedloraError } from '../errors';
import type { NamedTensors } from '../tensor';
import {
  aggregateAll,
  createStrategy,
  FEDAVG,
  FedAdam,
  FedAvgM,
  parseStrategyOptions,
  registerStrategy,
  weightedMean,
  type ClientResult,
  type RoundConfig,
} from './index';

const code = (c: string) => (err: unknown) => isFedloraError(err) && err.code === c;
const t = (...xs: number[]): NamedTensors => ({ w: { shape: [xs.length], data: new Float32Array(xs) } });
const res = (
  siteId: string,
  numExamples: number,
  delta: NamedTensors,
  metrics: Record<string, number> = {},
): ClientResult => ({
  siteId,
  numExamples,
  delta,
  metrics,
});
const close = (actual: Float32Array, expected: number[], atol = 1e-6) =>
  expected.forEach((e, i) => assert.ok(Math.abs(actual[i] - e) <= atol, `[${i}] ${actual[i]} != ${e}`));

const base: RoundConfig = { localEpochs: 1, batchSize: 8, learningRate: 1e-3, proximalMu: 0.5 };

// global [1, 2]; site a (n=1) Δ=[1, 0]; site b (n=3) Δ=[-1, 4]
// mean Δ = [(1·1 + 3·−1)/4, (1·0 + 3·4)/4] = [−0.5, 3]  →  new = [0.5, 5]
const STRATEGY_TABLE = [
  { name: 'fedavg', options: {}, mu: 0 },
  { name: 'fedprox', options: { proximalMu: 0.01 }, mu: 0.01 },
] as const;

for (const row of STRATEGY_TABLE) {
  test(`when ${row.name} aggregates two weighted deltas, then global + weighted mean delta comes out`, () => {
    const s = createStrategy(row.name, row.options as never);
    const out = aggregateAll(s, 1, t(1, 2), [
      res('a', 1, t(1, 0), { loss: 1, accuracy: 0.9 }),
      res('b', 3, t(-1, 4), { loss: 2 }),
    ]);
    assert.ok(out);
    close(out.adapter.w.data, [0.5, 5]);
    // loss = (1·1 + 3·2)/4 = 1.75; accuracy is dropped because site b did not report it
    assert.deepEqual(out.metrics, { loss: 1.75 });
    assert.equal(out.numResults, 2);
    assert.equal(out.numExamples, 4);
  });

  test(`when ${row.name} configures a round, then proximalMu is ${row.mu} and the rest is kept`, () => {
    const cfg = createStrategy(row.name, row.options as never).configureRound(1, base);
    assert.deepEqual(cfg, { ...base, proximalMu: row.mu });
  });
}

test('when fedadam (eta 1, beta1 0.5, beta2 0.5, tau 1) takes two steps, then x follows the hand-computed Adam update', () => {
  const s = createStrategy('fedadam', { eta: 1, beta1: 0.5, beta2: 0.5, tau: 1 });
  // two sites whose weighted mean is Δ = [1, −1, 0]: (1·[2, −2, 0] + 1·[0, 0, 0]) / 2
  const round = (global: NamedTensors) =>
    aggregateAll(s, 1, global, [res('a', 1, t(2, -2, 0)), res('b', 1, t(0, 0, 0))])!.adapter;
  // step 1: m = 0.5·0 + 0.5·Δ = [0.5, −0.5, 0]; v = 0.5·τ² + 0.5·Δ² = [1, 1, 0.5]
  //         x = 0 + 1·m/(√v + 1) = [0.25, −0.25, 0]
  const x1 = round(t(0, 0, 0));
  close(x1.w.data, [0.25, -0.25, 0]);
  // step 2: m = 0.5·0.5 + 0.5·1 = 0.75; v = 0.5·1 + 0.5·1 = 1; x = 0.25 + 0.75/2 = 0.625
  const x2 = round(x1);
  close(x2.w.data, [0.625, -0.625, 0]);
  assert.equal(s.getState()?.step, 2);
});

test('when fedadam uses its defaults on Δ = 0.1, then x = 1e-2·0.01/(√(0.99e-6 + 1e-4) + 1e-3)', () => {
  const out = aggregateAll(new FedAdam(), 1, t(0), [res('a', 5, t(0.1))]);
  close(out!.adapter.w.data, [0.009050283118522214], 1e-8);
});

test('when fedadam state is saved and restored into a new instance, then the next step is identical', () => {
  const a = new FedAdam({ eta: 0.1 });
  const g1 = aggregateAll(a, 1, t(0, 0), [res('a', 2, t(0.3, -0.1))])!.adapter;
  const b = new FedAdam({ eta: 0.1 });
  b.setState(structuredClone(a.getState()));
  const next = (s: FedAdam) => aggregateAll(s, 2, g1, [res('a', 2, t(-0.2, 0.4))])!.adapter.w.data;
  assert.deepEqual(next(b), next(a));
  assert.throws(() => b.setState({ strategy: 'fedavg', step: 1, tensors: {} }), code('CONFIG_INVALID'));
});

test('when fedavgm (eta 0.5, momentum 0.5) takes two steps, then x follows the hand-computed momentum update', () => {
  const s = createStrategy('fedavgm', { eta: 0.5, momentum: 0.5 });
  // two sites whose weighted mean is Δ = [1, −2]: (1·[4, −2] + 3·[0, −2]) / 4
  const round = (global: NamedTensors) =>
    aggregateAll(s, 1, global, [res('a', 1, t(4, -2)), res('b', 3, t(0, -2))])!.adapter;
  // step 1: m = 0.5·0 + Δ = [1, −2]; x = [1, 1] + 0.5·m = [1.5, 0]
  const x1 = round(t(1, 1));
  close(x1.w.data, [1.5, 0]);
  // step 2: m = 0.5·[1, −2] + [1, −2] = [1.5, −3]; x = [1.5, 0] + 0.5·m = [2.25, −1.5]
  close(round(x1).w.data, [2.25, -1.5]);
  assert.equal(s.getState()?.step, 2);
});

test('when fedavgm has momentum 0 and eta 1, then it is fedavg', () => {
  const results = [res('a', 1, t(1, 0)), res('b', 3, t(-1, 4))];
  const m = aggregateAll(new FedAvgM({ momentum: 0 }), 1, t(1, 2), results)!.adapter;
  close(m.w.data, [0.5, 5]);
});

test('when fedavgm state is saved and restored into a new instance, then the next step is identical', () => {
  const a = new FedAvgM();
  const g1 = aggregateAll(a, 1, t(0, 0), [res('a', 2, t(0.3, -0.1))])!.adapter;
  const b = new FedAvgM();
  b.setState(structuredClone(a.getState()));
  const next = (s: FedAvgM) => aggregateAll(s, 2, g1, [res('a', 2, t(-0.2, 0.4))])!.adapter.w.data;
  assert.deepEqual(next(b), next(a));
  assert.throws(() => b.setState({ strategy: 'fedadam', step: 1, tensors: {} }), code('CONFIG_INVALID'));
  assert.throws(() => b.setState({ strategy: 'fedavgm', step: 1, tensors: t(NaN, 0) }), code('CONFIG_INVALID'));
  // a velocity of another layout is refused when the next round starts, not silently broadcast
  const c = new FedAvgM();
  c.setState({ strategy: 'fedavgm', step: 1, tensors: t(1, 2, 3) });
  assert.throws(() => c.createAggregator(2, g1));
});

test('when fedavgm gets a pre-summed (unmasked secure-aggregation) input, then it equals the same results one by one', () => {
  const results = [res('a', 2, t(0.5, -1)), res('b', 1, t(-0.25, 2))];
  const oneByOne = aggregateAll(new FedAvgM(), 1, t(0, 0), results)!.adapter;
  const agg = new FedAvgM().createAggregator(1, t(0, 0));
  agg.acceptSum!(t(2 * 0.5 - 0.25, 2 * -1 + 2), 3, 2);
  close(agg.finish([])!.adapter.w.data, [...oneByOne.w.data]);
});

test('when results stream in any order or arrive pre-summed, then the result equals the batch weighted mean', () => {
  let seed = 7; // small LCG: deterministic pseudo-random deltas
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  const layout = (f: () => number): NamedTensors => ({
    a: { shape: [3, 4], data: Float32Array.from({ length: 12 }, f) },
    b: { shape: [5], data: Float32Array.from({ length: 5 }, f) },
  });
  const zero = layout(() => 0);
  const results = Array.from({ length: 9 }, (_, i) => res(`s${i}`, 1 + ((i * 37) % 11), layout(rnd)));
  const batch = weightedMean(results.map((r) => ({ tensors: r.delta, weight: r.numExamples })));

  const forward = aggregateAll(createStrategy('fedavg', {}), 1, zero, results)!.adapter;
  const backward = aggregateAll(createStrategy('fedavg', {}), 1, zero, [...results].reverse())!.adapter;
  // first 4 as a pre-summed (as if unmasked) input Σ nᵢΔᵢ, the rest one by one
  const agg = createStrategy('fedavg', {}).createAggregator(1, zero);
  const pre = results.slice(0, 4);
  const sum: NamedTensors = {};
  for (const k of ['a', 'b'])
    sum[k] = {
      shape: zero[k].shape,
      data: zero[k].data.map((_, i) => pre.reduce((s, r) => s + r.numExamples * r.delta[k].data[i], 0)),
    };
  agg.acceptSum!(
    sum,
    pre.reduce((s, r) => s + r.numExamples, 0),
    pre.length,
  );
  results.slice(4).forEach((r) => agg.accumulate(r));
  const mixed = agg.finish([])!;
  assert.equal(mixed.numResults, 9);
  for (const k of ['a', 'b']) {
    close(forward[k].data, [...batch[k].data]);
    close(backward[k].data, [...batch[k].data]);
    close(mixed.adapter[k].data, [...batch[k].data]);
  }
});

test('when a delta has another shape, name set or a NaN, then accumulate fails with AGGREGATION_FAILED', () => {
  const agg = () => createStrategy('fedavg', {}).createAggregator(1, t(0, 0));
  assert.throws(() => agg().accumulate(res('a', 1, t(1, 2, 3))), code('AGGREGATION_FAILED'));
  assert.throws(
    () => agg().accumulate(res('a', 1, { v: { shape: [2], data: new Float32Array(2) } })),
    code('AGGREGATION_FAILED'),
  );
  assert.throws(() => agg().accumulate(res('a', 1, t(1, NaN))), code('AGGREGATION_FAILED'));
  assert.throws(() => agg().accumulate(res('a', 0, t(1, 2))), code('AGGREGATION_FAILED'));
  const a = agg();
  a.accumulate(res('a', 1, t(1, 2)));
  assert.throws(() => a.accumulate(res('a', 1, t(1, 2))), code('AGGREGATION_FAILED'), 'same site twice');
  a.finish([]);
  assert.throws(() => a.finish([]), code('AGGREGATION_FAILED'), 'finished twice');
});

test('when too few results arrive or failures are not accepted, then finish keeps the old adapter (null)', () => {
  assert.equal(createStrategy('fedavg', {}).createAggregator(1, t(0)).finish([]), null);
  assert.equal(aggregateAll(createStrategy('fedavg', { minResults: 2 }), 1, t(0), [res('a', 1, t(1))]), null);
  const strict = createStrategy('fedavg', { acceptFailures: false });
  assert.equal(aggregateAll(strict, 1, t(0), [res('a', 1, t(1))], [{ siteId: 'b', code: 'TIMEOUT' }]), null);
  assert.ok(
    aggregateAll(
      createStrategy('fedavg', {}),
      1,
      t(0),
      [res('a', 1, t(1))],
      [{ siteId: 'b', code: 'TIMEOUT' }],
    ),
  );
});

test('when a strategy name or option is invalid, then createStrategy fails with CONFIG_INVALID', () => {
  assert.throws(() => createStrategy('fedsgd' as 'fedavg', {}), code('CONFIG_INVALID'));
  assert.throws(() => createStrategy('fedprox', { proximalMu: -1 }), code('CONFIG_INVALID'));
  assert.throws(() => createStrategy('fedadam', { beta2: 1 }), code('CONFIG_INVALID'));
  assert.throws(() => createStrategy('fedavgm', { momentum: 1 }), code('CONFIG_INVALID'));
  assert.throws(() => createStrategy('fedavgm', { eta: 0 }), code('CONFIG_INVALID'));
  assert.throws(() => createStrategy('fedavg', { minResults: 0 }), code('CONFIG_INVALID'));
});

test('when aggregation finishes, then the global adapter passed in is not modified', () => {
  const g = t(1, 2);
  aggregateAll(createStrategy('fedadam', {}), 1, g, [res('a', 1, t(1, 1))]);
  assert.deepEqual([...g.w.data], [1, 2]);
});

test('when a strategy option is bad or unknown, then the error names the strategy and the option; a second registration is refused', () => {
  const message = (f: () => unknown) => {
    try {
      f();
    } catch (err) {
      return isFedloraError(err, 'CONFIG_INVALID') ? err.message : `not CONFIG_INVALID: ${String(err)}`;
    }
    return 'no error';
  };
  assert.equal(message(() => createStrategy('fedprox', { proximalMu: -1 })), 'fedprox.proximalMu must be ≥ 0');
  assert.equal(message(() => createStrategy('fedavgm', { momentum: 1 })), 'fedavgm.momentum must be < 1');
  assert.match(message(() => createStrategy('fedavg', { mu: 1 })), /^fedavg\.mu is not an option of fedavg/);
  assert.match(message(() => createStrategy('fedsgd', {})), /unknown strategy "fedsgd" \(known: fedavg, fedprox, fedadam, fedavgm/);
  assert.match(message(() => registerStrategy(FEDAVG)), /fedavg is already registered/);
  // every option has a default: each strategy runs with {}, and the defaults are the papers'
  assert.deepEqual(parseStrategyOptions('fedadam'), { eta: 1e-2, beta1: 0.9, beta2: 0.99, tau: 1e-3 });
  assert.deepEqual(parseStrategyOptions('fedavgm'), { eta: 1, momentum: 0.9 });
});
