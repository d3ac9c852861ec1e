// `fedlora-site train-local`: adapts the base model to one site's labelled data with LoRA, no federation, and
// reports held-out accuracy before (frozen base + untrained adapter/head) and after, with speed and backend.

import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { initNodeBackend, type BackendName } from '@fedlora/shared/node/backend.ts';
import { loadSpamAssassin, spamAssassinEvalSubset } from '@fedlora/shared/node/data/spam-assassin.ts';
import { loadTabularFile } from '@fedlora/shared/node/data/tabular.ts';
import { labelIds, sortedLabels, subsetDataset, type LabeledDataset } from '@fedlora/shared/data/dataset.ts';
import { stratifiedSplit, stratifiedSubset } from '@fedlora/shared/data/split.ts';
import { classificationReport, formatReport } from '@fedlora/shared/training/metrics.ts';
import { encodeDataset } from '@fedlora/shared/training/encode.ts';
import { evaluateClassifier } from '@fedlora/shared/training/trainer.ts';
import { fitClassifier, macroF1Validator } from '@fedlora/shared/training/fit.ts';
import { DEFAULT_MODEL_DIR, DEFAULT_MODEL_ID } from '@fedlora/shared/node/default-model.ts';
import {
  balancedClassWeights,
  CLASS_WEIGHTINGS,
  DEFAULT_RECIPE,
  plannedSteps,
  validationSize,
  type ClassWeighting,
} from '@fedlora/shared/training/recipe.ts';
import { loadLocalModel } from '@fedlora/shared/node/model/local-model.ts';
import { resolveMaxLength } from '@fedlora/shared/model/local-model.ts';
import { WorkerGradientPool } from '@fedlora/shared/node/training/parallel.ts';
import { deviceBudget } from '@fedlora/shared/node/training/device-budget.ts';
import { chooseTrainingShape } from '@fedlora/shared/training/training-shape.ts';
import { exportPeft } from '@fedlora/shared/lora/peft.ts';
import { serializeSafetensors } from '@fedlora/shared/model/safetensors.ts';
import { POOLINGS, type Pooling } from '@fedlora/shared/model/classifier.ts';
import { LORA_TARGETS, type LoraTarget } from '@fedlora/shared/lora/config.ts';
import { intFlag, numFlag, parseFlags, strFlag } from '../args';
import { progressBar } from '../progress';

export const help = `fedlora-site train-local [options]
  Trains a LoRA adapter + classification head on one site's data and reports held-out accuracy before and after.
  With no flags: the shipped model (fedlora-bert-mini) on the embedded SpamAssassin corpus (training part: MD5 0-7),
  evaluated on a fixed stratified 612-message subset of its held-out part (MD5 8-f).

  --data FILE          CSV or JSONL with a text and a label column (default: embedded SpamAssassin)
  --heldout FILE       held-out CSV/JSONL (default: a seeded stratified 20% split of --data)
  --text-column NAME   --label-column NAME   column names (default: auto-detected)
  --model DIR          Hugging Face BERT, DistilBERT or RoBERTa directory (default: the shipped fedlora-bert-mini)
  --batch-size N (32)  --lr X (0.002)        --max-length N (128)   --seed N (0)
  Run length (a budget in optimizer steps, so small sets get enough steps and large ones are not over-trained):
  --min-steps N (300)  --max-steps N (2000)  the run is 3 epochs' steps, clamped to [min, max] (several epochs on
                       small data)
  --epochs N           exactly N epochs instead (no clamp unless --min-steps/--max-steps are given too)
  --steps N            exactly N optimizer steps
  --clip-norm X (1)    clip each step's gradient to this global L2 norm (0 = off)
  --validation-data FILE  validation CSV/JSONL to use instead of carving one from --data
  --validation X (0.1) share of the training data held back (stratified, at most 1,000 examples) to pick the best
                       point of the run by validation macro-F1; 0 = train on everything and keep the last state
  --patience N (3)     stop after N of the run's 10 validations without a better macro-F1, and restore the best
  --class-weights none|auto (none)  auto: weight each class's loss by n / (classes · its count)
  --rank N (8)         --alpha X (16)        --targets query,value   --layers 2,3 (default: all)
  --pooling mean|cls|pooler (mean)
  --limit N            train on a stratified subset of N examples   --heldout-limit N   likewise for evaluation
  --save DIR           write the trained adapter (PEFT format: adapter_config.json + adapter_model.safetensors)
  --backend NAME       tensorflow|webgpu|wasm|cpu (default: FEDLORA_BACKEND or automatic)
  --base-dropout       HF training-mode dropout inside the frozen encoder, as the PyTorch yardstick trains (off by
                       default: measured 0.9428 with it vs 0.9493 without on the default data; off keeps runs
                       deterministic and lets frozen lower layers be cached)
  --workers N          extra worker threads sharing each batch (default: cores − 1 on wasm/cpu, 0 on GPU backends)
  --json               print a JSON summary as the last stdout line
  --quiet              no progress output`;

