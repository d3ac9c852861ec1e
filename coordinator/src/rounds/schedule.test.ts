// The schedule parser, the scheduler on a manual clock, the data trigger's rule, and triggered rounds in the round
// loop (why each round started, never over a running round, never while paused, data volume recorded).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedloraError } from '@fedlora/shared/errors.ts';
import { createStrategy } from '@fedlora/shared/aggregation/index.ts';
import type { SiteKeys } from '@fedlora/shared/crypto/keys.ts';
import { memoryLogger } from '../log';
import { MemoryStorage } from '../storage';
import { AdapterRegistry } from '../registry/registry';
import { Federation, type FederationEvent } from './federation';
import { DEFAULT_SETTINGS, DEFAULT_STOP, updateSettings, type RoundSettings } from './settings';
import { dataTrigger, parseSchedule, RoundScheduler, type RoundTrigger } from './schedule';
import { FakeEvaluator, FakeTransport, ManualClock, generateSiteKeys, makeUpload, tinyAdapter } from './fakes';

const HOUR = 3_600_000;

test('when a schedule says "every 6h", "every 30 min" or "every 3s", then the next run is that long after', () => {
  assert.equal(parseSchedule('every 6h').next(1000), 1000 + 6 * HOUR);
  assert.equal(parseSchedule('every 30 min').next(0), 30 * 60_000);
  assert.equal(parseSchedule('Every 3 seconds').next(5), 3005);
  assert.equal(parseSchedule('every 2d').kind, 'interval');
});

test('when a schedule is a cron expression, then croner computes the next run (5 or 6 fields)', () => {
  const daily = parseSchedule('0 3 * * *');
  assert.equal(daily.kind, 'cron');
  const from = new Date(2026, 0, 1, 4, 0, 0).getTime(); // local time: cron runs in the coordinator's time zone
  assert.equal(daily.next(from), new Date(2026, 0, 2, 3, 0, 0).getTime());
  assert.equal(parseSchedule('*/10 * * * * *').next(new Date(2026, 0, 1, 0, 0, 1).getTime()), new Date(2026, 0, 1, 0, 0, 10).getTime());
});

test('when a schedule is malformed, then CONFIG_INVALID names it', () => {
  for (const bad of ['every', 'every 6 weeks', 'every 0s', 'every 400d', 'sometimes', '61 * * * *', ''])
    assert.throws(() => parseSchedule(bad), (e) => isFedloraError(e, 'CONFIG_INVALID') && e.message.includes('schedule'), bad);
});

test('when settings carry a bad schedule or half a data trigger, then the patch is refused naming the field', () => {
  const cur = { settings: DEFAULT_SETTINGS, stop: DEFAULT_STOP };
  assert.throws(() => updateSettings(cur, { schedule: 'every blue moon' }), /schedule/);
  assert.throws(() => updateSettings(cur, { retrainMinSites: 2 }), /retrainMinNew/);
  assert.throws(() => updateSettings(cur, { retrainMinNew: 0, retrainMinSites: 1 }), /retrainMinNew/);
  const ok = updateSettings(cur, { schedule: 'every 6h', retrainMinSites: 2, retrainMinNew: 200 });
  assert.equal(ok.settings.schedule, 'every 6h');
  assert.equal(updateSettings(ok, { schedule: null }).settings.schedule, null);
});

test('when the manual clock passes each interval, then the scheduler fires once per tick, and never after stop', async () => {
  const clock = new ManualClock();
  const fired: RoundTrigger[] = [];
  const s = new RoundScheduler({ clock, log: memoryLogger(), fire: (t) => fired.push(t) });
  const t0 = clock.now();
  s.set(parseSchedule('every 1h'));
  await new Promise((r) => setImmediate(r));
  assert.equal(s.next, t0 + HOUR);
  clock.advance(HOUR - 1);
  await new Promise((r) => setImmediate(r));
  assert.equal(fired.length, 0);
  clock.advance(1);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(fired, [{ kind: 'schedule', detail: 'every 1h' }]);
  assert.equal(s.next, t0 + 2 * HOUR);
  // a late tick (the machine slept through three) fires once
  clock.advance(3 * HOUR);
  await new Promise((r) => setImmediate(r));
  assert.equal(fired.length, 2);
  s.stop();
  clock.advance(10 * HOUR);
  await new Promise((r) => setImmediate(r));
  assert.equal(fired.length, 2);
  assert.equal(s.next, null);
});

test('when K sites have >= M new examples, then the data trigger holds, and not with fewer', () => {
  const site = (siteId: string, newExamples?: number) => ({ siteId, numExamples: 500, newExamples, encodings: ['fp32' as const] });
  const rule = { minSites: 2, minNew: 200 };
  assert.equal(dataTrigger(rule, [site('a', 200), site('b', 199), site('c')]), null);
  assert.equal(dataTrigger(rule, [site('a', 200), site('b', 250)])?.kind, 'data');
  assert.match(dataTrigger(rule, [site('a', 200), site('b', 250)])?.detail ?? '', /2 site\(s\) with >= 200 new/);
  assert.equal(dataTrigger(null, [site('a', 1e6)]), null);
});

