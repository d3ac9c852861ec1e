// Tests for the classification metrics against hand-computed values (and the matching sklearn calls in comments).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedloraError } from '../errors';
import { classificationReport, confusionMatrix, formatReport } from './metrics';

const close = (actual: number, expected: number, what: string): void =>
  assert.ok(Math.abs(actual - expected) < 1e-12, `${what}: ${actual} != ${expected}`);

test('when scoring 6 predictions over 3 balanced classes, then per-class and macro values match the hand count', () => {
  // true 0 0 1 1 2 2 / pred 0 1 1 1 0 2
  // class a: TP 1, FP 1 (a 2 read as 0), FN 1 -> P 1/2, R 1/2, F1 1/2
  // class b: TP 2, FP 1, FN 0             -> P 2/3, R 1,   F1 4/5
  // class c: TP 1, FP 0, FN 1             -> P 1,   R 1/2, F1 2/3
  const r = classificationReport([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 0, 2], ['a', 'b', 'c']);
  close(r.accuracy, 4 / 6, 'accuracy');
  const expected = [
    ['a', 1 / 2, 1 / 2, 1 / 2],
    ['b', 2 / 3, 1, 4 / 5],
    ['c', 1, 1 / 2, 2 / 3],
  ] as const;
  expected.forEach(([label, p, rec, f1], c) => {
    assert.equal(r.perClass[c].label, label);
    close(r.perClass[c].precision, p, `${label} precision`);
    close(r.perClass[c].recall, rec, `${label} recall`);
    close(r.perClass[c].f1, f1, `${label} f1`);
    assert.equal(r.perClass[c].support, 2);
  });
  close(r.macroF1, (1 / 2 + 4 / 5 + 2 / 3) / 3, 'macro F1');
  close(r.macroPrecision, (1 / 2 + 2 / 3 + 1) / 3, 'macro precision');
  close(r.weightedF1, r.macroF1, 'weighted F1 equals macro F1 when supports are equal');
});

test('when a class is never predicted and another never occurs, then zero division gives 0 and macro skips the absent one', () => {
  // true 0 0 1 / pred 0 0 0, labels a b c. a: P 2/3, R 1, F1 4/5. b: no predictions -> P 0, R 0, F1 0.
  // c: neither true nor predicted -> excluded. sklearn f1_score(average='macro', zero_division=0) = (0.8 + 0) / 2 = 0.4.
  const r = classificationReport([0, 0, 1], [0, 0, 0], ['a', 'b', 'c']);
  close(r.macroF1, 0.4, 'macro F1');
  close(r.weightedF1, (0.8 * 2) / 3, 'weighted F1');
  assert.deepEqual(r.perClass[1], { label: 'b', precision: 0, recall: 0, f1: 0, support: 1 });
  assert.deepEqual(r.perClass[2], { label: 'c', precision: 0, recall: 0, f1: 0, support: 0 });
  close(r.accuracy, 2 / 3, 'accuracy');
});

test('when every prediction is right, then accuracy and all F1 are 1', () => {
  const r = classificationReport([1, 0, 1], [1, 0, 1], ['ham', 'spam']);
  assert.equal(r.accuracy, 1);
  assert.equal(r.macroF1, 1);
  assert.deepEqual(
    r.perClass.map((c) => c.support),
    [1, 2],
  );
});

test('when building the confusion matrix, then rows are true classes and columns predictions', () => {
  assert.deepEqual(confusionMatrix([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 0, 2], 3), [
    [1, 1, 0],
    [0, 2, 0],
    [1, 0, 1],
  ]);
});

test('when inputs are empty, of unequal length, or hold ids outside the labels, then DATA_INVALID', () => {
  assert.throws(
    () => classificationReport([], [], ['a']),
    (e) => isFedloraError(e, 'DATA_INVALID'),
  );
  assert.throws(
    () => classificationReport([0], [0, 1], ['a', 'b']),
    (e) => isFedloraError(e, 'DATA_INVALID') && /1 true labels but 2/.test(e.message),
  );
  assert.throws(
    () => classificationReport([0, 2], [0, 1], ['a', 'b']),
    (e) => isFedloraError(e, 'DATA_INVALID') && /yTrue\[1\] = 2/.test(e.message),
  );
});

test('when formatting, then the table has one row per label plus accuracy, macro and weighted rows', () => {
  const text = formatReport(classificationReport([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 0, 2], ['a', 'b', 'c']), 2);
  const lines = text.split('\n');
  assert.equal(lines.length, 9);
  assert.match(lines[0], /precision\s+recall\s+f1-score\s+support$/);
  assert.match(lines[2], /^\s+a\s+0\.50\s+0\.50\s+0\.50\s+2$/);
  assert.match(lines[3], /^\s+b\s+0\.67\s+1\.00\s+0\.80\s+2$/);
  assert.match(lines[6], /^\s+accuracy\s+0\.67\s+6$/);
  assert.match(lines[7], /^\s+macro avg\s+0\.72\s+0\.67\s+0\.66\s+6$/);
});
