// Deterministic, seeded splits over example indices: stratified train/held-out splits and subsets, and the
// federated partitions used in the FL literature: label skew by per-class Dirichlet proportions
// (Hsu et al. 2019, "Measuring the Effects of Non-Identical Data Distribution for Federated Visual Classification")
// and quantity skew by Dirichlet site sizes (Li et al. 2022, "Federated Learning on Non-IID Data Silos", NIID-Bench).
// Every function returns indices into the input, sorted ascending, so callers keep the dataset's own order.

import { FedloraError } from '../errors';
import { Rng } from '../random';

export interface PartitionOptions {
  /** Every site ends with at least this many examples (default 1); examples are moved from the largest sites. */
  minPerSite?: number;
}

function checkLabels(labels: readonly number[]): number {
  let k = 0;
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (!Number.isInteger(y) || y < 0)
      throw new FedloraError('DATA_INVALID', `label at index ${i} is ${y}; class ids must be integers >= 0`);
    if (y + 1 > k) k = y + 1;
  }
  return k;
}

/** Indices of each class, in input order. */
function byClass(labels: readonly number[]): number[][] {
  const k = checkLabels(labels);
  const groups: number[][] = Array.from({ length: k }, () => []);
  labels.forEach((y, i) => groups[y].push(i));
  return groups;
}

const ascending = (a: number, b: number): number => a - b;

/**
 * Split `total` over groups in proportion to `counts` by largest remainder (Hamilton), ties to the lower group id,
 * so the quotas sum to exactly `total` and no quota exceeds its count when total <= sum(counts).
 */
export function allocateProportional(counts: readonly number[], total: number): number[] {
  const n = counts.reduce((s, c) => s + c, 0);
  if (!Number.isInteger(total) || total < 0 || total > n)
    throw new FedloraError('CONFIG_INVALID', `cannot allocate ${total} of ${n} items`);
  if (n === 0) return counts.map(() => 0);
  const exact = counts.map((c) => (c * total) / n);
  const quota = exact.map(Math.floor);
  let left = total - quota.reduce((s, q) => s + q, 0);
  const order = exact.map((e, i) => i).sort((i, j) => exact[j] - quota[j] - (exact[i] - quota[i]) || i - j);
  for (const i of order) {
    if (left === 0) break;
    quota[i]++;
    left--;
  }
  return quota;
}

/**
 * A stratified subset of exactly `size` indices: class shares as in `labels` (largest remainder), examples within a
 * class drawn uniformly with the seed.
 */
export function stratifiedSubset(labels: readonly number[], size: number, seed: number): number[] {
  const groups = byClass(labels);
  if (!Number.isInteger(size) || size < 0 || size > labels.length) {
    throw new FedloraError(
      'CONFIG_INVALID',
      `stratifiedSubset: size must be an integer in [0, ${labels.length}], got ${size}`,
    );
  }
  const quota = allocateProportional(
    groups.map((g) => g.length),
    size,
  );
  const rng = new Rng(seed);
  const out: number[] = [];
  groups.forEach((g, c) => out.push(...rng.shuffle([...g]).slice(0, quota[c])));
  return out.sort(ascending);
}

/**
 * Stratified split: `heldout` gets round(n * fraction) indices with each class's share preserved, `train` the rest.
 */
export function stratifiedSplit(
  labels: readonly number[],
  fraction: number,
  seed: number,
): { train: number[]; heldout: number[] } {
  if (!(fraction >= 0 && fraction <= 1))
    throw new FedloraError('CONFIG_INVALID', `stratifiedSplit: fraction must be in [0, 1], got ${fraction}`);
  const heldout = stratifiedSubset(labels, Math.round(labels.length * fraction), seed);
  const inHeldout = new Uint8Array(labels.length);
  for (const i of heldout) inHeldout[i] = 1;
  const train: number[] = [];
  for (let i = 0; i < labels.length; i++) if (!inHeldout[i]) train.push(i);
  return { train, heldout };
}

function checkSites(n: number, numSites: number, minPerSite: number): void {
  if (!Number.isInteger(numSites) || numSites < 1)
    throw new FedloraError('CONFIG_INVALID', `numSites must be an integer >= 1, got ${numSites}`);
  if (!Number.isInteger(minPerSite) || minPerSite < 0)
    throw new FedloraError('CONFIG_INVALID', `minPerSite must be an integer >= 0, got ${minPerSite}`);
  if (n < numSites * minPerSite) {
    throw new FedloraError(
      'DATA_INVALID',
      `cannot give ${numSites} sites ${minPerSite} example(s) each from only ${n} examples`,
    );
  }
}

