// The round loop under secure aggregation (in-memory fakes whose sites run the real SecAgg participant): the
// aggregate equals the plaintext weighted mean within the quantization step, the coordinator never decodes one
// site's update, a site that drops after share-keys is unmasked around, too many drops abort the round cleanly, and
// what the registry keeps names no contributor.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { createStrategy } from '@fedlora/shared/aggregation/index.ts';
import { isFedloraError } from '@fedlora/shared/errors.ts';
import { unpack } from '@fedlora/shared/protocol/packed.ts';
import { SecAggSharesBodySchema } from '@fedlora/shared/protocol/messages.ts';
import { memoryLogger } from '../log';
import { MemoryStorage } from '../storage';
import { AdapterRegistry } from '../registry/registry';
import { Federation } from './federation';
import { DEFAULT_SETTINGS, DEFAULT_STOP, type RoundSettings } from './settings';
import { FakeEvaluator, FakeTransport, ManualClock, makeUpload, tinyAdapter } from './fakes';
import type { ConfigureMessage, TrainMessage } from './types';

/**
 * A delta with a different value in every coordinate, scaled by `b`: |b| stays below the per-coordinate clip c (what
 * AdamW moves one weight in the default 12 steps at lr 2e-3, about 0.028), as an honest site's does.
 */
function delta(b: number): NamedTensors {
  const d = tinyAdapter(0);
  let i = 0;
  for (const t of Object.values(d)) for (let e = 0; e < t.data.length; e++) t.data[e] = b * Math.sin(++i);
  return d;
}

interface SiteSpec {
  id: string;
  b: number;
  examples: number;
  /** leaves right after share-keys (before uploading) */
  drop?: boolean;
}

async function secureFederation(sites: SiteSpec[], settings: Partial<RoundSettings> = {}, strategy = createStrategy('fedavg', {})) {
  const transport = new FakeTransport();
  const store = await AdapterRegistry.open(new MemoryStorage());
  const clock = new ManualClock();
  const fed = new Federation({
    strategy,
    transport,
    evaluator: new FakeEvaluator(),
    store,
    initialState: () => tinyAdapter(0),
    settings: { ...DEFAULT_SETTINGS, minSites: 3, sampleWaitS: 0, deadlineS: 60, maxDeltaNorm: 10, secureAggregation: true, ...settings },
    stop: { ...DEFAULT_STOP },
    log: memoryLogger(),
    clock,
    rng: () => 0,
    retryDelayMs: 0,
  });
  await fed.init();
  const trains: { siteId: string; cfg: ConfigureMessage; train: TrainMessage }[] = [];
  for (const s of sites)
    transport.addSite(
      s.id,
      {
        onTrain: (cfg, train) => {
          trains.push({ siteId: s.id, cfg, train });
          if (s.drop) {
            transport.removeSite(s.id);
            fed.siteLeft(s.id);
            return;
          }
          void transport.maskedUpload(s.id, train, delta(s.b), s.examples).then((req) => fed.maskedUpload(s.id, req));
        },
      },
      s.examples,
    );
  return { fed, store, transport, trains, clock };
}

function weightedMean(sites: SiteSpec[]): NamedTensors {
  const total = sites.reduce((n, s) => n + s.examples, 0);
  const out = tinyAdapter(0);
  for (const s of sites) {
    const d = delta(s.b);
    for (const [k, t] of Object.entries(out)) for (let e = 0; e < t.data.length; e++) t.data[e] += (s.examples / total) * d[k].data[e];
  }
  return out;
}

function maxAbsDiff(a: NamedTensors, b: NamedTensors): number {
  let m = 0;
  for (const [k, t] of Object.entries(a)) for (let e = 0; e < t.data.length; e++) m = Math.max(m, Math.abs(t.data[e] - b[k].data[e]));
  return m;
}

