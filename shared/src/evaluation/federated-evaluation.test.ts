// Issue 20 must-show 2 (the arithmetic): federated evaluation, from each site's confusion matrix and loss sum only,
// equals one central evaluation on the union of the sites' held-out splits; and a site's malformed evaluation is
// refused with a reason.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { classificationReport } from '../training/metrics';
import { checkSiteEvaluation, combineEvaluations, siteEvaluation } from './federated-evaluation';

const LABELS = ['a', 'b', 'c', 'd'];

test('when sites evaluate their own held-out splits, then the combined accuracy, macro-F1, per-class figures and loss equal a central evaluation of their union', () => {
  fc.assert(
    fc.property(
      // 1-6 sites, each with 1-40 (true, predicted, loss) triples
      fc.array(fc.array(fc.tuple(fc.nat(3), fc.nat(3), fc.double({ min: 0, max: 5, noNaN: true })), { minLength: 1, maxLength: 40 }), { minLength: 1, maxLength: 6 }),
      (shards) => {
        const perSite = shards.map((rows, i) => {
          const meanLoss = rows.reduce((s, r) => s + r[2], 0) / rows.length;
          return { siteId: `site-${i}`, evaluation: siteEvaluation(rows.map((r) => r[0]), rows.map((r) => r[1]), LABELS.length, meanLoss) };
        });
        const union = shards.flat();

        const fed = combineEvaluations(LABELS, perSite);
        const central = classificationReport(union.map((r) => r[0]), union.map((r) => r[1]), LABELS);
        const centralLoss = union.reduce((s, r) => s + r[2], 0) / union.length;

        assert.deepEqual(fed.report, central);
        assert.ok(Math.abs(fed.loss - centralLoss) <= 1e-9 * Math.max(1, centralLoss));
        const worst = Math.min(...fed.sites.map((s) => s.accuracy));
        assert.equal(fed.worstSite.accuracy, worst);
        assert.equal(fed.sites.reduce((s, x) => s + x.n, 0), union.length);
      },
    ),
    { numRuns: 200 },
  );
});

test('when a site sends a malformed evaluation, then it is refused naming the site and the fault', () => {
  const good = siteEvaluation([0, 1, 2], [0, 1, 1], 4, 0.5);
  const cases: [string, unknown, RegExp][] = [
    ['a 3 x 3 matrix', { ...good, confusion: good.confusion.slice(0, 3).map((r) => r.slice(0, 3)) }, /must be 4 x 4/],
    ['a negative count', { ...good, confusion: good.confusion.map((r, i) => (i === 0 ? [-1, 0, 0, 0] : r)) }, /non-negative integers/],
    ['a fractional count', { ...good, confusion: good.confusion.map((r, i) => (i === 0 ? [0.5, 0, 0, 0] : r)) }, /non-negative integers/],
    ['n that is not the total', { ...good, n: 99 }, /n = 99 is not the matrix's total 3/],
    ['a NaN loss', { ...good, lossSum: NaN }, /lossSum must be finite/],
  ];
  for (const [what, e, why] of cases)
    assert.throws(() => checkSiteEvaluation(e as typeof good, 4, 'site-x'), (err: Error & { code?: string }) => err.code === 'BAD_MESSAGE' && /site-x/.test(err.message) && why.test(err.message), what);
  assert.throws(() => combineEvaluations(LABELS, []), { code: 'DATA_INVALID' });
});
