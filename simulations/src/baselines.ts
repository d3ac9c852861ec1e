// The two yardsticks every federated arm is read against, run with the same trainer (runLocalRound) and model:
// centralized LoRA (all sites' data pooled, the same number of training samples per round as the federation
// processed) and local-only (a site trains alone on its own data for the rounds' whole per-site budget).

import { Rng } from '@fedlora/shared/random.ts';
import { evaluateState, runLocalRound } from '@fedlora/shared/training/local-round.ts';
import { cloneNamed } from '@fedlora/shared/tensor.ts';
import type { SimContext } from './federation';

export interface TrainBudget {
  batchSize: number;
  learningRate: number;
  localEpochs: number;
  maxSteps: number;
}

export interface CentralizedResult {
  curve: number[];
  /** mean training loss of each round's steps (NaN for a round with no budget) */
  trainLoss: number[];
  macroF1: number;
  accuracy: number;
  samplesSeen: number;
}

/**
 * Centralized: round r trains ceil(samples_r / batch) steps on the pooled data, where samples_r is what the
 * federation's sites processed in round r (so the compute budget matches), then evaluates: one curve point per round.
 */
export async function runCentralized(
  ctx: SimContext,
  samplesPerRound: readonly number[],
  b: TrainBudget,
  onRound?: (round: number, accuracy: number, trainLoss: number) => void,
): Promise<CentralizedResult> {
  let state = cloneNamed(ctx.initial);
  const curve: number[] = [];
  const trainLoss: number[] = [];
  let macroF1 = 0;
  let seen = 0;
  for (let r = 0; r < samplesPerRound.length; r++) {
    const steps = Math.ceil(samplesPerRound[r] / b.batchSize);
    let loss = NaN;
    if (steps > 0) {
      const epochs = Math.ceil((steps * b.batchSize) / ctx.trainEx.length);
      const local = await runLocalRound(
        ctx.clf,
        ctx.trainEx,
        ctx.padId,
        state,
        { localEpochs: epochs, batchSize: b.batchSize, learningRate: b.learningRate, proximalMu: 0, maxSteps: steps },
        { seed: (ctx.seed * 31 + r + 1) >>> 0 },
      );
      state = cloneNamed(ctx.clf.getTrainableState()); // the trained state itself (= state + delta, without a rounding step)
      seen += Math.min(steps * b.batchSize, epochs * ctx.trainEx.length);
      loss = local.metrics.loss;
    }
    trainLoss.push(loss);
    const ev = await evaluateState(ctx.clf, state, ctx.heldEx, ctx.padId);
    curve.push(ev.report.accuracy);
    macroF1 = ev.report.macroF1;
    onRound?.(r + 1, ev.report.accuracy, loss);
  }
  return { curve, trainLoss, accuracy: curve[curve.length - 1] ?? NaN, macroF1, samplesSeen: seen };
}

export interface LocalOnlyResult {
  /** registered sites evaluated (all when there are at most `maxSites`, else a seeded sample) */
  sites: number[];
  accuracies: number[];
  mean: number;
  worst: number;
  best: number;
  sampled: boolean;
}

/**
 * Local-only: each evaluated site trains alone for `rounds` chunks of the per-round budget (localEpochs capped at
 * maxSteps, optimizer restarted per chunk as in a round), i.e. the compute it would spend if sampled every round.
 */
export async function runLocalOnly(
  ctx: SimContext,
  rounds: number,
  b: TrainBudget,
  maxSites: number,
  onSite?: (done: number, total: number) => void,
): Promise<LocalOnlyResult> {
  const all = ctx.sites.map((_, i) => i);
  const sampled = all.length > maxSites;
  const chosen = sampled
    ? new Rng(ctx.seed + 4242).shuffle(all).slice(0, maxSites).sort((x, y) => x - y)
    : all;
  const accuracies: number[] = [];
  for (const site of chosen) {
    const examples = ctx.sites[site].map((i) => ctx.trainEx[i]);
    let state = cloneNamed(ctx.initial);
    for (let r = 1; r <= rounds && examples.length > 0; r++) {
      await runLocalRound(
        ctx.clf,
        examples,
        ctx.padId,
        state,
        { localEpochs: b.localEpochs, batchSize: b.batchSize, learningRate: b.learningRate, proximalMu: 0, maxSteps: b.maxSteps },
        { seed: (ctx.seed * 1_000_003 + r * 10_007 + site) >>> 0 },
      );
      state = cloneNamed(ctx.clf.getTrainableState());
    }
    accuracies.push((await evaluateState(ctx.clf, state, ctx.heldEx, ctx.padId)).report.accuracy);
    onSite?.(accuracies.length, chosen.length);
  }
  return {
    sites: chosen,
    accuracies,
    mean: accuracies.reduce((s, a) => s + a, 0) / Math.max(1, accuracies.length),
    worst: Math.min(...accuracies),
    best: Math.max(...accuracies),
    sampled,
  };
}
