// Fixed-point encoding of one site's weighted delta for SecAgg (Bonawitz et al. 2017 §3 sum integers mod R; the
// stochastic rounding is unbiased, as in Suresh et al. 2017, "Distributed Mean Estimation with Limited Communication").
// Site u with weight w_u ≤ W (its example count, capped at the max weight W) encodes each coordinate x as
//   q = stochasticRound((w_u / W) · clip(x, ±c) · Q / (2c)),   an integer in [−Q/2, Q/2],
// stored as q mod 2^32, and its weight w_u as one extra word. Summed over n sites the coordinate lies in
// [−nQ/2, nQ/2], which decodes unambiguously from a uint32 iff n·Q < 2^32; the weight word needs n·W < 2^32.
// Decoding the sum gives Σ w_u·x_u = q_sum · 2c·W / Q. Each site's rounding error is < 1 step, so with equal
// weights w = W the mean Σ w x / Σ w is within 2c/Q of the true mean of the clipped deltas.

import nacl from 'tweetnacl';
import { FedloraError } from '../errors';
import { numel, sameShape, type NamedTensors } from '../tensor';

export interface QuantizationParams {
  /** clip bound c: every coordinate is clipped to [−c, c] */
  clip: number;
  /** levels Q: a coordinate of weight W becomes an integer in [−Q/2, Q/2] */
  levels: number;
  /** the largest weight (example count) one site may bring; larger counts are capped to it */
  maxWeight: number;
}

/** Tensor names and shapes in a fixed (sorted) order: the layout of the masked vector, weight word last. */
export interface VectorLayout {
  names: string[];
  shapes: number[][];
  /** coordinates, without the weight word */
  length: number;
}

const TWO_32 = 2 ** 32;

/** Refuses parameters whose sum over `sites` sites could wrap mod 2^32 (CONFIG_INVALID, the bound stated). */
export function checkQuantizationBound(p: QuantizationParams, sites: number): void {
  const bad = (why: string) => new FedloraError('CONFIG_INVALID', `secure aggregation: ${why}`);
  if (!(Number.isFinite(p.clip) && p.clip > 0)) throw bad(`clip must be a positive number, got ${p.clip}`);
  if (!(Number.isInteger(p.levels) && p.levels >= 2 && p.levels % 2 === 0)) throw bad(`levels must be an even integer ≥ 2, got ${p.levels}`);
  if (!(Number.isInteger(p.maxWeight) && p.maxWeight >= 1)) throw bad(`maxWeight must be a positive integer, got ${p.maxWeight}`);
  if (!(Number.isInteger(sites) && sites >= 1)) throw bad(`the number of sites must be a positive integer, got ${sites}`);
  if (sites * p.levels >= TWO_32)
    throw bad(`n·Q = ${sites}·${p.levels} = ${sites * p.levels} ≥ 2^32: the sum of ${sites} sites could wrap mod 2^32; lower the levels Q below ${Math.floor((TWO_32 - 1) / sites)} or sample fewer sites`);
  if (sites * p.maxWeight >= TWO_32)
    throw bad(`n·maxWeight = ${sites * p.maxWeight} ≥ 2^32: the summed weight could wrap mod 2^32`);
}

export function layoutOf(t: NamedTensors): VectorLayout {
  return layoutOfShapes(Object.fromEntries(Object.entries(t).map(([n, x]) => [n, x.shape])));
}

/** The layout of tensors with these names and shapes (a site knows its trainable shapes before it has a delta). */
export function layoutOfShapes(shapes: Record<string, readonly number[]>): VectorLayout {
  const names = Object.keys(shapes).sort();
  const ordered = names.map((n) => [...shapes[n]]);
  return { names, shapes: ordered, length: ordered.reduce((s, sh) => s + numel(sh), 0) };
}

/** Uniform [0,1) per coordinate from the platform CSPRNG (tweetnacl → crypto.getRandomValues). */
function uniforms(n: number): Uint32Array {
  return new Uint32Array(nacl.randomBytes(n * 4).buffer);
}

/** The site's encoded vector: layout.length coordinate words, then the (capped) weight word. */
export function quantizeWeighted(delta: NamedTensors, weight: number, layout: VectorLayout, p: QuantizationParams): Uint32Array {
  if (!Number.isInteger(weight) || weight < 1) throw new FedloraError('DELTA_INVALID', `secure aggregation: the weight must be a positive integer, got ${weight}`);
  const w = Math.min(weight, p.maxWeight);
  const out = new Uint32Array(layout.length + 1);
  const scale = ((w / p.maxWeight) * p.levels) / (2 * p.clip);
  const rand = uniforms(layout.length);
  let i = 0;
  for (let j = 0; j < layout.names.length; j++) {
    const t = delta[layout.names[j]];
    if (!t || !sameShape(t.shape, layout.shapes[j])) throw new FedloraError('SHAPE_MISMATCH', `secure aggregation: tensor ${layout.names[j]} missing or mis-shaped`);
    for (let e = 0; e < t.data.length; e++, i++) {
      const x = t.data[e];
      if (!Number.isFinite(x)) throw new FedloraError('NON_FINITE', `secure aggregation: ${layout.names[j]}[${e}] is not finite`);
      const scaled = Math.max(-p.clip, Math.min(p.clip, x)) * scale;
      const floor = Math.floor(scaled);
      const q = floor + (rand[i] / TWO_32 < scaled - floor ? 1 : 0);
      out[i] = q >>> 0; // q mod 2^32 (|q| ≤ Q/2 < 2^31)
    }
  }
  if (Object.keys(delta).length !== layout.names.length) throw new FedloraError('SHAPE_MISMATCH', 'secure aggregation: the delta has tensors outside the round layout');
  out[layout.length] = w;
  return out;
}

export interface DecodedSum {
  /** Σ w_u·Δ_u over the contributing sites */
  sum: NamedTensors;
  totalWeight: number;
}

/** Decodes an unmasked SUM (never one site's vector: the server calls this once per round attempt). */
export function dequantizeSum(words: Uint32Array, layout: VectorLayout, p: QuantizationParams): DecodedSum {
  if (words.length !== layout.length + 1) throw new FedloraError('SHAPE_MISMATCH', `secure aggregation: expected ${layout.length + 1} words, got ${words.length}`);
  const step = (2 * p.clip * p.maxWeight) / p.levels;
  const sum: NamedTensors = {};
  let i = 0;
  for (let j = 0; j < layout.names.length; j++) {
    const data = new Float32Array(numel(layout.shapes[j]));
    for (let e = 0; e < data.length; e++, i++) {
      const v = words[i];
      data[e] = (v >= 2 ** 31 ? v - TWO_32 : v) * step;
    }
    sum[layout.names[j]] = { shape: [...layout.shapes[j]], data };
  }
  return { sum, totalWeight: words[layout.length] };
}

/**
 * The finest levels Q that `sites` summed vectors can carry without wrapping: the largest even Q with n·Q < 2^32.
 * (Q = 2^22 at n = 1000; at n = 3, 1.43·10^9.) A round uses it unless the operator sets Q.
 */
export function levelsFor(sites: number): number {
  if (!(Number.isInteger(sites) && sites >= 1)) throw new FedloraError('CONFIG_INVALID', `secure aggregation: the number of sites must be a positive integer, got ${sites}`);
  const q = Math.floor((TWO_32 - 1) / sites);
  return Math.min(q - (q % 2), 2 ** 31);
}
