// Classification metrics with scikit-learn semantics (sklearn.metrics.classification_report / f1_score with
// zero_division=0): a ratio whose denominator is 0 counts as 0, and macro averages run over the classes present in
// yTrue or yPred (sklearn's default `labels=None`), so a class absent from a small eval shard does not count as F1 0.

import { FedloraError } from '../errors';

export interface ClassReport {
  label: string;
  precision: number;
  recall: number;
  f1: number;
  /** Number of true examples of this class. */
  support: number;
}

export interface ClassificationReport {
  /** Number of examples scored. */
  n: number;
  accuracy: number;
  macroPrecision: number;
  macroRecall: number;
  macroF1: number;
  /** Support-weighted mean F1 (sklearn "weighted avg"). */
  weightedF1: number;
  /** One entry per label, in `labels` order, including absent classes (all zeros). */
  perClass: ClassReport[];
}

function checkInputs(yTrue: readonly number[], yPred: readonly number[], k: number): void {
  if (yTrue.length !== yPred.length)
    throw new FedloraError(
      'DATA_INVALID',
      `metrics: ${yTrue.length} true labels but ${yPred.length} predictions`,
    );
  if (yTrue.length === 0) throw new FedloraError('DATA_INVALID', 'metrics: no examples to score');
  for (const [name, ys] of [
    ['yTrue', yTrue],
    ['yPred', yPred],
  ] as const) {
    ys.forEach((y, i) => {
      if (!Number.isInteger(y) || y < 0 || y >= k)
        throw new FedloraError(
          'DATA_INVALID',
          `metrics: ${name}[${i}] = ${y} is not a class id in [0, ${k})`,
        );
    });
  }
}

/** k x k counts; rows are true classes, columns predicted classes. */
export function confusionMatrix(yTrue: readonly number[], yPred: readonly number[], k: number): number[][] {
  checkInputs(yTrue, yPred, k);
  const m = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (let i = 0; i < yTrue.length; i++) m[yTrue[i]][yPred[i]]++;
  return m;
}

const ratio = (num: number, den: number): number => (den === 0 ? 0 : num / den);
const mean = (xs: number[]): number =>
  ratio(
    xs.reduce((s, x) => s + x, 0),
    xs.length,
  );

export function classificationReport(
  yTrue: readonly number[],
  yPred: readonly number[],
  labels: readonly string[],
): ClassificationReport {
  return reportFromConfusion(confusionMatrix(yTrue, yPred, labels.length), labels);
}

/**
 * The report of a k x k confusion matrix (rows true classes, columns predicted). Every metric here is a function of
 * the matrix alone, so summed matrices of disjoint shards give exactly the report of their union (federated
 * evaluation, evaluation/federated-evaluation.ts).
 */
export function reportFromConfusion(m: readonly (readonly number[])[], labels: readonly string[]): ClassificationReport {
  const k = labels.length;
  if (m.length !== k || m.some((row) => row.length !== k))
    throw new FedloraError('DATA_INVALID', `metrics: the confusion matrix must be ${k} x ${k} for ${k} labels`);
  const n = m.reduce((s, row) => s + row.reduce((a, x) => a + x, 0), 0);
  if (n === 0) throw new FedloraError('DATA_INVALID', 'metrics: no examples to score');
  const perClass: ClassReport[] = [];
  const present: number[] = [];
  let correct = 0;
  for (let c = 0; c < k; c++) {
    const tp = m[c][c];
    correct += tp;
    const support = m[c].reduce((s, x) => s + x, 0);
    const predicted = m.reduce((s, row) => s + row[c], 0);
    // F1 = 2TP / (2TP + FP + FN), which is 0 exactly when sklearn's zero_division=0 makes it 0.
    perClass.push({
      label: labels[c],
      precision: ratio(tp, predicted),
      recall: ratio(tp, support),
      f1: ratio(2 * tp, support + predicted),
      support,
    });
    if (support > 0 || predicted > 0) present.push(c);
  }
  const avg = (key: 'precision' | 'recall' | 'f1'): number => mean(present.map((c) => perClass[c][key]));
  return {
    n,
    accuracy: correct / n,
    macroPrecision: avg('precision'),
    macroRecall: avg('recall'),
    macroF1: avg('f1'),
    weightedF1: perClass.reduce((s, r) => s + r.f1 * r.support, 0) / n,
    perClass,
  };
}

/** A fixed-width text table in the layout of sklearn's classification_report. */
export function formatReport(report: ClassificationReport, digits = 4): string {
  const width = Math.max('weighted avg'.length, ...report.perClass.map((r) => r.label.length));
  const num = (x: number): string => x.toFixed(digits).padStart(Math.max(9, digits + 2));
  const int = (x: number): string => String(x).padStart(9);
  const row = (name: string, cells: string[]): string => `${name.padStart(width)} ${cells.join(' ')}`;
  const blank = ' '.repeat(Math.max(9, digits + 2));
  const lines = [
    row(
      '',
      ['precision', '   recall', ' f1-score', '  support'].map((h) => h.padStart(Math.max(9, digits + 2))),
    ),
    '',
  ];
  for (const r of report.perClass)
    lines.push(row(r.label, [num(r.precision), num(r.recall), num(r.f1), int(r.support)]));
  const weighted = (key: 'precision' | 'recall'): number =>
    report.perClass.reduce((s, r) => s + r[key] * r.support, 0) / report.n;
  lines.push(
    '',
    row('accuracy', [blank, blank, num(report.accuracy), int(report.n)]),
    row('macro avg', [
      num(report.macroPrecision),
      num(report.macroRecall),
      num(report.macroF1),
      int(report.n),
    ]),
    row('weighted avg', [
      num(weighted('precision')),
      num(weighted('recall')),
      num(report.weightedF1),
      int(report.n),
    ]),
  );
  return lines.join('\n');
}