test('when a round runs under secure aggregation, then the new version is the weighted mean within the quantization step and the registry names no contributor', async () => {
  const sites: SiteSpec[] = [
    { id: 'site-a', b: 0.01, examples: 10 },
    { id: 'site-b', b: -0.02, examples: 20 },
    { id: 'site-c', b: 0.025, examples: 30 },
    { id: 'site-d', b: 0.005, examples: 15 },
  ];
  const t = await secureFederation(sites);
  const record = await t.fed.runRound();
  assert.ok(record);
  assert.equal(record.outcome, 'aggregated', record.reason ?? '');
  assert.equal(record.mode, 'secure');
  assert.deepEqual(record.stage, 'version');
  const sa = record.secureAggregation;
  assert.ok(sa);
  assert.equal(sa.contributors, 4);
  assert.equal(sa.dropped, 0);
  assert.equal(sa.degree, 3);
  // every site got the round's quantization and its shares with the adapter
  const p = t.trains[0].cfg.secureAggregation;
  assert.ok(p && p.sampledSites === 4 && p.levels === sa.levels && p.levels * 4 < 2 ** 32);
  assert.ok(t.trains.every((x) => x.train.secagg && unpack(SecAggSharesBodySchema, x.train.secagg, 'shares').shares.length === 3));

  const v = await t.store.get(record.versionId as string);
  assert.ok(v);
  assert.equal(v.mode, 'secure');
  assert.equal(v.sites, 4);
  const got = await t.store.loadState(v.id);
  const want = weightedMean(sites);
  // weights up to maxWeight, c per coordinate: each site's rounding moves the mean by < 2c·W/(Q·Σw)
  const step = (2 * sa.clip * sa.maxWeight) / sa.levels;
  assert.ok(maxAbsDiff(got, want) <= step, `${maxAbsDiff(got, want)} > ${step}`);
  // neither the version nor the round record names a contributor
  const kept = JSON.stringify([v, record]);
  for (const s of sites) assert.ok(!kept.includes(s.id), `${s.id} appears in the registry`);
});

test('when a site leaves after share-keys, then the survivors unmask around it and the version is their mean', async () => {
  const sites: SiteSpec[] = [
    { id: 'site-a', b: 0.01, examples: 10 },
    { id: 'site-b', b: -0.02, examples: 10 },
    { id: 'site-c', b: 0.02, examples: 10 },
    { id: 'site-d', b: 0.015, examples: 10, drop: true },
  ];
  // 4 sites: k = 3; t = 2 survives one drop (the default t = 3 does not, see the next test)
  const t = await secureFederation(sites, { secaggThreshold: 2 });
  const record = await t.fed.runRound();
  assert.ok(record);
  assert.equal(record.outcome, 'aggregated', record.reason ?? '');
  assert.equal(record.secureAggregation?.contributors, 3);
  assert.equal(record.secureAggregation?.dropped, 1);
  assert.deepEqual(record.failures, [{ siteId: 'site-d', code: 'DISCONNECTED' }]);
  const got = await t.store.loadState(record.versionId as string);
  const sa = record.secureAggregation!;
  assert.ok(maxAbsDiff(got, weightedMean(sites.slice(0, 3))) <= (2 * sa.clip * sa.maxWeight) / sa.levels);
});

test('when a drop leaves a site fewer than t live neighbours, then the round aborts with the reason, keeps the adapter, and the next round has fresh keys', async () => {
  const sites: SiteSpec[] = [
    { id: 'site-a', b: 0.01, examples: 10 },
    { id: 'site-b', b: -0.02, examples: 10 },
    { id: 'site-c', b: 0.03, examples: 10 },
    { id: 'site-d', b: 0.04, examples: 10, drop: true },
  ];
  const t = await secureFederation(sites);
  const first = await t.fed.runRound();
  assert.ok(first);
  assert.equal(first.outcome, 'kept');
  assert.equal(first.stage, 'unmask');
  assert.match(first.reason ?? '', /secure aggregation aborted: after masked upload: .* neighbours left to hold its shares, the threshold is 3/);
  assert.equal(first.versionId, null);
  assert.equal(await t.store.currentId(), 'v0');

  // the dropped site comes back; the next round runs with a new round id, so new keys and masks
  t.transport.addSite('site-d', {
    onTrain: (_cfg, train) => void t.transport.maskedUpload('site-d', train, delta(0.04), 10).then((req) => t.fed.maskedUpload('site-d', req)),
  }, 10);
  const second = await t.fed.runRound();
  assert.ok(second);
  assert.equal(second.outcome, 'aggregated', second.reason ?? '');
  assert.notEqual(second.roundId, first.roundId);
  const roundIds = new Set(t.trains.map((x) => x.cfg.secureAggregation?.runId + '/' + x.cfg.roundId));
  assert.equal(roundIds.size, 2);
});

