// Multi-Krum (Blanchard, El Mhamdi, Guerraoui & Stainer 2017, "Machine Learning with Adversaries: Byzantine Tolerant
// Gradient Descent", NeurIPS; El Mhamdi, Guerraoui & Rouault 2018, "The Hidden Vulnerability of Distributed
// Learning in Byzantium", ICML). With n updates of which at most f are Byzantine, each update's score is the sum of
// its squared L2 distances to its n − f − 2 nearest other updates; the m updates with the lowest scores are averaged.
// An attacker far from the honest cluster scores high and is left out whole (not coordinate by coordinate as with
// the median), and the outcome names the chosen sites (`contributors`), so a round's record can show who was left
// out. Needs n > 2f + 2. m = 1 is Krum; the default m = n − f (El Mhamdi et al.) averages as many as can be honest.
// Cost: n²/2 distances over the whole delta. Plaintext only; deltas are not weighted by example counts (robust.ts).

import { z } from 'zod';
import { parseFields } from '../schema-fields';
import type { NamedTensors } from '../tensor';
import { FedAvg, type FedAvgOptions } from './fedavg';
import { AggregationError, weightedMean } from './math';
import { defineStrategy } from './registry';
import { KeptUpdatesAggregator, type RobustCombination } from './robust';
import { CommonOptionsSchema, type ClientResult, type RoundAggregator } from './strategy';

export const MultiKrumOptionsSchema = z.object({
  byzantineFraction: z
    .number()
    .min(0)
    .lt(0.5)
    .default(0.2)
    .meta({
      flag: 'byzantine-fraction',
      description: 'assumed fraction of Byzantine sites; f = ⌊fraction·n⌋ of the round’s n updates',
    }),
  select: z
    .number()
    .int()
    .min(0)
    .max(100_000)
    .default(0)
    .meta({
      flag: 'krum-select',
      description: 'm, how many lowest-scored updates to average (at most n − f); 0 = n − f, 1 = Krum',
    }),
});
export type MultiKrumOptions = FedAvgOptions & z.input<typeof MultiKrumOptionsSchema>;

/** f for a round of n updates. */
export function byzantineCount(fraction: number, n: number): number {
  return Math.floor(fraction * n + 1e-9); // 1e-9: 0.29·100 must be 29, not 28.999999999999996
}

/** Σ (a − b)² over every tensor of two deltas of the same layout. */
function squaredDistance(a: NamedTensors, b: NamedTensors): number {
  let s = 0;
  for (const k of Object.keys(a)) {
    const x = a[k].data;
    const y = b[k].data;
    for (let i = 0; i < x.length; i++) {
      const d = x[i] - y[i];
      s += d * d;
    }
  }
  return s;
}

/**
 * Krum scores: for each delta, the sum of its squared distances to its n − f − 2 nearest others. Refuses
 * n ≤ 2f + 2, where the honest updates are not guaranteed to outnumber what an attacker can surround itself with.
 */
export function krumScores(deltas: readonly NamedTensors[], f: number): number[] {
  const n = deltas.length;
  if (!Number.isInteger(f) || f < 0) throw new AggregationError(`multi-krum: f must be a non-negative integer, got ${f}`);
  if (n <= 2 * f + 2)
    throw new AggregationError(
      `multi-krum needs more than 2f + 2 = ${2 * f + 2} updates for f = ${f} Byzantine sites, got ${n} ` +
        '(lower byzantineFraction, sample more sites, or use median or trimmed-mean)',
    );
  const dist = Array.from({ length: n }, () => new Float64Array(n));
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) dist[i][j] = dist[j][i] = squaredDistance(deltas[i], deltas[j]);
  const neighbours = n - f - 2;
  return dist.map((row, i) => {
    const others = row.filter((_, j) => j !== i).sort();
    let s = 0;
    for (let j = 0; j < neighbours; j++) s += others[j];
    return s;
  });
}

/** The m lowest-scored results (ties broken by arrival order, so a round is reproducible) and their plain mean. */
export function multiKrum(results: readonly ClientResult[], byzantineFraction: number, select: number): RobustCombination {
  const n = results.length;
  const f = byzantineCount(byzantineFraction, n);
  const scores = krumScores(results.map((r) => r.delta), f);
  const m = select === 0 ? n - f : Math.min(select, n - f);
  const order = scores.map((s, i) => [s, i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const chosen = order.slice(0, m).map(([, i]) => results[i]);
  return { delta: weightedMean(chosen.map((r) => ({ tensors: r.delta, weight: 1 }))), chosen };
}

/** FedAvg's round config and statelessness; only the combination differs. */
export class MultiKrum extends FedAvg {
  override readonly name: string = 'multi-krum';
  readonly byzantineFraction: number;
  readonly select: number;

  constructor(options: MultiKrumOptions = {}) {
    const o = parseFields(CommonOptionsSchema.extend(MultiKrumOptionsSchema.shape), options, { prefix: 'multi-krum' });
    super(o);
    this.byzantineFraction = o.byzantineFraction;
    this.select = o.select;
  }

  override createAggregator(_round: number, global: NamedTensors): RoundAggregator {
    return new KeptUpdatesAggregator(global, this.common, (results) =>
      multiKrum(results, this.byzantineFraction, this.select),
    );
  }
}

export const MULTI_KRUM = defineStrategy({
  name: 'multi-krum',
  summary: 'mean of the m updates closest to their n − f − 2 nearest others; robust, plaintext only (Blanchard et al. 2017)',
  options: MultiKrumOptionsSchema,
  create: (o) => new MultiKrum(o),
});
