// The two-phase recipe of issue 24 as a simulator study: for each seed and each adaptation arm, phase 1 adapts the
// base to the sites' text with the masked-LM objective (mlm-phase.ts) and merges the adapter into it, then phase 2 runs
// the classification federation (simulate.ts, unchanged) on the merged base. Arms: none (phase 2 on the shipped base),
// federated (FedAvg of masked-LM LoRA rounds on each site's training-split text) and centralized (the same number of
// masked-LM steps on the pooled training-split text: the upper bound). Only the training split's text is adapted on;
// held-out MLM loss is measured on the held-out (test) split's text. Every finished (seed, arm) cell is a JSON file in
// the study folder, so an interrupted study resumes and several processes can share one folder (one arm or seed each).

import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { labelIds } from '@fedlora/shared/data/dataset.ts';
import type { BertCheckpoint } from '@fedlora/shared/model/checkpoint.ts';
import { DEFAULT_MODEL_DIR } from '@fedlora/shared/node/default-model.ts';
import { checkpointFromTensors } from '@fedlora/shared/model/checkpoint.ts';
import { readCheckpointFiles, type StoredCheckpoint } from '@fedlora/shared/node/model/load.ts';
import { loadTokenizer } from '@fedlora/shared/node/tokenizer/load.ts';
import { initNodeBackend } from '@fedlora/shared/node/backend.ts';
import { Rng } from '@fedlora/shared/random.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import type { MlmEval } from '@fedlora/shared/training/pretrain.ts';
import { loadSimData, partitionSites, type SimData } from './data';
import type { RoundRecord } from './federation';
import type { SimOptions } from './options';
import { accuracySvg, svgToPng, type Series } from './plot';
import { runSimulation, type SimEvent } from './simulate';
import { centralizedMlm, federatedMlm, heldoutMlmLoss, initialMlmState, mergedCheckpoint, type MlmPhaseConfig, type MlmRoundRecord } from './mlm-phase';

export const ADAPTATIONS = ['none', 'federated', 'centralized'] as const;
export type Adaptation = (typeof ADAPTATIONS)[number];

export interface AdaptOptions {
  /** phase 2, the classification federation (its seed is replaced by each of `seeds`; no classification baselines) */
  sim: SimOptions;
  mlm: Omit<MlmPhaseConfig, 'sitesPerRound'>;
  adaptations: Adaptation[];
  seeds: number[];
  /** test-split documents the held-out MLM loss is measured on (a fixed seeded sample; masks fixed once) */
  mlmHeldoutDocs: number;
}

export interface AdaptCell {
  seed: number;
  adaptation: Adaptation;
  /** held-out MLM loss of the shipped base and of the base phase 2 trained on (the same for none) */
  mlmBefore: MlmEval;
  mlmAfter: MlmEval;
  /** the masked-LM phase; null for none */
  mlmPhase: { totalSteps: number; rounds: MlmRoundRecord[]; seconds: number } | null;
  accuracy: number;
  macroF1: number;
  initialAccuracy: number;
  curve: number[];
  rounds: RoundRecord[];
  seconds: { mlm: number; classification: number };
}

export type AdaptEvent = SimEvent | { kind: 'cell-done'; cell: AdaptCell };

/** What one process loads once: the shipped base as stored and as a checkpoint, its tokenizer, the held-out text. */
export interface AdaptContext {
  stored: StoredCheckpoint;
  base: BertCheckpoint;
  tokenizer: ReturnType<typeof loadTokenizer>;
  mlmHeldout: string[];
  baseMlm: MlmEval;
}

/** The masks and documents of the held-out MLM loss do not depend on the run seed: every cell is measured alike. */
const HELDOUT_MASK_SEED = 0;

