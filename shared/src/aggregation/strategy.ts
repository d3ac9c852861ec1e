// The Strategy contract the round loop sees (after Flower's configure_train / aggregate_train hooks), and the
// streaming weighted-mean-delta aggregator that FedAvg, FedProx and FedAdam share.
// Stages stay explicit: configureRound → (sites train) → accumulate/acceptSum per result → finish.

import { z } from 'zod';
import type { NamedTensors } from '../tensor';
import type { RoundConfig } from '../protocol/messages';
import { AggregationError, WeightedMetrics, WeightedSum } from './math';

export type { RoundConfig } from '../protocol/messages';

/** One site's decoded, validated update. `delta` = trained adapter − the global adapter it received. */
export interface ClientResult {
  siteId: string;
  numExamples: number;
  delta: NamedTensors;
  metrics: Record<string, number>;
}

/** A sampled site that did not deliver (timeout, rejected update, reported failure). */
export interface RoundFailure {
  siteId: string;
  code: string;
}

export interface AggregateOutcome {
  /** the new global adapter */
  adapter: NamedTensors;
  /** example-weighted mean of the training metrics every site reported */
  metrics: Record<string, number>;
  /** updates that went into it (a pre-summed input counts its `count`) */
  numResults: number;
  /** Σ numExamples */
  numExamples: number;
  /**
   * The sites whose updates the new adapter was computed from, when the strategy chose among them (Multi-Krum);
   * absent when every accumulated update went in.
   */
  contributors?: string[];
}

export interface RoundAggregator {
  /** Adds one site's result; rejects a layout mismatch, a non-finite delta or a site seen twice. */
  accumulate(r: ClientResult): void;
  /**
   * Adds a pre-summed input: sum = Σ nᵢ·Δᵢ over `count` sites with Σ nᵢ = totalWeight (the unmasked output of
   * secure aggregation). Optional: a strategy that needs individual updates (e.g. a trimmed mean) omits it.
   */
  acceptSum?(sum: NamedTensors, totalWeight: number, count: number): void;
  /** number of updates so far */
  readonly count: number;
  /** The new global adapter, or null to keep the old one (too few results, or failures not accepted). */
  finish(failures: readonly RoundFailure[]): AggregateOutcome | null;
}

export interface StrategyState {
  strategy: string;
  /** server optimizer steps taken */
  step: number;
  tensors: NamedTensors;
}

export interface Strategy {
  readonly name: string;
  /** The local-training config for `round` (1-based), derived from the coordinator's base config. */
  configureRound(round: number, base: RoundConfig): RoundConfig;
  /** A fresh aggregator for one round; `global` is the adapter the sites trained from. */
  createAggregator(round: number, global: NamedTensors): RoundAggregator;
  /** Server-side optimizer state to persist across restarts (null when the strategy has none). */
  getState(): StrategyState | null;
  setState(state: StrategyState | null): void;
}

/**
 * Options every strategy takes, set by the coordinator (minResults follows its minSites), never a flag or a setting of
 * their own. A strategy's own options are its definition's schema (registry.ts).
 */
export const CommonOptionsSchema = z.object({
  minResults: z.number().int().min(1).default(1).describe('fewer updates than this keeps the old adapter'),
  acceptFailures: z
    .boolean()
    .default(true)
    .describe('false: any failure in a round keeps the old adapter (true, as in Flower)'),
});
export type CommonStrategyOptions = z.input<typeof CommonOptionsSchema>;
export type ResolvedCommonOptions = z.output<typeof CommonOptionsSchema>;

/** Every aggregator's check of a result before its delta: one result per site, a positive integer example count. */
export function assertFirstResult(r: ClientResult, seen: ReadonlySet<string>): void {
  if (seen.has(r.siteId)) throw new AggregationError(`site ${r.siteId} reported twice in one round`);
  if (!Number.isInteger(r.numExamples) || r.numExamples < 1)
    throw new AggregationError(`site ${r.siteId}: numExamples must be a positive integer, got ${r.numExamples}`);
}

/**
 * Streams results into one WeightedSum (weights = numExamples) and, at finish, hands the weighted mean delta
 * to `apply`, which turns it into the new global adapter (FedAvg: global + mean; FedAdam: an Adam step).
 */
export class MeanDeltaAggregator implements RoundAggregator {
  private readonly sum: WeightedSum;
  private readonly metrics = new WeightedMetrics();
  private readonly seen = new Set<string>();
  private finished = false;

  constructor(
    private readonly global: NamedTensors,
    private readonly opts: { minResults: number; acceptFailures: boolean },
    private readonly apply: (global: NamedTensors, meanDelta: NamedTensors) => NamedTensors,
  ) {
    this.sum = new WeightedSum(global);
  }

  get count(): number {
    return this.sum.count;
  }

  private open(): void {
    if (this.finished) throw new AggregationError('this round was already aggregated');
  }

  accumulate(r: ClientResult): void {
    this.open();
    assertFirstResult(r, this.seen);
    this.sum.add(r.delta, r.numExamples, `delta of site ${r.siteId}`);
    this.seen.add(r.siteId);
    this.metrics.add(r.metrics, r.numExamples);
  }

  acceptSum(sum: NamedTensors, totalWeight: number, count: number): void {
    this.open();
    this.sum.addSum(sum, totalWeight, count, 'pre-summed input');
  }

  finish(failures: readonly RoundFailure[]): AggregateOutcome | null {
    this.open();
    this.finished = true;
    if (this.sum.count === 0) return null;
    if (failures.length > 0 && !this.opts.acceptFailures) return null;
    if (this.sum.count < this.opts.minResults) return null;
    return {
      adapter: this.apply(this.global, this.sum.mean()),
      metrics: this.metrics.mean(),
      numResults: this.sum.count,
      numExamples: this.sum.totalWeight,
    };
  }
}

/** Batch convenience over the streaming API: the whole round's results at once. */
export function aggregateAll(
  strategy: Strategy,
  round: number,
  global: NamedTensors,
  results: readonly ClientResult[],
  failures: readonly RoundFailure[] = [],
): AggregateOutcome | null {
  const agg = strategy.createAggregator(round, global);
  for (const r of results) agg.accumulate(r);
  return agg.finish(failures);
}
