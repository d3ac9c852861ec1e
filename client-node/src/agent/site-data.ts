// The Node site's labelled data, read from its --data: one CSV/TSV/JSONL file, or a folder of them (every such file
// in it, in name order, as one dataset: a site that receives a new file a day drops it there). A plain-text file (.txt:
// one document per line, or paragraphs between blank lines, as `fedlora-site pretrain --text` reads it) holds
// unlabelled documents, labelled UNLABELLED, when --data names it (a folder's .txt files are not data): they serve a
// masked-LM federation (issue 24), which reads the text only; a classification federation refuses them. The label mapping
// check and the tokenization cache are shared with the browser site (shared/src/data/site-data.ts); data-watch.ts
// reloads this when the data changes. Nothing here is ever sent.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { loadTabularFile } from '@fedlora/shared/node/data/tabular.ts';
import { extensionOf } from '@fedlora/shared/data/tabular-text.ts';
import { makeDataset, type LabeledDataset } from '@fedlora/shared/data/dataset.ts';
import { splitDocuments } from '@fedlora/shared/training/pretrain.ts';

export interface DataLocation {
  data: string;
  textColumn?: string;
  labelColumn?: string;
}

// a folder's .txt files are not read (notes beside the data); a .txt file is data only when --data names it
const DATA_EXTENSIONS = new Set(['.csv', '.tsv', '.jsonl', '.ndjson']);

/** The label of every document of a plain-text file: no federation class is named so. */
export const UNLABELLED = '(unlabelled text)';

/** A .txt file's documents, each labelled UNLABELLED. */
function loadTextFile(path: string): LabeledDataset {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'FILE_NOT_FOUND' : 'FILE_UNREADABLE';
    throw new FedloraError(code, `${path}: ${(err as Error).message}`, { cause: err });
  }
  return makeDataset(path, splitDocuments(text).map((doc) => ({ text: doc, label: UNLABELLED })));
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false; // a missing path is the file loader's to report (FILE_NOT_FOUND)
  }
}

/** The data files `loc.data` stands for: itself, or a folder's CSV/TSV/JSONL files in name order. */
export function siteDataFiles(loc: DataLocation): string[] {
  if (!isDirectory(loc.data)) return [loc.data];
  return readdirSync(loc.data)
    .filter((name) => !name.startsWith('.') && DATA_EXTENSIONS.has(extensionOf(name)))
    .sort()
    .map((name) => join(loc.data, name));
}

export function loadSiteData(loc: DataLocation): LabeledDataset {
  const files = siteDataFiles(loc);
  if (files.length === 0)
    throw new FedloraError('DATA_INVALID', `${loc.data} holds no .csv, .tsv or .jsonl file`);
  const parts = files.map((f) =>
    extensionOf(f) === '.txt' ? loadTextFile(f) : loadTabularFile(f, { textColumn: loc.textColumn, labelColumn: loc.labelColumn }),
  );
  const ds = parts.length === 1 ? parts[0] : { ...makeDataset(loc.data, parts.flatMap((p) => p.examples)), name: loc.data };
  if (ds.examples.length === 0) throw new FedloraError('DATA_INVALID', `${loc.data} holds no examples`);
  return ds;
}