export async function adaptContext(o: AdaptOptions, heldout: SimData['heldout'], log?: (line: string) => void): Promise<AdaptContext> {
  await initNodeBackend({ force: o.sim.backend, log });
  const stored = readCheckpointFiles(DEFAULT_MODEL_DIR);
  const base = checkpointFromTensors(stored.configJson, stored.tensors, DEFAULT_MODEL_DIR, stored.weightsName);
  const tokenizer = loadTokenizer(DEFAULT_MODEL_DIR);
  const texts = heldout.examples.map((e) => e.text);
  const pick = new Rng(HELDOUT_MASK_SEED + 17).shuffle(texts.map((_, i) => i)).slice(0, o.mlmHeldoutDocs).sort((a, b) => a - b);
  const mlmHeldout = pick.map((i) => texts[i]);
  const baseMlm = await heldoutMlmLoss(base, tokenizer, mlmHeldout, o.mlm.maxLength, HELDOUT_MASK_SEED);
  return { stored, base, tokenizer, mlmHeldout, baseMlm };
}

export interface CellDeps {
  onEvent?: (e: AdaptEvent) => void;
  /** injected data (tests); default loadSimData(sim.dataset, …) with the cell's seed */
  data?: SimData;
  /** the merged adapter and base phase 2 trained on (tests check that phase 2 started from it) */
  onPhase2Base?: (b: { state: NamedTensors | null; checkpoint: BertCheckpoint }) => void;
}

/** One (seed, arm) cell: phase 1 (unless none), merge, held-out MLM loss, phase 2. */
export async function runAdaptCell(o: AdaptOptions, ctx: AdaptContext, seed: number, adaptation: Adaptation, deps: CellDeps = {}): Promise<AdaptCell> {
  const emit = deps.onEvent ?? (() => {});
  const log = (line: string) => emit({ kind: 'log', line: `[seed ${seed} ${adaptation}] ${line}` });
  const sim: SimOptions = { ...o.sim, seed, centralized: false, localOnly: false };
  const data = deps.data ?? (await loadSimData(sim.dataset, { limit: sim.limit, heldoutLimit: sim.heldoutLimit, seed }));
  // the classification federation's own partition (runSimulation would draw the same): the sites' text is their share
  const sites = partitionSites(labelIds(data.train), { sites: sim.sites, alpha: sim.alpha, quantitySkew: sim.quantitySkew, seed });
  const config: MlmPhaseConfig = { ...o.mlm, sitesPerRound: sim.sitesPerRound };
  let checkpoint = ctx.base;
  let state: NamedTensors | null = null;
  let mlmPhase: AdaptCell['mlmPhase'] = null;
  const t0 = performance.now();
  if (adaptation !== 'none') {
    const start = await initialMlmState(ctx.base, config.lora, seed, config.headTransform);
    const totalSteps = config.rounds * config.sitesPerRound * config.steps;
    const phase =
      adaptation === 'federated'
        ? await federatedMlm(
            { ckpt: ctx.base, tokenizer: ctx.tokenizer, siteDocs: sites.map((idx) => idx.map((i) => data.train.examples[i].text)), config, seed, start },
            (r) => log(`masked-LM round ${r.round}/${config.rounds}: ${r.sites} sites, train loss ${r.trainLoss.toFixed(4)}, ${r.seconds.toFixed(0)} s`),
          )
        : await centralizedMlm(
            { ckpt: ctx.base, tokenizer: ctx.tokenizer, docs: data.train.examples.map((e) => e.text), config, seed, start, totalSteps },
            (step, total, loss) => {
              if (step % 10 === 0 || step === total) log(`centralized masked-LM step ${step}/${total}: train loss ${loss.toFixed(4)}`);
            },
          );
    state = phase.state;
    checkpoint = mergedCheckpoint(ctx.stored, config.lora, state);
    mlmPhase = { totalSteps: phase.totalSteps, rounds: phase.rounds, seconds: phase.seconds };
  }
  const mlmAfter = adaptation === 'none' ? ctx.baseMlm : await heldoutMlmLoss(checkpoint, ctx.tokenizer, ctx.mlmHeldout, config.maxLength, HELDOUT_MASK_SEED);
  const tMlm = (performance.now() - t0) / 1000;
  log(`held-out MLM loss ${ctx.baseMlm.loss.toFixed(4)} → ${mlmAfter.loss.toFixed(4)}; classification on the ${adaptation === 'none' ? 'shipped' : 'merged'} base`);
  deps.onPhase2Base?.({ state, checkpoint });
  const t1 = performance.now();
  const res = await runSimulation(sim, {
    data,
    sites,
    ...(adaptation === 'none' ? {} : { checkpoint }),
    onEvent: (e) => emit(e.kind === 'log' ? { kind: 'log', line: `[seed ${seed} ${adaptation}] ${e.line}` } : e),
  });
  const arm = Object.values(res.arms)[0];
  const cell: AdaptCell = {
    seed,
    adaptation,
    mlmBefore: ctx.baseMlm,
    mlmAfter,
    mlmPhase,
    accuracy: arm.accuracy,
    macroF1: arm.macroF1,
    initialAccuracy: arm.initialAccuracy,
    curve: arm.curve,
    rounds: arm.rounds,
    seconds: { mlm: tMlm, classification: (performance.now() - t1) / 1000 },
  };
  emit({ kind: 'cell-done', cell });
  return cell;
}

