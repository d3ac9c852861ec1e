// The round loop with client-level DP on (in-memory fakes, as federation.test.ts): the sites are told the clip norm,
// each round's noisy aggregate is accounted in its record, the federation stops before a round that would pass the ε
// target, and a restarted coordinator rebuilds the ε spent from the round history.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { createStrategy } from '@fedlora/shared/aggregation/index.ts';
import { privacySpent } from '@fedlora/shared/privacy/index.ts';
import type { SiteKeys } from '@fedlora/shared/crypto/keys.ts';
import { memoryLogger } from '../log';
import { MemoryStorage } from '../storage';
import { AdapterRegistry } from '../registry/registry';
import { Federation } from './federation';
import { DEFAULT_SETTINGS, DEFAULT_STOP, type RoundSettings, type StopRules } from './settings';
import { FakeEvaluator, FakeTransport, ManualClock, generateSiteKeys, makeUpload, tinyAdapter } from './fakes';
import type { ConfigureMessage } from './types';

/** A delta that only moves classifier.bias by `b`. */
function biasDelta(b: number): NamedTensors {
  const d = tinyAdapter(0);
  d['classifier.bias'].data.fill(b);
  return d;
}

async function setup(
  dp: Partial<RoundSettings>,
  stop: Partial<StopRules> = {},
  store?: AdapterRegistry,
  strategy = createStrategy('fedavg', {}),
) {
  const transport = new FakeTransport();
  const registry = store ?? (await AdapterRegistry.open(new MemoryStorage()));
  const fed = new Federation({
    strategy,
    transport,
    evaluator: new FakeEvaluator(),
    store: registry,
    initialState: () => tinyAdapter(0),
    settings: { ...DEFAULT_SETTINGS, minSites: 2, sampleWaitS: 0, deadlineS: 60, maxDeltaNorm: 10, ...dp },
    stop: { ...DEFAULT_STOP, ...stop },
    log: memoryLogger(),
    clock: new ManualClock(),
    rng: () => 0,
    retryDelayMs: 0,
  });
  await fed.init();
  const configs: ConfigureMessage[] = [];
  const uploader = (siteId: string, delta: NamedTensors) => {
    const k: SiteKeys = generateSiteKeys();
    transport.addSite(
      siteId,
      {
        onTrain: (cfg) => {
          configs.push(cfg);
          fed.upload(siteId, k.signing.publicKey, makeUpload(k, siteId, cfg, delta, { numExamples: 10 }));
        },
      },
      10,
    );
  };
  return { fed, store: registry, transport, configs, uploader };
}

// every site is sampled (q = 1), so each round is the plain Gaussian mechanism: ε after 2 rounds at z = 2, δ = 1e-5
// is 3.19 and after 3 rounds 4.01 (fedlora-privacy epsilon --noise-multiplier 2 --sample-rate 1 --rounds 2|3)
const DP = { dpClipNorm: 1, dpNoiseMultiplier: 2, dpTargetEpsilon: 3.5, dpDelta: 1e-5 };

test('when DP runs with a target ε, then every round records what it spent and the federation stops before passing the target', async () => {
  const t = await setup(DP);
  for (const s of ['a', 'b', 'c']) t.uploader(s, biasDelta(0.1));

  t.fed.start();
  await t.fed.whenStopped();

  assert.equal(t.fed.state, 'finished');
  assert.match(t.fed.status().finishedReason ?? '', /^privacy budget: one more round would spend ε = 4\.01\d* > the target 3\.5/);
  const rounds = t.store.rounds();
  assert.deepEqual(rounds.map((r) => [r.round, r.outcome]), [[1, 'aggregated'], [2, 'aggregated']]);
  const expected = (n: number) => privacySpent({ noiseMultiplier: 2, sampleRate: 1, rounds: n, delta: 1e-5 }).epsilon;
  assert.deepEqual(
    rounds.map((r) => r.privacy && [r.privacy.sampleRate, r.privacy.expectedParticipants, r.privacy.noiseStd]),
    [[1, 3, 2 / 3], [1, 3, 2 / 3]],
  );
  assert.ok(Math.abs((rounds[1].privacy?.epsilon ?? 0) - expected(2)) < 1e-9);
  assert.ok(Math.abs((rounds[0].privacy?.roundEpsilon ?? 0) - expected(1)) < 1e-9);
  // the sites were told the clip norm in the round config
  assert.ok(t.configs.length > 0 && t.configs.every((c) => c.config.dpClipNorm === 1));
  const report = t.fed.privacyReport();
  assert.equal(report.enabled, true);
  assert.ok(Math.abs(report.epsilon - expected(2)) < 1e-9 && report.epsilon <= 3.5);
  assert.deepEqual(report.rounds.map((r) => r.round), [1, 2]);
});

