// Tests for the dataset helpers: sorted class lists, label ids, unknown-label errors and subsets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedloraError } from '../errors';
import {
  checkLabels,
  countByLabel,
  dropConflictsAndDuplicates,
  labelIds,
  makeDataset,
  subsetDataset,
} from './dataset';

const examples = [
  { text: 'a', label: 'spam' },
  { text: 'b', label: 'ham' },
  { text: 'c', label: 'spam' },
];

test('when building a dataset without a label list, then labels are the sorted distinct labels and ids index them', () => {
  const ds = makeDataset('toy', examples);
  assert.deepEqual(ds.labels, ['ham', 'spam']);
  assert.deepEqual(labelIds(ds), [1, 0, 1]);
  assert.deepEqual(countByLabel(ds), { ham: 1, spam: 2 });
});

test('when numeric-looking labels are sorted, then they sort as strings ("10" before "9")', () => {
  const ds = makeDataset('nums', [
    { text: 'x', label: '9' },
    { text: 'y', label: '10' },
  ]);
  assert.deepEqual(ds.labels, ['10', '9']);
});

test('when given a full label list, then classes absent from the examples are kept so ids stay global', () => {
  const ds = makeDataset('shard', [{ text: 'x', label: 'b' }], ['c', 'a', 'b']);
  assert.deepEqual(ds.labels, ['a', 'b', 'c']);
  assert.deepEqual(labelIds(ds), [1]);
  assert.deepEqual(countByLabel(ds), { a: 0, b: 1, c: 0 });
});

test('when examples use labels outside the known list, then DATA_INVALID names each unknown label', () => {
  const ds = makeDataset('toy', [...examples, { text: 'd', label: 'phish' }]);
  assert.throws(
    () => checkLabels(ds, ['ham', 'spam']),
    (e) => isFedloraError(e, 'DATA_INVALID') && /"phish"/.test(e.message) && !/"ham"/.test(e.message),
  );
  assert.doesNotThrow(() => checkLabels(ds, ['ham', 'phish', 'spam']));
  assert.throws(
    () => makeDataset('toy', examples, ['ham']),
    (e) => isFedloraError(e, 'DATA_INVALID') && /"spam"/.test(e.message),
  );
});

test('when an example label is missing from ds.labels, then labelIds throws DATA_INVALID with its index', () => {
  const ds = { name: 'bad', labels: ['ham'], examples };
  assert.throws(
    () => labelIds(ds),
    (e) => isFedloraError(e, 'DATA_INVALID') && /example 0/.test(e.message),
  );
});

test('when taking a subset, then examples follow the given order and the class list is unchanged', () => {
  const ds = makeDataset('toy', examples);
  const sub = subsetDataset(ds, [2, 1], 'toy-sub');
  assert.equal(sub.name, 'toy-sub');
  assert.deepEqual(
    sub.examples.map((e) => e.text),
    ['c', 'b'],
  );
  assert.deepEqual(sub.labels, ['ham', 'spam']);
  assert.throws(() => subsetDataset(ds, [3]), RangeError);
});

test('when a text has two labels and another is repeated with one label, then the first is dropped and the second kept once', () => {
  const r = dropConflictsAndDuplicates([
    { text: 'x', label: 'a' },
    { text: 'y', label: 'a' },
    { text: 'x', label: 'b' },
    { text: 'y', label: 'a' },
    { text: 'z', label: 'b' },
    { text: 'x', label: 'a' },
  ]);
  assert.deepEqual(r.examples, [
    { text: 'y', label: 'a' },
    { text: 'z', label: 'b' },
  ]);
  assert.equal(r.conflictingTexts, 1);
  assert.equal(r.conflictingRows, 3);
  assert.equal(r.duplicateRows, 1);
});