export interface TrainLocalOptions {
  data?: string;
  heldout?: string;
  validationData?: string;
  textColumn?: string;
  labelColumn?: string;
  modelDir: string;
  /** explicit epoch count (no step-budget clamp unless minSteps/maxSteps are given too); absent = the recipe's budget */
  epochs?: number;
  steps?: number;
  minSteps?: number;
  maxSteps?: number;
  clipNorm: number;
  validationFraction: number;
  patience: number;
  classWeights: ClassWeighting;
  batchSize: number;
  learningRate: number;
  /** tokens per input; undefined = the recipe's (capped to the model) */
  maxLength?: number;
  seed: number;
  rank: number;
  alpha: number;
  targets: LoraTarget[];
  layers: number[] | null;
  pooling: Pooling;
  limit?: number;
  heldoutLimit?: number;
  save?: string;
  backend?: BackendName;
  workers?: number;
  baseDropout: boolean;
  json: boolean;
  quiet: boolean;
}

export function parse(argv: string[]): TrainLocalOptions | 'help' {
  const f = parseFlags(argv, {
    data: { type: 'string' }, heldout: { type: 'string' }, 'text-column': { type: 'string' }, 'label-column': { type: 'string' },
    model: { type: 'string' }, epochs: { type: 'string' }, 'batch-size': { type: 'string' }, lr: { type: 'string' },
    'max-length': { type: 'string' }, seed: { type: 'string' }, rank: { type: 'string' }, alpha: { type: 'string' },
    targets: { type: 'string' }, layers: { type: 'string' }, pooling: { type: 'string' }, limit: { type: 'string' },
    'heldout-limit': { type: 'string' }, save: { type: 'string' }, backend: { type: 'string' }, json: { type: 'boolean' },
    workers: { type: 'string' }, 'base-dropout': { type: 'boolean' }, 'no-base-dropout': { type: 'boolean' },
    quiet: { type: 'boolean' }, steps: { type: 'string' }, 'min-steps': { type: 'string' }, 'max-steps': { type: 'string' },
    'clip-norm': { type: 'string' }, validation: { type: 'string' }, 'validation-data': { type: 'string' }, patience: { type: 'string' }, 'class-weights': { type: 'string' },
  });
  if (f.help) return 'help';
  const r = DEFAULT_RECIPE;
  const pooling = (strFlag(f.pooling) ?? r.pooling) as Pooling;
  if (!POOLINGS.includes(pooling)) throw new FedloraError('CONFIG_INVALID', `--pooling must be one of ${POOLINGS.join(', ')}`);
  const targets = (strFlag(f.targets)?.split(',') ?? r.lora.targetModules) as LoraTarget[];
  for (const t of targets)
    if (!LORA_TARGETS.includes(t)) throw new FedloraError('CONFIG_INVALID', `--targets: unknown module "${t}" (known: ${LORA_TARGETS.join(', ')})`);
  const classWeights = (strFlag(f['class-weights']) ?? r.classWeights) as ClassWeighting;
  if (!CLASS_WEIGHTINGS.includes(classWeights))
    throw new FedloraError('CONFIG_INVALID', `--class-weights must be one of ${CLASS_WEIGHTINGS.join(', ')}`);
  const validationFraction = numFlag(f.validation, 'validation', r.validationFraction);
  if (validationFraction >= 1) throw new FedloraError('CONFIG_INVALID', `--validation must be a share below 1, got ${validationFraction}`);
  if (f.steps !== undefined && (f.epochs !== undefined || f['min-steps'] !== undefined || f['max-steps'] !== undefined))
    throw new FedloraError('CONFIG_INVALID', '--steps sets the run length exactly: leave out --epochs, --min-steps and --max-steps');
  return {
    data: strFlag(f.data),
    heldout: strFlag(f.heldout),
    validationData: strFlag(f['validation-data']),
    textColumn: strFlag(f['text-column']),
    labelColumn: strFlag(f['label-column']),
    modelDir: strFlag(f.model) ?? DEFAULT_MODEL_DIR,
    epochs: f.epochs === undefined ? undefined : intFlag(f.epochs, 'epochs', r.epochs),
    steps: f.steps === undefined ? undefined : intFlag(f.steps, 'steps', 1),
    minSteps: f['min-steps'] === undefined ? undefined : intFlag(f['min-steps'], 'min-steps', 1),
    maxSteps: f['max-steps'] === undefined ? undefined : intFlag(f['max-steps'], 'max-steps', 1),
    clipNorm: numFlag(f['clip-norm'], 'clip-norm', r.clipNorm),
    validationFraction,
    patience: intFlag(f.patience, 'patience', r.patience),
    classWeights,
    batchSize: intFlag(f['batch-size'], 'batch-size', r.batchSize),
    learningRate: numFlag(f.lr, 'lr', r.learningRate),
    maxLength: f['max-length'] === undefined ? undefined : intFlag(f['max-length'], 'max-length', r.maxLength, 3),
    seed: intFlag(f.seed, 'seed', 0, 0),
    rank: intFlag(f.rank, 'rank', r.lora.r),
    alpha: numFlag(f.alpha, 'alpha', r.lora.alpha),
    targets,
    layers: strFlag(f.layers) ? (strFlag(f.layers) as string).split(',').map((x) => intFlag(x, 'layers', 0, 0)) : null,
    pooling,
    limit: f.limit === undefined ? undefined : intFlag(f.limit, 'limit', 0),
    heldoutLimit: f['heldout-limit'] === undefined ? undefined : intFlag(f['heldout-limit'], 'heldout-limit', 0),
    save: strFlag(f.save),
    backend: strFlag(f.backend) as BackendName | undefined,
    workers: f.workers === undefined ? undefined : intFlag(f.workers, 'workers', 0, 0),
    baseDropout: Boolean(f['base-dropout']) && !f['no-base-dropout'],
    json: Boolean(f.json),
    quiet: Boolean(f.quiet),
  };
}

