// What the robust strategies (median.ts, trimmed-mean.ts, multi-krum.ts) share: an aggregator that keeps every
// site's update whole until the round ends, and a coordinate-wise reduction over the kept deltas.
// They need the individual updates (a median of a sum means nothing), so there is no acceptSum and they do not
// combine with secure aggregation. Memory is one delta per site for the round, not one accumulator as in FedAvg.
// Example counts do not weight the combination: a site declares its own count, so an attacker that claims a
// million examples would buy itself the majority that the robust rule exists to deny it.

import type { NamedTensors } from '../tensor';
import { addScaled, AggregationError, assertFinite, assertSameLayout, WeightedMetrics } from './math';
import { assertFirstResult, type AggregateOutcome, type ClientResult, type RoundAggregator, type RoundFailure } from './strategy';

/** What a robust rule makes of the round's updates: the delta to apply and, if it chose among them, whose. */
export interface RobustCombination {
  delta: NamedTensors;
  /** the updates the delta was computed from; absent: all of them */
  chosen?: readonly ClientResult[];
}

/**
 * Keeps each site's checked update (same checks as MeanDeltaAggregator: one update per site, a positive integer
 * example count, the global adapter's layout, finite values) and, at finish, applies global + combine(updates).
 */
export class KeptUpdatesAggregator implements RoundAggregator {
  private readonly results: ClientResult[] = [];
  private readonly seen = new Set<string>();
  private finished = false;

  constructor(
    private readonly global: NamedTensors,
    private readonly opts: { minResults: number; acceptFailures: boolean },
    private readonly combine: (results: readonly ClientResult[]) => RobustCombination,
  ) {}

  get count(): number {
    return this.results.length;
  }

  private open(): void {
    if (this.finished) throw new AggregationError('this round was already aggregated');
  }

  accumulate(r: ClientResult): void {
    this.open();
    assertFirstResult(r, this.seen);
    assertSameLayout(r.delta, this.global, `delta of site ${r.siteId}`);
    assertFinite(r.delta, `delta of site ${r.siteId}`);
    this.seen.add(r.siteId);
    this.results.push(r);
  }

  finish(failures: readonly RoundFailure[]): AggregateOutcome | null {
    this.open();
    this.finished = true;
    if (this.results.length === 0) return null;
    if (failures.length > 0 && !this.opts.acceptFailures) return null;
    if (this.results.length < this.opts.minResults) return null;
    const { delta, chosen } = this.combine(this.results);
    const used = chosen ?? this.results;
    // unweighted, like the deltas, and over the updates that went in (an excluded site's metrics are no better)
    const metrics = new WeightedMetrics();
    for (const r of used) metrics.add(r.metrics, 1);
    const adapter = addScaled(this.global, delta);
    assertFinite(adapter, 'robust aggregate');
    return {
      adapter,
      metrics: metrics.mean(),
      numResults: used.length,
      numExamples: used.reduce((s, r) => s + r.numExamples, 0),
      ...(chosen ? { contributors: chosen.map((r) => r.siteId) } : {}),
    };
  }
}

/**
 * out[k][i] = reduce(sorted values of coordinate i of tensor k over all deltas). `reduce` gets the n values sorted
 * ascending in a scratch array it must not keep. The deltas share the layout of `deltas[0]` (checked on accumulate).
 */
export function coordinatewise(
  deltas: readonly NamedTensors[],
  reduce: (sorted: Float64Array) => number,
): NamedTensors {
  if (deltas.length === 0) throw new AggregationError('coordinate-wise reduction of no deltas');
  const column = new Float64Array(deltas.length);
  const out: NamedTensors = {};
  for (const k of Object.keys(deltas[0]).sort()) {
    const size = deltas[0][k].data.length;
    const d = new Float32Array(size);
    for (let i = 0; i < size; i++) {
      for (let j = 0; j < deltas.length; j++) column[j] = deltas[j][k].data[i];
      column.sort();
      d[i] = reduce(column);
    }
    out[k] = { shape: [...deltas[0][k].shape], data: d };
  }
  return out;
}
