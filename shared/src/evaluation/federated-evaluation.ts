// Federated evaluation: each site scores a candidate adapter on its own held-out split and returns only aggregates
// (its confusion matrix and summed loss, never an example), and the coordinator combines them. The combined accuracy,
// macro-F1 and loss are exactly those of one evaluation on the union of the sites' splits, because each is a
// function of the summed confusion matrix and loss sum (training/metrics.ts reportFromConfusion); the per-site figures
// keep the worst site visible. Usable when the coordinator holds no labelled data.

import { FedloraError } from '../errors';
import { confusionMatrix, reportFromConfusion, type ClassificationReport } from '../training/metrics';

/** What a site returns for one evaluation: counts and a sum, nothing from which an example could be read back. */
export interface SiteEvaluation {
  /** held-out examples scored */
  n: number;
  /** the sum of the examples' cross-entropy losses */
  lossSum: number;
  /** k x k counts; rows are true classes, columns predicted classes, in the federation's label order */
  confusion: number[][];
}

export interface SiteEvaluationRow {
  siteId: string;
  n: number;
  accuracy: number;
  macroF1: number;
  loss: number;
}

export interface FederatedEvaluation {
  /** the report of the union of the sites' held-out splits */
  report: ClassificationReport;
  /** example-weighted mean loss over the union */
  loss: number;
  sites: SiteEvaluationRow[];
  /** the site with the lowest accuracy (fairness: one badly served site is not hidden by the mean) */
  worstSite: SiteEvaluationRow;
}

/** A site's aggregate of its own predictions (yTrue, yPred class ids; per-example losses or their mean). */
export function siteEvaluation(yTrue: readonly number[], yPred: readonly number[], numLabels: number, meanLoss: number): SiteEvaluation {
  return { n: yTrue.length, lossSum: meanLoss * yTrue.length, confusion: confusionMatrix(yTrue, yPred, numLabels) };
}

/**
 * Checks a site's evaluation as untrusted input: BAD_MESSAGE naming what is wrong (shape, negative or fractional
 * counts, n that is not the matrix's total, a loss that is not finite and non-negative).
 */
export function checkSiteEvaluation(e: SiteEvaluation, numLabels: number, siteId: string): void {
  const bad = (why: string) => new FedloraError('BAD_MESSAGE', `evaluation from ${siteId}: ${why}`);
  if (!Array.isArray(e.confusion) || e.confusion.length !== numLabels || e.confusion.some((r) => !Array.isArray(r) || r.length !== numLabels))
    throw bad(`the confusion matrix must be ${numLabels} x ${numLabels}`);
  let total = 0;
  for (const row of e.confusion)
    for (const x of row) {
      if (!Number.isSafeInteger(x) || x < 0) throw bad('counts must be non-negative integers');
      total += x;
    }
  if (!Number.isSafeInteger(e.n) || e.n <= 0 || e.n !== total) throw bad(`n = ${e.n} is not the matrix's total ${total}`);
  if (!Number.isFinite(e.lossSum) || e.lossSum < 0) throw bad('lossSum must be finite and non-negative');
}

/** Combines the sites' evaluations (each checked first); DATA_INVALID when there is none. */
export function combineEvaluations(labels: readonly string[], perSite: readonly { siteId: string; evaluation: SiteEvaluation }[]): FederatedEvaluation {
  if (perSite.length === 0) throw new FedloraError('DATA_INVALID', 'federated evaluation: no site returned an evaluation');
  const k = labels.length;
  const sum = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  let lossSum = 0;
  const sites: SiteEvaluationRow[] = [];
  for (const { siteId, evaluation: e } of perSite) {
    checkSiteEvaluation(e, k, siteId);
    for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) sum[i][j] += e.confusion[i][j];
    lossSum += e.lossSum;
    const r = reportFromConfusion(e.confusion, labels);
    sites.push({ siteId, n: e.n, accuracy: r.accuracy, macroF1: r.macroF1, loss: e.lossSum / e.n });
  }
  const report = reportFromConfusion(sum, labels);
  const worstSite = sites.reduce((w, s) => (s.accuracy < w.accuracy ? s : w));
  return { report, loss: lossSum / report.n, sites, worstSite };
}
