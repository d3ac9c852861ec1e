// The SecAgg+ communication graph (Bell et al. 2020 §3.2 and §4: a Harary graph H(k, n) under a uniformly random
// relabelling of the sites is a random k-regular graph that keeps the protocol secure and correct w.h.p. for
// k = O(log n)). Site u shares its secrets only with its k neighbours and masks pairwise only with them.

import { FedloraError } from '../errors';
import { SeededStream, SEED_BYTES } from './prg';

export interface SecAggGraph {
  /** site ids, sorted */
  sites: string[];
  /** neighbours of each site, sorted */
  neighbours: Map<string, string[]>;
  /** degree k of every site */
  degree: number;
  /** shares needed to reconstruct a secret */
  threshold: number;
}

/**
 * k = 2⌈log2 n⌉ + 1 (Bell et al.'s O(log n) with a constant that keeps the graph connected and leaves room for drops),
 * raised to the next even number when n is odd (a k-regular graph needs n·k even), capped to n − 1 (complete graph).
 */
export function defaultDegree(n: number): number {
  let k = 2 * Math.ceil(Math.log2(n)) + 1;
  if ((n * k) % 2 === 1) k += 1;
  return Math.max(1, Math.min(k, n - 1));
}

/**
 * t = ⌈k/2⌉ + 1. Security needs 2t > k: a coordinator that asks some neighbours for u's self-mask share and the
 * others for u's mask-key share gets two disjoint sets, and cannot hold t of both. The extra 1 keeps 2t > k + 1, so
 * one colluding neighbour revealing both of its shares still does not give the coordinator both secrets.
 * Capped to k (with k ≤ 2, every neighbour is needed).
 */
export function defaultThreshold(k: number): number {
  return Math.max(2, Math.min(k, Math.ceil(k / 2) + 1));
}

/** A random k-regular graph over `sites`, from the coordinator's 32-byte seed (so a simulation replays it). */
export function buildGraph(siteIds: readonly string[], seed: Uint8Array, opts: { degree?: number; threshold?: number } = {}): SecAggGraph {
  const sites = [...new Set(siteIds)].sort();
  const n = sites.length;
  if (n !== siteIds.length) throw new FedloraError('BAD_MESSAGE', 'secure aggregation: duplicate site ids');
  if (n < 3) throw new FedloraError('ROUND_ABORTED', `secure aggregation needs at least 3 sites, got ${n}`);
  if (seed.length !== SEED_BYTES) throw new RangeError(`buildGraph: seed must be ${SEED_BYTES} bytes`);
  // a degree sized for the sampled sites is capped to the n − 1 that sent keys, and made even when n is odd
  let k = opts.degree === undefined ? defaultDegree(n) : Math.min(opts.degree, n - 1);
  if ((n * k) % 2 === 1) k += 1;
  if (!Number.isInteger(k) || k < 2 || k > n - 1 || (n * k) % 2 === 1)
    throw new FedloraError('CONFIG_INVALID', `secure aggregation: degree ${k} is impossible for ${n} sites (need 2 ≤ k ≤ n−1 and n·k even)`);
  const threshold = opts.threshold ?? defaultThreshold(k);
  if (!Number.isInteger(threshold) || threshold < 2 || threshold > k || 2 * threshold <= k)
    throw new FedloraError('CONFIG_INVALID', `secure aggregation: threshold ${threshold} must satisfy k/2 < t ≤ k for k = ${k}`);

  // Fisher–Yates relabelling of positions 0..n−1
  const stream = new SeededStream(seed, 'graph');
  const at = [...sites];
  for (let i = n - 1; i > 0; i--) {
    const j = stream.below(i + 1);
    [at[i], at[j]] = [at[j], at[i]];
  }
  const sets = new Map(sites.map((s) => [s, new Set<string>()]));
  const link = (i: number, j: number) => {
    sets.get(at[i])!.add(at[j]);
    sets.get(at[j])!.add(at[i]);
  };
  // Harary H(k, n): each position joined to the ⌊k/2⌋ next on the ring; odd k (n is then even) adds the diameters
  for (let i = 0; i < n; i++) for (let d = 1; d <= Math.floor(k / 2); d++) link(i, (i + d) % n);
  if (k % 2 === 1) for (let i = 0; i < n / 2; i++) link(i, i + n / 2);
  const neighbours = new Map<string, string[]>();
  for (const s of sites) {
    const list = [...sets.get(s)!].sort();
    if (list.length !== k) throw new Error(`buildGraph: site ${s} has degree ${list.length}, expected ${k}`);
    neighbours.set(s, list);
  }
  return { sites, neighbours, degree: k, threshold };
}

/** P(X < t) for X ~ Binomial(k, p), summed in log space (k ≤ 255 here). */
export function binomialBelow(k: number, p: number, t: number): number {
  if (p <= 0) return t > 0 ? 1 : 0;
  if (p >= 1) return t > k ? 1 : 0;
  let logC = 0; // log C(k, i)
  let total = 0;
  for (let i = 0; i < Math.min(t, k + 1); i++) {
    if (i > 0) logC += Math.log(k - i + 1) - Math.log(i);
    total += Math.exp(logC + i * Math.log(p) + (k - i) * Math.log1p(-p));
  }
  return Math.min(1, total);
}

/**
 * The smallest valid degree (with its default threshold) for which, when each site drops independently with
 * probability `dropRate`, the union bound n·P(Binomial(k, 1 − dropRate) < t) on some site losing too many
 * neighbours is at most `failureProbability` (Bell et al. 2020 §4 size k from the drop rate the same way).
 * Falls back to the complete graph when no smaller k reaches the target.
 */
export function degreeForDropRate(n: number, dropRate: number, failureProbability = 1e-3): number {
  if (!(dropRate >= 0 && dropRate < 1)) throw new FedloraError('CONFIG_INVALID', `secure aggregation: the drop rate must be in [0, 1), got ${dropRate}`);
  for (let k = defaultDegree(n); k < n - 1; k++) {
    if ((n * k) % 2 === 1) continue;
    if (n * binomialBelow(k, 1 - dropRate, defaultThreshold(k)) <= failureProbability) return k;
  }
  return n - 1;
}
