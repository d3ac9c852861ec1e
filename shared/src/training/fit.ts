// A training run that picks its own best point: trainClassifier (trainer.ts) with a validation score taken a few
// times along the way; the best scoring state is kept, the run stops after `patience` evaluations without a better
// score, and the best state is restored at the end. The score comes from data carved out of the training set
// (recipe.ts), never from the held-out set the run is reported on.

import { cloneNamed, type NamedTensors } from '../tensor';
import type { SequenceClassifier } from '../model/classifier';
import type { EncodedExample } from './batches';
import { classificationReport } from './metrics';
import { evaluateClassifier, trainClassifier, type StepProgress, type TrainOptions, type TrainResult } from './trainer';

/** A validation score (higher is better) and a loss that breaks ties (lower is better). */
export interface ValidationScore {
  score: number;
  loss?: number;
}

/** Scores the classifier's current state. */
export interface Validator {
  score(clf: SequenceClassifier): Promise<ValidationScore>;
}

/**
 * Macro-F1 on validation examples (every class counts the same, so a minority class that is never predicted shows),
 * ties broken by cross-entropy: a small validation part saturates its F1 early while the model still improves.
 */
export function macroF1Validator(examples: EncodedExample[], padId: number, labels: readonly string[]): Validator {
  const yTrue = examples.map((e) => e.label);
  return {
    async score(clf) {
      const r = await evaluateClassifier(clf, examples, padId);
      return { score: classificationReport(yTrue, r.predictions, labels).macroF1, loss: r.loss };
    },
  };
}

export interface ValidationPoint extends ValidationScore {
  step: number;
  seconds: number;
}

function better(a: ValidationScore, b: ValidationScore): boolean {
  if (a.score !== b.score) return a.score > b.score;
  return a.loss !== undefined && b.loss !== undefined && a.loss < b.loss;
}

export interface FitOptions extends TrainOptions {
  validator: Validator;
  /** evaluate every this many steps, and after the last one */
  evalEvery: number;
  /** stop after this many evaluations in a row without a better score */
  patience: number;
  onValidation?: (p: ValidationPoint & { best: ValidationPoint }) => void;
}

export interface FitResult extends TrainResult {
  history: ValidationPoint[];
  best: ValidationPoint;
  /** the run stopped before its step budget because the score stopped improving */
  stoppedEarly: boolean;
  /** seconds spent in validation (included in `seconds`, left out of `samplesPerSecond`) */
  validationSeconds: number;
}

export async function fitClassifier(
  clf: SequenceClassifier,
  examples: EncodedExample[],
  padId: number,
  opts: FitOptions,
): Promise<FitResult> {
  const history: ValidationPoint[] = [];
  let best: ValidationPoint | null = null;
  let bestState: NamedTensors | null = null;
  let sinceBest = 0;
  let stoppedEarly = false;
  let validationSeconds = 0;
  const start = performance.now();

  const validate = async (p: StepProgress) => {
    const t0 = performance.now();
    const point = { step: p.step, ...(await opts.validator.score(clf)), seconds: (performance.now() - start) / 1000 };
    validationSeconds += (performance.now() - t0) / 1000;
    history.push(point);
    // strictly better: on a full tie the earlier (less trained) state stays
    if (!best || better(point, best)) {
      best = point;
      bestState = cloneNamed(await clf.readTrainableState());
      sinceBest = 0;
    } else if (++sinceBest >= opts.patience) stoppedEarly = p.step < p.totalSteps;
    opts.onValidation?.({ ...point, best });
  };

  const result = await trainClassifier(clf, examples, padId, {
    ...opts,
    onStep: async (p) => {
      await opts.onStep?.(p);
      if (p.step % opts.evalEvery === 0 || p.step === p.totalSteps) await validate(p);
    },
    shouldStop: () => stoppedEarly || (opts.shouldStop?.() ?? false),
  });
  // a run stopped from outside before its first evaluation has nothing to compare: keep what it trained
  const last = history[history.length - 1];
  if (best && bestState && last && (best as ValidationPoint).step !== last.step) clf.setTrainableState(bestState);
  const finalBest: ValidationPoint = best ?? { step: result.steps, score: NaN, seconds: result.seconds };
  const trainingSeconds = Math.max(1e-9, result.seconds - validationSeconds);
  return {
    ...result,
    samplesPerSecond: result.samples / trainingSeconds,
    stopped: result.stopped && !stoppedEarly,
    history,
    best: finalBest,
    stoppedEarly,
    validationSeconds,
  };
}
