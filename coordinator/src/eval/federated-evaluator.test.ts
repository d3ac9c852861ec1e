// Federated evaluation at the coordinator (issue 20 must-show 2) with the fake transport: the sites' aggregates are
// combined into the metrics of the union of their held-out splits; a site that declines, times out or answers
// malformed is left out and logged; the federated figures stand beside a central evaluation or are the version's
// metrics without one, rounds run with no central held-out set, and the promotion policy can compare them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createStrategy } from '@fedlora/shared/aggregation/index.ts';
import { combineEvaluations } from '@fedlora/shared/evaluation/federated-evaluation.ts';
import { decodeAdapter } from '@fedlora/shared/protocol/codec.ts';
import { isFedloraError } from '@fedlora/shared/errors.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { memoryLogger } from '../log';
import { MemoryStorage } from '../storage';
import { AdapterRegistry } from '../registry/registry';
import { Federation } from '../rounds/federation';
import { DEFAULT_SETTINGS, DEFAULT_STOP } from '../rounds/settings';
import { metricValue, promotionDecision } from '../rounds/promotion';
import { FakeEvaluator, FakeTransport, ManualClock, generateSiteKeys, makeUpload, tinyAdapter } from '../rounds/fakes';
import type { EvaluateMessage } from '../rounds/types';
import { CandidateAdapters } from './candidate-adapters';
import { FederatedEvaluator, federatedEvaluation } from './federated-evaluator';

const LABELS = ['ham', 'spam'];
const CTX = { round: 3, roundId: 'r3-abcd', maxLength: 48 };

/** a site's answer: its confusion matrix, with loss `mean` per example */
const answer = (confusion: number[][], mean: number) => () => {
  const n = confusion.flat().reduce((a, b) => a + b, 0);
  return { numExamples: n, lossSum: mean * n, confusion };
};

function evaluator(transport: FakeTransport, o: { timeoutMs?: number } = {}) {
  const log = memoryLogger();
  const candidates = new CandidateAdapters();
  const fed = new FederatedEvaluator({
    transport,
    labels: LABELS,
    candidates,
    timeoutMs: () => o.timeoutMs ?? 1000,
    maxLength: () => 64,
    log,
  });
  return { fed, log, candidates };
}

test('when three sites answer, then the combination is the evaluation of their union, with a row per site and the worst site named', async () => {
  // Arrange
  const t = new FakeTransport();
  const a = [[8, 2], [1, 9]];
  const b = [[5, 0], [5, 0]];
  const c = [[3, 1], [0, 6]];
  t.addSite('site-a', { evaluate: answer(a, 0.3) });
  t.addSite('site-b', { evaluate: answer(b, 0.9) });
  t.addSite('site-c', { evaluate: answer(c, 0.2) });
  const { fed } = evaluator(t);

  // Act
  const m = await fed.evaluate(tinyAdapter(0.5), CTX);

  // Assert: the union's matrix is [[16, 3], [6, 15]]: 31 of 40 right
  const union = combineEvaluations(LABELS, [{ siteId: 'union', evaluation: { n: 40, lossSum: 20 * 0.3 + 10 * 0.9 + 10 * 0.2, confusion: [[16, 3], [6, 15]] } }]);
  assert.equal(m.examples, 40);
  assert.equal(m.accuracy, 31 / 40);
  assert.equal(m.macroF1, union.report.macroF1);
  assert.ok(Math.abs(m.loss - (6 + 9 + 2) / 40) < 1e-12);
  assert.deepEqual(m.sites.map((s) => [s.siteId, s.examples, s.accuracy]), [
    ['site-a', 20, 17 / 20],
    ['site-b', 10, 5 / 10],
    ['site-c', 10, 9 / 10],
  ]);
  assert.equal(m.worstSite, 'site-b');
  assert.equal(m.worstSiteAccuracy, 0.5);
  assert.deepEqual(m.missing, []);
  // every site got the candidate inline (it is small), its sha256, and the round's max length
  const msg = t.evaluateMessages[0].msg;
  assert.equal(t.evaluateMessages.length, 3);
  assert.equal(msg.versionId, 'r3-abcd.candidate');
  assert.equal(msg.maxLength, 48);
  assert.equal(decodeAdapter(msg.adapter as Uint8Array).adapter['classifier.bias'].data[0], 0.5);
});