function checkAlpha(alpha: number): void {
  if (!(alpha > 0) || !Number.isFinite(alpha))
    throw new FedloraError('CONFIG_INVALID', `Dirichlet alpha must be a finite number > 0, got ${alpha}`);
}

/** Cut `items` into consecutive pieces with the given proportions (floor of the cumulative sums, as numpy's split). */
function cutByProportions(items: readonly number[], p: readonly number[], sites: number[][]): void {
  let start = 0;
  let cum = 0;
  for (let k = 0; k < p.length; k++) {
    cum += p[k];
    // round, not floor: floor leaves every class's remainder to the last site, which then holds every label
    const end = k === p.length - 1 ? items.length : Math.min(items.length, Math.round(cum * items.length));
    for (let i = start; i < end; i++) sites[k].push(items[i]);
    start = Math.max(start, end);
  }
}

/**
 * Top up small sites: move a random example from the currently largest site (ties: lowest id) until every site has
 * minPerSite. Always terminates because n >= numSites * minPerSite means some site holds more than the minimum.
 */
function enforceMinimum(sites: number[][], minPerSite: number, rng: Rng): void {
  for (let k = 0; k < sites.length; k++) {
    while (sites[k].length < minPerSite) {
      let donor = 0;
      for (let j = 1; j < sites.length; j++) if (sites[j].length > sites[donor].length) donor = j;
      const at = rng.int(sites[donor].length);
      sites[k].push(sites[donor][at]);
      sites[donor][at] = sites[donor][sites[donor].length - 1];
      sites[donor].pop();
    }
  }
}

/**
 * Label-skew partition: for each class, proportions over sites ~ Dir(alpha, ..., alpha); the class's examples are
 * shuffled and cut by those proportions. Small alpha (0.1) gives each site few classes; large alpha (100) is near IID.
 * Every example is assigned to exactly one site.
 */
export function dirichletPartition(
  labels: readonly number[],
  numSites: number,
  alpha: number,
  seed: number,
  opts: PartitionOptions = {},
): number[][] {
  const minPerSite = opts.minPerSite ?? 1;
  checkSites(labels.length, numSites, minPerSite);
  checkAlpha(alpha);
  const rng = new Rng(seed);
  const sites: number[][] = Array.from({ length: numSites }, () => []);
  const alphas = new Array<number>(numSites).fill(alpha);
  for (const group of byClass(labels)) {
    if (group.length === 0) continue;
    cutByProportions(rng.shuffle([...group]), rng.dirichlet(alphas), sites);
  }
  enforceMinimum(sites, minPerSite, rng);
  return sites.map((s) => s.sort(ascending));
}

/**
 * Quantity-skew partition of n examples: site sizes follow q ~ Dir(alpha) (NIID-Bench), labels ignored, so each site
 * is IID in content but sizes differ. Small alpha gives very unequal sites.
 */
export function quantitySkewPartition(
  n: number,
  numSites: number,
  alpha: number,
  seed: number,
  opts: PartitionOptions = {},
): number[][] {
  if (!Number.isInteger(n) || n < 0)
    throw new FedloraError('CONFIG_INVALID', `n must be an integer >= 0, got ${n}`);
  const minPerSite = opts.minPerSite ?? 1;
  checkSites(n, numSites, minPerSite);
  checkAlpha(alpha);
  const rng = new Rng(seed);
  const sites: number[][] = Array.from({ length: numSites }, () => []);
  const order = rng.shuffle(Array.from({ length: n }, (_, i) => i));
  cutByProportions(order, rng.dirichlet(new Array<number>(numSites).fill(alpha)), sites);
  enforceMinimum(sites, minPerSite, rng);
  return sites.map((s) => s.sort(ascending));
}

/** IID partition: shuffle, then deal into sites whose sizes differ by at most one. */
export function iidPartition(n: number, numSites: number, seed: number): number[][] {
  if (!Number.isInteger(n) || n < 0)
    throw new FedloraError('CONFIG_INVALID', `n must be an integer >= 0, got ${n}`);
  checkSites(n, numSites, 0);
  const order = new Rng(seed).shuffle(Array.from({ length: n }, (_, i) => i));
  const sites: number[][] = Array.from({ length: numSites }, () => []);
  order.forEach((idx, i) => sites[i % numSites].push(idx));
  return sites.map((s) => s.sort(ascending));
}
