// Promotion and approval (issue 20, must-show 3): a new version is a candidate; the promotion policy decides, and
// every decision is recorded on the version with who, why and the metrics compared. Round loop with in-memory fakes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedloraError } from '@fedlora/shared/errors.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { createStrategy } from '@fedlora/shared/aggregation/index.ts';
import { memoryLogger } from '../log';
import { MemoryStorage } from '../storage';
import { AdapterRegistry } from '../registry/registry';
import type { HeldoutMetrics, VersionRecord } from '../registry/types';
import { Federation } from './federation';
import { DEFAULT_SETTINGS, DEFAULT_STOP, type RoundSettings, type StopRules } from './settings';
import { FakeEvaluator, FakeTransport, ManualClock, generateSiteKeys, makeUpload, tinyAdapter } from './fakes';
import { bestVersion, promotionDecision } from './promotion';

const code = (c: string) => (err: unknown) => isFedloraError(err) && err.code === c;

/** A delta that only moves classifier.bias by `b` (the fake evaluator's accuracy is 0.5 + mean bias). */
function biasDelta(b: number): NamedTensors {
  const d = tinyAdapter(0);
  d['classifier.bias'].data.fill(b);
  return d;
}

/** A federation of two fake sites that upload `bias(round)` as their delta. */
async function setup(settings: Partial<RoundSettings>, bias: (round: number) => number, stop: Partial<StopRules> = {}) {
  const transport = new FakeTransport();
  const store = await AdapterRegistry.open(new MemoryStorage());
  const log = memoryLogger();
  const fed = new Federation({
    strategy: createStrategy('fedavg', {}),
    transport,
    evaluator: new FakeEvaluator(),
    store,
    initialState: () => tinyAdapter(0),
    settings: { ...DEFAULT_SETTINGS, minSites: 2, sampleWaitS: 0, deadlineS: 60, maxDeltaNorm: 10, ...settings },
    stop: { ...DEFAULT_STOP, ...stop },
    log,
    clock: new ManualClock(),
    rng: () => 0,
    retryDelayMs: 0,
  });
  await fed.init();
  for (const id of ['a', 'b']) {
    const k = generateSiteKeys();
    transport.addSite(id, { onTrain: (cfg) => fed.upload(id, k.signing.publicKey, makeUpload(k, id, cfg, biasDelta(bias(cfg.round)), { numExamples: 10 })) }, 10);
  }
  return { fed, store, transport, log };
}

const acc = (v: VersionRecord | undefined) => Number(v?.metrics?.accuracy.toFixed(6));
const last = (v: VersionRecord | undefined) => v?.decisions?.at(-1);

test('when the policy is never-worse, then a worse candidate stays a candidate and the next round trains from the current version', async () => {
  // v1: bias +0.2 → 0.7 (promoted); v2 from v1: −0.3 → 0.4 (worse: kept); v3 from v1 again: +0.1 → 0.8 (promoted)
  const t = await setup({ promotion: 'never-worse' }, (r) => (r === 1 ? 0.2 : r === 2 ? -0.3 : 0.1));
  await t.fed.runRound();
  assert.equal(t.store.currentId(), 'v1');
  const r2 = await t.fed.runRound();
  assert.equal(r2?.outcome, 'aggregated');
  const v2 = t.store.get('v2');
  assert.equal(acc(v2), 0.4);
  assert.equal(v2?.status, 'candidate');
  assert.equal(t.store.currentId(), 'v1', 'the worse candidate did not become current');
  assert.deepEqual(
    [last(v2)?.action, last(v2)?.actor, last(v2)?.policy, last(v2)?.metric, last(v2)?.currentId, Number(last(v2)?.value?.toFixed(6)), Number(last(v2)?.currentValue?.toFixed(6))],
    ['keep', 'policy', 'never-worse', 'accuracy', 'v1', 0.4, 0.7],
  );
  assert.match(last(v2)?.reason ?? '', /worse, stays a candidate/);
  assert.ok(!t.transport.publishedMessages.some((m) => m.versionId === 'v2'), 'sites are not told about a candidate');
  const r3 = await t.fed.runRound();
  assert.equal(r3?.baseVersionId, 'v1', 'round 3 trained from the current version, not the candidate');
  assert.equal(t.store.get('v3')?.parent, 'v1');
  assert.equal(acc(t.store.get('v3')), 0.8);
  assert.equal(t.store.currentId(), 'v3');
  assert.equal(t.transport.publishedMessages.at(-1)?.versionId, 'v3');
  assert.equal(t.fed.status().currentVersionId, 'v3');
});

