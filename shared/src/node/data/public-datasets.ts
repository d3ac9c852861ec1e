// Node-only loaders for the public benchmark sets kept outside the repo (never copied in): Banking77
// (Casanueva et al. 2020, CC-BY-4.0) and Medical Abstracts (Schopf et al. 2023, CC-BY-SA-3.0). Callers pass the data
// root (the folder holding banking77/ and medical-abstracts/); only tests and benchmarks use sharedDataDir().

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FedloraError } from '../../errors';
import {
  dropConflictsAndDuplicates,
  labelIds,
  makeDataset,
  subsetDataset,
  type LabeledDataset,
} from '../../data/dataset';
import { stratifiedSplit } from '../../data/split';
import { loadTabularFile, readTabularFile } from './tabular';

/** Seed and held-out share of the fixed Medical Abstracts train/held-out split (the shipped file is the test split). */
export const MEDICAL_ABSTRACTS_SPLIT = { seed: 13, heldoutFraction: 0.2 } as const;

/** `<repo>/../shared/assets/data` when it exists (tests and benchmarks only; the product never reads it by default). */
export function sharedDataDir(): string | null {
  const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
  const dir = resolve(repoRoot, '..', 'shared', 'assets', 'data');
  return existsSync(dir) && statSync(dir).isDirectory() ? dir : null;
}

function requireDir(root: string, sub: string, what: string): string {
  const dir = resolve(root, sub);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new FedloraError(
      'FILE_NOT_FOUND',
      `${what} data folder not found: ${dir} (pass the folder that holds ${sub}/)`,
    );
  }
  return dir;
}

/** The 77 Banking77 intent names, from categories.json. */
export function banking77Labels(root: string): string[] {
  const path = join(requireDir(root, 'banking77', 'Banking77'), 'categories.json');
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT')
      throw new FedloraError('FILE_NOT_FOUND', `Banking77 categories not found: ${path}`, { cause: err });
    throw new FedloraError(
      'FILE_UNREADABLE',
      `cannot read Banking77 categories ${path}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  if (!Array.isArray(parsed) || parsed.length !== 77 || !parsed.every((x) => typeof x === 'string')) {
    throw new FedloraError('DATA_INVALID', `${path}: expected a JSON array of 77 category names`);
  }
  return parsed;
}

/** Banking77 train (10,003 queries) or test (3,080); labels are all 77 intents even if a part lacks one. */
export function loadBanking77(root: string, part: 'train' | 'test'): LabeledDataset {
  const labels = banking77Labels(root);
  const path = join(resolve(root, 'banking77'), `${part}.csv`);
  return loadTabularFile(path, {
    textColumn: 'text',
    labelColumn: 'category',
    labels,
    name: `banking77-${part}`,
  });
}

/** Medical Abstracts class ids ("1".."5") -> names, from medical_tc_labels.csv. */
export function medicalAbstractsLabelMap(root: string): Record<string, string> {
  const path = join(requireDir(root, 'medical-abstracts', 'Medical Abstracts'), 'medical_tc_labels.csv');
  const table = readTabularFile(path);
  const map: Record<string, string> = {};
  for (const { values, line } of table.rows) {
    const id = values.condition_label?.trim();
    const name = values.condition_name?.trim();
    if (!id || !name)
      throw new FedloraError(
        'DATA_INVALID',
        `${path}: line ${line} needs condition_label and condition_name; columns are: ${table.columns.join(', ')}`,
      );
    map[id] = name;
  }
  return map;
}

export interface MedicalAbstractsStats {
  /** Rows in medical_tc_test.csv (2,888 in the published file). */
  rows: number;
  /** Distinct abstracts that appear with more than one label (all their copies are dropped). */
  conflictingTexts: number;
  conflictingRows: number;
  /** Exact repeats (same text and label) dropped after keeping the first. */
  duplicateRows: number;
  kept: number;
  train: number;
  heldout: number;
}

export interface MedicalAbstractsSplit {
  train: LabeledDataset;
  heldout: LabeledDataset;
  stats: MedicalAbstractsStats;
}

/**
 * Medical Abstracts from medical_tc_test.csv (the only labeled split shipped), cleaned of conflicting labels and
 * duplicates, then split 80/20 stratified with seed 13: a fixed split every benchmark shares.
 */
export function loadMedicalAbstractsSplit(root: string): MedicalAbstractsSplit {
  const labelMap = medicalAbstractsLabelMap(root);
  const labels = Object.values(labelMap);
  const path = join(resolve(root, 'medical-abstracts'), 'medical_tc_test.csv');
  const raw = loadTabularFile(path, {
    textColumn: 'medical_abstract',
    labelColumn: 'condition_label',
    labelMap,
    labels,
  });
  const clean = dropConflictsAndDuplicates(raw.examples);
  const all = makeDataset('medical-abstracts', clean.examples, labels);
  const { train, heldout } = stratifiedSplit(
    labelIds(all),
    MEDICAL_ABSTRACTS_SPLIT.heldoutFraction,
    MEDICAL_ABSTRACTS_SPLIT.seed,
  );
  return {
    train: subsetDataset(all, train, 'medical-abstracts-train'),
    heldout: subsetDataset(all, heldout, 'medical-abstracts-heldout'),
    stats: {
      rows: raw.examples.length,
      conflictingTexts: clean.conflictingTexts,
      conflictingRows: clean.conflictingRows,
      duplicateRows: clean.duplicateRows,
      kept: clean.examples.length,
      train: train.length,
      heldout: heldout.length,
    },
  };
}

export function loadMedicalAbstracts(root: string, part: 'train' | 'heldout'): LabeledDataset {
  return loadMedicalAbstractsSplit(root)[part];
}
