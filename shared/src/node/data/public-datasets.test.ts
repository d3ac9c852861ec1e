// Tests for the Banking77 / Medical Abstracts loaders: a toy copy of each layout always, the real files when present.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isFedloraError } from '../../errors';
import { countByLabel } from '../../data/dataset';
import { loadBanking77, loadMedicalAbstractsSplit, sharedDataDir } from './public-datasets';

const tmp = mkdtempSync(join(tmpdir(), 'fedlora-public-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function toyMedicalRoot(): string {
  const root = join(tmp, 'toy');
  mkdirSync(join(root, 'medical-abstracts'), { recursive: true });
  writeFileSync(
    join(root, 'medical-abstracts', 'medical_tc_labels.csv'),
    'condition_label,condition_name\n1,neoplasms\n2,digestive system diseases\n',
  );
  const rows = ['condition_label,medical_abstract'];
  for (let i = 0; i < 8; i++) rows.push(`1,"tumour ${i}"`);
  for (let i = 0; i < 4; i++) rows.push(`2,"gut ${i}"`);
  rows.push('2,"tumour 0"', '2,"gut 0"');
  writeFileSync(join(root, 'medical-abstracts', 'medical_tc_test.csv'), rows.join('\n') + '\n');
  return root;
}

test('when a Medical Abstracts text has two labels and another repeats, then both copies of the conflict go, the repeat is kept once, and 80/20 is stratified', () => {
  // 14 rows: "tumour 0" is labeled 1 and 2 (conflict, both rows dropped), "gut 0" appears twice as 2 (one kept).
  // Kept: 7 neoplasms + 4 digestive = 11; held-out round(11 * 0.2) = 2, shares 7*2/11 = 1.27 and 4*2/11 = 0.73 -> 1 + 1.
  const { train, heldout, stats } = loadMedicalAbstractsSplit(toyMedicalRoot());
  assert.deepEqual(stats, {
    rows: 14,
    conflictingTexts: 1,
    conflictingRows: 2,
    duplicateRows: 1,
    kept: 11,
    train: 9,
    heldout: 2,
  });
  assert.deepEqual(heldout.labels, ['digestive system diseases', 'neoplasms']);
  assert.deepEqual(countByLabel(heldout), { 'digestive system diseases': 1, neoplasms: 1 });
  assert.ok(!train.examples.some((e) => e.text === 'tumour 0'));
});

test('when the data root lacks the dataset folders, then FILE_NOT_FOUND names the missing path', () => {
  const root = join(tmp, 'nothing-here');
  assert.throws(
    () => loadBanking77(root, 'train'),
    (e) => isFedloraError(e, 'FILE_NOT_FOUND') && e.message.includes(join(root, 'banking77')),
  );
  assert.throws(
    () => loadMedicalAbstractsSplit(root),
    (e) => isFedloraError(e, 'FILE_NOT_FOUND') && e.message.includes(join(root, 'medical-abstracts')),
  );
});

const shared = sharedDataDir();
const absent = 'shared data folder ../shared/assets/data not found';

test('when the real Banking77 files are present, then train has 10,003 and test 3,080 queries over 77 intents', (t) => {
  if (!shared) {
    console.log(`skip: ${absent}`);
    t.skip(absent);
    return;
  }
  const train = loadBanking77(shared, 'train');
  const testPart = loadBanking77(shared, 'test');
  console.log(
    `Banking77: train ${train.examples.length}, test ${testPart.examples.length}, labels ${train.labels.length}`,
  );
  assert.equal(train.labels.length, 77);
  assert.equal(train.examples.length, 10003);
  assert.equal(testPart.examples.length, 3080);
  assert.ok(
    Object.values(countByLabel(testPart)).every((c) => c === 40),
    'the Banking77 test split has 40 queries per intent',
  );
});

test('when the real Medical Abstracts file is present, then 113 conflicting abstracts are dropped and the split is fixed', (t) => {
  if (!shared) {
    console.log(`skip: ${absent}`);
    t.skip(absent);
    return;
  }
  const { train, heldout, stats } = loadMedicalAbstractsSplit(shared);
  console.log(`Medical Abstracts: ${JSON.stringify(stats)}`);
  console.log(`Medical Abstracts held-out per class: ${JSON.stringify(countByLabel(heldout))}`);
  // 2,888 rows; 2,770 distinct texts of which 113 carry 2+ labels (231 rows); 2,770 - 113 = 2,657 kept.
  assert.deepEqual(stats, {
    rows: 2888,
    conflictingTexts: 113,
    conflictingRows: 231,
    duplicateRows: 0,
    kept: 2657,
    train: 2126,
    heldout: 531,
  });
  assert.equal(train.labels.length, 5);
  const texts = new Set(train.examples.map((e) => e.text));
  assert.ok(!heldout.examples.some((e) => texts.has(e.text)), 'no abstract on both sides');
  assert.deepEqual(loadMedicalAbstractsSplit(shared).heldout, heldout, 'same split on every load');
});
