// Coordinate-wise trimmed mean (Yin, Chen, Ramchandran & Bartlett 2018, "Byzantine-Robust Distributed Learning:
// Towards Optimal Statistical Rates", ICML; Flower's FedTrimmedAvg): for each coordinate, sort the round's n values,
// drop the k = ⌊β·n⌋ smallest and the k largest, and average the rest. It resists up to k attackers on either side
// while averaging more of the honest values than the median does. β should be at least the fraction of sites you
// expect to be malicious. Plaintext only (it needs the individual updates); deltas are not weighted by example
// counts (robust.ts says why).

import { z } from 'zod';
import { parseFields } from '../schema-fields';
import type { NamedTensors } from '../tensor';
import { FedAvg, type FedAvgOptions } from './fedavg';
import { AggregationError } from './math';
import { defineStrategy } from './registry';
import { coordinatewise, KeptUpdatesAggregator } from './robust';
import { CommonOptionsSchema, type RoundAggregator } from './strategy';

export const TrimmedMeanOptionsSchema = z.object({
  beta: z
    .number()
    .min(0)
    .lt(0.5)
    // Flower's FedTrimmedAvg default; it covers up to a fifth of the sites attacking on one side
    .default(0.2)
    .meta({
      flag: 'trim-beta',
      description: 'fraction β of the values cut from each side of every coordinate (⌊β·n⌋ each)',
    }),
});
export type TrimmedMeanOptions = FedAvgOptions & z.input<typeof TrimmedMeanOptionsSchema>;

/** How many values to cut from each side of n; refuses a cut that leaves nothing to average. */
export function trimCount(beta: number, n: number): number {
  // the 1e-9 keeps 0.29·100 = 28.999999999999996 from losing a whole value
  const k = Math.floor(beta * n + 1e-9);
  if (2 * k >= n)
    throw new AggregationError(`trimmed mean: β = ${beta} cuts ${k} of ${n} values from each side, leaving none`);
  return k;
}

/** Mean of sorted[k .. n−k). */
export function sortedTrimmedMean(sorted: Float64Array, k: number): number {
  let s = 0;
  for (let i = k; i < sorted.length - k; i++) s += sorted[i];
  return s / (sorted.length - 2 * k);
}

/** FedAvg's round config and statelessness; only the combination differs. */
export class TrimmedMean extends FedAvg {
  override readonly name: string = 'trimmed-mean';
  readonly beta: number;

  constructor(options: TrimmedMeanOptions = {}) {
    const o = parseFields(CommonOptionsSchema.extend(TrimmedMeanOptionsSchema.shape), options, { prefix: 'trimmed-mean' });
    super(o);
    this.beta = o.beta;
  }

  override createAggregator(_round: number, global: NamedTensors): RoundAggregator {
    return new KeptUpdatesAggregator(global, this.common, (results) => {
      const k = trimCount(this.beta, results.length);
      return { delta: coordinatewise(results.map((r) => r.delta), (sorted) => sortedTrimmedMean(sorted, k)) };
    });
  }
}

export const TRIMMED_MEAN = defineStrategy({
  name: 'trimmed-mean',
  summary: 'coordinate-wise mean after cutting β of the values from each side; robust, plaintext only (Yin et al. 2018)',
  options: TrimmedMeanOptionsSchema,
  create: (o) => new TrimmedMean(o),
});