test('when a site declines, times out, or answers malformed, then it is left out and logged, and the others are combined', async () => {
  // Arrange
  const t = new FakeTransport();
  t.addSite('good', { evaluate: answer([[4, 0], [1, 5]], 0.5) });
  t.addSite('no-split'); // declines: NO_HOLDOUT
  t.addSite('silent', { evaluate: () => 'hang' });
  // malformed: a 3 x 3 matrix for 2 labels; a total that is not numExamples; a negative count; a loss that is not finite
  t.addSite('wrong-shape', { evaluate: answer([[1, 0, 0], [0, 1, 0], [0, 0, 1]], 0.1) });
  t.addSite('wrong-total', { evaluate: () => ({ numExamples: 7, lossSum: 1, confusion: [[1, 1], [1, 1]] }) });
  t.addSite('negative', { evaluate: () => ({ numExamples: 1, lossSum: 1, confusion: [[2, -1], [0, 0]] }) });
  t.addSite('nan-loss', { evaluate: () => ({ numExamples: 2, lossSum: Number.NaN, confusion: [[1, 0], [0, 1]] }) });
  t.addSite('example-leak', { evaluate: () => ({ numExamples: 2, lossSum: 1, confusion: [[1, 0], [0, 1]], texts: ['a secret'] }) });
  const { fed, log } = evaluator(t, { timeoutMs: 50 });

  // Act
  const m = await fed.evaluate(tinyAdapter(0), CTX);

  // Assert
  assert.deepEqual(m.sites.map((s) => s.siteId), ['good']);
  assert.equal(m.accuracy, 9 / 10);
  assert.deepEqual(m.missing, [
    { siteId: 'example-leak', code: 'BAD_MESSAGE' },
    { siteId: 'nan-loss', code: 'BAD_MESSAGE' },
    { siteId: 'negative', code: 'BAD_MESSAGE' },
    { siteId: 'no-split', code: 'NO_HOLDOUT' },
    { siteId: 'silent', code: 'TIMEOUT' },
    { siteId: 'wrong-shape', code: 'BAD_MESSAGE' },
    { siteId: 'wrong-total', code: 'BAD_MESSAGE' },
  ]);
  const leftOut = log.lines.filter((l) => l.includes('evaluate.site_left_out'));
  assert.equal(leftOut.length, 6, leftOut.join('\n'));
  assert.ok(leftOut.some((l) => /site=wrong-shape .*2 x 2/.test(l)), leftOut.join('\n'));
  assert.ok(leftOut.some((l) => /site=wrong-total .*n = 7 is not the matrix's total 4/.test(l)), leftOut.join('\n'));
});

test('when no site returns an evaluation, then it fails with DATA_INVALID naming why each was left out', async () => {
  const t = new FakeTransport();
  t.addSite('no-split');
  const { fed } = evaluator(t);
  await assert.rejects(fed.evaluate(tinyAdapter(0), CTX), (e) => isFedloraError(e, 'DATA_INVALID') && /no-split: NO_HOLDOUT/.test(e.message));
});

test('when the candidate is over the inline limit, then the message names it and adapter:chunk can serve it only while it is evaluated', async () => {
  // Arrange: 1.2 MB of weights
  const big: NamedTensors = { 'classifier.weight': { shape: [300_000], data: new Float32Array(300_000).fill(0.25) } };
  const t = new FakeTransport();
  const { fed, candidates } = evaluator(t);
  let servedDuring: number | undefined;
  t.addSite('a', {
    evaluate: (msg: EvaluateMessage) => {
      servedDuring = candidates.get(msg.versionId)?.bytes.byteLength;
      return { numExamples: 1, lossSum: 0.1, confusion: [[1, 0], [0, 0]] };
    },
  });

  // Act
  await fed.evaluate(big, CTX);

  // Assert
  const msg = t.evaluateMessages[0].msg;
  assert.equal(msg.adapter, undefined);
  assert.ok((msg.adapterBytes ?? 0) > 1024 * 1024);
  assert.equal(servedDuring, msg.adapterBytes);
  assert.equal(candidates.get(msg.versionId), undefined, 'withdrawn once the evaluation is over');
});

test('when a central evaluator exists, then both sets of metrics are kept; without one, the federated ones are the metrics', async () => {
  // Arrange
  const t = new FakeTransport();
  t.addSite('a', { evaluate: answer([[3, 1], [1, 3]], 0.4) });
  const { fed, log } = evaluator(t);
  const central = new FakeEvaluator(); // accuracy 0.5 + mean bias

  // Act
  const both = await federatedEvaluation(central, fed, log).evaluate(tinyAdapter(0.25), CTX);
  const alone = await federatedEvaluation(null, fed, log).evaluate(tinyAdapter(0.25), CTX);
  t.removeSite('a');
  const centralOnly = await federatedEvaluation(central, fed, log).evaluate(tinyAdapter(0.25), CTX);

  // Assert
  assert.equal(both.accuracy, 0.75);
  assert.equal(both.source, undefined);
  assert.equal(both.federated?.accuracy, 6 / 8);
  assert.equal(alone.source, 'federated');
  assert.equal(alone.accuracy, 6 / 8);
  assert.equal(alone.loss, 0.4);
  assert.equal(centralOnly.accuracy, 0.75);
  assert.equal(centralOnly.federated, undefined, 'no site left: the central metrics stand alone');
  assert.ok(log.lines.some((l) => l.includes('evaluate.federated_failed')));
});

test('when a federation has no central held-out set, then each round\'s version gets the federated metrics and the policy can use them', async () => {
  // Arrange: three sites that train (uploads) and evaluate on their held-out splits
  const t = new FakeTransport();
  const store = await AdapterRegistry.open(new MemoryStorage());
  const log = memoryLogger();
  const fedEval = new FederatedEvaluator({ transport: t, labels: LABELS, candidates: new CandidateAdapters(), timeoutMs: () => 1000, maxLength: () => 64, log });
  const federation = new Federation({
    strategy: createStrategy('fedavg', {}),
    transport: t,
    evaluator: federatedEvaluation(null, fedEval, log),
    store,
    initialState: () => tinyAdapter(0),
    settings: { ...DEFAULT_SETTINGS, minSites: 2, sampleWaitS: 0, deadlineS: 60, maxDeltaNorm: 10, promotion: 'never-worse', promotionMetric: 'fed_worst_site_accuracy' },
    stop: DEFAULT_STOP,
    log,
    clock: new ManualClock(),
    rng: () => 0,
    retryDelayMs: 0,
  });
  await federation.init(); // no site yet: version 0 has no metrics, and the coordinator starts anyway
  const confusions: Record<string, number[][]> = { a: [[5, 1], [2, 4]], b: [[2, 2], [2, 2]], c: [[6, 0], [0, 6]] };
  for (const id of ['a', 'b', 'c']) {
    const keys = generateSiteKeys();
    t.addSite(id, {
      onTrain: (cfg) => federation.upload(id, keys.signing.publicKey, makeUpload(keys, id, cfg, tinyAdapter(0.01))),
      evaluate: answer(confusions[id], 0.5),
    });
  }

  // Act
  const rec = await federation.runRound();

  // Assert
  assert.equal(store.get('v0')?.metrics, null);
  assert.equal(rec?.outcome, 'aggregated');
  const v1 = store.get('v1');
  assert.equal(v1?.metrics?.source, 'federated');
  assert.equal(v1?.metrics?.accuracy, 25 / 32); // (5 + 4) + (2 + 2) + (6 + 6) of 12 + 8 + 12
  assert.deepEqual(v1?.metrics?.federated?.sites.map((s) => s.accuracy), [9 / 12, 0.5, 1]);
  assert.equal(metricValue(v1?.metrics, 'fed_worst_site_accuracy'), 0.5);
  // v0 had nothing to compare with: promoted; a later version whose worst site is worse stays a candidate
  assert.equal(store.currentId(), 'v1');
  const worse = { id: 'v2', metrics: { ...(v1?.metrics as NonNullable<typeof v1>['metrics'] & object), federated: { ...v1!.metrics!.federated!, worstSiteAccuracy: 0.4 } } };
  const d = promotionDecision({ promotion: 'never-worse', promotionMetric: 'fed_worst_site_accuracy', promotionTolerance: 0 }, worse, v1!);
  assert.equal(d.action, 'keep');
  await federation.close();
});
