// Secure aggregation and client-level DP in the simulator's round loop (issue 17), on the production libraries:
//   - secure aggregation: after the sampled sites train, their deltas go through one in-process SecAgg+ attempt
//     (shared/src/secagg/simulate.ts) with seeded per-stage drops, and the strategy's aggregator gets only the
//     unmasked sum (acceptSum), never one site's delta; an aborted attempt keeps the adapter (no rerun in a simulation:
//     the abort is what the run measures);
//   - DP-FedAvg (shared/src/privacy/dp-fedavg.ts): sites clip their delta to S (the round config carries S, as the
//     coordinator's does), DpMeanAggregator noises the mean, and an RDP accountant charges every round that released
//     a noisy aggregate.
// The simulator's randomness is seeded for reproducible runs: drops, the graph and the DP noise. The noise of a real
// deployment comes from the CSPRNG (gaussian-noise.ts); here no one is there to predict it.

import { FedloraError } from '@fedlora/shared/errors.ts';
import { createStrategy, type RoundAggregator, type StrategyName } from '@fedlora/shared/aggregation/index.ts';
import { DpMeanAggregator } from '@fedlora/shared/privacy/dp-fedavg.ts';
import { RdpAccountant } from '@fedlora/shared/privacy/rdp-accountant.ts';
import { noiseMultiplierFor } from '@fedlora/shared/privacy/noise-search.ts';
import { SECAGG_STAGES, simulateSecAgg, type SecAggStage } from '@fedlora/shared/secagg/simulate.ts';
import { levelsFor, type QuantizationParams } from '@fedlora/shared/secagg/quantize.ts';
import type { KeyPair } from '@fedlora/shared/crypto/keys.ts';
import { adamWeightCeiling } from '@fedlora/shared/training/update-bound.ts';
import { Rng } from '@fedlora/shared/random.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';

/** `--secure-aggregation [--drop-rate p] [--secagg-degree k] [--secagg-clip c]` */
export interface SecureAggregationPlan {
  /** probability that a site still in the attempt drops at each SecAgg stage (independently per stage) */
  dropRate: number;
  /** graph degree k; null = graph.ts defaultDegree for the sites that sent keys */
  degree: number | null;
  /** per-coordinate clip c without DP; null = the AdamW ceiling (secureClip). Under DP, c = S. */
  clip: number | null;
}

/** `--dp-clip S --dp-noise-multiplier z | --dp-target-epsilon E [--dp-delta D]`, with z resolved at parse time. */
export interface DpPlan {
  clipNorm: number;
  noiseMultiplier: number;
  /** the ε the noise multiplier was searched for; null when --dp-noise-multiplier gave z */
  targetEpsilon: number | null;
  delta: number;
  /** q = sites per round / sites: the accountant's sampling rate */
  sampleRate: number;
}

/** What an arm reports of its privacy: ε spent over the rounds that released a noisy aggregate. */
export interface PrivacyReport {
  epsilon: number;
  delta: number;
  noiseMultiplier: number;
  sampleRate: number;
  /** rounds charged: those that released a noisy aggregate (an aborted or empty round releases nothing) */
  rounds: number;
  targetEpsilon: number | null;
  clipNorm: number;
}

/**
 * Whether a strategy's aggregator takes a pre-summed input (acceptSum): the averaging ones do; median, trimmed mean
 * and Multi-Krum need the single updates, which secure aggregation hides and DP's noise is not sized for.
 */
export function takesSummedInput(name: StrategyName): boolean {
  return typeof createStrategy(name, {}).createAggregator(1, {}).acceptSum === 'function';
}

/**
 * The smallest z whose ε after the run's rounds stays within the target (Poisson-sampling accountant; the simulator
 * samples a fixed number of sites per round, the usual approximation of DP-FedAvg's experiments).
 */
export function resolveNoiseMultiplier(targetEpsilon: number, sampleRate: number, rounds: number, delta: number): number {
  return noiseMultiplierFor({ targetEpsilon, sampleRate, rounds, delta });
}

/**
 * The per-coordinate clip c of the quantizer. Under DP, c = S: a coordinate of a delta clipped to L2 norm S is within
 * ±S, and c is what bounds a site that skipped its clip (the coordinator cannot clip a sum). Without DP, the explicit
 * --secagg-clip or else the most the sites' AdamW can move one weight in a round (lr · Σₜ adamStepBound(t) over
 * maxSteps, with a margin): an honest coordinate is never clipped, and a poisoned one cannot exceed what an honest
 * optimizer could do, so c doubles as the norm bound that issue 17 asks to be usable under secure aggregation.
 */
export function secureClip(plan: SecureAggregationPlan, dp: DpPlan | null, o: { learningRate: number; maxSteps: number }): number {
  if (dp) return dp.clipNorm;
  return plan.clip ?? adamWeightCeiling(o.learningRate, o.maxSteps);
}

/** The stages each site drops at in one round: a seeded draw per site per stage (the same in every arm of a run). */
export function secureDrops(seed: number, round: number, siteIds: readonly string[], dropRate: number): Record<SecAggStage, Set<string>> {
  const rng = new Rng(seed * 2_000_029 + round * 31 + 7);
  const drops = Object.fromEntries(SECAGG_STAGES.map((s) => [s, new Set<string>()])) as Record<SecAggStage, Set<string>>;
  for (const stage of SECAGG_STAGES) for (const id of siteIds) if (rng.next() < dropRate) drops[stage].add(id);
  return drops;
}

/** The 32-byte seed of one round's SecAgg graph (seeded, so a test can rebuild the graph and replay the t rule). */
export function secureGraphSeed(seed: number, round: number): Uint8Array {
  const rng = new Rng(seed * 3_000_017 + round);
  return Uint8Array.from({ length: 32 }, () => rng.int(256));
}

