// Adaptive clipping: the clip norm follows a target quantile of the sites' update norms instead of being guessed.
// Andrew, Thakkar, McMahan & Ramaswamy (2021), "Differentially Private Learning with Adaptive Clipping", NeurIPS,
// §2–3: each sampled site reports b = 1 if its update norm was ≤ C (it was NOT clipped), b̄ is their mean (optionally
// noised, Algorithm 1's σ_b), and the geometric update is C ← C·exp(−η·(b̄ − γ)). The sign matters: when more than the
// target fraction γ fit under C (b̄ > γ), C is larger than the γ-quantile and must shrink, and the other way round.

import { FedloraError } from '../errors';
import { gaussianSamples, type UniformSource } from './gaussian-noise';

export interface AdaptiveClipping {
  /** γ: the fraction of updates that should fit under the clip norm (0.5 = the median norm) */
  targetUnclippedQuantile: number;
  /** η: the step of the geometric update */
  learningRate: number;
}

/** Throws CONFIG_INVALID unless 0 < γ < 1 and η > 0. */
export function checkAdaptiveClipping(a: AdaptiveClipping): void {
  if (!(a.targetUnclippedQuantile > 0 && a.targetUnclippedQuantile < 1))
    throw new FedloraError('CONFIG_INVALID', `target unclipped quantile must be in (0, 1), got ${a.targetUnclippedQuantile}`);
  if (!(a.learningRate > 0 && Number.isFinite(a.learningRate)))
    throw new FedloraError('CONFIG_INVALID', `adaptive clipping learning rate must be above 0, got ${a.learningRate}`);
}

/**
 * b̄: the fraction of this round's updates that were not clipped, over the expected participants m. With
 * `countNoiseStd` > 0 the count is noised first (σ_b in Andrew et al.), which keeps the clip norm itself private.
 */
export function unclippedFraction(
  clipped: readonly boolean[],
  expectedParticipants: number,
  countNoiseStd = 0,
  uniforms?: UniformSource,
): number {
  if (!(expectedParticipants > 0)) throw new FedloraError('CONFIG_INVALID', `expected participants must be above 0, got ${expectedParticipants}`);
  const unclipped = clipped.filter((c) => !c).length;
  const noise = countNoiseStd > 0 ? gaussianSamples(1, countNoiseStd, uniforms)[0] : 0;
  return (unclipped + noise) / expectedParticipants;
}

/** The next round's clip norm: C·exp(−η·(b̄ − γ)). */
export function nextClipNorm(clipNorm: number, unclipped: number, a: AdaptiveClipping): number {
  checkAdaptiveClipping(a);
  if (!(clipNorm > 0 && Number.isFinite(clipNorm))) throw new FedloraError('CONFIG_INVALID', `clip norm must be a finite number above 0, got ${clipNorm}`);
  return clipNorm * Math.exp(-a.learningRate * (unclipped - a.targetUnclippedQuantile));
}
