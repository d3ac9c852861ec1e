// The coordinator's privacy budget for client-level DP (DP-FedAvg): which noise multiplier a round runs with, whether
// the next round would take the ε spent past the target (the federation then stops before it), and what each round
// spent. The accountant (shared/src/privacy/rdp-accountant.ts) composes rounds whose q differs (q = sampled sites /
// enrolled sites, which changes as sites enroll); its state is rebuilt from the round history (RoundRecord.privacy),
// so the budget survives a restart without a file of its own.

import { noiseMultiplierFor, privacySpent, RdpAccountant } from '@fedlora/shared/privacy/index.ts';
import type { RoundPrivacy, RoundRecord } from '../registry/types';
import type { RoundSettings, StopRules } from './settings';

/** GET /api/privacy */
export interface PrivacyReport {
  enabled: boolean;
  clipNorm: number | null;
  /** the configured noise multiplier; null when it is found from the target */
  noiseMultiplier: number | null;
  targetEpsilon: number | null;
  delta: number;
  /** ε spent by every DP round so far, for delta (0 before any) */
  epsilon: number;
  /** the RDP order at which that ε is tightest (null before any round) */
  order: number | null;
  rounds: ({ round: number } & RoundPrivacy)[];
}

/** The mechanism of one DP round, fixed before it starts. */
export interface DpRoundPlan {
  clipNorm: number;
  noiseMultiplier: number;
  /** q expected when the round starts: what sampling would take from all enrolled sites over enrolled */
  expectedSampleRate: number;
}

/** How many of `enrolled` sites a round samples when all are available, over enrolled: the q a round expects. */
export function expectedSampleRate(sampleSize: (available: number) => number, enrolled: number): number {
  return enrolled > 0 ? Math.min(1, sampleSize(enrolled) / enrolled) : 1;
}

export class PrivacyBudget {
  private accountant = new RdpAccountant('opacus');
  private history: ({ round: number } & RoundPrivacy)[] = [];
  /** the last inverse search, reused while its inputs stay the same (it runs the accountant ~50 times) */
  private searched: { key: string; noiseMultiplier: number } | null = null;

  /** Rebuilds the accountant from the rounds that spent privacy. */
  restore(rounds: readonly RoundRecord[]): void {
    this.accountant = new RdpAccountant('opacus');
    this.history = [];
    for (const r of rounds)
      if (r.privacy) {
        this.accountant.compose(r.privacy.sampleRate, r.privacy.noiseMultiplier);
        this.history.push({ round: r.round, ...r.privacy });
      }
  }

  /** The next round's mechanism, or null when DP is off. */
  plan(s: RoundSettings, stop: StopRules, sampleRate: number): DpRoundPlan | null {
    if (s.dpClipNorm === null) return null;
    return { clipNorm: s.dpClipNorm, noiseMultiplier: this.noiseMultiplier(s, stop, sampleRate), expectedSampleRate: sampleRate };
  }

  /** dpNoiseMultiplier, or the smallest z that keeps `stop.rounds` rounds at q within dpTargetEpsilon. */
  private noiseMultiplier(s: RoundSettings, stop: StopRules, sampleRate: number): number {
    if (s.dpNoiseMultiplier !== null) return s.dpNoiseMultiplier;
    // settings.ts refuses a clip norm with neither a noise multiplier nor a target with a rounds rule
    const search = { targetEpsilon: s.dpTargetEpsilon as number, delta: s.dpDelta, sampleRate, rounds: stop.rounds as number };
    const key = JSON.stringify(search);
    if (this.searched?.key !== key) this.searched = { key, noiseMultiplier: noiseMultiplierFor(search) };
    return this.searched.noiseMultiplier;
  }

  /** Why the next round must not run (it would take ε past the target), or null. */
  stopReason(s: RoundSettings, plan: DpRoundPlan | null): string | null {
    if (plan === null || s.dpTargetEpsilon === null) return null;
    const after = this.accountant.spentAfter(plan.expectedSampleRate, plan.noiseMultiplier, s.dpDelta);
    if (after.epsilon <= s.dpTargetEpsilon) return null;
    return `privacy budget: one more round would spend ε = ${after.epsilon.toFixed(4)} > the target ${s.dpTargetEpsilon} (δ = ${s.dpDelta})`;
  }

  /** Adds a round that released a noisy aggregate; returns what it spent, for its RoundRecord. */
  record(
    round: number,
    m: { sampleRate: number; noiseMultiplier: number; clipNorm: number; expectedParticipants: number; noiseStd: number },
    delta: number,
  ): RoundPrivacy {
    this.accountant.compose(m.sampleRate, m.noiseMultiplier);
    const roundEpsilon = privacySpent({ noiseMultiplier: m.noiseMultiplier, sampleRate: m.sampleRate, rounds: 1, delta }).epsilon;
    const spent: RoundPrivacy = { ...m, delta, roundEpsilon, epsilon: this.accountant.spent(delta).epsilon };
    this.history.push({ round, ...spent });
    return spent;
  }

  report(s: RoundSettings): PrivacyReport {
    const spent = this.history.length > 0 ? this.accountant.spent(s.dpDelta) : null;
    return {
      enabled: s.dpClipNorm !== null,
      clipNorm: s.dpClipNorm,
      noiseMultiplier: s.dpNoiseMultiplier,
      targetEpsilon: s.dpTargetEpsilon,
      delta: s.dpDelta,
      epsilon: spent?.epsilon ?? 0,
      order: spent?.order ?? null,
      rounds: this.history.map((h) => ({ ...h })),
    };
  }
}