/** The options that must agree between processes sharing a study folder (all but which seeds and arms to run). */
export const studyKey = (o: AdaptOptions) => JSON.stringify({ sim: { ...o.sim, seed: 0, out: null, json: false, quiet: false }, mlm: o.mlm, mlmHeldoutDocs: o.mlmHeldoutDocs });

const cellFile = (dir: string, seed: number, a: Adaptation) => join(dir, 'cells', `seed-${seed}-${a}.json`);

/** Runs the cells of `o` not yet in `dir` (resumable), then writes the study's report from every cell there. */
export async function runAdaptStudy(o: AdaptOptions, dir: string, command: string, deps: CellDeps = {}): Promise<AdaptCell[]> {
  mkdirSync(join(dir, 'cells'), { recursive: true });
  const studyPath = join(dir, 'study.json');
  const key = studyKey(o);
  if (existsSync(studyPath)) {
    const prior = JSON.parse(readFileSync(studyPath, 'utf8')) as { key: string };
    if (prior.key !== key)
      throw new FedloraError('CONFIG_INVALID', `${dir} holds a study with other options (study.json); pass another --out or the same options`);
  } else writeFileSync(studyPath, JSON.stringify({ key, command }, null, 2) + '\n');
  const todo = o.seeds.flatMap((seed) => o.adaptations.map((a) => ({ seed, a }))).filter(({ seed, a }) => !existsSync(cellFile(dir, seed, a)));
  if (todo.length) {
    const data = deps.data ?? (await loadSimData(o.sim.dataset, { limit: o.sim.limit, heldoutLimit: o.sim.heldoutLimit, seed: 0 }));
    // the held-out split is fixed (the seed only subsets it past --heldout-limit): its text is the same for every seed
    const ctx = await adaptContext(o, data.heldout, (line) => deps.onEvent?.({ kind: 'log', line }));
    for (const { seed, a } of todo) {
      const cell = await runAdaptCell(o, ctx, seed, a, deps);
      writeFileSync(cellFile(dir, seed, a), JSON.stringify(cell, null, 2) + '\n');
    }
  }
  const cells = readdirSync(join(dir, 'cells'))
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(join(dir, 'cells', f), 'utf8')) as AdaptCell);
  writeAdaptReport(cells, dir, command, o);
  return cells;
}

export interface ArmStats {
  adaptation: Adaptation;
  seeds: number[];
  mlmLoss: { mean: number; sd: number };
  accuracy: { mean: number; sd: number };
  macroF1: { mean: number; sd: number };
  /** mean accuracy per round over the seeds */
  curve: number[];
}

/** Mean and sample standard deviation (n − 1; 0 for one value). */
export function meanSd(xs: readonly number[]): { mean: number; sd: number } {
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / (xs.length - 1)) : 0;
  return { mean, sd };
}

export function armStats(cells: readonly AdaptCell[]): ArmStats[] {
  return ADAPTATIONS.map((adaptation) => cells.filter((c) => c.adaptation === adaptation).sort((a, b) => a.seed - b.seed))
    .filter((cs) => cs.length > 0)
    .map((cs) => ({
      adaptation: cs[0].adaptation,
      seeds: cs.map((c) => c.seed),
      mlmLoss: meanSd(cs.map((c) => c.mlmAfter.loss)),
      accuracy: meanSd(cs.map((c) => c.accuracy)),
      macroF1: meanSd(cs.map((c) => c.macroF1)),
      curve: cs[0].curve.map((_, i) => meanSd(cs.map((c) => c.curve[i] ?? NaN)).mean),
    }));
}

