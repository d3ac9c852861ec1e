// Pure aggregation math on Float32Array tensors: layout checks, a streaming weighted sum (memory is one
// accumulator per tensor, however many sites report), and the batch weighted mean it must agree with.
// No I/O, no tfjs: this runs in the coordinator, in simulations and in tests alike.

import { FedloraError, type FedloraErrorCode } from '../errors';
import { numel, sameShape, type NamedTensors } from '../tensor';

/** Aggregation could not produce a model; the message names the likely cause. */
export class AggregationError extends FedloraError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('AGGREGATION_FAILED', message, options);
    this.name = 'AggregationError';
  }
}

/**
 * Throws unless `actual` has exactly the tensors of `expected`, with the same shapes and consistent data.
 * `code` lets the edge (a site's delta) report DELTA_INVALID while inner code reports AGGREGATION_FAILED.
 */
export function assertSameLayout(
  actual: NamedTensors,
  expected: NamedTensors,
  what: string,
  code: FedloraErrorCode = 'AGGREGATION_FAILED',
): void {
  const fail = (why: string) =>
    code === 'AGGREGATION_FAILED'
      ? new AggregationError(`${what}: ${why}`)
      : new FedloraError(code, `${what}: ${why}`);
  const a = Object.keys(actual);
  const e = Object.keys(expected);
  const missing = e.filter((k) => !Object.hasOwn(actual, k));
  const extra = a.filter((k) => !Object.hasOwn(expected, k));
  if (missing.length || extra.length)
    throw fail(
      `tensor names differ (missing: ${missing.slice(0, 3).join(', ') || '-'}; extra: ${extra.slice(0, 3).join(', ') || '-'})`,
    );
  for (const k of e) {
    const t = actual[k];
    if (!sameShape(t.shape, expected[k].shape))
      throw fail(`tensor ${k} has shape [${t.shape}], expected [${expected[k].shape}]`);
    if (t.data.length !== numel(t.shape))
      throw fail(`tensor ${k} holds ${t.data.length} values for shape [${t.shape}]`);
  }
}

export function assertFinite(t: NamedTensors, what: string): void {
  for (const [k, v] of Object.entries(t))
    for (let i = 0; i < v.data.length; i++)
      if (!Number.isFinite(v.data[i]))
        throw new AggregationError(`${what}: tensor ${k} has a non-finite value at ${i}`);
}

/** acc += w · x, element-wise. acc is float64 so that summing many float32 deltas loses no precision. */
export function addScaledInto(acc: Float64Array, x: Float32Array, w: number): void {
  if (acc.length !== x.length)
    throw new AggregationError(`addScaledInto: length ${x.length} != ${acc.length}`);
  for (let i = 0; i < acc.length; i++) acc[i] += w * x[i];
}

/** base + scale · delta, tensor by tensor, as a new NamedTensors (layouts must match). */
export function addScaled(base: NamedTensors, delta: NamedTensors, scale = 1): NamedTensors {
  assertSameLayout(delta, base, 'addScaled');
  const out: NamedTensors = {};
  for (const k of Object.keys(base).sort()) {
    const d = new Float32Array(base[k].data.length);
    for (let i = 0; i < d.length; i++) d[i] = base[k].data[i] + scale * delta[k].data[i];
    out[k] = { shape: [...base[k].shape], data: d };
  }
  return out;
}

/**
 * Streaming Σ wᵢ·xᵢ and Σ wᵢ over tensors shaped like `layout`. Inputs come either one at a time (add) or
 * already summed (addSum: e.g. the unmasked result of secure aggregation, where single inputs are never seen).
 */
export class WeightedSum {
  private readonly sums: Record<string, Float64Array> = {};
  private readonly shapes: Record<string, number[]> = {};
  private readonly layout: NamedTensors;
  totalWeight = 0;
  count = 0;

  constructor(layout: NamedTensors) {
    this.layout = layout;
    for (const k of Object.keys(layout).sort()) {
      this.sums[k] = new Float64Array(layout[k].data.length);
      this.shapes[k] = [...layout[k].shape];
    }
  }

  add(x: NamedTensors, weight: number, what: string): void {
    if (!Number.isFinite(weight) || weight <= 0)
      throw new AggregationError(`${what}: weight must be positive, got ${weight}`);
    assertSameLayout(x, this.layout, what);
    assertFinite(x, what);
    for (const k of Object.keys(this.sums)) addScaledInto(this.sums[k], x[k].data, weight);
    this.totalWeight += weight;
    this.count += 1;
  }

  /** `sum` is already Σ wᵢ·xᵢ over `count` inputs whose weights total `totalWeight`. */
  addSum(sum: NamedTensors, totalWeight: number, count: number, what: string): void {
    if (!Number.isFinite(totalWeight) || totalWeight <= 0)
      throw new AggregationError(`${what}: total weight must be positive, got ${totalWeight}`);
    if (!Number.isInteger(count) || count < 1)
      throw new AggregationError(`${what}: count must be a positive integer`);
    assertSameLayout(sum, this.layout, what);
    assertFinite(sum, what);
    for (const k of Object.keys(this.sums)) addScaledInto(this.sums[k], sum[k].data, 1);
    this.totalWeight += totalWeight;
    this.count += count;
  }

  /** Σ wᵢ·xᵢ / Σ wᵢ as float32 tensors. */
  mean(): NamedTensors {
    if (this.totalWeight <= 0) throw new AggregationError('weighted mean of nothing: no inputs were added');
    const out: NamedTensors = {};
    for (const k of Object.keys(this.sums)) {
      const s = this.sums[k];
      const d = new Float32Array(s.length);
      for (let i = 0; i < s.length; i++) d[i] = s[i] / this.totalWeight;
      out[k] = { shape: [...this.shapes[k]], data: d };
    }
    return out;
  }
}

/** Batch reference: Σ wᵢ·xᵢ / Σ wᵢ over all items at once (tests check WeightedSum against it). */
export function weightedMean(items: readonly { tensors: NamedTensors; weight: number }[]): NamedTensors {
  if (items.length === 0) throw new AggregationError('weighted mean of an empty list');
  const sum = new WeightedSum(items[0].tensors);
  items.forEach((it, i) => sum.add(it.tensors, it.weight, `item ${i}`));
  return sum.mean();
}

/**
 * Weighted mean of each metric that every input reported (a metric missing from some inputs would be a mean
 * over a biased subset, so it is left out).
 */
export class WeightedMetrics {
  private sums: Map<string, number> | null = null;
  private total = 0;

  add(metrics: Record<string, number>, weight: number): void {
    const keys = Object.keys(metrics).filter((k) => Number.isFinite(metrics[k]));
    if (this.sums === null) this.sums = new Map(keys.map((k) => [k, 0]));
    for (const k of [...this.sums.keys()]) {
      if (keys.includes(k)) this.sums.set(k, this.sums.get(k)! + weight * metrics[k]);
      else this.sums.delete(k);
    }
    this.total += weight;
  }

  mean(): Record<string, number> {
    const out: Record<string, number> = {};
    if (this.sums && this.total > 0)
      for (const k of [...this.sums.keys()].sort()) out[k] = this.sums.get(k)! / this.total;
    return out;
  }
}
