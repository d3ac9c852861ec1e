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
import { Federation, type FederationDeps, type FederationEvent } from './federation';
import { DEFAULT_SETTINGS, DEFAULT_STOP, strategyFromSettings, type RoundSettings, type StopRules } from './settings';
import {
  FakeEvaluator,
  FakeTransport,
  type FakeSiteBehavior,
  ManualClock,
  generateSiteKeys,
  makeUpload,
  tinyAdapter,
} from './fakes';
import type { ConfigureMessage } from './types';
import { optimizerNormCeiling } from './update-bounds';

const code = (c: string) => (err: unknown) => isFedloraError(err) && err.code === c;

/** A delta that moves every weight of the tiny adapter (30 of them) by `w`: its norm is |w|·√30. */
const everyWeight = (w: number): NamedTensors => tinyAdapter(w);
const norm30 = (w: number) => Math.abs(w) * Math.sqrt(30);

/** A delta that only moves classifier.bias by `b` (the fake evaluator's accuracy is 0.5 + mean bias). */
function biasDelta(b: number): NamedTensors {
  const d = tinyAdapter(0);
  d['classifier.bias'].data.fill(b);
  return d;
}

async function setup(
  settings: Partial<RoundSettings> = {},
  stop: Partial<StopRules> = {},
  loop: { retryDelayMs?: number; maxRetryDelayMs?: number } = {},
  strategy: Pick<FederationDeps, 'strategy' | 'strategyFactory'> = { strategy: createStrategy('fedavg', {}) },
) {
  const clock = new ManualClock();
  const transport = new FakeTransport();
  const store = await AdapterRegistry.open(new MemoryStorage());
  const events: FederationEvent[] = [];
  const waiters: { pred: (e: FederationEvent) => boolean; resolve: () => void }[] = [];
  const log = memoryLogger();
  const fed = new Federation({
    ...strategy,
    transport,
    evaluator: new FakeEvaluator(),
    store,
    initialState: () => tinyAdapter(0),
    settings: {
      ...DEFAULT_SETTINGS,
      minSites: 2,
      sampleWaitS: 0,
      deadlineS: 60,
      // the deltas here are synthetic, far beyond what lr 2e-3 can move the tiny adapter (norm bound ≈ 0.15): a
      // fixed bound keeps them whole; the tests of the norm policy pass maxDeltaNorm: null
      maxDeltaNorm: 10,
      ...settings,
    },
    stop: { ...DEFAULT_STOP, ...stop },
    log,
    clock,
    rng: () => 0,
    retryDelayMs: loop.retryDelayMs ?? 0,
    maxRetryDelayMs: loop.maxRetryDelayMs,
    onEvent: (e) => {
      events.push(e);
      for (const w of waiters.filter((x) => x.pred(e))) w.resolve();
    },
  });
  await fed.init();
  const keys = new Map<string, SiteKeys>();
  const lastConfig = new Map<string, ConfigureMessage>();
  /** a site that uploads `delta` (or the round's) with `n` examples right after it gets the adapter */
  const uploader = (siteId: string, delta: NamedTensors | ((round: number) => NamedTensors), n: number) => {
    keys.set(siteId, generateSiteKeys());
    const k = keys.get(siteId) as SiteKeys;
    transport.addSite(
      siteId,
      {
        onTrain: (cfg) => {
          lastConfig.set(siteId, cfg);
          const d = typeof delta === 'function' ? delta(cfg.round) : delta;
          fed.upload(siteId, k.signing.publicKey, makeUpload(k, siteId, cfg, d, { numExamples: n }));
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
  /** the log lines of `event` once there are `count` of them (the loop runs on promises: yield until then) */
  const logged = async (event: string, count: number): Promise<string[]> => {
    for (let i = 0; i < 10_000; i++) {
      const lines = log.lines.filter((l) => l.split(' ')[1] === event);
      if (lines.length >= count) return lines;
      await new Promise((r) => setImmediate(r));
    }
    throw new Error(`no ${count} × ${event} in the log:\n${log.lines.join('\n')}`);
  };
  return { clock, transport, store, fed, events, log, keys, lastConfig, uploader, silent, until, logged };
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
  // the reply names the round the federation is in now (none, between rounds)
  assert.throws(
    () => t.fed.upload('c', k.signing.publicKey, late),
    (e) => code('ROUND_CLOSED')(e) && /is closed; no round is running now/.test((e as Error).message),
  );
  assert.throws(
    () => t.fed.upload('c', k.signing.publicKey, { ...late, roundId: 'r99-x' }),
    (e) => code('WRONG_ROUND')(e) && /r99-x is not running; no round is running now/.test((e as Error).message),
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
      createStrategy(name, { minResults: s.minSites, ...s.strategyOptions[name] })
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
  await assert.rejects(
    fed.updateSettings({ strategy: 'fedmagic' }),
    (e) => isFedloraError(e, 'CONFIG_INVALID'),
  );
  await assert.rejects(fed.updateSettings({ strategy: 'fedprox', minSites: -1 }));
  assert.equal(fed.status().strategy, 'fedavg');
  assert.deepEqual(built, []);
  await fed.updateSettings({ strategy: 'fedprox', minSites: 3 });
  assert.equal(fed.status().strategy, 'fedprox');
  assert.deepEqual(built, ['fedprox:3']);
  await fed.close();
});

// ---- issue 23: a site's weight and norm are coordinator policy; rounds without a version cost no budget ----

const close = (a: number, b: number, tol = 1e-6) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

test('when one of three sites declares 1e9 examples, then its weight is capped at 3 × the median declared count and the version is the capped weighted mean', async () => {
  const t = await setup();
  t.uploader('a', biasDelta(0.1), 10);
  t.uploader('b', biasDelta(0.2), 20);
  t.uploader('m', biasDelta(-0.5), 1e9); // declared when ready and claimed in the upload

  const rec = await t.fed.runRound();

  // median of 10, 20, 1e9 = 20 → cap 60: (10·0.1 + 20·0.2 + 60·(−0.5)) / 90 = −25/90
  assert.equal(rec?.weightCap, 60);
  assert.equal(t.store.get('v1')?.examples, 90);
  const bias = (await t.store.loadState('v1'))['classifier.bias'].data;
  assert.ok(close(bias[0], -25 / 90), `bias ${bias[0]}`);
  assert.ok(
    t.log.lines.some(
      (l) =>
        l.includes('upload.accepted') && l.includes('site=m') && l.includes('claimedExamples=1000000000'),
    ),
  );
});

test('when the settings give equal weights or a fixed cap, then every strategy input carries that weight', async () => {
  const equal = await setup({ siteWeights: 'equal' });
  equal.uploader('a', biasDelta(0.1), 10);
  equal.uploader('b', biasDelta(0.2), 20);
  equal.uploader('m', biasDelta(-0.5), 1e9);
  assert.equal((await equal.fed.runRound())?.weightCap, 1);
  // (0.1 + 0.2 − 0.5) / 3
  assert.ok(close((await equal.store.loadState('v1'))['classifier.bias'].data[0], -0.2 / 3));

  const fixed = await setup({ maxSiteWeight: 15 });
  fixed.uploader('a', biasDelta(0.1), 10);
  fixed.uploader('b', biasDelta(0.2), 20);
  fixed.uploader('m', biasDelta(-0.5), 1e9);
  assert.equal((await fixed.fed.runRound())?.weightCap, 15);
  // (10·0.1 + 15·0.2 + 15·(−0.5)) / 40
  assert.ok(close((await fixed.store.loadState('v1'))['classifier.bias'].data[0], -3.5 / 40));
});

test('when one site sends an update ~900× an honest step, then by default it is clipped to the optimizer ceiling and the honest updates pass unchanged', async () => {
  const t = await setup({ maxDeltaNorm: DEFAULT_SETTINGS.maxDeltaNorm });
  // honest: every weight moved by half of lr × 12 steps, as AdamW does; poisoned: 900 times that
  const honest = 0.5 * DEFAULT_SETTINGS.learningRate * DEFAULT_SETTINGS.maxSteps;
  t.uploader('a', everyWeight(honest), 10);
  t.uploader('b', everyWeight(honest), 10);
  t.uploader('m', everyWeight(900 * honest), 10);

  const rec = await t.fed.runRound();

  const ceiling = optimizerNormCeiling(tinyAdapter(0), DEFAULT_SETTINGS);
  assert.ok(ceiling > norm30(honest) && ceiling < 3 * norm30(honest), `ceiling ${ceiling}`);
  assert.equal(rec?.outcome, 'aggregated');
  assert.equal(rec?.deltaNormBound, ceiling);
  assert.equal(rec?.clipped?.length, 1);
  assert.equal(rec?.clipped?.[0].siteId, 'm');
  assert.ok(close(rec?.clipped?.[0].norm ?? 0, norm30(900 * honest), 1e-5));
  // the poisoned delta scaled to norm = ceiling, the honest ones as sent: mean of the three
  const expected = (2 * honest + ceiling / Math.sqrt(30)) / 3;
  for (const t2 of Object.values(await t.store.loadState('v1')))
    for (const x of t2.data) assert.ok(close(x, expected, 1e-5), `weight ${x} vs ${expected}`);
  assert.equal(t.log.lines.filter((l) => l.includes('upload.clipped')).length, 1);
});

test('when the norm policy rejects, then the poisoned update is DELTA_INVALID and the version is the honest mean', async () => {
  const t = await setup({ maxDeltaNorm: DEFAULT_SETTINGS.maxDeltaNorm, deltaNormPolicy: 'reject' });
  const honest = 0.5 * DEFAULT_SETTINGS.learningRate * DEFAULT_SETTINGS.maxSteps;
  t.uploader('a', everyWeight(honest), 10);
  t.uploader('b', everyWeight(honest), 10);
  const k = generateSiteKeys();
  const refused: unknown[] = [];
  t.transport.addSite('m', {
    onTrain: (cfg) => {
      try {
        t.fed.upload('m', k.signing.publicKey, makeUpload(k, 'm', cfg, everyWeight(900 * honest)));
      } catch (err) {
        refused.push(err);
      }
    },
  });

  const running = t.fed.runRound();
  // m may upload again until the deadline: the round waits for it
  await t.until((e) => e.type === 'round:stage' && e.stage === 'collect');
  await t.until(() => t.events.filter((e) => e.type === 'upload').length === 3);
  t.clock.advance(60_000);
  const rec = await running;

  assert.ok(code('DELTA_INVALID')(refused[0]), String(refused[0]));
  assert.equal(rec?.updates, 2);
  assert.deepEqual(rec?.rejections, [{ siteId: 'm', code: 'DELTA_INVALID' }]);
  assert.deepEqual(rec?.clipped, []);
  for (const x of (await t.store.loadState('v1'))['classifier.bias'].data) assert.ok(close(x, honest, 1e-5));
});

test('when honest norms are known from earlier rounds, then the bound follows 3 × their median and a settings change of the learning rate resets it', async () => {
  const t = await setup({ maxDeltaNorm: DEFAULT_SETTINGS.maxDeltaNorm });
  const ceiling = optimizerNormCeiling(tinyAdapter(0), DEFAULT_SETTINGS);
  // per-weight moves by round; round 2's site c is under the ceiling but far above the others
  const moves: Record<string, number[]> = {
    a: [0.002, 0.004, 0.001],
    b: [0.003, 0.006, 0.001],
    c: [0.004, 0.02, 0.001],
  };
  for (const id of ['a', 'b', 'c']) t.uploader(id, (round) => everyWeight(moves[id][round - 1]), 10);

  const r1 = await t.fed.runRound();
  const r2 = await t.fed.runRound();

  // round 1 has no history: the optimizer ceiling
  assert.equal(r1?.deltaNormBound, ceiling);
  assert.deepEqual(r1?.clipped, []);
  // round 2: 3 × the median of round 1's norms (0.003·√30)
  const bound2 = 3 * norm30(0.003);
  assert.ok(close(r2?.deltaNormBound ?? 0, bound2), `bound ${r2?.deltaNormBound} vs ${bound2}`);
  assert.ok(norm30(0.02) < ceiling, 'the ceiling alone would have let c through');
  assert.deepEqual(
    r2?.clipped?.map((c) => c.siteId),
    ['c'],
  );
  const w2 = (await t.store.loadState('v2'))['classifier.bias'].data[0];
  const v1 = (await t.store.loadState('v1'))['classifier.bias'].data[0];
  assert.ok(close(w2 - v1, (0.004 + 0.006 + bound2 / Math.sqrt(30)) / 3, 1e-4), `step ${w2 - v1}`);

  // round 3: the median of the six norms as sent (0.002, 0.003, 0.004, 0.004, 0.006, 0.02 per weight) = 0.004·√30
  const r3 = await t.fed.runRound();
  assert.ok(close(r3?.deltaNormBound ?? 0, 3 * norm30(0.004)), `bound ${r3?.deltaNormBound}`);

  // a new learning rate: honest norms of the old one say nothing, the bound is the new ceiling again
  await t.fed.updateSettings({ learningRate: 4e-3 });
  const r4 = await t.fed.runRound();
  const ceiling4 = optimizerNormCeiling(tinyAdapter(0), { ...DEFAULT_SETTINGS, learningRate: 4e-3 });
  assert.ok(close(r4?.deltaNormBound ?? 0, ceiling4), `bound ${r4?.deltaNormBound} vs ${ceiling4}`);
});

test(
  'when rounds end without a version, then they do not count toward the rounds stop rule',
  { timeout: 20_000 },
  async () => {
    const t = await setup({}, { rounds: 2 }, { retryDelayMs: 1000, maxRetryDelayMs: 60_000 });
    t.uploader('a', biasDelta(0.1), 10);
    t.uploader('b', biasDelta(0.1), 10);
    const decline = (no: boolean) => {
      for (const id of ['a', 'b']) (t.transport.sites.get(id) as FakeSiteBehavior).configure = !no;
    };
    decline(true);

    t.fed.start();
    // three rounds that nobody joins: more than the rule's 2
    for (let n = 1; n <= 3; n++) {
      const retry = (await t.logged('round.retry', n))[n - 1];
      t.clock.advance(Number(/afterMs=(\d+)/.exec(retry)?.[1]));
    }
    await t.logged('round.retry', 4);
    assert.equal(t.fed.state, 'running');
    assert.equal(t.fed.stopReason(), null);
    decline(false);
    t.clock.advance(8000);
    await t.fed.whenStopped();

    assert.equal(t.fed.state, 'finished');
    assert.deepEqual(
      t.store.rounds().map((r) => [r.round, r.outcome]),
      [
        [1, 'kept'],
        [2, 'kept'],
        [3, 'kept'],
        [4, 'kept'],
        [5, 'aggregated'],
        [6, 'aggregated'],
      ],
    );
    assert.match(t.fed.status().finishedReason ?? '', /2 round\(s\) made a version/);
  },
);

test(
  'when rounds end without a version one after another, then the pause between them doubles up to the cap and resets after a version',
  { timeout: 20_000 },
  async () => {
    const t = await setup({}, {}, { retryDelayMs: 1000, maxRetryDelayMs: 4000 });
    t.uploader('a', biasDelta(0.1), 10);
    t.uploader('b', biasDelta(0.1), 10);
    const sites = ['a', 'b'].map((id) => t.transport.sites.get(id) as FakeSiteBehavior);
    for (const site of sites) site.configure = false;
    const roundsStarted = () =>
      t.events.filter((e) => e.type === 'round:stage' && e.stage === 'sample').length;
    t.fed.start();

    const expected = [1000, 2000, 4000, 4000];
    for (let n = 1; n <= expected.length; n++) {
      const retry = (await t.logged('round.retry', n))[n - 1];
      const ms = Number(/afterMs=(\d+)/.exec(retry)?.[1]);
      assert.equal(ms, expected[n - 1], `pause after ${n} round(s) without a version`);
      const started = roundsStarted();
      t.clock.advance(ms - 1);
      t.transport.addSite('late', { configure: false }); // a site coming online does not cut the pause short
      t.transport.removeSite('late');
      await new Promise((r) => setImmediate(r));
      assert.equal(roundsStarted(), started, `round ${n + 1} started before its pause of ${ms} ms ended`);
      if (n === expected.length)
        for (const site of sites) {
          // round 5 makes a version; each site declines again after its upload
          const upload = site.onTrain;
          site.configure = true;
          site.onTrain = (cfg, msg) => {
            site.configure = false;
            upload?.(cfg, msg);
          };
        }
      t.clock.advance(1);
    }

    await t.until((e) => e.type === 'version:new' && e.version.round === 5);
    const retry = (await t.logged('round.retry', 5))[4];
    assert.match(retry, /afterMs=1000 roundsWithoutVersion=1/);
    assert.equal(t.store.rounds().find((r) => r.round === 6)?.outcome, 'kept');
    t.fed.pause();
    await t.fed.whenStopped();
    assert.equal(t.fed.state, 'paused');
  },
);

test('when fedprox runs and its mu is changed between rounds, then the next round trains with the new mu and the round history shows it', async () => {
  // Arrange: fedprox (mu 0.01) built from the settings, as the coordinator builds it; two sites that upload
  const settings = { strategyOptions: { ...DEFAULT_SETTINGS.strategyOptions, fedprox: { proximalMu: 0.01 } } };
  const t = await setup(settings, {}, {}, {
    strategy: strategyFromSettings('fedprox', { ...DEFAULT_SETTINGS, ...settings }),
  });
  t.uploader('a', biasDelta(0.1), 10);
  t.uploader('b', biasDelta(0.2), 10);
  const r1 = await t.fed.runRound();
  assert.equal(t.lastConfig.get('a')?.config.proximalMu, 0.01);

  // Act: the operator changes mu only (PUT /api/settings underneath)
  await t.fed.updateSettings({ strategyOptions: { fedprox: { proximalMu: 0.5 } } });
  const r2 = await t.fed.runRound();

  // Assert: the sites of round 2 got the new mu, and each round's record carries the config its sites got
  assert.equal(t.lastConfig.get('a')?.config.proximalMu, 0.5);
  assert.equal(t.lastConfig.get('b')?.config.proximalMu, 0.5);
  assert.deepEqual(
    [r1?.config?.proximalMu, r2?.config?.proximalMu, r2?.strategy],
    [0.01, 0.5, 'fedprox'],
  );
  assert.equal(t.store.rounds()[1].config?.proximalMu, 0.5);
  assert.deepEqual(t.fed.settings.strategyOptions.fedprox, { proximalMu: 0.5 });

  // the issue's own call, {"proximalMu": 0.3}: an option of the running strategy may be given flat
  await t.fed.updateSettings({ proximalMu: 0.3 });
  await t.fed.runRound();
  assert.equal(t.lastConfig.get('a')?.config.proximalMu, 0.3);
  // a flat name that is no option of the running strategy is still refused, naming the field
  await assert.rejects(
    t.fed.updateSettings({ eta: 0.1 }),
    (e) => isFedloraError(e, 'CONFIG_INVALID') && /eta is not a setting/.test(e.message),
  );
  // with a strategy switch, flat options are the new strategy's
  await t.fed.updateSettings({ strategy: 'fedadam', eta: 0.07 });
  assert.equal(t.fed.settings.strategyOptions.fedadam.eta, 0.07);
});

test('when fedadam’s eta is changed between rounds, then the rebuilt strategy keeps its server moments', async () => {
  // Arrange: fedadam after one aggregated round (its moments m, v exist)
  const t = await setup({}, {}, {}, { strategy: strategyFromSettings('fedadam', DEFAULT_SETTINGS) });
  t.uploader('a', biasDelta(0.1), 10);
  t.uploader('b', biasDelta(0.2), 10);
  await t.fed.runRound();
  const state = (await t.store.loadStrategyState('v1'))!;

  // Act: a new server learning rate, and a bad option that must change nothing
  await assert.rejects(
    t.fed.updateSettings({ strategyOptions: { fedadam: { beta2: 1 } } }),
    (e) => isFedloraError(e, 'CONFIG_INVALID') && /strategyOptions\.fedadam\.beta2/.test(e.message),
  );
  await t.fed.updateSettings({ strategyOptions: { fedadam: { eta: 0.05 } } });
  const r2 = await t.fed.runRound();

  // Assert: step 2 continued from step 1's moments with the new eta
  assert.equal(r2?.outcome, 'aggregated');
  assert.equal((await t.store.loadStrategyState('v2'))?.step, state.step + 1);
  assert.deepEqual(t.fed.settings.strategyOptions.fedadam, { eta: 0.05, beta1: 0.9, beta2: 0.99, tau: 1e-3 });
});
