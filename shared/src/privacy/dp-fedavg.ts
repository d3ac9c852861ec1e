// DP-FedAvg's two halves on fedlora's seams (McMahan, Ramage, Talwar & Zhang 2018, "Learning Differentially Private
// Recurrent Language Models", ICLR, Algorithm 1 with the fixed-denominator estimator):
//   - the round config tells sites the clip norm S (`dpClipNorm`, in RoundConfig's catch-all like maxSteps), and the
//     site's round core clips its delta to S before upload (training/local-round.ts);
//   - DpMeanAggregator wraps any strategy's aggregator that takes a pre-summed input: it clips every update again
//     (a site that skipped clipping cannot raise the sensitivity), sums them with equal weights, divides by m (the
//     expected participants, not the count that arrived, so one site's presence moves the mean by at most S/m), adds
//     N(0, (z·S/m)²) per coordinate, and hands that noisy mean to the strategy's own server step (FedAvg adds it,
//     FedAdam/FedAvgM take an optimizer step on it). Example-count weights are not used: they would let one site's
//     weight, and so the sensitivity, grow without bound.
//   - under secure aggregation the coordinator never sees one delta: acceptSum takes the unmasked Σ of the n sites'
//     clipped deltas (each sent with weight 1) and finish() noises it exactly as it noises accumulated updates.

import { FedloraError } from '../errors';
import type { RoundConfig } from '../protocol/messages';
import type { NamedTensors } from '../tensor';
import { AggregationError, WeightedMetrics, WeightedSum } from '../aggregation/math';
import { assertFirstResult, type AggregateOutcome, type ClientResult, type RoundAggregator, type RoundFailure } from '../aggregation/strategy';
import { clipToL2Norm } from './clipping';
import { addGaussianNoise, meanNoiseStd, type UniformSource } from './gaussian-noise';

/** The RoundConfig key that carries the clip norm S to the sites. */
export const DP_CLIP_NORM_KEY = 'dpClipNorm';

/** `config` with the DP clip norm for the sites. */
export function withDpClipNorm(config: RoundConfig, clipNorm: number): RoundConfig {
  if (!(clipNorm > 0 && Number.isFinite(clipNorm))) throw new FedloraError('CONFIG_INVALID', `DP clip norm must be a finite number above 0, got ${clipNorm}`);
  return { ...config, [DP_CLIP_NORM_KEY]: clipNorm };
}

/** The DP clip norm a round config asks for, or null when the round runs without client-level DP. */
export function dpClipNormOf(config: RoundConfig): number | null {
  const s = config[DP_CLIP_NORM_KEY];
  return typeof s === 'number' && Number.isFinite(s) && s > 0 ? s : null;
}

export interface DpRoundParameters {
  clipNorm: number;
  noiseMultiplier: number;
  /** m, read when the round is aggregated (the coordinator knows it once sampling is done) */
  expectedParticipants: () => number;
  /** the noise's uniform source (default: the CSPRNG); tests script it */
  uniforms?: UniformSource;
}

/** What DP did to one round's aggregate, for the round's record. */
export interface DpAggregateReport {
  expectedParticipants: number;
  noiseStd: number;
  /** updates the coordinator had to clip again (their site did not clip to S) */
  clippedByCoordinator: number;
}

export class DpMeanAggregator implements RoundAggregator {
  private readonly sum: WeightedSum;
  private readonly metrics = new WeightedMetrics();
  private readonly seen = new Set<string>();
  private examples = 0;
  private clippedByCoordinator = 0;
  /** the round's updates came as one secure-aggregation sum (no single delta was seen) */
  private summed = false;
  /** set once finish() has added the noise */
  report: DpAggregateReport | null = null;

  constructor(
    private readonly inner: RoundAggregator,
    global: NamedTensors,
    private readonly p: DpRoundParameters,
  ) {
    if (!inner.acceptSum)
      throw new FedloraError(
        'CONFIG_INVALID',
        'client-level DP needs a strategy that averages the updates (fedavg, fedprox, fedadam, fedavgm): this one does not take a summed input',
      );
    meanNoiseStd(p.noiseMultiplier, p.clipNorm, 1); // checks z and S now, not at the end of the round
    this.sum = new WeightedSum(global);
  }

