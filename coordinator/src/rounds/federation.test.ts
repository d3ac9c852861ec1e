// Round loop with in-memory fakes: quorum, deadline, disconnect, late upload, failure reports and stop rules.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedloraError } from '@fedlora/shared/errors.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { createStrategy } from '@fedlora/shared/aggregation/index.ts';
import type { SiteKeys } from '@fedlora/shared/crypto/keys.ts';
import { memoryLogger } from '../log';
import { MemoryStorage } from '../storage';
import { AdapterRegistry } from '../registry/registry';
import { Federation, type FederationEvent } from './federation';
import { DEFAULT_SETTINGS, DEFAULT_STOP, type RoundSettings, type StopRules } from './settings';
import {
  FakeEvaluator,
  FakeTransport,
  ManualClock,
  generateSiteKeys,
  makeUpload,
  tinyAdapter,
} from './fakes';
import type { ConfigureMessage } from './types';

const code = (c: string) => (err: unknown) => isFedloraError(err) && err.code === c;

/** A delta that only moves classifier.bias by `b` (the fake evaluator's accuracy is 0.5 + mean bias). */
function biasDelta(b: number): NamedTensors {
  const d = tinyAdapter(0);
  d['classifier.bias'].data.fill(b);
  return d;
}

async function setup(settings: Partial<RoundSettings> = {}, stop: Partial<StopRules> = {}) {
  const clock = new ManualClock();
  const transport = new FakeTransport();
  const store = await AdapterRegistry.open(new MemoryStorage());
  const events: FederationEvent[] = [];
  const waiters: { pred: (e: FederationEvent) => boolean; resolve: () => void }[] = [];
  const log = memoryLogger();
  const fed = new Federation({
    strategy: createStrategy('fedavg', {}),
    transport,
    evaluator: new FakeEvaluator(),
    store,
    initialState: () => tinyAdapter(0),
    settings: { ...DEFAULT_SETTINGS, minSites: 2, sampleWaitS: 0, deadlineS: 60, ...settings },
    stop: { ...DEFAULT_STOP, ...stop },
    log,
    clock,
    rng: () => 0,
    retryDelayMs: 0,
    onEvent: (e) => {
      events.push(e);
      for (const w of waiters.filter((x) => x.pred(e))) w.resolve();
    },
  });
  await fed.init();
  const keys = new Map<string, SiteKeys>();
  const lastConfig = new Map<string, ConfigureMessage>();
  /** a site that uploads `delta` with `n` examples right after it gets the adapter */
  const uploader = (siteId: string, delta: NamedTensors, n: number) => {
    keys.set(siteId, generateSiteKeys());
    const k = keys.get(siteId) as SiteKeys;
    transport.addSite(
      siteId,
      {
        onTrain: (cfg) => {
          lastConfig.set(siteId, cfg);
          fed.upload(siteId, k.signing.publicKey, makeUpload(k, siteId, cfg, delta, { numExamples: n }));
        },
      },
      n,
    );
  };
  const silent = (siteId: string, onTrain?: () => void) => {
    keys.set(siteId, generateSiteKeys());
    transport.addSite(siteId, { onTrain: (cfg) => (lastConfig.set(siteId, cfg), onTrain?.()) });
  };
  const until = (pred: (e: FederationEvent) => boolean) =>
    new Promise<void>((resolve) => (events.some(pred) ? resolve() : waiters.push({ pred, resolve })));
  return { clock, transport, store, fed, events, log, keys, lastConfig, uploader, silent, until };
}

test('when three sites upload, then the new version is the example-weighted mean of their deltas', async () => {
  const t = await setup();
  t.uploader('a', biasDelta(0.1), 10);
  t.uploader('b', biasDelta(0.4), 30);
  t.uploader('c', biasDelta(-0.2), 10);

  const rec = await t.fed.runRound();

  // (10·0.1 + 30·0.4 + 10·(−0.2)) / 50 = (1 + 12 − 2) / 50 = 0.22
  assert.equal(rec?.outcome, 'aggregated');
  assert.equal(rec?.updates, 3);
  const v1 = t.store.get('v1');
  assert.equal(v1?.parent, 'v0');
  assert.equal(v1?.sites, 3);
  assert.equal(v1?.examples, 50);
  const bias = (await t.store.loadState('v1'))['classifier.bias'].data;
  assert.ok(Math.abs(bias[0] - 0.22) < 1e-6 && Math.abs(bias[1] - 0.22) < 1e-6, `bias ${bias}`);
  assert.ok(Math.abs((v1?.metrics?.accuracy ?? 0) - 0.72) < 1e-6);
  assert.equal(t.store.currentId(), 'v1');
  assert.equal(t.transport.publishedMessages.at(-1)?.versionId, 'v1');
  assert.deepEqual(t.transport.closedMessages.at(-1), {
    roundId: rec?.roundId,
    round: 1,
    outcome: 'aggregated',
    updates: 3,
    failures: 0,
  });
  const stages = t.events.filter((e) => e.type === 'round:stage').map((e) => (e as { stage: string }).stage);
  assert.deepEqual(stages, ['sample', 'configure', 'train', 'collect', 'aggregate', 'evaluate', 'version']);
});