test('when the coordinator restarts, then the ε spent is rebuilt from the round history', async () => {
  const first = await setup({ ...DP, dpTargetEpsilon: null });
  for (const s of ['a', 'b']) first.uploader(s, biasDelta(0.1));
  await first.fed.runRound();
  await first.fed.runRound();
  const spent = first.fed.privacyReport().epsilon;
  assert.ok(spent > 0);

  const restarted = await setup({ ...DP, dpTargetEpsilon: null }, {}, first.store);
  assert.equal(restarted.fed.privacyReport().epsilon, spent);
  assert.equal(restarted.fed.privacyReport().rounds.length, 2);
});

test('when only a target ε is given, then the noise multiplier is found for the rounds stop rule', async () => {
  const t = await setup({ dpClipNorm: 1, dpNoiseMultiplier: null, dpTargetEpsilon: 6 }, { rounds: 2 });
  for (const s of ['a', 'b']) t.uploader(s, biasDelta(0.1));

  t.fed.start();
  await t.fed.whenStopped();

  const rounds = t.store.rounds();
  assert.equal(rounds.length, 2);
  // fedlora-privacy noise --target-epsilon 6 --sample-rate 1 --rounds 2 --delta 1e-5 → 1.1512
  assert.ok(Math.abs((rounds[0].privacy?.noiseMultiplier ?? 0) - 1.1512) < 1e-3);
  assert.ok((rounds[1].privacy?.epsilon ?? Infinity) <= 6);
});

test('when DP is off, then rounds carry no privacy record and the report says so', async () => {
  const t = await setup({});
  for (const s of ['a', 'b']) t.uploader(s, biasDelta(0.1));
  const rec = await t.fed.runRound();
  assert.equal(rec?.privacy, undefined);
  assert.equal(t.configs[0].config.dpClipNorm, undefined);
  assert.deepEqual(t.fed.privacyReport(), {
    enabled: false, clipNorm: null, noiseMultiplier: null, targetEpsilon: null, delta: 1e-5, epsilon: 0, order: null, rounds: [],
  });
});

test('when the strategy does not average (median), then a DP federation stops with the reason instead of retrying every round', async () => {
  const t = await setup({ ...DP, dpTargetEpsilon: null }, {}, undefined, createStrategy('median', {}));
  for (const s of ['a', 'b']) t.uploader(s, biasDelta(0.1));

  t.fed.start();
  await t.fed.whenStopped();

  assert.equal(t.fed.state, 'finished');
  assert.match(t.fed.status().finishedReason ?? '', /^client-level DP: CONFIG_INVALID: client-level DP needs a strategy that averages/);
  assert.equal(t.store.rounds().length, 0, 'no site was contacted');
  // switching to an averaging strategy clears the refusal: the loop runs again until its rounds rule
  await t.fed.updateSettings({ strategy: 'fedavg', rounds: 1 });
  t.fed.start();
  await t.fed.whenStopped();
  assert.equal(t.fed.status().finishedReason, '1 round(s) made a version');
  assert.equal(t.store.rounds()[0].privacy?.noiseMultiplier, 2);
});