test('when a secure round gets a sealed plaintext upload, then it is refused and the round goes on', async () => {
  const sites: SiteSpec[] = ['a', 'b', 'c'].map((x, i) => ({ id: `site-${x}`, b: 0.01 * (i + 1), examples: 10 }));
  const t = await secureFederation(sites);
  const keys = t.transport.identities.get('site-a')!;
  let refused: unknown = null;
  t.transport.sites.get('site-a')!.onTrain = (cfg, train) => {
    try {
      t.fed.upload('site-a', keys.signing.publicKey, makeUpload(keys, 'site-a', cfg, delta(0.01)));
    } catch (err) {
      refused = err;
    }
    void t.transport.maskedUpload('site-a', train, delta(0.01), 10).then((req) => t.fed.maskedUpload('site-a', req));
  };
  const record = await t.fed.runRound();
  assert.ok(isFedloraError(refused, 'BAD_MESSAGE'));
  assert.equal(record?.outcome, 'aggregated');
  assert.equal(record?.rejections.length, 1);
});

test('when secure aggregation is on with a strategy that needs individual updates, then the federation stops and says why', async () => {
  const sites: SiteSpec[] = ['a', 'b', 'c'].map((x) => ({ id: `site-${x}`, b: 0.01, examples: 10 }));
  const t = await secureFederation(sites, {}, createStrategy('median', {}));
  t.fed.start();
  await t.fed.whenStopped();
  assert.equal(t.fed.state, 'finished');
  assert.match(t.fed.status().finishedReason ?? '', /secure aggregation: strategy median needs the individual updates/);
  assert.equal(await t.store.currentId(), 'v0');
});

test('when secure aggregation runs with client-level DP, then sites get equal weights and the clip S as the quantization clip, and the round spends ε', async () => {
  const sites: SiteSpec[] = ['a', 'b', 'c'].map((x, i) => ({ id: `site-${x}`, b: 0.01 * (i + 1), examples: 10 + i }));
  const t = await secureFederation(sites, { dpClipNorm: 0.5, dpNoiseMultiplier: 1, dpDelta: 1e-5 });
  const record = await t.fed.runRound();
  assert.ok(record);
  assert.equal(record.outcome, 'aggregated', record.reason ?? '');
  const p = t.trains[0].cfg.secureAggregation;
  assert.ok(p);
  assert.equal(p.maxWeight, 1);
  assert.equal(p.clip, 0.5);
  assert.equal(p.normBound, 0.5);
  assert.equal(t.trains[0].cfg.config.dpClipNorm, 0.5);
  assert.ok(record.privacy && record.privacy.epsilon > 0);
  assert.equal(record.privacy.expectedParticipants, 3);
});

test('when Multi-Krum aggregates a plaintext round, then the round record names the updates it selected', async () => {
  const transport = new FakeTransport();
  const store = await AdapterRegistry.open(new MemoryStorage());
  const fed = new Federation({
    strategy: createStrategy('multi-krum', { byzantineFraction: 0.2, select: 2 }),
    transport,
    evaluator: new FakeEvaluator(),
    store,
    initialState: () => tinyAdapter(0),
    settings: { ...DEFAULT_SETTINGS, minSites: 3, sampleWaitS: 0, deadlineS: 60, maxDeltaNorm: 10 },
    stop: { ...DEFAULT_STOP },
    log: memoryLogger(),
    clock: new ManualClock(),
    rng: () => 0,
    retryDelayMs: 0,
  });
  await fed.init();
  for (const [id, b] of [['site-a', 0.01], ['site-b', 0.011], ['site-c', 0.012], ['site-e', 0.0105], ['site-d', -5]] as const) {
    transport.addSite(id, {
      onTrain: (cfg) => {
        const keys = transport.identities.get(id)!;
        fed.upload(id, keys.signing.publicKey, makeUpload(keys, id, cfg, delta(b)));
      },
    });
  }
  const record = await fed.runRound();
  assert.equal(record?.outcome, 'aggregated', record?.reason ?? '');
  assert.equal(record?.mode, 'plaintext');
  assert.ok(record?.selected && record.selected.length === 2 && !record.selected.includes('site-d'), JSON.stringify(record?.selected));
});