export interface SecureInput {
  siteId: string;
  identity: KeyPair;
  delta: NamedTensors;
  /** the example count (weight) the site brings; under DP every site's weight is 1 */
  numExamples: number;
}

export interface SecureRoundResult {
  /** the sites whose masked upload is in the aggregate, or null when the attempt aborted */
  contributors: string[] | null;
  /** contributors, or the sites still answering when the attempt aborted */
  survivors: number;
  /** why the attempt aborted (stage: reason), null when it completed */
  aborted: string | null;
  /** the protocol alone: setup to the decoded sum */
  seconds: number;
  /** bytes of one masked upload: one uint32 word per coordinate and the weight word */
  uploadBytes: number;
  params: QuantizationParams;
  degree: number | null;
  threshold: number | null;
}

/**
 * One SecAgg+ attempt over the round's trained sites; on success the aggregator gets acceptSum(sum, Σw, count).
 * Weights: 1 under DP (DpMeanAggregator refuses anything else), else the example count with maxWeight the largest
 * count in the round (`maxWeight`), so that no weight is capped and the secure mean is the plaintext FedAvg mean.
 */
export async function aggregateSecurely(
  agg: RoundAggregator,
  inputs: readonly SecureInput[],
  o: { seed: number; round: number; runId: string; sampled: number; maxWeight: number; plan: SecureAggregationPlan; dp: DpPlan | null; learningRate: number; maxSteps: number },
): Promise<SecureRoundResult> {
  if (!agg.acceptSum) throw new FedloraError('CONFIG_INVALID', 'secure aggregation needs a strategy that averages the updates: this one has no summed input');
  const params: QuantizationParams = {
    clip: secureClip(o.plan, o.dp, o),
    levels: levelsFor(o.sampled),
    maxWeight: o.dp ? 1 : o.maxWeight,
  };
  const ids = inputs.map((x) => x.siteId);
  const drops = secureDrops(o.seed, o.round, ids, o.plan.dropRate);
  const uploadBytes = 4 * (inputs.length ? Object.values(inputs[0].delta).reduce((s, t) => s + t.data.length, 0) + 1 : 0);
  const t0 = performance.now();
  if (inputs.length === 0)
    return { contributors: null, survivors: 0, aborted: 'setup: no site delivered a delta', seconds: 0, uploadBytes, params, degree: null, threshold: null };
  const outcome = await simulateSecAgg({
    ctx: { runId: o.runId, roundId: `r${o.round}`, attempt: 0 },
    params,
    sites: inputs.map((x) => ({ siteId: x.siteId, identity: x.identity, delta: x.delta, weight: o.dp ? 1 : x.numExamples })),
    drops,
    graphSeed: secureGraphSeed(o.seed, o.round),
    ...(o.plan.degree === null ? {} : { degree: o.plan.degree }),
  });
  const seconds = (performance.now() - t0) / 1000;
  const graph = graphOf(outcome.server);
  const shape = { seconds, uploadBytes, params, degree: graph?.degree ?? null, threshold: graph?.threshold ?? null };
  if (!outcome.ok) {
    // the sites still in the attempt when it stopped: not dropped at this stage or before
    const upTo = SECAGG_STAGES.slice(0, SECAGG_STAGES.indexOf(outcome.stage) + 1);
    const live = ids.filter((id) => !upTo.some((s) => drops[s].has(id)));
    return { contributors: null, survivors: live.length, aborted: `${outcome.stage}: ${outcome.reason}`, ...shape };
  }
  agg.acceptSum(outcome.result.sum, outcome.result.totalWeight, outcome.result.count);
  return { contributors: outcome.survivors, survivors: outcome.result.count, aborted: null, ...shape };
}

/** The attempt's graph, or null when it aborted before one existed (fewer than 3 sites sent keys). */
function graphOf(server: { graph: { degree: number; threshold: number } }): { degree: number; threshold: number } | null {
  try {
    return server.graph;
  } catch {
    return null;
  }
}

/** DP-FedAvg around the strategy's aggregator: m = the sites sampled per round, noise from a seeded stream. */
export function dpAggregator(inner: RoundAggregator, global: NamedTensors, dp: DpPlan, sampled: number, seed: number, round: number): DpMeanAggregator {
  const rng = new Rng(seed * 4_000_037 + round);
  // (k + 0.5) / 2^32 is never 0, so Box–Muller's log(u) stays finite
  const uniforms = (n: number) => Float64Array.from({ length: n }, () => (rng.nextUint32() + 0.5) / 2 ** 32);
  return new DpMeanAggregator(inner, global, { clipNorm: dp.clipNorm, noiseMultiplier: dp.noiseMultiplier, expectedParticipants: () => sampled, uniforms });
}

/** The arm's accountant: one sampled-Gaussian round per released noisy aggregate. */
export class PrivacyLedger {
  private readonly accountant = new RdpAccountant('opacus');
  private charged = 0;

  constructor(private readonly dp: DpPlan) {}

  charge(): void {
    this.accountant.compose(this.dp.sampleRate, this.dp.noiseMultiplier);
    this.charged += 1;
  }

  report(): PrivacyReport {
    const { dp } = this;
    return {
      epsilon: this.accountant.spent(dp.delta).epsilon,
      delta: dp.delta,
      noiseMultiplier: dp.noiseMultiplier,
      sampleRate: dp.sampleRate,
      rounds: this.charged,
      targetEpsilon: dp.targetEpsilon,
      clipNorm: dp.clipNorm,
    };
  }
}