test('when one sampled site stays silent, then the round waits for the deadline and versions the other two', async () => {
  const t = await setup({ deadlineS: 60 });
  t.uploader('a', biasDelta(0.2), 10);
  t.uploader('b', biasDelta(0.2), 10);
  t.silent('c');

  const running = t.fed.runRound();
  await t.until((e) => e.type === 'round:stage' && e.stage === 'collect');
  await t.until(
    (e) => t.events.filter((x) => x.type === 'upload' && x.accepted).length === 2 || e.type === 'round:end',
  );
  assert.equal(t.fed.status().round?.stage, 'collect', 'still waiting for c before the deadline');
  t.clock.advance(60_000);
  const rec = await running;

  assert.equal(rec?.outcome, 'aggregated');
  assert.equal(rec?.updates, 2);
  assert.deepEqual(rec?.failures, [{ siteId: 'c', code: 'TIMEOUT' }]);
  assert.equal(t.store.get('v1')?.sites, 2);
});

test('when a site disconnects mid-training, then it is dropped and the round completes from the other two without waiting', async () => {
  const t = await setup();
  t.uploader('a', biasDelta(0.1), 10);
  t.uploader('b', biasDelta(0.3), 10);
  t.silent('c', () => t.fed.siteLeft('c'));

  const rec = await t.fed.runRound(); // no clock advance: the deadline never fires

  assert.equal(rec?.outcome, 'aggregated');
  assert.deepEqual(rec?.failures, [{ siteId: 'c', code: 'DISCONNECTED' }]);
  const bias = (await t.store.loadState('v1'))['classifier.bias'].data;
  assert.ok(Math.abs(bias[0] - 0.2) < 1e-6);
});

test('when an upload arrives after its round closed, then it is refused with ROUND_CLOSED and nothing changes', async () => {
  const t = await setup();
  t.uploader('a', biasDelta(0.1), 10);
  t.uploader('b', biasDelta(0.1), 10);
  t.silent('c', () => t.fed.siteLeft('c'));
  await t.fed.runRound();
  const versions = t.store.list().length;

  const k = t.keys.get('c') as SiteKeys;
  const late = makeUpload(k, 'c', t.lastConfig.get('c') as ConfigureMessage, biasDelta(0.5));
  assert.throws(() => t.fed.upload('c', k.signing.publicKey, late), code('ROUND_CLOSED'));
  assert.throws(
    () => t.fed.upload('c', k.signing.publicKey, { ...late, roundId: 'r99-x' }),
    code('WRONG_ROUND'),
  );
  assert.equal(t.store.list().length, versions);
  assert.ok(t.log.lines.some((l) => l.includes('upload.rejected') && l.includes('code=ROUND_CLOSED')));
});

test('when fewer than minSites deliver, then the round keeps the old adapter and makes no version', async () => {
  const t = await setup({ minSites: 2 });
  t.uploader('a', biasDelta(0.1), 10);
  t.silent('b', () =>
    t.fed.reportFailure('b', {
      roundId: t.lastConfig.get('b')?.roundId as string,
      code: 'NON_FINITE',
      message: 'loss diverged',
    }),
  );

  const rec = await t.fed.runRound();

  assert.equal(rec?.outcome, 'kept');
  assert.deepEqual(rec?.failures, [{ siteId: 'b', code: 'NON_FINITE' }]);
  assert.equal(t.store.currentId(), 'v0');
  assert.equal(t.transport.closedMessages.at(-1)?.outcome, 'kept');
});

test('when a site claims more examples than it declared when ready, then its weight is capped at the declared count', async () => {
  const t = await setup();
  t.uploader('a', biasDelta(0.1), 10);
  const k = generateSiteKeys();
  t.transport.addSite(
    'b',
    {
      onTrain: (cfg) =>
        t.fed.upload(
          'b',
          k.signing.publicKey,
          makeUpload(k, 'b', cfg, biasDelta(0.4), { numExamples: 1000 }),
        ),
    },
    10,
  );

  await t.fed.runRound();

  // weights 10 and 10 (not 1000): (0.1 + 0.4) / 2 = 0.25
  assert.equal(t.store.get('v1')?.examples, 20);
  assert.ok(Math.abs((await t.store.loadState('v1'))['classifier.bias'].data[0] - 0.25) < 1e-6);
});

test('when a site declines configure, then it is not sent the adapter and counts as a failure', async () => {
  const t = await setup({ minSites: 2 });
  t.uploader('a', biasDelta(0.1), 10);
  t.uploader('b', biasDelta(0.1), 10);
  t.transport.addSite('c', { configure: false });

  const rec = await t.fed.runRound();

  assert.equal(rec?.participants, 2);
  assert.deepEqual(rec?.failures, [{ siteId: 'c', code: 'DECLINED' }]);
});

