// The inverse of the accountant: the smallest noise multiplier z whose ε after T rounds stays within a target.
// ε falls as z grows at every order (more noise never leaks more), and so does their minimum, so bisection on z finds
// the boundary; the answer is the upper end of the final bracket, which always meets the target. Opacus's
// get_noise_multiplier answers the same question (it stops once ε is within 0.01 of the target; this search narrows
// z itself, to a stated tolerance).

import { FedloraError } from '../errors';
import { checkMechanism, privacySpent, type GaussianRounds } from './rdp-accountant';

export interface NoiseSearch extends Omit<GaussianRounds, 'noiseMultiplier'> {
  targetEpsilon: number;
  /** the search stops when the bracket on z is narrower than this; the default keeps 6 significant digits */
  tolerance?: number;
}

// Past this the mechanism is noise alone: a target that even z = 2^20 cannot meet is a bad request (δ or T off).
const MAX_NOISE_MULTIPLIER = 2 ** 20;
const DEFAULT_TOLERANCE = 1e-7;

/** The smallest z (within `tolerance`) with ε(z) ≤ targetEpsilon. Throws CONFIG_INVALID for an unreachable target. */
export function noiseMultiplierFor(s: NoiseSearch): number {
  if (!(s.targetEpsilon > 0 && Number.isFinite(s.targetEpsilon)))
    throw new FedloraError('CONFIG_INVALID', `target epsilon must be a finite number above 0, got ${s.targetEpsilon}`);
  const tolerance = s.tolerance ?? DEFAULT_TOLERANCE;
  if (!(tolerance > 0)) throw new FedloraError('CONFIG_INVALID', `tolerance must be above 0, got ${tolerance}`);
  checkMechanism(s.sampleRate, 1);
  const epsilonAt = (z: number): number => privacySpent({ ...s, noiseMultiplier: z }).epsilon;

  // bracket: ε(low) > target ≥ ε(high); z → 0 leaks everything, so low = 0 needs no evaluation
  let low = 0;
  let high = 1;
  while (epsilonAt(high) > s.targetEpsilon) {
    low = high;
    high *= 2;
    if (high > MAX_NOISE_MULTIPLIER)
      throw new FedloraError(
        'CONFIG_INVALID',
        `no noise multiplier up to ${MAX_NOISE_MULTIPLIER} reaches ε = ${s.targetEpsilon} (δ = ${s.delta}, q = ${s.sampleRate}, ${s.rounds} rounds)`,
      );
  }
  while (high - low > tolerance) {
    const mid = (low + high) / 2;
    if (epsilonAt(mid) > s.targetEpsilon) low = mid;
    else high = mid;
  }
  return high;
}