async function setup(settings: Partial<RoundSettings>, rounds: number | null = 1) {
  const clock = new ManualClock();
  const transport = new FakeTransport();
  const store = await AdapterRegistry.open(new MemoryStorage());
  const events: FederationEvent[] = [];
  const log = memoryLogger();
  const fed = new Federation({
    strategy: createStrategy('fedavg', {}),
    transport,
    evaluator: new FakeEvaluator(),
    store,
    initialState: () => tinyAdapter(0),
    settings: { ...DEFAULT_SETTINGS, minSites: 1, sampleWaitS: 0, deadlineS: 60, maxDeltaNorm: 10, ...settings },
    stop: { ...DEFAULT_STOP, rounds },
    log,
    clock,
    rng: () => 0,
    retryDelayMs: 0,
    onEvent: (e) => events.push(e),
  });
  await fed.init();
  /** a site whose uploads report `data().newExamples` of `data().numExamples`; with `hold`, it uploads when released */
  const site = (siteId: string, data: () => { numExamples: number; newExamples: number }, hold?: Promise<void>) => {
    const k: SiteKeys = generateSiteKeys();
    transport.addSite(
      siteId,
      {
        onTrain: (cfg) =>
          void (hold ?? Promise.resolve()).then(() => {
            const d = data();
            try {
              fed.upload(siteId, k.signing.publicKey, makeUpload(k, siteId, cfg, tinyAdapter(0.01), d));
            } catch (err) {
              log('test.upload.refused', { site: siteId, error: String(err) });
            }
          }),
      },
      data().numExamples,
    );
  };
  const settle = async (pred: () => boolean) => {
    for (let i = 0; i < 10_000 && !pred(); i++) await new Promise((r) => setImmediate(r));
    assert.ok(pred(), `not reached:\n${log.lines.join('\n')}`);
  };
  return { clock, transport, store, fed, events, log, site, settle };
}

test('when the schedule fires after the startup run finished, then one round runs, records why and its data volume, and the state is finished again', async () => {
  const t = await setup({ schedule: 'every 6h' });
  let counts = { numExamples: 40, newExamples: 40 };
  t.site('a', () => counts);
  t.fed.start({ kind: 'startup' });
  await t.fed.whenStopped();
  assert.equal(t.fed.state, 'finished');
  const r1 = (await t.store.rounds())[0];
  assert.deepEqual(r1.trigger, { kind: 'startup' });
  assert.equal(r1.examples, 40);
  assert.equal(r1.newExamples, 40);

  // the file grew by 200 rows between rounds: the site reports it, and the scheduled round trains on it
  counts = { numExamples: 240, newExamples: 200 };
  t.transport.setData('a', 240, 200);
  t.clock.advance(6 * HOUR);
  await t.settle(() => t.store.rounds().length === 2 && t.fed.state === 'finished');
  const r2 = t.store.rounds()[1];
  assert.deepEqual(r2.trigger, { kind: 'schedule', detail: 'every 6h' });
  assert.equal(r2.outcome, 'aggregated');
  assert.equal(r2.examples, 240);
  assert.equal(r2.newExamples, 200);
  const v2 = t.store.get(r2.versionId as string);
  assert.deepEqual(v2?.trigger, { kind: 'schedule', detail: 'every 6h' });
  assert.equal(v2?.examples, 240);
  assert.equal(v2?.newExamples, 200);
  assert.equal(t.fed.status().retraining.nextScheduledAt, new Date(t.clock.now() + 6 * HOUR).toISOString());
});

test('when a scheduled tick comes while a round runs or while paused, then it is skipped and logged, never overlapping', async () => {
  const t = await setup({ schedule: 'every 1h' }, null);
  let release = () => {};
  const hold = new Promise<void>((r) => (release = r));
  t.site('a', () => ({ numExamples: 10, newExamples: 0 }), hold);
  assert.equal(t.fed.triggerRound({ kind: 'manual' }), true);
  await t.settle(() => t.fed.status().round?.stage === 'collect');
  t.clock.advance(HOUR); // the schedule's tick while the round collects
  await t.settle(() => t.events.some((e) => e.type === 'round:skipped'));
  assert.deepEqual(
    t.events.find((e) => e.type === 'round:skipped'),
    { type: 'round:skipped', trigger: { kind: 'schedule', detail: 'every 1h' }, reason: 'a round is running' },
  );
  release();
  await t.settle(() => t.store.rounds().length === 1 && t.fed.state === 'idle');

  t.fed.start();
  t.fed.pause();
  await t.fed.whenStopped();
  const before = t.store.rounds().length;
  t.clock.advance(HOUR);
  await t.settle(() => t.log.lines.some((l) => l.includes('round.skipped') && l.includes('paused')));
  assert.equal(t.fed.state, 'paused');
  assert.equal(t.store.rounds().length, before);
});

test('when K sites come to report >= M new examples, then a data-triggered round starts once and not again after it trained on them', async () => {
  const t = await setup({ retrainMinSites: 2, retrainMinNew: 200 });
  const counts: Record<string, { numExamples: number; newExamples: number }> = {
    a: { numExamples: 300, newExamples: 250 },
    b: { numExamples: 300, newExamples: 100 },
  };
  t.site('a', () => counts.a);
  t.site('b', () => counts.b);
  t.transport.setData('a', 300, 250);
  t.transport.setData('b', 300, 100);
  await new Promise((r) => setImmediate(r));
  assert.equal(t.fed.state, 'idle', 'one site with enough new data is not enough');

  counts.b = { numExamples: 500, newExamples: 300 };
  t.transport.setData('b', 500, 300);
  await t.settle(() => t.store.rounds().length === 1 && t.fed.state === 'idle');
  const r = t.store.rounds()[0];
  assert.equal(r.trigger?.kind, 'data');
  assert.match(r.trigger?.detail ?? '', /2 site\(s\) with >= 200 new examples/);
  assert.equal(r.examples, 800);
  assert.equal(r.newExamples, 550);

  // the sites trained on it and say so: nothing new, no round
  t.transport.setData('a', 300, 0);
  t.transport.setData('b', 500, 0);
  for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
  assert.equal(t.store.rounds().length, 1);
});
