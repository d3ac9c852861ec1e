// One simulation run: load and partition the data, build the one shared model, run every federated arm on the same
// partition and seed, then the centralized and local-only baselines. Returns plain results (files: report.ts).

import { initNodeBackend } from '@fedlora/shared/node/backend.ts';
import { labelIds } from '@fedlora/shared/data/dataset.ts';
import { DEFAULT_MODEL_DIR, DEFAULT_MODEL_ID } from '@fedlora/shared/node/default-model.ts';
import { DEFAULT_RECIPE } from '@fedlora/shared/training/recipe.ts';
import { loadLocalModel } from '@fedlora/shared/node/model/local-model.ts';
import { assembleLocalModel } from '@fedlora/shared/model/local-model.ts';
import type { BertCheckpoint } from '@fedlora/shared/model/checkpoint.ts';
import { loadTokenizer } from '@fedlora/shared/node/tokenizer/load.ts';
import { encodeDataset } from '@fedlora/shared/training/encode.ts';
import { cloneNamed } from '@fedlora/shared/tensor.ts';
import { labelHistograms, loadSimData, partitionSites, type SimData } from './data';
import { plannedSamplesPerRound, runFederatedArm, siteId, type ArmConfig, type ArmResult, type RoundRecord, type SimContext } from './federation';
import { runCentralized, runLocalOnly, type CentralizedResult, type LocalOnlyResult } from './baselines';
import type { SimOptions } from './options';
import type { PrivacyReport } from './privacy';
import { chooseAttackers, type AttackKind } from './attacks';

export interface ArmSummary {
  strategy: string;
  initialAccuracy: number;
  accuracy: number;
  macroF1: number;
  curve: number[];
  rounds: RoundRecord[];
  /** DP only: the (ε, δ) the arm spent, its noise multiplier, sampling rate and charged rounds */
  privacy?: PrivacyReport;
}

export interface SimResult {
  options: SimOptions;
  model: string;
  backend: string;
  data: { name: string; train: number; heldout: number; labels: number; siteSizes: number[]; labelHistograms?: number[][] };
  arms: Record<string, ArmSummary>;
  /** the attack and the sites that made it in every arm; absent without --attack */
  attack?: { kind: AttackKind; fraction: number; sites: string[] };
  centralized: CentralizedResult | null;
  localOnly: LocalOnlyResult | null;
  seconds: { total: number; arms: Record<string, number>; centralized: number; localOnly: number };
  /**
   * bookkeeping inconsistencies found after the arms ran (e.g. samples seen ≠ the plan); the measured results are
   * kept and written, and these are reported beside them. Absent in run folders written before it existed.
   */
  warnings?: string[];
}

export type SimEvent =
  | { kind: 'log'; line: string }
  | { kind: 'arm-start'; name: string; total: number }
  | { kind: 'arm-step'; name: string; done: number; fields: Record<string, string | number> }
  | { kind: 'arm-end'; name: string };

export interface SimDeps {
  onEvent?: (e: SimEvent) => void;
  /** injected data (tests); default loadSimData(options.dataset, …) */
  data?: SimData;
  /** injected example indices of each site (tests: the same files as real site agents); default partitionSites(…) */
  sites?: number[][];
  /** every federated arm's result, final adapter included (tests compare it with the socket federation's) */
  onArmResult?: (r: ArmResult) => void;
  /** injected plan of samples per round (tests: a wrong plan); default plannedSamplesPerRound */
  plan?: typeof plannedSamplesPerRound;
  /**
   * the base to train the classifier on, with the shipped model's tokenizer (the two-phase recipe's merged base,
   * adapt.ts); default the shipped model as stored
   */
  checkpoint?: BertCheckpoint;
}

/** One line per federated arm whose measured samples per round differ from the plan (the centralized budget). */
export function samplesSeenWarnings(arms: Record<string, ArmSummary>, perRound: readonly number[]): string[] {
  return Object.values(arms)
    .filter((a) => a.rounds.some((x, i) => x.samplesSeen !== perRound[i]))
    .map(
      (a) =>
        `${a.strategy}: samples seen per round ${a.rounds.map((x) => x.samplesSeen).join(',')} differ from the plan ` +
        `${perRound.join(',')} (the centralized baseline's budget)`,
    );
}

