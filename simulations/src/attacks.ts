// Simulated Byzantine sites (issue 17): a fixed, seed-chosen fraction of the registered sites trains as usual and
// then uploads a poisoned delta instead of its honest one, to measure the robust strategies (median, trimmed-mean,
// multi-krum) against FedAvg. The attacks are the standard ones of the robust-aggregation literature:
//   sign-flip  −10 × the honest delta (a reversed, amplified step; Blanchard et al. 2017 use −k·gradient)
//   scale      100 × the honest delta (a boosted update that dominates any mean)
//   gaussian   N(0, 1) noise of the delta's shape, independent of the data (Blanchard et al. 2017's Gaussian attack)
// The attacker still declares its honest example count.

import { FedloraError } from '@fedlora/shared/errors.ts';
import { Rng } from '@fedlora/shared/random.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';

export const ATTACK_KINDS = ['sign-flip', 'scale', 'gaussian'] as const;
export type AttackKind = (typeof ATTACK_KINDS)[number];

export function isAttackKind(s: unknown): s is AttackKind {
  return typeof s === 'string' && (ATTACK_KINDS as readonly string[]).includes(s);
}

/** `--attack KIND --attackers F`: which attack, and the fraction of the registered sites that make it. */
export interface AttackPlan {
  kind: AttackKind;
  fraction: number;
}

/** The sign-flip and scale attacks' factors on the honest delta. */
export const SIGN_FLIP_FACTOR = -10;
export const SCALE_FACTOR = 100;

/**
 * The attacking sites (indices, ascending): ⌊fraction·numSites⌋ of them, a seeded shuffle's first, the same for
 * every arm and round of a run (a compromised site stays compromised). Refuses a fraction that names no site, so
 * `--attackers 0.1` with 5 sites is not silently an honest run.
 */
export function chooseAttackers(seed: number, numSites: number, fraction: number): number[] {
  if (!(fraction > 0 && fraction < 1))
    throw new FedloraError('CONFIG_INVALID', `--attackers must be a fraction in (0, 1), got ${fraction}`);
  const count = Math.floor(fraction * numSites + 1e-9); // 1e-9: 0.29·100 is 29, not 28.999999999999996
  if (count === 0)
    throw new FedloraError('CONFIG_INVALID', `--attackers ${fraction} of ${numSites} sites is no site (at least ${1 / numSites} makes one)`);
  // a stream of its own (not the partition's or the sampling's), so adding attackers changes nothing else
  const rng = new Rng(seed * 1_000_003 + 0xa77ac);
  return rng
    .shuffle(Array.from({ length: numSites }, (_, i) => i))
    .slice(0, count)
    .sort((a, b) => a - b);
}

/** The seed of one attacker's Gaussian noise in one round: the same in every arm of a run. */
export function attackNoiseSeed(seed: number, round: number, site: number): number {
  return (seed * 10_007 + round) * 100_003 + site;
}

/** What an attacking site uploads instead of `honest` (a new NamedTensors; `honest` is not changed). */
export function attackDelta(kind: AttackKind, honest: NamedTensors, noiseSeed: number): NamedTensors {
  const rng = new Rng(noiseSeed);
  const out: NamedTensors = {};
  for (const k of Object.keys(honest).sort()) {
    const h = honest[k].data;
    const data =
      kind === 'sign-flip'
        ? h.map((x) => SIGN_FLIP_FACTOR * x)
        : kind === 'scale'
          ? h.map((x) => SCALE_FACTOR * x)
          : h.map(() => rng.normal());
    out[k] = { shape: [...honest[k].shape], data };
  }
  return out;
}
