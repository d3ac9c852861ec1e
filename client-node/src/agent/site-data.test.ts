// A site's --data as a masked-LM federation reads it (issue 24): a plain-text file is unlabelled documents, one per line
// or one per paragraph (as `fedlora-site pretrain --text` splits them), when --data names it (not in a data folder).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSiteData, UNLABELLED } from './site-data';

const dir = mkdtempSync(join(tmpdir(), 'fedlora-site-data-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('when --data is a .txt file, then each line (or each paragraph between blank lines) is one unlabelled document', () => {
  const lines = join(dir, 'notes.txt');
  writeFileSync(lines, 'patient reports chest pain\r\n\nno fever since monday\n  \nfollow-up in two weeks\n');
  // blank lines separate paragraphs here: three documents, each one line
  assert.deepEqual(loadSiteData({ data: lines }).examples, [
    { text: 'patient reports chest pain', label: UNLABELLED },
    { text: 'no fever since monday', label: UNLABELLED },
    { text: 'follow-up in two weeks', label: UNLABELLED },
  ]);
  const perLine = join(dir, 'lines.txt');
  writeFileSync(perLine, 'first note\nsecond note\nthird note\n');
  const ds = loadSiteData({ data: perLine });
  assert.deepEqual(ds.examples.map((e) => e.text), ['first note', 'second note', 'third note']);
  assert.deepEqual(ds.labels, [UNLABELLED]);
  const paragraphs = join(dir, 'paragraphs.txt');
  writeFileSync(paragraphs, 'a long note\ncontinued here\n\nanother note\n');
  assert.deepEqual(loadSiteData({ data: paragraphs }).examples.map((e) => e.text), ['a long note continued here', 'another note']);
});

test('when a folder holds a .txt file beside a CSV, then only the CSV is data (notes are not); an empty .txt holds no examples', () => {
  const folder = join(dir, 'folder');
  mkdirSync(folder);
  writeFileSync(join(folder, 'a.csv'), 'text,label\nhello there,ham\n');
  writeFileSync(join(folder, 'b.txt'), 'an unlabelled note\n');
  assert.deepEqual(loadSiteData({ data: folder }).examples, [{ text: 'hello there', label: 'ham' }]);
  const empty = join(dir, 'empty.txt');
  writeFileSync(empty, '\n  \n');
  assert.throws(() => loadSiteData({ data: empty }), (e: Error & { code?: string }) => e.code === 'DATA_INVALID' && /holds no examples/.test(e.message));
});