export async function runSimulation(o: SimOptions, deps: SimDeps = {}): Promise<SimResult> {
  const emit = deps.onEvent ?? (() => {});
  const log = (line: string) => emit({ kind: 'log', line });
  const tStart = performance.now();
  const backend = await initNodeBackend({ force: o.backend, log });
  const data = deps.data ?? (await loadSimData(o.dataset, { limit: o.limit, heldoutLimit: o.heldoutLimit, seed: o.seed }));
  const trainLabels = labelIds(data.train);
  const sites = deps.sites ?? partitionSites(trainLabels, { sites: o.sites, alpha: o.alpha, quantitySkew: o.quantitySkew, seed: o.seed });
  const sizes = sites.map((s) => s.length);
  log(
    `data: ${data.train.name} ${data.train.examples.length} training examples over ${o.sites} sites ` +
      `(sizes ${Math.min(...sizes)}–${Math.max(...sizes)}), ${data.heldout.examples.length} held-out, ${data.labels.length} labels`,
  );

  const r = DEFAULT_RECIPE;
  const modelOpts = { lora: o.lora, labels: data.labels, pooling: r.pooling, seed: o.seed };
  const model = deps.checkpoint
    ? assembleLocalModel(deps.checkpoint, loadTokenizer(DEFAULT_MODEL_DIR), modelOpts)
    : loadLocalModel({ modelDir: DEFAULT_MODEL_DIR, ...modelOpts });
  try {
    const tok = model.tokenizer;
    const maxLength = Math.min(o.maxLength, tok.maxLength, model.bert.config.maxPositions);
    const ctx: SimContext = {
      clf: model.classifier,
      padId: tok.special.pad,
      trainEx: encodeDataset(tok, data.train, data.labels, maxLength),
      heldEx: encodeDataset(tok, data.heldout, data.labels, maxLength),
      sites,
      initial: cloneNamed(model.classifier.getTrainableState()),
      seed: o.seed,
    };
    const arms: Record<string, ArmSummary> = {};
    const armSeconds: Record<string, number> = {};
    for (const strategy of o.strategies) {
      const cfg: ArmConfig = { ...o, strategy };
      const t0 = performance.now();
      emit({ kind: 'arm-start', name: strategy, total: o.rounds });
      const res = await runFederatedArm(ctx, cfg, (rec) =>
        emit({
          kind: 'arm-step',
          name: strategy,
          done: rec.round,
          fields: { acc: rec.accuracy.toFixed(4), loss: rec.trainLoss?.toFixed(4) ?? '-', s: rec.seconds.toFixed(1) },
        }),
      );
      emit({ kind: 'arm-end', name: strategy });
      deps.onArmResult?.(res);
      armSeconds[strategy] = (performance.now() - t0) / 1000;
      arms[strategy] = {
        strategy,
        initialAccuracy: res.initialAccuracy,
        accuracy: res.rounds[res.rounds.length - 1].accuracy,
        macroF1: res.rounds[res.rounds.length - 1].macroF1,
        curve: res.rounds.map((x) => x.accuracy),
        rounds: res.rounds,
        ...(res.privacy ? { privacy: res.privacy } : {}),
      };
    }

    let centralized: CentralizedResult | null = null;
    let localOnly: LocalOnlyResult | null = null;
    let tCentral = 0;
    let tLocal = 0;
    const budget = { batchSize: o.batchSize, learningRate: o.learningRate, localEpochs: o.localEpochs, maxSteps: o.maxSteps };
    // the centralized budget is the federation's planned per-round samples (a function of partition, sampling and
    // caps), so the centralized arm is the same whether it runs beside the federated arms or alone in another process.
    // Every arm's measured samples are checked against it, but a mismatch is a warning returned with the results:
    // the finished arms are measurements, and a bookkeeping check must not throw them away.
    const perRound = (deps.plan ?? plannedSamplesPerRound)(sites, o);
    const warnings = samplesSeenWarnings(arms, perRound);
    if (o.centralized) {
      const t0 = performance.now();
      emit({ kind: 'arm-start', name: 'centralized', total: o.rounds });
      centralized = await runCentralized(ctx, perRound, budget, (round, acc, loss) =>
        emit({ kind: 'arm-step', name: 'centralized', done: round, fields: { acc: acc.toFixed(4), loss: loss.toFixed(4), s: '-' } }),
      );
      emit({ kind: 'arm-end', name: 'centralized' });
      tCentral = (performance.now() - t0) / 1000;
    }
    if (o.localOnly) {
      const t0 = performance.now();
      const n = Math.min(o.localSites, o.sites);
      emit({ kind: 'arm-start', name: 'local-only', total: n });
      localOnly = await runLocalOnly(ctx, o.rounds, budget, o.localSites, (done) =>
        emit({ kind: 'arm-step', name: 'local-only', done, fields: { acc: '-', loss: '-', s: '-' } }),
      );
      emit({ kind: 'arm-end', name: 'local-only' });
      tLocal = (performance.now() - t0) / 1000;
    }
    return {
      options: o,
      model: DEFAULT_MODEL_ID,
      backend: `${backend.name} (${backend.detail})`,
      data: {
        name: data.train.name,
        train: ctx.trainEx.length,
        heldout: ctx.heldEx.length,
        labels: data.labels.length,
        siteSizes: sizes,
        // per-site histograms are small for up to 100 sites; beyond that metrics.json would be mostly zeros
        ...(o.sites <= 100 ? { labelHistograms: labelHistograms(trainLabels, sites, data.labels.length) } : {}),
      },
      arms,
      ...(o.attack
        ? { attack: { ...o.attack, sites: chooseAttackers(o.seed, o.sites, o.attack.fraction).map(siteId) } }
        : {}),
      centralized,
      localOnly,
      seconds: { total: (performance.now() - tStart) / 1000, arms: armSeconds, centralized: tCentral, localOnly: tLocal },
      warnings,
    };
  } finally {
    model.dispose();
  }
}

/**
 * The `--json` line: one key per arm plus the baselines. An arm under DP adds `privacy` (ε spent, δ, z, q, rounds
 * charged); under secure aggregation, `rounds` lists each round's survivors and abort reason (null: completed).
 */
export function jsonSummary(res: SimResult, runDir: string): string {
  const arms: Record<string, unknown> = {};
  for (const [k, a] of Object.entries(res.arms))
    arms[k] = {
      accuracy: a.accuracy,
      macroF1: a.macroF1,
      curve: a.curve,
      ...(a.privacy ? { privacy: a.privacy } : {}),
      ...(res.options.secureAggregation
        ? { rounds: a.rounds.map((r) => ({ round: r.round, survivors: r.survivors ?? 0, aborted: r.aborted ?? null })) }
        : {}),
    };
  if (res.centralized)
    arms.centralized = { accuracy: res.centralized.accuracy, macroF1: res.centralized.macroF1, curve: res.centralized.curve };
  if (res.localOnly)
    arms.localOnly = { mean: res.localOnly.mean, worst: res.localOnly.worst, sites: res.localOnly.sites.length };
  const warnings = res.warnings ?? [];
  return JSON.stringify({ arms, ...(res.attack ? { attack: res.attack } : {}), runDir, ...(warnings.length ? { warnings } : {}) });
}
