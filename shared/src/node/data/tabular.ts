// Node-only loader for labeled text in CSV/TSV and JSONL files; the parsing is isomorphic (data/tabular-text.ts, also
// used by the browser site, which imports it from there), this file only reads the file.

import { readFileSync } from 'node:fs';
import { FedloraError } from '../../errors';
import type { LabeledDataset } from '../../data/dataset';
import {
  checkTabularExtension,
  datasetFromTable,
  parseTabularText,
  type TabularOptions,
  type TabularTable,
} from '../../data/tabular-text';

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw new FedloraError('FILE_NOT_FOUND', `data file not found: ${path}`, { cause: err });
    throw new FedloraError('FILE_UNREADABLE', `cannot read data file ${path} (${code ?? String(err)})`, {
      cause: err,
    });
  }
}

/** Parse a .csv, .tsv or .jsonl/.ndjson file into rows of strings. */
export function readTabularFile(path: string): TabularTable {
  checkTabularExtension(path);
  return parseTabularText(path, readText(path));
}

/** Load labeled text from a CSV/TSV/JSONL file. Labels stay strings ("3" is a class name, not a number). */
export function loadTabularFile(path: string, opts: TabularOptions = {}): LabeledDataset {
  return datasetFromTable(path, readTabularFile(path), opts);
}
