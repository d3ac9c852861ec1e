// How far one site may move the global adapter: a cap on its FedAvg weight (it declares its own example count, so
// the cap comes from the other sampled sites' counts) and a bound on the L2 norm of its delta (derived from what
// the local optimizer can do, then from the norms honest sites actually sent). Both are coordinator policy, applied
// before an update reaches the strategy's aggregator, so every strategy gets them.

import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { adamWeightCeiling } from '@fedlora/shared/training/update-bound.ts';
import type { RoundSettings } from './settings';

/**
 * The default weight cap is this multiple of the median declared example count of the round's sampled sites.
 * 3 leaves honest size skew up to 3× the typical site untouched (the quantity skew of the project's own site
 * splits stays within it), while one site declaring 10⁹ examples counts as 3 typical sites, not all of them.
 */
export const WEIGHT_CAP_MEDIAN_MULTIPLE = 3;

/**
 * The adaptive norm bound is this multiple of the median accepted update norm of recent rounds. AdamW moves every
 * weight by about lr per step whatever the data, so honest norms sit within a small factor of each other; 3 keeps
 * heterogeneous (non-IID) honest sites below the bound and holds an outlier to 3 typical updates.
 */
export const NORM_BOUND_MEDIAN_MULTIPLE = 3;
/** accepted norms of this many recent rounds feed the median */
export const NORM_HISTORY_ROUNDS = 5;
/** fewer accepted norms than this: the bound is the optimizer ceiling alone */
export const NORM_HISTORY_MIN = 3;

/** The middle value (mean of the two middle ones for an even count); NaN for none. */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * The largest FedAvg weight one update may carry this round: 1 with equal weights; else `maxSiteWeight`, or by
 * default WEIGHT_CAP_MEDIAN_MULTIPLE × the median count the sampled sites declared when ready (0 = not declared
 * counts as 0, so a round of mostly undeclared sites falls back to equal weights rather than trusting the uploads).
 */
export function siteWeightCap(declaredExamples: readonly number[], s: RoundSettings): number {
  if (s.siteWeights === 'equal') return 1;
  if (s.maxSiteWeight !== null) return s.maxSiteWeight;
  if (declaredExamples.length === 0) return Infinity;
  return Math.max(1, Math.ceil(WEIGHT_CAP_MEDIAN_MULTIPLE * median(declaredExamples)));
}

/**
 * The largest L2 norm an honest site's delta can have: every one of the adapter's weights moved by the most AdamW
 * allows (adamWeightCeiling, shared/src/training/update-bound.ts), at the round's learning rate, for maxSteps steps
 * (a site never takes more). For the default adapter (r 8 on query and value of 4 layers + a 2-label head: 33,282
 * weights) at lr 2e-3 and 12 steps it is 4.9 (the old fixed bound was 1000); an honest update is usually well below it, since not every weight moves every step.
 */
export function optimizerNormCeiling(
  adapter: NamedTensors,
  s: Pick<RoundSettings, 'learningRate' | 'maxSteps'>,
): number {
  let weights = 0;
  for (const t of Object.values(adapter)) weights += t.data.length;
  return adamWeightCeiling(s.learningRate, s.maxSteps) * Math.sqrt(weights);
}

/**
 * Norms of the updates accepted in recent rounds, for the adaptive bound: as sent but at most the optimizer
 * ceiling, so that a minority of outliers moves the median little and nothing raises it past the ceiling. Kept in
 * memory: after a restart the bound starts again from the ceiling.
 */
export class NormHistory {
  private rounds: number[][] = [];

  /** one round's accepted norms (a round without any is not recorded) */
  addRound(norms: readonly number[]): void {
    if (norms.length === 0) return;
    this.rounds.push([...norms]);
    if (this.rounds.length > NORM_HISTORY_ROUNDS) this.rounds.shift();
  }

  /** forgets everything: the training settings changed, so old norms say nothing about new honest ones */
  clear(): void {
    this.rounds = [];
  }

  /** the recorded norms above 0 (a zero update says nothing about the scale of honest ones) */
  norms(): number[] {
    return this.rounds.flat().filter((x) => x > 0);
  }
}

/**
 * The L2 bound on one update's delta this round: an explicit `maxDeltaNorm`; else the optimizer ceiling, lowered to
 * NORM_BOUND_MEDIAN_MULTIPLE × the median recent accepted norm once there are NORM_HISTORY_MIN of them.
 */
export function deltaNormBound(
  s: Pick<RoundSettings, 'maxDeltaNorm'>,
  ceiling: number,
  recentNorms: readonly number[],
): number {
  if (s.maxDeltaNorm !== null) return s.maxDeltaNorm;
  if (recentNorms.length < NORM_HISTORY_MIN) return ceiling;
  return Math.min(ceiling, NORM_BOUND_MEDIAN_MULTIPLE * median(recentNorms));
}

/** `delta` scaled by `factor` (a new tensor set; the input is not changed). */
export function scaleDelta(delta: NamedTensors, factor: number): NamedTensors {
  const out: NamedTensors = {};
  for (const [k, t] of Object.entries(delta)) {
    const data = new Float32Array(t.data.length);
    for (let i = 0; i < data.length; i++) data[i] = t.data[i] * factor;
    out[k] = { shape: [...t.shape], data };
  }
  return out;
}