async function loadData(o: TrainLocalOptions): Promise<{ train: LabeledDataset; heldout: LabeledDataset; labels: string[] }> {
  if (!o.data) {
    if (o.heldout) throw new FedloraError('CONFIG_INVALID', '--heldout needs --data (the default data has its own held-out part)');
    const train = await loadSpamAssassin('train');
    const heldout = spamAssassinEvalSubset(await loadSpamAssassin('heldout'));
    return { train, heldout, labels: train.labels };
  }
  const cols = { textColumn: o.textColumn, labelColumn: o.labelColumn };
  const all = loadTabularFile(o.data, cols);
  if (o.heldout) {
    const heldout = loadTabularFile(o.heldout, cols);
    const labels = sortedLabels(all.examples.map((e) => e.label));
    return { train: { ...all, labels }, heldout: { ...heldout, labels }, labels };
  }
  const split = stratifiedSplit(labelIds(all), 0.2, o.seed);
  return { train: subsetDataset(all, split.train), heldout: subsetDataset(all, split.heldout), labels: all.labels };
}

export interface TrainLocalSummary {
  backend: string;
  baselineAccuracy: number;
  accuracy: number;
  macroF1: number;
  samplesPerSecond: number;
  trainableParams: number;
  adapterBytes: number;
  trainExamples: number;
  heldoutExamples: number;
  validationExamples: number;
  trainSeconds: number;
  /** optimizer steps taken (fewer than planned when validation stopped the run early) */
  steps: number;
  plannedSteps: number;
  /** the step whose weights were kept, and its validation macro-F1 (null without validation) */
  bestStep: number;
  validationMacroF1: number | null;
  stoppedEarly: boolean;
  classWeights: ClassWeighting;
}