test('when the policy is manual, then a candidate waits for an admin; approval makes it current and rejection keeps it out, both recorded', async () => {
  const t = await setup({ promotion: 'manual' }, (r) => (r === 1 ? 0.1 : -0.2));
  await t.fed.runRound();
  const v1 = t.store.get('v1');
  assert.equal(v1?.status, 'candidate');
  assert.deepEqual([last(v1)?.action, last(v1)?.actor, last(v1)?.policy], ['wait', 'policy', 'manual']);
  assert.equal(t.store.currentId(), 'v0', 'it waits for approval');
  const r2 = await t.fed.runRound();
  assert.equal(r2?.baseVersionId, 'v0', 'rounds go on from the current version meanwhile');
  assert.equal(t.store.get('v2')?.status, 'candidate');

  const approved = await t.fed.approve('v1', 'admin (token)', 'reviewed by the board');
  assert.equal(approved.status, 'promoted');
  assert.equal(t.store.currentId(), 'v1');
  assert.equal(t.transport.publishedMessages.at(-1)?.versionId, 'v1', 'sites are told once it is approved');
  assert.deepEqual(
    [last(approved)?.action, last(approved)?.actor, last(approved)?.reason, last(approved)?.currentId],
    ['approve', 'admin (token)', 'reviewed by the board', 'v0'],
  );
  const rejected = await t.fed.reject('v2', 'admin (session 0123456789ab)', 'worse on the held-out set');
  assert.equal(rejected.status, 'rejected');
  assert.equal(t.store.currentId(), 'v1');
  assert.deepEqual([last(rejected)?.action, last(rejected)?.actor, last(rejected)?.reason], ['reject', 'admin (session 0123456789ab)', 'worse on the held-out set']);
  // decided once: a rejected version is not approved, an approved one not rejected; an explicit promote still works
  await assert.rejects(t.fed.approve('v2', 'admin (token)', 'second thoughts'), code('CONFLICT'));
  await assert.rejects(t.fed.reject('v1', 'admin (token)', 'too late'), code('CONFLICT'));
  const promoted = await t.fed.promote('v2', { actor: 'admin (token)', reason: 'roll forward after all' });
  assert.deepEqual(promoted.decisions?.map((d) => d.action), ['wait', 'reject', 'promote']);
  assert.equal(t.store.currentId(), 'v2');
  assert.equal(t.transport.publishedMessages.at(-1)?.versionId, 'v2', 'sites are told of a promotion (a roll back too)');
});

test('when the policy is auto, then a candidate within the tolerance is promoted and one beyond it is kept', async () => {
  // v1: +0.2 → 0.7; v2: −0.05 → 0.65 (within 0.1: promoted); v3 from v2: −0.2 → 0.45 (kept)
  const t = await setup({ promotion: 'auto', promotionTolerance: 0.1 }, (r) => (r === 1 ? 0.2 : r === 2 ? -0.05 : -0.2));
  await t.fed.runRound();
  await t.fed.runRound();
  assert.equal(t.store.currentId(), 'v2');
  assert.equal(last(t.store.get('v2'))?.action, 'promote');
  await t.fed.runRound();
  assert.equal(t.store.currentId(), 'v2');
  assert.equal(t.store.get('v3')?.status, 'candidate');
});

test('when early stopping triggers, then the best version becomes current again and the restore is recorded', async () => {
  // always: v1 0.7, v2 0.6, v3 0.5 all become current; patience 2 stops after v3 and restores v1
  const t = await setup({ promotion: 'always' }, (r) => (r === 1 ? 0.2 : -0.1), { patience: 2 });
  t.fed.start();
  await t.fed.whenStopped();
  assert.equal(t.fed.state, 'finished');
  assert.equal(t.store.lastRound(), 3);
  assert.equal(t.store.currentId(), 'v1');
  const d = last(t.store.get('v1'));
  assert.deepEqual([d?.action, d?.actor, d?.currentId, Number(d?.value?.toFixed(6)), Number(d?.currentValue?.toFixed(6))], ['restore', 'early-stop', 'v3', 0.7, 0.5]);
  assert.match(d?.reason ?? '', /early stopping \(no better accuracy in 2 version\(s\) \(patience 2\)\): v1 has the best accuracy/);
  assert.equal(t.transport.publishedMessages.at(-1)?.versionId, 'v1');
  assert.equal(t.fed.status().currentVersionId, 'v1');
});

const m = (accuracy: number, loss = 1 - accuracy): HeldoutMetrics => ({ accuracy, macroF1: accuracy, loss, examples: 10, perClass: [] });

test('when the policy compares, then loss counts lower as better, a missing metric is never promoted over one that exists, and always/manual ignore metrics', () => {
  const cur = { id: 'v1', metrics: m(0.7, 0.5) };
  const s = (promotion: RoundSettings['promotion'], promotionMetric: RoundSettings['promotionMetric'] = 'accuracy', promotionTolerance = 0) => ({ promotion, promotionMetric, promotionTolerance });
  assert.equal(promotionDecision(s('never-worse', 'loss'), { id: 'v2', metrics: m(0.6, 0.4) }, cur).action, 'promote');
  assert.equal(promotionDecision(s('never-worse', 'loss'), { id: 'v2', metrics: m(0.8, 0.6) }, cur).action, 'keep');
  assert.equal(promotionDecision(s('auto', 'loss', 0.1), { id: 'v2', metrics: m(0.8, 0.6) }, cur).action, 'promote');
  assert.equal(promotionDecision(s('never-worse'), { id: 'v2', metrics: m(0.7) }, cur).action, 'promote', 'equal is not worse');
  assert.equal(promotionDecision(s('auto'), { id: 'v2', metrics: null }, cur).action, 'keep');
  assert.equal(promotionDecision(s('auto'), { id: 'v2', metrics: m(0.1) }, { id: 'v1', metrics: null }).action, 'promote');
  assert.equal(promotionDecision(s('always'), { id: 'v2', metrics: m(0.1) }, cur).action, 'promote');
  assert.equal(promotionDecision(s('manual'), { id: 'v2', metrics: m(0.9) }, cur).action, 'wait');
  const vs = (id: string, a: number, status?: VersionRecord['status']) => ({ id, metrics: m(a), status }) as VersionRecord;
  assert.equal(bestVersion([vs('v0', 0.5), vs('v1', 0.9, 'candidate'), vs('v2', 0.95, 'rejected'), vs('v3', 0.7), vs('v4', 0.7)], 'accuracy')?.id, 'v3');
  assert.equal(bestVersion([vs('v0', 0.5), vs('v1', 0.4)], 'loss')?.id, 'v0');
});