const pm = (x: { mean: number; sd: number }, scale = 100, digits = 1) => `${(scale * x.mean).toFixed(digits)} ± ${(scale * x.sd).toFixed(digits)}`;

export function adaptSummaryMarkdown(cells: readonly AdaptCell[], command: string, o: AdaptOptions): string {
  const s = o.sim;
  const m = o.mlm;
  const stats = armStats(cells);
  const split = s.alpha === null ? 'IID' : `Dirichlet α=${s.alpha}`;
  const base = cells[0]?.mlmBefore.loss;
  const lines = [
    `# Two-phase recipe: ${s.dataset}, ${s.sites} sites, ${split}`,
    '',
    `Command: \`${command}\``,
    '',
    `Phase 1 (masked LM): ${m.rounds} rounds × ${s.sitesPerRound} sites × ${m.steps} steps of ${m.batchSize} × ${m.maxLength} tokens, ` +
      `lr ${m.learningRate}, LoRA r ${m.lora.r} / alpha ${m.lora.alpha} on ${m.lora.targetModules.join(', ')}` +
      `${m.headTransform ? ' + the MLM head transform' : ''}; centralized: the same total steps on the pooled text. ` +
      `Phase 2 (classification, ${s.strategies.join(', ')}): ${s.rounds} rounds × ${s.sitesPerRound} sites × ${s.maxSteps} steps of ${s.batchSize}, ` +
      `lr ${s.learningRate}, max length ${s.maxLength}, LoRA r ${s.lora.r} on ${s.lora.targetModules.join(', ')}. ` +
      `Held-out MLM loss on ${o.mlmHeldoutDocs} test-split documents (shipped base: ${base?.toFixed(4) ?? '–'}).`,
    '',
    '| adaptation | seeds | held-out MLM loss | accuracy % | macro-F1 % |',
    '|---|---|---|---|---|',
    ...stats.map((a) => `| ${a.adaptation} | ${a.seeds.join(',')} | ${pm(a.mlmLoss, 1, 4)} | ${pm(a.accuracy)} | ${pm(a.macroF1)} |`),
    '',
    'Mean ± sample sd over seeds. Per seed:',
    '',
    '| seed | adaptation | MLM loss before → after | accuracy % | macro-F1 % | MLM s | classification s |',
    '|---|---|---|---|---|---|---|',
    ...[...cells]
      .sort((a, b) => a.seed - b.seed || ADAPTATIONS.indexOf(a.adaptation) - ADAPTATIONS.indexOf(b.adaptation))
      .map(
        (c) =>
          `| ${c.seed} | ${c.adaptation} | ${c.mlmBefore.loss.toFixed(4)} → ${c.mlmAfter.loss.toFixed(4)} | ${(100 * c.accuracy).toFixed(1)} | ` +
          `${(100 * c.macroF1).toFixed(1)} | ${c.seconds.mlm.toFixed(0)} | ${c.seconds.classification.toFixed(0)} |`,
      ),
    '',
    'Plot: accuracy.png (mean held-out accuracy per classification round); all numbers: metrics.json and cells/.',
    '',
  ];
  return lines.join('\n');
}

export function writeAdaptReport(cells: readonly AdaptCell[], dir: string, command: string, o: AdaptOptions): void {
  const stats = armStats(cells);
  writeFileSync(join(dir, 'metrics.json'), JSON.stringify({ command, options: o, arms: stats, cells }, null, 2) + '\n');
  writeFileSync(join(dir, 'summary.md'), adaptSummaryMarkdown(cells, command, o));
  if (stats.length === 0) return;
  const series: Series[] = stats.map((a) => ({ name: `${a.adaptation} (${a.seeds.length} seeds)`, values: a.curve }));
  const split = o.sim.alpha === null ? 'IID' : `alpha ${o.sim.alpha}`;
  const svg = accuracySvg(`${o.sim.dataset}: base adaptation, ${o.sim.sites} sites, ${split}`, series, o.sim.rounds);
  writeFileSync(join(dir, 'accuracy.svg'), svg);
  writeFileSync(join(dir, 'accuracy.png'), svgToPng(svg));
}
