// Labeled text in CSV/TSV (RFC 4180, via csv-parse) and JSONL (one JSON object per line) from the file's text, with
// errors that name the file, the row and line, and the columns that do exist. Isomorphic: the Node loader (tabular.ts)
// reads the file, the browser site a File picked in the tab (its bundler maps csv-parse/sync to csv-parse's browser build).

import { CsvError, parse } from 'csv-parse/sync';
import { FedloraError } from '../errors';
import { makeDataset, type LabeledDataset, type LabeledExample } from './dataset';

/** Tried in order when no textColumn is given; covers Banking77 ("text") and Medical Abstracts ("medical_abstract"). */
export const TEXT_COLUMN_CANDIDATES = [
  'text',
  'sentence',
  'abstract',
  'medical_abstract',
  'content',
] as const;
/** Tried in order when no labelColumn is given; Banking77 uses "category", Medical Abstracts "condition_label". */
export const LABEL_COLUMN_CANDIDATES = ['label', 'category', 'condition_label', 'intent', 'class'] as const;

export interface TabularRow {
  /** Cell values by column name; JSONL numbers and booleans become strings, null becomes ''. */
  values: Record<string, string>;
  /** 1-based line in the file where the row ends (a quoted CSV field may span several lines). */
  line: number;
}

export interface TabularTable {
  columns: string[];
  rows: TabularRow[];
}

export interface TabularOptions {
  textColumn?: string;
  labelColumn?: string;
  /** The allowed class names; an example with another label is an error. Also fixes the dataset's class list. */
  labels?: readonly string[];
  /** Raw label -> class name (e.g. Medical Abstracts "1" -> "neoplasms"); a raw label not in the map is an error. */
  labelMap?: Readonly<Record<string, string>>;
  /** Dataset name; default: the file's base name. */
  name?: string;
}

const EXTENSIONS = ['.csv', '.tsv', '.jsonl', '.ndjson'];

function baseName(path: string): string {
  return path.split(/[\\/]/).pop() ?? path;
}

/** The lower-case extension of a file name ("" if none). */
export function extensionOf(path: string): string {
  const b = baseName(path);
  const i = b.lastIndexOf('.');
  return i <= 0 ? '' : b.slice(i).toLowerCase();
}

/** DATA_INVALID unless the name ends in .csv, .tsv, .jsonl or .ndjson. */
export function checkTabularExtension(path: string): void {
  const ext = extensionOf(path);
  if (!EXTENSIONS.includes(ext)) {
    throw new FedloraError(
      'DATA_INVALID',
      `${path}: unsupported data file type "${ext}"; use .csv, .tsv or .jsonl`,
    );
  }
}

function cellString(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return '';
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

function parseDelimited(path: string, content: string, delimiter: string): TabularTable {
  let columns: string[] = [];
  let parsed: { record: Record<string, string>; info: { lines: number } }[];
  try {
    parsed = parse(content, {
      bom: true,
      delimiter,
      skip_empty_lines: true,
      info: true,
      columns: (header: string[]) => {
        columns = header.map((h) => h.trim());
        return columns;
      },
    }) as unknown as { record: Record<string, string>; info: { lines: number } }[];
  } catch (err) {
    if (err instanceof CsvError) {
      const line = (err as CsvError & { lines?: number }).lines;
      throw new FedloraError(
        'DATA_INVALID',
        `${path}: malformed CSV${line ? ` at line ${line}` : ''}: ${err.message}`,
        { cause: err },
      );
    }
    throw err;
  }
  return { columns, rows: parsed.map((p) => ({ values: p.record, line: p.info.lines })) };
}

function parseJsonl(path: string, content: string): TabularTable {
  const columns: string[] = [];
  const seen = new Set<string>();
  const rows: TabularRow[] = [];
  const lines = content.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((text, i) => {
    if (text.trim() === '') return;
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch (err) {
      throw new FedloraError(
        'DATA_INVALID',
        `${path}: line ${i + 1} is not valid JSON (${(err as Error).message})`,
        { cause: err },
      );
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
      throw new FedloraError('DATA_INVALID', `${path}: line ${i + 1} is not a JSON object`);
    }
    const values: Record<string, string> = {};
    for (const [k, v] of Object.entries(obj)) {
      values[k] = cellString(v);
      if (!seen.has(k)) {
        seen.add(k);
        columns.push(k);
      }
    }
    rows.push({ values, line: i + 1 });
  });
  return { columns, rows };
}

/** Parse a .csv, .tsv or .jsonl/.ndjson file's text into rows of strings; the type comes from `path`'s extension. */
export function parseTabularText(path: string, content: string): TabularTable {
  checkTabularExtension(path);
  const ext = extensionOf(path);
  if (content.replace(/^\uFEFF/, '').trim() === '')
    throw new FedloraError('DATA_INVALID', `${path} is empty`);
  const table =
    ext === '.csv' || ext === '.tsv'
      ? parseDelimited(path, content, ext === '.tsv' ? '\t' : ',')
      : parseJsonl(path, content);
  if (table.rows.length === 0)
    throw new FedloraError('DATA_INVALID', `${path} has a header but no data rows`);
  return table;
}

function pickColumn(
  path: string,
  columns: string[],
  wanted: string | undefined,
  candidates: readonly string[],
  role: string,
): string {
  const have = columns.length > 0 ? columns.map((c) => JSON.stringify(c)).join(', ') : '(none)';
  if (wanted !== undefined) {
    if (columns.includes(wanted)) return wanted;
    throw new FedloraError(
      'DATA_INVALID',
      `${path}: ${role} column "${wanted}" not found; columns are: ${have}`,
    );
  }
  const found = candidates.find((c) => columns.includes(c));
  if (found === undefined) {
    throw new FedloraError(
      'DATA_INVALID',
      `${path}: no ${role} column (looked for ${candidates.join(', ')}); columns are: ${have}; name one with the ${role}Column option`,
    );
  }
  return found;
}

/** Labeled text from a parsed table; `path` names the file in errors. Labels stay strings ("3" is a class name). */
export function datasetFromTable(path: string, table: TabularTable, opts: TabularOptions = {}): LabeledDataset {
  const textColumn = pickColumn(path, table.columns, opts.textColumn, TEXT_COLUMN_CANDIDATES, 'text');
  const labelColumn = pickColumn(path, table.columns, opts.labelColumn, LABEL_COLUMN_CANDIDATES, 'label');
  const examples: LabeledExample[] = table.rows.map(({ values, line }, r) => {
    const where = `row ${r + 1} (line ${line})`;
    const text = values[textColumn];
    if (text === undefined)
      throw new FedloraError('DATA_INVALID', `${path}: ${where} has no "${textColumn}" field`);
    if (text.trim() === '')
      throw new FedloraError('DATA_INVALID', `${path}: ${where} has empty text in column "${textColumn}"`);
    const raw = (values[labelColumn] ?? '').trim();
    if (raw === '')
      throw new FedloraError(
        'DATA_INVALID',
        `${path}: ${where} has an empty label in column "${labelColumn}"`,
      );
    let label = raw;
    if (opts.labelMap) {
      if (!Object.hasOwn(opts.labelMap, raw)) {
        throw new FedloraError(
          'DATA_INVALID',
          `${path}: ${where} has label "${raw}", which the label map does not name (known: ${Object.keys(opts.labelMap).join(', ')})`,
        );
      }
      label = opts.labelMap[raw];
    }
    return { text, label };
  });
  // Named by path first so an unknown-label error says which file; then the friendly name.
  const ds = makeDataset(path, examples, opts.labels);
  return { ...ds, name: opts.name ?? baseName(path) };
}
