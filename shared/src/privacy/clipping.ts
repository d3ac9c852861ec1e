// Flat L2 clipping of a site's delta, the site-side half of DP-FedAvg (McMahan et al. 2018, "Learning Differentially
// Private Recurrent Language Models", Algorithm 1, FlatClip): all of the delta's tensors are scaled together so that
// their joint L2 norm is at most S. That bounds what one site can move the sum by (the sensitivity the noise is sized
// to), and it works unchanged under secure aggregation, because the site clips before it masks.

import { FedloraError } from '../errors';
import type { NamedTensors } from '../tensor';

/** L2 norm over every coordinate of every tensor (accumulated in float64). */
export function l2Norm(tensors: NamedTensors): number {
  let sumSquares = 0;
  for (const t of Object.values(tensors)) for (let i = 0; i < t.data.length; i++) sumSquares += t.data[i] * t.data[i];
  return Math.sqrt(sumSquares);
}

export interface ClippedDelta {
  /** the delta scaled to norm ≤ S (the input itself when it was within) */
  delta: NamedTensors;
  /** the norm before clipping */
  norm: number;
  /** whether the delta was scaled down; adaptive clipping (adaptive-clipping.ts) counts the ones that were not */
  clipped: boolean;
}

/** The delta scaled by min(1, S/‖delta‖). A non-finite delta is refused: clipping cannot bound it. */
export function clipToL2Norm(delta: NamedTensors, clipNorm: number): ClippedDelta {
  if (!(clipNorm > 0 && Number.isFinite(clipNorm))) throw new FedloraError('CONFIG_INVALID', `clip norm must be a finite number above 0, got ${clipNorm}`);
  const norm = l2Norm(delta);
  if (!Number.isFinite(norm)) throw new FedloraError('NON_FINITE', 'cannot clip a delta with non-finite values');
  if (norm <= clipNorm) return { delta, norm, clipped: false };
  const factor = clipNorm / norm;
  const out: NamedTensors = {};
  for (const [name, t] of Object.entries(delta)) {
    const data = new Float32Array(t.data.length);
    for (let i = 0; i < data.length; i++) data[i] = t.data[i] * factor;
    out[name] = { shape: [...t.shape], data };
  }
  return { delta: out, norm, clipped: true };
}
