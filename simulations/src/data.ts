// The simulator's data: which dataset (embedded, the shared public sets, or a user's file), its fixed held-out part,
// and the split of the training part over virtual sites (Dirichlet label skew, Dirichlet quantity skew, or IID).
// A virtual site is only the list of its example indices: the examples are tokenized once for all sites.

import { FedloraError } from '@fedlora/shared/errors.ts';
import { labelIds, subsetDataset, type LabeledDataset } from '@fedlora/shared/data/dataset.ts';
import { loadSpamAssassin, spamAssassinEvalSubset } from '@fedlora/shared/node/data/spam-assassin.ts';
import { loadBanking77, loadMedicalAbstractsSplit, sharedDataDir } from '@fedlora/shared/node/data/public-datasets.ts';
import { loadTabularFile } from '@fedlora/shared/node/data/tabular.ts';
import {
  dirichletPartition,
  iidPartition,
  quantitySkewPartition,
  stratifiedSplit,
  stratifiedSubset,
} from '@fedlora/shared/data/split.ts';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface SimData {
  train: LabeledDataset;
  heldout: LabeledDataset;
  labels: string[];
}

/** Where --dataset banking77 / medical-abstracts are read from (never copied into the repo). */
export function expectedSharedDataDir(): string {
  return resolve(fileURLToPath(new URL('../../', import.meta.url)), '..', 'shared', 'assets', 'data');
}

function requireSharedData(name: string): string {
  const dir = sharedDataDir();
  if (dir === null)
    throw new FedloraError(
      'FILE_NOT_FOUND',
      `--dataset ${name} reads ${expectedSharedDataDir()}, which does not exist (the public datasets are not shipped; ` +
        'put banking77/ and medical-abstracts/ there or pass a CSV/JSONL file)',
    );
  return dir;
}

/** Loads train and held-out parts; limits take seeded stratified subsets (class shares kept). */
export async function loadSimData(
  dataset: string,
  opts: { limit: number | null; heldoutLimit: number | null; seed: number },
): Promise<SimData> {
  let train: LabeledDataset;
  let heldout: LabeledDataset;
  if (dataset === 'default') {
    train = await loadSpamAssassin('train');
    heldout = spamAssassinEvalSubset(await loadSpamAssassin('heldout'));
  } else if (dataset === 'banking77') {
    const root = requireSharedData(dataset);
    train = loadBanking77(root, 'train');
    heldout = loadBanking77(root, 'test');
  } else if (dataset === 'medical-abstracts') {
    ({ train, heldout } = loadMedicalAbstractsSplit(requireSharedData(dataset)));
  } else if (/\.(csv|tsv|jsonl)$/i.test(dataset)) {
    const all = loadTabularFile(dataset);
    const split = stratifiedSplit(labelIds(all), 0.2, opts.seed);
    train = subsetDataset(all, split.train, `${all.name}-train`);
    heldout = subsetDataset(all, split.heldout, `${all.name}-heldout`);
  } else {
    throw new FedloraError(
      'CONFIG_INVALID',
      `--dataset must be default, banking77, medical-abstracts or a .csv/.tsv/.jsonl file, got "${dataset}"`,
    );
  }
  if (opts.limit && opts.limit < train.examples.length)
    train = subsetDataset(train, stratifiedSubset(labelIds(train), opts.limit, opts.seed), train.name);
  if (opts.heldoutLimit && opts.heldoutLimit < heldout.examples.length)
    heldout = subsetDataset(heldout, stratifiedSubset(labelIds(heldout), opts.heldoutLimit, opts.seed + 1), heldout.name);
  return { train, heldout, labels: train.labels };
}

export interface PartitionSpec {
  sites: number;
  /** Dirichlet label-skew concentration; null = IID */
  alpha: number | null;
  /** Dirichlet site-size concentration; when set it replaces label skew (IID content, unequal sizes) */
  quantitySkew: number | null;
  seed: number;
}

/** Example indices of every site (each training example in exactly one site; every site non-empty). */
export function partitionSites(labels: readonly number[], spec: PartitionSpec): number[][] {
  if (spec.quantitySkew !== null) return quantitySkewPartition(labels.length, spec.sites, spec.quantitySkew, spec.seed);
  if (spec.alpha === null) return iidPartition(labels.length, spec.sites, spec.seed);
  return dirichletPartition(labels, spec.sites, spec.alpha, spec.seed);
}

/** Per-site label histograms [site][class], for metrics.json and the partition test. */
export function labelHistograms(labels: readonly number[], sites: readonly number[][], numClasses: number): number[][] {
  return sites.map((idx) => {
    const h = new Array<number>(numClasses).fill(0);
    for (const i of idx) h[labels[i]]++;
    return h;
  });
}
