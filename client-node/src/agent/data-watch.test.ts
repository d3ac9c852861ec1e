// The site's data watch and example ledger (continual re-training): appended rows are seen without a restart and
// counted as new once, a rewrite with the same rows adds none, a malformed row is logged and the last good data
// stays, a folder of files is one dataset, and the trained keys survive a restart.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LabeledDataset } from '@fedlora/shared/data/dataset.ts';
import { SiteDataWatch } from './data-watch';
import { ExampleLedger } from './example-ledger';
import { loadSiteData } from './site-data';

const rows = (from: number, n: number) =>
  Array.from({ length: n }, (_, i) => `"message number ${from + i}",${(from + i) % 2 ? 'spam' : 'ham'}\n`).join('');

function setup(t: { after: (fn: () => void) => void }, initial = 40) {
  const dir = mkdtempSync(join(tmpdir(), 'fedlora-watch-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'site.csv');
  writeFileSync(file, 'text,label\n' + rows(0, initial));
  const lines: string[] = [];
  const changes: LabeledDataset[] = [];
  const watch = new SiteDataWatch({
    loc: { data: file },
    log: (l) => lines.push(l),
    onChange: (ds) => changes.push(ds),
    pollMs: 50,
    settleMs: 20,
  });
  t.after(() => watch.stop());
  return { dir, file, lines, changes, watch };
}

async function until(pred: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(pred(), what);
}

test('when 200 rows are appended to the watched file, then it reloads on its own and 200 examples are new', async (t) => {
  const s = setup(t);
  const ledger = new ExampleLedger(null);
  ledger.markTrained(ledger.keys(s.watch.dataset)); // a round trained on the first 40
  assert.equal(ledger.newCount(s.watch.dataset), 0);
  s.watch.start();

  appendFileSync(s.file, rows(40, 200));

  await until(() => s.changes.length === 1, 'the append was not seen');
  assert.equal(s.watch.dataset.examples.length, 240);
  assert.equal(ledger.newCount(s.watch.dataset), 200);
});

test('when the file is rewritten with the same rows (reordered, one duplicated), then no example is new', async (t) => {
  const s = setup(t);
  const ledger = new ExampleLedger(null);
  ledger.markTrained(ledger.keys(s.watch.dataset));
  const lines = rows(0, 40).trimEnd().split('\n').reverse();
  writeFileSync(s.file, 'text,label\n' + [...lines, lines[0]].join('\n') + '\n');

  assert.equal(s.watch.reload(), true); // other rows (order, a duplicate): the next round trains on them
  assert.equal(s.watch.dataset.examples.length, 41);
  assert.equal(ledger.newCount(s.watch.dataset), 0);
  // byte for byte the same rows: not even a change
  writeFileSync(s.file, 'text,label\n' + [...lines, lines[0]].join('\n') + '\n');
  assert.equal(s.watch.reload(), false);
});

test('when a malformed row is appended, then the error is logged once with its line and the last good data stays', async (t) => {
  const s = setup(t);
  appendFileSync(s.file, rows(40, 10) + '"an unterminated quote,spam\n');

  assert.equal(s.watch.reload(), false);
  assert.equal(s.watch.reload(), false);
  assert.equal(s.watch.dataset.examples.length, 40, 'the last good data');
  const failed = s.lines.filter((l) => l.startsWith('data reload failed'));
  assert.equal(failed.length, 1, s.lines.join('\n'));
  assert.match(failed[0], /site\.csv: malformed CSV/);
  assert.match(failed[0], /keeping the last good data \(40 examples\)/);

  // fixed: the valid rows come in
  writeFileSync(s.file, 'text,label\n' + rows(0, 50));
  assert.equal(s.watch.reload(), true);
  assert.equal(s.watch.dataset.examples.length, 50);
});

test('when a reloaded dataset fails the check (a label the federation lacks), then it is refused and logged', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fedlora-watch-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'site.jsonl');
  writeFileSync(file, '{"text":"a","label":"ham"}\n');
  const lines: string[] = [];
  const watch = new SiteDataWatch({
    loc: { data: file },
    log: (l) => lines.push(l),
    onChange: () => {},
    check: (ds) => {
      if (ds.examples.some((e) => e.label === 'eggs')) throw new Error('label "eggs" is not in the federation');
    },
  });
  appendFileSync(file, '{"text":"b","label":"eggs"}\n');
  assert.equal(watch.reload(), false);
  assert.equal(watch.dataset.examples.length, 1);
  assert.match(lines.join('\n'), /eggs/);
});

test('when --data is a folder, then its CSV and JSONL files are one dataset and a new file is new data', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fedlora-folder-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, '2026-01-01.csv'), 'text,label\n' + rows(0, 5));
  writeFileSync(join(dir, 'notes.txt'), 'not data');
  const ledger = new ExampleLedger(null);
  const first = loadSiteData({ data: dir });
  assert.equal(first.examples.length, 5);
  ledger.markTrained(ledger.keys(first));
  writeFileSync(join(dir, '2026-01-02.jsonl'), '{"text":"fresh one","label":"spam"}\n{"text":"fresh two","label":"ham"}\n');
  const second = loadSiteData({ data: dir });
  assert.equal(second.examples.length, 7);
  assert.equal(ledger.newCount(second), 2);
  assert.equal(ledger.removedCount(second, first), 2);
});

test('when the agent restarts, then the trained keys come back from the state dir and only unseen rows are new', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fedlora-ledger-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'trained-examples.txt');
  const data = join(dir, 'd.csv');
  writeFileSync(data, 'text,label\n' + rows(0, 30));
  const a = new ExampleLedger(file);
  const ds = loadSiteData({ data });
  assert.equal(a.newCount(ds), 30, 'never trained: all new');
  a.markTrained(a.keys(ds));

  appendFileSync(data, rows(30, 7));
  const b = new ExampleLedger(file);
  assert.equal(b.newCount(loadSiteData({ data })), 7);
});
