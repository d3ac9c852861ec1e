// The site's labelled data against the federation, shared by the Node agent and the browser site: every site label
// must be one of the coordinator's, by name (label mapping check), and the data is tokenized once per max length
// (EncodedDataCache). Nothing here is ever sent: only deltas computed from it leave the site.

import { FedloraError } from '../errors';
import { countByLabel, type LabeledDataset } from './dataset';
import { encodeDataset } from '../training/encode';
import type { EncodedExample } from '../training/batches';
import type { Tokenizer } from '../tokenizer/tokenizer';

export interface LabelMapping {
  /** one row per federation label, in class-id order */
  rows: { label: string; classId: number; count: number }[];
  /** site labels that the federation does not know */
  unknown: string[];
}

export function labelMapping(ds: LabeledDataset, federationLabels: readonly string[]): LabelMapping {
  const counts = countByLabel(ds);
  const known = new Set(federationLabels);
  return {
    rows: federationLabels.map((label, classId) => ({ label, classId, count: counts[label] ?? 0 })),
    unknown: Object.keys(counts).filter((l) => !known.has(l)).sort(),
  };
}

export function formatLabelMapping(m: LabelMapping): string {
  const rows = m.rows.map((r) => `  ${r.label} → class ${r.classId}: ${r.count} example${r.count === 1 ? '' : 's'}`);
  return `label mapping (site label → federation class):\n${rows.join('\n')}`;
}

/** DATA_INVALID naming the site's labels that the federation does not have. */
export function checkLabelMapping(m: LabelMapping, dataPath: string): void {
  if (m.unknown.length)
    throw new FedloraError(
      'DATA_INVALID',
      `${dataPath}: label(s) ${m.unknown.slice(0, 10).map((l) => JSON.stringify(l)).join(', ')} are not in the federation's labels ` +
        `(${m.rows.map((r) => r.label).slice(0, 10).join(', ')}${m.rows.length > 10 ? ', …' : ''})`,
    );
}

/** Tokenizes the dataset once per (label set, max length): a site keeps its data for the whole process. */
export class EncodedDataCache {
  private readonly cache = new Map<string, EncodedExample[]>();
  constructor(readonly dataset: LabeledDataset) {}

  get(tok: Tokenizer, labels: readonly string[], maxLength: number): EncodedExample[] {
    const key = `${maxLength}\u0000${labels.join('\u0000')}`;
    let ex = this.cache.get(key);
    if (!ex) {
      ex = encodeDataset(tok, this.dataset, labels, maxLength);
      this.cache.set(key, ex);
    }
    return ex;
  }

  /** forget the encodings (another tokenizer: the base model changed) */
  clear(): void {
    this.cache.clear();
  }
}
