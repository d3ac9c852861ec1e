// Coordinate-wise median (Yin, Chen, Ramchandran & Bartlett 2018, "Byzantine-Robust Distributed Learning: Towards
// Optimal Statistical Rates", ICML): each coordinate of the new delta is the median of that coordinate over the
// round's deltas (the mean of the two middle values for an even count). Fewer than half the sites cannot move it
// outside the range of the honest values, however large their deltas. Use it when some sites may be faulty or
// malicious and updates are visible (not with secure aggregation); with honest, similar sites it is noisier than
// FedAvg's mean. Deltas are not weighted by example counts (robust.ts says why).

import { z } from 'zod';
import type { NamedTensors } from '../tensor';
import { FedAvg } from './fedavg';
import { defineStrategy } from './registry';
import { coordinatewise, KeptUpdatesAggregator } from './robust';
import type { RoundAggregator } from './strategy';

/** The median has no options of its own. */
export const MedianOptionsSchema = z.object({});

/** Median of values sorted ascending. */
export function sortedMedian(sorted: Float64Array): number {
  const n = sorted.length;
  const mid = n >> 1;
  return n % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** FedAvg's round config and statelessness; only the combination differs. */
export class CoordinateMedian extends FedAvg {
  override readonly name: string = 'median';

  override createAggregator(_round: number, global: NamedTensors): RoundAggregator {
    return new KeptUpdatesAggregator(global, this.common, (results) => ({
      delta: coordinatewise(results.map((r) => r.delta), sortedMedian),
    }));
  }
}

export const MEDIAN = defineStrategy({
  name: 'median',
  summary: 'coordinate-wise median of the sites’ deltas, unweighted; robust, plaintext only (Yin et al. 2018)',
  options: MedianOptionsSchema,
  create: (o) => new CoordinateMedian(o),
});
