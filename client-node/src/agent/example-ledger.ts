// Which examples this site has already trained on, by content (continual re-training, issue 20): an example's key
// is the SHA-256 of its label and text, so a file rewritten with the same rows, reordered or with duplicated lines
// brings no new examples, and an example edited in place is new. The keys of the examples each uploaded round
// trained on are kept in the state dir (trained-examples.txt, one hex key a line), so a restart does not count the
// whole file as new again. A row removed from the data keeps its key: should it come back, it is not new.

import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { LabeledDataset, LabeledExample } from '@fedlora/shared/data/dataset.ts';
import { describeError } from '@fedlora/shared/errors.ts';

export const TRAINED_EXAMPLES_FILE = 'trained-examples.txt';

/** 128 bits of SHA-256 over label and text: collisions are out of reach for any site's data */
const KEY_HEX = 32;

export function exampleKey(e: LabeledExample): string {
  return createHash('sha256').update(e.label).update('\u0000').update(e.text).digest('hex').slice(0, KEY_HEX);
}

export class ExampleLedger {
  private readonly trained = new Set<string>();
  /** keys per dataset, computed once: a reload makes a new dataset, a round reuses the current one's */
  private readonly keyCache = new WeakMap<LabeledDataset, string[]>();

  /** `file`: where the trained keys persist (null: in memory only) */
  constructor(
    private readonly file: string | null,
    private readonly log: (line: string) => void = () => {},
  ) {
    if (file && existsSync(file)) {
      try {
        for (const line of readFileSync(file, 'utf8').split('\n'))
          if (/^[0-9a-f]+$/.test(line) && line.length === KEY_HEX) this.trained.add(line);
      } catch (err) {
        // a ledger that cannot be read only makes every example count as new: training is not affected
        log(`cannot read ${file} (${describeError(err)}): every example counts as new`);
      }
    }
  }

  keys(ds: LabeledDataset): string[] {
    let k = this.keyCache.get(ds);
    if (!k) {
      k = ds.examples.map(exampleKey);
      this.keyCache.set(ds, k);
    }
    return k;
  }

  /** examples of `ds` (each row, duplicates too) that no uploaded round of this site trained on */
  newCount(ds: LabeledDataset): number {
    let n = 0;
    for (const k of this.keys(ds)) if (!this.trained.has(k)) n++;
    return n;
  }

  /** rows of `before` whose content is in no row of `after` */
  removedCount(before: LabeledDataset, after: LabeledDataset): number {
    const now = new Set(this.keys(after));
    return this.keys(before).filter((k) => !now.has(k)).length;
  }

  /** a round that trained on `keys` has uploaded: they are no longer new (and the ledger file is rewritten) */
  markTrained(keys: readonly string[]): void {
    const before = this.trained.size;
    for (const k of keys) this.trained.add(k);
    if (!this.file || this.trained.size === before) return;
    try {
      const tmp = `${this.file}.tmp`;
      writeFileSync(tmp, [...this.trained].join('\n') + '\n', { mode: 0o600 });
      renameSync(tmp, this.file);
    } catch (err) {
      this.log(`cannot write ${this.file} (${describeError(err)}): after a restart these examples count as new again`);
    }
  }
}
