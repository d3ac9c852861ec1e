// One site's part of a federated round, shared by the Node agent, the browser site and the simulator:
// load the received global state, train locally, and return delta = trained − received with the example count.
// Also the held-out evaluation of a given state (coordinator and simulator).

import { FedloraError } from '../errors';
import { subtractNamed, type NamedTensors } from '../tensor';
import type { SequenceClassifier } from '../model/classifier';
import { classificationReport, type ClassificationReport } from './metrics';
import { evaluateClassifier, trainClassifier, type StepProgress } from './trainer';
import type { EncodedExample } from './batches';
import { DEFAULT_RECIPE } from './recipe';
import { clipToL2Norm } from '../privacy/clipping';

/** Local-training hyper-parameters of a round (the wire's RoundConfig carries the same fields). */
export interface LocalTrainConfig {
  localEpochs: number;
  batchSize: number;
  learningRate: number;
  proximalMu: number;
  /** cap on optimizer steps per round (keeps rounds short on CPUs); absent = full epochs */
  maxSteps?: number;
  /** warm-up steps within the round (default 0: the optimizer restarts every round) */
  warmupSteps?: number;
  /** global gradient-norm clip of each local step (default: the recipe's; 0 = off) */
  clipNorm?: number;
  /** client-level DP (privacy/dp-fedavg.ts): the delta's L2 norm is clipped to this before it leaves the site */
  dpClipNorm?: number;
}

export interface LocalRoundResult {
  delta: NamedTensors;
  numExamples: number;
  metrics: { loss: number; samplesPerSecond: number; steps: number; seconds: number };
}

export async function runLocalRound(
  clf: SequenceClassifier,
  examples: EncodedExample[],
  padId: number,
  global: NamedTensors,
  config: LocalTrainConfig,
  opts: {
    seed?: number;
    onStep?: (p: StepProgress) => void;
    shouldStop?: () => boolean;
    /** examples per forward/backward pass (training-shape.ts); the step is still the whole batch's */
    microBatch?: number;
  } = {},
): Promise<LocalRoundResult> {
  if (examples.length === 0) throw new FedloraError('DATA_INVALID', 'this site has no training examples');
  clf.setTrainableState(global);
  const r = await trainClassifier(clf, examples, padId, {
    epochs: config.localEpochs,
    batchSize: config.batchSize,
    learningRate: config.learningRate,
    proximalMu: config.proximalMu,
    maxSteps: config.maxSteps,
    warmupSteps: config.warmupSteps ?? 0,
    clipNorm: config.clipNorm ?? DEFAULT_RECIPE.clipNorm,
    // decay is a centralized-training habit; in rounds the learning rate stays flat
    seed: opts.seed,
    onStep: opts.onStep,
    shouldStop: opts.shouldStop,
    microBatch: opts.microBatch,
    constantRate: true,
  });
  if (r.stopped) throw new FedloraError('INTERNAL', 'local training was stopped before it finished');
  const trained = subtractNamed(await clf.readTrainableState(), global);
  // clipped here, in the round core every site kind shares, so that no client can upload an unclipped delta by accident
  const delta = config.dpClipNorm === undefined ? trained : clipToL2Norm(trained, config.dpClipNorm).delta;
  return {
    delta,
    numExamples: r.samples > 0 ? Math.min(examples.length, r.samples) : 0,
    metrics: { loss: r.meanLoss, samplesPerSecond: r.samplesPerSecond, steps: r.steps, seconds: r.seconds },
  };
}

export interface HeldoutEvaluation {
  report: ClassificationReport;
  loss: number;
}

export async function evaluateState(
  clf: SequenceClassifier,
  state: NamedTensors,
  examples: EncodedExample[],
  padId: number,
): Promise<HeldoutEvaluation> {
  clf.setTrainableState(state);
  const r = await evaluateClassifier(clf, examples, padId);
  return {
    report: classificationReport(examples.map((e) => e.label), r.predictions, clf.labels),
    loss: r.loss,
  };
}
