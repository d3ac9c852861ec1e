// A site's local held-out split for federated evaluation (issue 20): examples in it are never trained on, and the
// site scores candidate adapters on them (round-handler.ts 'round:evaluate'). Which side an example falls on is a
// seeded hash of its label and text, not its position: the split is the same on every run, after the file is
// reordered, and when the file grows (continual re-training), so an example once held out never moves into training
// and one trained on never moves into the held-out split. Every class is sampled at the same rate (stratified by
// label in expectation); identical examples fall on the same side, so a duplicate cannot leak across. Isomorphic:
// the browser site uses it too.

import { FedloraError } from '../errors';
import type { LabeledDataset, LabeledExample } from './dataset';

/** The seed sites use unless told otherwise: the same split for the same data, whoever computes it (tests too). */
export const DEFAULT_HOLDOUT_SEED = 20;

export interface HoldoutSplit {
  /** the examples the site trains on */
  train: LabeledDataset;
  /** the examples it only evaluates on */
  heldout: LabeledDataset;
}

/** FNV-1a (32 bit) of the seed, the label and the text, finalized: fast, sync, and the same in Node and browsers. */
function exampleHash(e: LabeledExample, seed: number): number {
  let h = 0x811c9dc5 ^ (seed >>> 0);
  const mix = (s: string) => {
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193);
    }
  };
  mix(e.label);
  mix('\u0000'); // a separator, so ("ab", "c") and ("a", "bc") differ
  mix(e.text);
  // MurmurHash3's finalizer: FNV alone leaves the high bits, which the threshold reads, barely touched by the last
  // characters, and texts that differ only at the end ("note 17", "note 18") would fall on the same side
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** true if `e` belongs to the held-out split at `fraction` (0 <= fraction < 1). */
export function isHeldOut(e: LabeledExample, fraction: number, seed = DEFAULT_HOLDOUT_SEED): boolean {
  return exampleHash(e, seed) < fraction * 2 ** 32;
}

/** Splits `ds` into the part a site trains on and its held-out split; both keep the dataset's order and labels. */
export function holdoutSplit(ds: LabeledDataset, fraction: number, seed = DEFAULT_HOLDOUT_SEED): HoldoutSplit {
  if (!(fraction >= 0 && fraction < 1))
    throw new FedloraError('CONFIG_INVALID', `the held-out fraction must be in [0, 1), got ${fraction}`);
  const train: LabeledExample[] = [];
  const heldout: LabeledExample[] = [];
  for (const e of ds.examples) (isHeldOut(e, fraction, seed) ? heldout : train).push(e);
  return {
    train: { ...ds, examples: train },
    heldout: { ...ds, name: `${ds.name} (held out)`, examples: heldout },
  };
}