/** Optimizer steps of this run: --steps, --epochs (clamped only by explicit --min/--max-steps), or the recipe's budget. */
export function runSteps(o: Pick<TrainLocalOptions, 'steps' | 'epochs' | 'minSteps' | 'maxSteps' | 'batchSize'>, examples: number): number {
  if (o.steps !== undefined) return o.steps;
  const r = DEFAULT_RECIPE;
  const explicitEpochs = o.epochs !== undefined;
  return plannedSteps(examples, {
    epochs: o.epochs ?? r.epochs,
    batchSize: o.batchSize,
    minSteps: o.minSteps ?? (explicitEpochs ? 1 : Math.min(r.minSteps, o.maxSteps ?? r.minSteps)),
    maxSteps: o.maxSteps ?? (explicitEpochs ? Number.MAX_SAFE_INTEGER : Math.max(r.maxSteps, o.minSteps ?? 0)),
  });
}

export async function run(o: TrainLocalOptions, out: (line: string) => void = console.log): Promise<number> {
  const log = (line: string) => o.quiet || process.stderr.write(line + '\n');
  const backend = await initNodeBackend({ force: o.backend, log });
  const data = await loadData(o);
  const labels = data.labels;
  let { train, heldout } = data;
  if (o.limit && o.limit < train.examples.length) train = subsetDataset(train, stratifiedSubset(labelIds(train), o.limit, o.seed));
  if (o.heldoutLimit && o.heldoutLimit < heldout.examples.length)
    heldout = subsetDataset(heldout, stratifiedSubset(labelIds(heldout), o.heldoutLimit, o.seed + 1));
  // the validation part is carved from the training data (stratified), never from the held-out set reported on
  const nValidation = validationSize(train.examples.length, { ...DEFAULT_RECIPE, validationFraction: o.validationFraction });
  let validation: LabeledDataset | null = null;
  if (o.validationData) {
    const v = loadTabularFile(o.validationData, { textColumn: o.textColumn, labelColumn: o.labelColumn });
    validation = { ...v, labels };
  } else if (nValidation > 0) {
    const split = stratifiedSplit(labelIds(train), nValidation / train.examples.length, o.seed + 2);
    validation = subsetDataset(train, split.heldout);
    train = subsetDataset(train, split.train);
  }
  log(
    `data: ${train.examples.length} training examples (${train.name}), ${validation?.examples.length ?? 0} validation, ` +
      `${heldout.examples.length} held-out, ${labels.length} labels`,
  );

  const lora = { r: o.rank, alpha: o.alpha, dropout: 0, targetModules: o.targets, layers: o.layers };
  const model = loadLocalModel({ modelDir: o.modelDir, lora, labels, pooling: o.pooling, seed: o.seed });
  try {
    const { classifier: clf, tokenizer: tok } = model;
    const helpers = o.workers ?? (backend.name === 'wasm' || backend.name === 'cpu' ? WorkerGradientPool.defaultHelpers() : 0);
    // the pass size for this backend's memory (the batch, the optimization's, stays as asked), logged with its reason
    const shape = chooseTrainingShape(model.bert.config, deviceBudget(backend), o.batchSize, resolveMaxLength(model, o.maxLength, DEFAULT_RECIPE.maxLength, o.modelDir), helpers + 1);
    log(shape.reason);
    const maxLength = shape.maxLength;
    const trainEx = encodeDataset(tok, train, labels, maxLength);
    const valEx = validation ? encodeDataset(tok, validation, labels, maxLength) : [];
    const heldEx = encodeDataset(tok, heldout, labels, maxLength);
    const yTrue = heldEx.map((e) => e.label);
    const steps = runSteps(o, trainEx.length);
    const classWeights = o.classWeights === 'auto' ? balancedClassWeights(trainEx.map((e) => e.label), labels.length) : undefined;
    log(
      `recipe: ${steps} steps of ${o.batchSize} (${(steps / Math.ceil(trainEx.length / o.batchSize)).toFixed(1)} epochs), ` +
        `lr ${o.learningRate}, clip ${o.clipNorm || 'off'}, class weights ${o.classWeights}` +
        (valEx.length ? `, best of ${DEFAULT_RECIPE.evaluations} validations (patience ${o.patience})` : ', no validation'),
    );

    log('evaluating the untrained adapter (baseline)…');
    const before = classificationReport(yTrue, (await evaluateClassifier(clf, heldEx, tok.special.pad)).predictions, labels);
    const pool = helpers > 0
      ? await WorkerGradientPool.start(helpers, { backend: backend.name, modelDir: o.modelDir, lora, labels, pooling: o.pooling, examples: trainEx, padId: tok.special.pad })
      : undefined;
    if (pool) log(`training on ${helpers + 1} threads (main + ${helpers} worker${helpers > 1 ? 's' : ''})`);
    const bar = progressBar('train', steps, o.quiet);
    const evalEvery = Math.max(1, Math.ceil(steps / DEFAULT_RECIPE.evaluations));
    const result = await fitClassifier(clf, trainEx, tok.special.pad, {
      epochs: 1,
      steps,
      batchSize: o.batchSize,
      microBatch: shape.microBatch,
      learningRate: o.learningRate,
      warmupSteps: Math.min(DEFAULT_RECIPE.warmupSteps, Math.floor(steps / 10)),
      weightDecay: DEFAULT_RECIPE.weightDecay,
      clipNorm: o.clipNorm,
      classWeights,
      seed: o.seed,
      pool,
      baseDropout: o.baseDropout,
      onStep: (p) => bar.update(p.step, { loss: p.loss.toFixed(4), sps: p.samplesPerSecond.toFixed(1) }),
      // without a validation part there is nothing to pick from: one "evaluation" at the end keeps the last state
      validator: valEx.length ? macroF1Validator(valEx, tok.special.pad, labels) : { score: async () => ({ score: 0 }) },
      evalEvery: valEx.length ? evalEvery : steps,
      patience: o.patience,
      onValidation: (v) =>
        valEx.length && log(`${process.stderr.isTTY ? '\n' : ''}validation macro-F1 ${v.score.toFixed(4)} at step ${v.step} (best ${v.best.score.toFixed(4)} at step ${v.best.step})`),
    }).finally(() => pool?.close());
    bar.stop();
    if (result.stoppedEarly) log(`stopped early at step ${result.steps}: no better validation macro-F1 in ${o.patience} validations`);
    if (valEx.length && result.best.step !== result.steps) log(`restored the weights of step ${result.best.step} (validation macro-F1 ${result.best.score.toFixed(4)})`);
    const evalAfter = await evaluateClassifier(clf, heldEx, tok.special.pad);
    const after = classificationReport(yTrue, evalAfter.predictions, labels);
    const state = await clf.readTrainableState();
    const adapterBytes = serializeSafetensors(state).byteLength;
    if (o.save) {
      mkdirSync(o.save, { recursive: true });
      // the base model's name, not a local path (paths say things about the site's machine)
      const peft = exportPeft(lora, state, { baseModel: o.modelDir === DEFAULT_MODEL_DIR ? DEFAULT_MODEL_ID : basename(o.modelDir), labels, family: model.bert.config.family, pooling: o.pooling });
      writeFileSync(join(o.save, 'adapter_config.json'), JSON.stringify(peft.adapterConfig, null, 2));
      writeFileSync(join(o.save, 'adapter_model.safetensors'), peft.weights);
      log(`adapter saved to ${o.save}`);
    }
    const summary: TrainLocalSummary = {
      backend: backend.name,
      baselineAccuracy: before.accuracy,
      accuracy: after.accuracy,
      macroF1: after.macroF1,
      samplesPerSecond: result.samplesPerSecond,
      trainableParams: clf.trainableParamCount(),
      adapterBytes,
      trainExamples: trainEx.length,
      heldoutExamples: heldEx.length,
      validationExamples: valEx.length,
      trainSeconds: result.seconds,
      steps: result.steps,
      plannedSteps: steps,
      bestStep: result.best.step,
      validationMacroF1: valEx.length ? result.best.score : null,
      stoppedEarly: result.stoppedEarly,
      classWeights: o.classWeights,
    };
    out(formatReport(after));
    out(
      `held-out accuracy ${before.accuracy.toFixed(4)} → ${after.accuracy.toFixed(4)} (macro-F1 ${after.macroF1.toFixed(4)}); ` +
        `${result.samplesPerSecond.toFixed(1)} samples/s on ${backend.name} (${backend.detail}); ` +
        `${summary.trainableParams} trainable parameters, adapter ${adapterBytes} bytes`,
    );
    if (o.json) out(JSON.stringify(summary));
    return 0;
  } finally {
    model.dispose();
  }
}