test('when started with rounds = 2, then the loop runs two rounds and finishes', async () => {
  const t = await setup({}, { rounds: 2 });
  t.uploader('a', biasDelta(0.1), 10);
  t.uploader('b', biasDelta(0.1), 10);

  t.fed.start();
  await t.fed.whenStopped();

  assert.equal(t.fed.state, 'finished');
  assert.deepEqual(
    t.store.list().map((v) => [v.id, v.round]),
    [
      ['v0', 0],
      ['v1', 1],
      ['v2', 2],
    ],
  );
  assert.throws(() => t.fed.start(), code('CONFIG_INVALID'));
});

test('when accuracy stops improving for `patience` versions, then the loop stops', async () => {
  const t = await setup({}, { patience: 2 });
  t.uploader('a', biasDelta(0), 10); // zero deltas: accuracy stays at v0's 0.5
  t.uploader('b', biasDelta(0), 10);

  t.fed.start();
  await t.fed.whenStopped();

  assert.equal(t.fed.state, 'finished');
  assert.equal(t.store.lastRound(), 2);
  assert.match(t.fed.status().finishedReason ?? '', /patience 2/);
});

test('when fewer than minSites are online, then sampling waits until another site comes online', async () => {
  const t = await setup({ minSites: 2 });
  t.uploader('a', biasDelta(0.1), 10);
  const running = t.fed.runRound();
  await t.until((e) => e.type === 'round:stage' && e.stage === 'sample');
  assert.equal(t.fed.status().round?.stage, 'sample');

  t.uploader('b', biasDelta(0.1), 10);
  const rec = await running;

  assert.equal(rec?.outcome, 'aggregated');
  assert.equal(rec?.sampled, 2);
});

test('when a federation is rebuilt on the same store, then it continues from the current version and round number', async () => {
  const t = await setup();
  t.uploader('a', biasDelta(0.1), 10);
  t.uploader('b', biasDelta(0.1), 10);
  await t.fed.runRound();
  const evaluator = new FakeEvaluator();

  const again = new Federation({
    strategy: createStrategy('fedavg', {}),
    transport: t.transport,
    evaluator,
    store: t.store,
    initialState: () => tinyAdapter(9),
    settings: { ...DEFAULT_SETTINGS, minSites: 2, sampleWaitS: 0 },
    stop: DEFAULT_STOP,
    log: memoryLogger(),
    clock: t.clock,
  });
  await again.init();
  for (const id of ['a', 'b']) {
    const k = t.keys.get(id) as SiteKeys;
    t.transport.addSite(id, {
      onTrain: (cfg) => again.upload(id, k.signing.publicKey, makeUpload(k, id, cfg, biasDelta(0.1))),
    });
  }
  const rec = await again.runRound();

  assert.equal(evaluator.calls, 1, 'version 0 is not evaluated again, only the new version');
  assert.equal(rec?.round, 2);
  assert.equal(rec?.baseVersionId, 'v1');
  assert.equal(t.store.get('v2')?.parent, 'v1');
});

test('when paused while sampling, then the round is cancelled without a record', async () => {
  const t = await setup({ minSites: 2 });
  t.uploader('a', biasDelta(0.1), 10);
  t.fed.start();
  await t.until((e) => e.type === 'round:stage' && e.stage === 'sample');

  t.fed.pause();
  await t.fed.whenStopped();

  assert.equal(t.fed.state, 'paused');
  assert.equal(t.store.rounds().length, 0);
  assert.equal(t.store.lastRound(), 0);
});

test('when the settings name another strategy, then it is built by the factory and a bad patch changes nothing', async () => {
  // Arrange: a federation whose strategy can be switched by name
  const store = await AdapterRegistry.open(new MemoryStorage());
  const built: string[] = [];
  const fed = new Federation({
    strategy: createStrategy('fedavg', {}),
    strategyFactory: (name, s) => (
      built.push(`${name}:${s.minSites}`),
      createStrategy(name, { minResults: s.minSites, proximalMu: s.proximalMu })
    ),
    transport: new FakeTransport(),
    evaluator: new FakeEvaluator(),
    store,
    initialState: () => tinyAdapter(0),
    settings: { ...DEFAULT_SETTINGS },
    stop: { ...DEFAULT_STOP },
    log: memoryLogger(),
    clock: new ManualClock(),
  });
  await fed.init();
  // Act + Assert: an unknown name and a bad field are both refused without switching
  assert.throws(
    () => fed.updateSettings({ strategy: 'fedmagic' }),
    (e) => isFedloraError(e, 'CONFIG_INVALID'),
  );
  assert.throws(() => fed.updateSettings({ strategy: 'fedprox', minSites: -1 }));
  assert.equal(fed.status().strategy, 'fedavg');
  assert.deepEqual(built, []);
  fed.updateSettings({ strategy: 'fedprox', minSites: 3 });
  assert.equal(fed.status().strategy, 'fedprox');
  assert.deepEqual(built, ['fedprox:3']);
  await fed.close();
});
