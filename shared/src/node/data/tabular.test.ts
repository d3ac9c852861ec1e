// Tests for the CSV/JSONL loader: RFC 4180 quoting, column defaults, label maps, and each documented error.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isFedloraError, type FedloraErrorCode } from '../../errors';
import { loadTabularFile, readTabularFile } from './tabular';

const dir = mkdtempSync(join(tmpdir(), 'fedlora-tabular-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function file(ext: string, content: string): string {
  const p = join(dir, `f${n++}${ext}`);
  writeFileSync(p, content);
  return p;
}
function rejects(code: FedloraErrorCode, pattern: RegExp) {
  return (e: unknown) => isFedloraError(e, code) && pattern.test(e.message);
}

test('when a CSV has quoted commas, doubled quotes, a multi-line field, a BOM and CRLF, then each text is intact', () => {
  const p = file(
    '.csv',
    '\uFEFFtext,category\r\n"Hello, world",greet\r\n"She said ""hi""",quote\r\n"line one\r\nline two",multi\r\n',
  );
  const ds = loadTabularFile(p);
  assert.deepEqual(ds.examples, [
    { text: 'Hello, world', label: 'greet' },
    { text: 'She said "hi"', label: 'quote' },
    { text: 'line one\r\nline two', label: 'multi' },
  ]);
  assert.deepEqual(ds.labels, ['greet', 'multi', 'quote']);
});

test('when columns follow the Medical Abstracts layout, then defaults pick them and the label map names the classes', () => {
  const p = file('.csv', 'condition_label,medical_abstract\n3,"Sleep apnea, snoring."\n1,Tumour growth.\n');
  const raw = loadTabularFile(p);
  assert.deepEqual(
    raw.examples.map((e) => e.label),
    ['3', '1'],
    'numeric labels stay strings',
  );
  const named = loadTabularFile(p, { labelMap: { '1': 'neoplasms', '3': 'nervous system diseases' } });
  assert.deepEqual(named.labels, ['neoplasms', 'nervous system diseases']);
  assert.throws(
    () => loadTabularFile(p, { labelMap: { '1': 'neoplasms' } }),
    rejects('DATA_INVALID', /row 1 \(line 2\).*"3"/),
  );
});

test('when a JSONL file has numeric labels and blank lines, then labels become strings and blank lines are skipped', () => {
  const p = file('.jsonl', '{"sentence": "good film", "label": 1}\n\n{"sentence": "bad film", "label": 0}\n');
  const ds = loadTabularFile(p, { name: 'sst' });
  assert.equal(ds.name, 'sst');
  assert.deepEqual(ds.examples, [
    { text: 'good film', label: '1' },
    { text: 'bad film', label: '0' },
  ]);
  assert.deepEqual(
    readTabularFile(p).rows.map((r) => r.line),
    [1, 3],
  );
});

test('when explicit columns are named, then they win over the defaults', () => {
  const p = file('.tsv', 'text\tlabel\tbody\ttopic\nignored\tx\tkept\tsports\n');
  assert.deepEqual(loadTabularFile(p, { textColumn: 'body', labelColumn: 'topic' }).examples, [
    { text: 'kept', label: 'sports' },
  ]);
});

test('when the file does not exist, then FILE_NOT_FOUND names the path', () => {
  const p = join(dir, 'missing.csv');
  assert.throws(() => loadTabularFile(p), rejects('FILE_NOT_FOUND', /missing\.csv/));
});

test('when the path is a directory, then FILE_UNREADABLE', () => {
  const p = join(dir, 'adir.csv');
  mkdirSync(p);
  assert.throws(() => loadTabularFile(p), rejects('FILE_UNREADABLE', /adir\.csv/));
});

test('when a JSONL line is not valid JSON or not an object, then DATA_INVALID gives the line number', () => {
  assert.throws(
    () => loadTabularFile(file('.jsonl', '{"text":"a","label":"x"}\n{"text": oops}\n')),
    rejects('DATA_INVALID', /line 2 is not valid JSON/),
  );
  assert.throws(
    () => loadTabularFile(file('.jsonl', '["a","x"]\n')),
    rejects('DATA_INVALID', /line 1 is not a JSON object/),
  );
});

test('when no known text or label column exists, then DATA_INVALID lists the columns that do', () => {
  const p = file('.csv', 'body,topic\nhello,x\n');
  assert.throws(
    () => loadTabularFile(p),
    rejects('DATA_INVALID', /no text column.*columns are: "body", "topic"/),
  );
  assert.throws(() => loadTabularFile(p, { textColumn: 'body' }), rejects('DATA_INVALID', /no label column/));
  assert.throws(
    () => loadTabularFile(p, { textColumn: 'nope' }),
    rejects('DATA_INVALID', /text column "nope" not found/),
  );
});

test('when a row has empty text, then DATA_INVALID gives its row and line (counting multi-line fields)', () => {
  const p = file('.csv', 'text,label\n"two\nlines",a\n"  ",b\n');
  assert.throws(() => loadTabularFile(p), rejects('DATA_INVALID', /row 2 \(line 4\) has empty text/));
  assert.throws(
    () => loadTabularFile(file('.csv', 'text,label\nhi,\n')),
    rejects('DATA_INVALID', /row 1 .*empty label/),
  );
});

test('when the file is empty or has only a header, then DATA_INVALID says so', () => {
  assert.throws(() => loadTabularFile(file('.csv', '')), rejects('DATA_INVALID', /is empty/));
  assert.throws(() => loadTabularFile(file('.jsonl', '\n\n')), rejects('DATA_INVALID', /is empty/));
  assert.throws(() => loadTabularFile(file('.csv', 'text,label\n')), rejects('DATA_INVALID', /no data rows/));
});

test('when labels are given and the file uses others, then DATA_INVALID names the unknown ones and the file', () => {
  const p = file('.csv', 'text,label\na,ham\nb,spam\nc,eggs\n');
  assert.throws(
    () => loadTabularFile(p, { labels: ['ham', 'spam'] }),
    rejects('DATA_INVALID', /f\d+\.csv: unknown label\(s\) "eggs"/),
  );
  const ds = loadTabularFile(p, { labels: ['spam', 'eggs', 'ham', 'bacon'] });
  assert.deepEqual(ds.labels, ['bacon', 'eggs', 'ham', 'spam']);
});

test('when the CSV is malformed or the extension unknown, then DATA_INVALID', () => {
  assert.throws(
    () => loadTabularFile(file('.csv', 'text,label\n"unclosed,a\n')),
    rejects('DATA_INVALID', /malformed CSV/),
  );
  assert.throws(
    () => loadTabularFile(file('.csv', 'text,label\na,b,c\n')),
    rejects('DATA_INVALID', /malformed CSV at line 2/),
  );
  assert.throws(
    () => loadTabularFile(file('.xlsx', 'x')),
    rejects('DATA_INVALID', /unsupported data file type/),
  );
});