  get count(): number {
    return this.sum.count;
  }

  accumulate(r: ClientResult): void {
    if (this.report) throw new AggregationError('this round was already aggregated');
    if (this.summed) throw new AggregationError(`site ${r.siteId}: this round's updates already came as one secure-aggregation sum`);
    assertFirstResult(r, this.seen);
    const clipped = clipToL2Norm(r.delta, this.p.clipNorm);
    // float32 rounding on the site can leave a clipped delta a hair over S; only a real overshoot counts
    if (clipped.norm > this.p.clipNorm * (1 + 1e-5)) this.clippedByCoordinator += 1;
    this.sum.add(clipped.delta, 1, `delta of site ${r.siteId}`);
    this.seen.add(r.siteId);
    this.metrics.add(r.metrics, r.numExamples);
    this.examples += r.numExamples;
  }

  /**
   * The unmasked output of secure aggregation: `sum` = Σ of `count` sites' deltas, each clipped by its site to S and
   * sent with weight 1, so `totalWeight` must equal `count` (an example-count weight would raise the sensitivity).
   * The coordinator cannot clip a sum again: a site that skipped its clip is bounded only by the quantization clip,
   * which must be c = S per coordinate (|Δⱼ| ≤ S for each coordinate; the L2 bound is the site's own clip). One sum per
   * round, and never mixed with accumulated updates: that would count a site twice or mix two sensitivities.
   */
  acceptSum(sum: NamedTensors, totalWeight: number, count: number): void {
    if (this.report) throw new AggregationError('this round was already aggregated');
    if (this.summed) throw new AggregationError('this round already has its secure-aggregation sum; a second would count sites twice');
    if (this.sum.count > 0)
      throw new AggregationError(`a secure-aggregation sum cannot join ${this.sum.count} updates already accumulated in this round`);
    if (totalWeight !== count)
      throw new AggregationError(
        `under client-level DP every site sends weight 1, so the sum's total weight must equal its count: got total weight ${totalWeight} for ${count} sites`,
      );
    this.sum.addSum(sum, totalWeight, count, 'secure-aggregation sum');
    this.summed = true;
    // a weight-1 sum carries no example counts: the outcome reports the sites that contributed instead
    this.examples = count;
  }

  finish(failures: readonly RoundFailure[]): AggregateOutcome | null {
    if (this.report) throw new AggregationError('this round was already aggregated');
    const n = this.sum.count;
    // no update: nothing is released, so there is nothing to noise (the strategy keeps the adapter)
    if (n === 0) return this.inner.finish(failures);
    const m = Math.max(this.p.expectedParticipants(), n);
    const noiseStd = meanNoiseStd(this.p.noiseMultiplier, this.p.clipNorm, m);
    // Σ Δᵢ / m: the mean over the n that arrived, times n/m
    const fixedDenominatorMean = scaled(this.sum.mean(), n / m);
    const noisyMean = addGaussianNoise(fixedDenominatorMean, noiseStd, this.p.uniforms);
    this.report = { expectedParticipants: m, noiseStd, clippedByCoordinator: this.clippedByCoordinator };
    // the strategy sees one summed input whose mean is the noisy mean
    (this.inner.acceptSum as NonNullable<RoundAggregator['acceptSum']>).call(this.inner, scaled(noisyMean, n), n, n);
    const outcome = this.inner.finish(failures);
    return outcome && { ...outcome, metrics: this.metrics.mean(), numResults: n, numExamples: this.examples };
  }
}

function scaled(t: NamedTensors, factor: number): NamedTensors {
  const out: NamedTensors = {};
  for (const [name, x] of Object.entries(t)) {
    const data = new Float32Array(x.data.length);
    for (let i = 0; i < data.length; i++) data[i] = x.data[i] * factor;
    out[name] = { shape: [...x.shape], data };
  }
  return out;
}
