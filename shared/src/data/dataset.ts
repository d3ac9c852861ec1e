// The in-memory labeled text dataset every loader returns, and small helpers over it (label ids, checks, subsets).
// Isomorphic: no node imports, so the web client can use it too.

import { FedloraError } from '../errors';

export interface LabeledExample {
  text: string;
  label: string;
}

export interface LabeledDataset {
  name: string;
  /** Sorted class names; the index of a name is its class id. May include classes with no example here. */
  labels: string[];
  examples: LabeledExample[];
}

/** Sorted, de-duplicated class names. Plain code-unit order, so it is the same on every platform and locale. */
export function sortedLabels(labels: Iterable<string>): string[] {
  return [...new Set(labels)].sort();
}

/**
 * Build a dataset. Without `labels` the class list is the labels seen in `examples`; with `labels`, every example
 * must use one of them (checkLabels) and the list is kept complete, so a small shard keeps the global class ids.
 */
export function makeDataset(
  name: string,
  examples: LabeledExample[],
  labels?: readonly string[],
): LabeledDataset {
  const ds: LabeledDataset = { name, labels: sortedLabels(labels ?? examples.map((e) => e.label)), examples };
  if (labels) checkLabels(ds, labels);
  return ds;
}

/** Class id of every example (index into ds.labels). */
export function labelIds(ds: LabeledDataset): number[] {
  const id = new Map(ds.labels.map((l, i) => [l, i]));
  return ds.examples.map((e, i) => {
    const y = id.get(e.label);
    if (y === undefined)
      throw new FedloraError(
        'DATA_INVALID',
        `${ds.name}: example ${i} has label "${e.label}", which is not in the dataset's labels`,
      );
    return y;
  });
}

/** Throws DATA_INVALID naming every label of `ds` (in its labels list or its examples) that is not in knownLabels. */
export function checkLabels(ds: LabeledDataset, knownLabels: readonly string[]): void {
  const known = new Set(knownLabels);
  const unknown = sortedLabels(
    [...ds.labels, ...ds.examples.map((e) => e.label)].filter((l) => !known.has(l)),
  );
  if (unknown.length > 0) {
    const shown = unknown.slice(0, 10).map((l) => JSON.stringify(l));
    const more = unknown.length > 10 ? ` and ${unknown.length - 10} more` : '';
    throw new FedloraError(
      'DATA_INVALID',
      `${ds.name}: unknown label(s) ${shown.join(', ')}${more}; expected one of ${knownLabels.length} labels: ${knownLabels.slice(0, 10).join(', ')}${knownLabels.length > 10 ? ', ...' : ''}`,
    );
  }
}

/** The examples at `indices` (in that order), with the same class list so class ids stay comparable. */
export function subsetDataset(
  ds: LabeledDataset,
  indices: readonly number[],
  name = ds.name,
): LabeledDataset {
  return {
    name,
    labels: [...ds.labels],
    examples: indices.map((i) => {
      const e = ds.examples[i];
      if (e === undefined)
        throw new RangeError(`subsetDataset: index ${i} out of range [0, ${ds.examples.length})`);
      return e;
    }),
  };
}

/** Number of examples per class, in ds.labels order. */
export function countByLabel(ds: LabeledDataset): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of ds.labels) out[l] = 0;
  for (const e of ds.examples) out[e.label] = (out[e.label] ?? 0) + 1;
  return out;
}

export interface DedupeResult {
  examples: LabeledExample[];
  /** Distinct texts seen with more than one label; every copy of them is dropped. */
  conflictingTexts: number;
  /** Rows dropped because their text is conflicting. */
  conflictingRows: number;
  /** Rows dropped as exact repeats (same text, same label) of a kept row. */
  duplicateRows: number;
}

/**
 * Drop every text that occurs with more than one label (no right answer to learn or score), and keep only the first
 * of exact duplicates (so a text cannot sit on both sides of a train/held-out split). Texts compare exactly.
 */
export function dropConflictsAndDuplicates(examples: readonly LabeledExample[]): DedupeResult {
  const labelsOf = new Map<string, Set<string>>();
  for (const e of examples) {
    const s = labelsOf.get(e.text);
    if (s) s.add(e.label);
    else labelsOf.set(e.text, new Set([e.label]));
  }
  const kept: LabeledExample[] = [];
  const seen = new Set<string>();
  let conflictingRows = 0;
  let duplicateRows = 0;
  for (const e of examples) {
    if (labelsOf.get(e.text)!.size > 1) conflictingRows++;
    else if (seen.has(e.text)) duplicateRows++;
    else {
      seen.add(e.text);
      kept.push(e);
    }
  }
  const conflictingTexts = [...labelsOf.values()].filter((s) => s.size > 1).length;
  return { examples: kept, conflictingTexts, conflictingRows, duplicateRows };
}
