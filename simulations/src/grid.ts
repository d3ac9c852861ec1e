// `npm run simulate:grid`: the experiment grid of docs/RESULTS.md (datasets × Dirichlet alpha × site counts × arms),
// one `npm run simulate -- --arms <arm>` process per arm so the grid uses every core (tfjs-wasm is single-threaded in
// Node). A finished arm leaves <out>/<config>/<arm>/metrics.json and is skipped on a rerun, so an interrupted grid
// resumes; when all arms of a config are there they are merged into <config>/ (metrics.json, accuracy.png/.svg,
// summary.md) and the whole grid into <out>/results.md.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, closeSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCommandLine, usageErrorText, USAGE_EXIT_CODE } from '@fedlora/shared/node/command-line.ts';
import { describeError, FedloraError, isFedloraError } from '@fedlora/shared/errors.ts';
import { labelIds } from '@fedlora/shared/data/dataset.ts';
import { LORA_TARGETS } from '@fedlora/shared/lora/config.ts';
import type { ArmSummary, SimResult } from './simulate';
import { loadSimData, partitionSites } from './data';
import { plannedSamplesPerRound } from './federation';
import { parseSimArgs } from './options';
import { pct, writeRun } from './report';

/** Flags every arm of a dataset shares (the budget: rounds, local epochs, batch, lr, lengths, held-out size). */
export interface GridDataset {
  dataset: string;
  /** short name used in folder names */
  key: string;
  flags: string[];
}

export interface GridSpec {
  datasets: GridDataset[];
  alphas: number[];
  sites: number[];
  /** sites sampled per round, for each registered-site count */
  sitesPerRound: Record<number, number>;
  arms: string[];
  /** extra FedAvg arms with other upload encodings, on one config per dataset (key of the config) */
  encodings: { config: string; encodings: string[] }[];
}

/** The grid of docs/RESULTS.md; its "Budget" table says why each number is what it is. */
export const RESULTS_GRID: GridSpec = {
  datasets: [
    {
      dataset: 'banking77',
      key: 'banking77',
      flags: ['--limit', '3000', '--rounds', '10', '--local-epochs', '100', '--max-steps', '40', '--batch-size', '16',
        '--lr', '0.002', '--max-length', '32', '--heldout-limit', '1000', '--local-sites', '5'],
    },
    {
      dataset: 'medical-abstracts',
      key: 'medical',
      flags: ['--rounds', '10', '--local-epochs', '100', '--max-steps', '20', '--batch-size', '8',
        '--lr', '0.002', '--max-length', '32', '--heldout-limit', '1000', '--local-sites', '5'],
    },
  ],
  alphas: [1.0, 0.1],
  sites: [10, 50],
  sitesPerRound: { 10: 5, 50: 5 },
  arms: ['fedavg', 'fedprox', 'fedadam', 'centralized', 'local-only'],
  // on the config where FedAvg learns most within the grid's 10 rounds (4 -> 49 %): quantization error shows there
  encodings: [{ config: 'banking77-a1.0-s10', encodings: ['fp16', 'int8'] }],
};

/** The same flags with `--rounds` replaced. */
const withRounds = (ds: GridDataset, rounds: number): GridDataset => ({
  ...ds,
  flags: ds.flags.map((f, i) => (ds.flags[i - 1] === '--rounds' ? String(rounds) : f)),
});

/**
 * The FedAvg-vs-centralized check of docs/RESULTS.md at the plateau: the alpha 1.0 configs of RESULTS_GRID with 5x the
 * rounds. With 5 sites per round a federated round advances the global adapter by about one site's 40 (20) local steps
 * while centralized spends the same samples on 200 (100) sequential steps, so after 50 rounds FedAvg has had the
 * sequential steps centralized had after 10, and centralized (same samples seen) has long been on its plateau.
 */
export const PLATEAU_GRID: GridSpec = {
  ...RESULTS_GRID,
  datasets: RESULTS_GRID.datasets.map((ds) => withRounds(ds, 50)),
  alphas: [1.0],
  arms: ['fedavg', 'centralized'],
  encodings: [],
};

/** The same flags with `--max-steps` divided by `by` (rounded up): the per-round budget spread over `by`x the sites. */
const withStepsDividedBy = (ds: GridDataset, by: number): GridDataset => ({
  ...ds,
  flags: ds.flags.map((f, i) => (ds.flags[i - 1] === '--max-steps' ? String(Math.ceil(Number(f) / by)) : f)),
});

/**
 * Client drift at 50 sites (docs/RESULTS.md, "Client drift with 50 sites"): the 50-site alpha 1.0 configs of
 * PLATEAU_GRID with a fifth of the local steps per sampled site (Banking77: 8 steps of 16 = ~2 epochs of a 45-76
 * example site instead of ~10), 10 sites per round instead of 5, and 200 rounds, so that the global adapter gets
 * 1,600 sequential local steps (the plateau grid's 10-site FedAvg had 2,000). FedAvg shows what fewer local steps
 * alone do; FedAvgM (server momentum 0.9) adds momentum across rounds. A round here costs 40 % of a plateau-grid
 * round (1,280 samples instead of 3,200), so the centralized arm (same samples: 256,000 over 200 rounds) is defined
 * but long; docs/RESULTS.md compares with the plateau grid's centralized run, which is flat from round ~15.
 */
export const DRIFT_GRID: GridSpec = {
  ...PLATEAU_GRID,
  datasets: PLATEAU_GRID.datasets.map((ds) => withRounds(withStepsDividedBy(ds, 5), 200)),
  sites: [50],
  sitesPerRound: { 50: 10 },
  arms: ['fedavg', 'fedavgm', 'centralized'],
};

/** Every LoRA target, not only the product's query/value (the --targets flag of `npm run simulate`). */
export const ALL_LORA_TARGETS = LORA_TARGETS.join(',');

const medicalWide = (spec: GridSpec): GridSpec => ({
  ...spec,
  datasets: spec.datasets.filter((ds) => ds.key === 'medical').map((ds) => ({ ...ds, flags: [...ds.flags, '--targets', ALL_LORA_TARGETS] })),
});

/**
 * Medical Abstracts with an adapter on every linear layer (docs/RESULTS.md, "Medical Abstracts with an adapter
 * on every linear layer"): the shipped model saw no clinical text in pretraining, and with query/value adapters it barely beats the
 * majority class at any budget tried. 10 sites at the plateau grid's budget (50 rounds, FedAvg, centralized,
 * local-only); 50 sites in MEDICAL_WIDE_DRIFT_GRID.
 */
export const MEDICAL_WIDE_GRID: GridSpec = {
  ...medicalWide(PLATEAU_GRID),
  sites: [10],
  arms: ['fedavg', 'centralized', 'local-only'],
};

/** The same adapter with 50 sites at the drift grid's budget (4 local steps of 8, 10 sites per round, 200 rounds). */
export const MEDICAL_WIDE_DRIFT_GRID: GridSpec = { ...medicalWide(DRIFT_GRID), arms: ['fedavg'] };

export const GRIDS: Record<string, { spec: GridSpec; out: string }> = {
  results: { spec: RESULTS_GRID, out: 'runs/grid' },
  plateau: { spec: PLATEAU_GRID, out: 'runs/plateau' },
  drift: { spec: DRIFT_GRID, out: 'runs/drift' },
  'medical-wide': { spec: MEDICAL_WIDE_GRID, out: 'runs/medical-wide' },
  'medical-wide-drift': { spec: MEDICAL_WIDE_DRIFT_GRID, out: 'runs/medical-wide-drift' },
};

export interface GridJob {
  /** config folder, e.g. banking77-a1.0-s10 */
  config: string;
  /** a centralized arm whose inputs equal another config's (see dedupeCentralized): copied from that config, not rerun */
  reuseOf?: string;
  /** arm folder, e.g. fedavg, centralized, fedavg-int8 */
  arm: string;
  args: string[];
}

export const configKey = (ds: GridDataset, alpha: number, sites: number) => `${ds.key}-a${alpha.toFixed(1)}-s${sites}`;

export function gridJobs(spec: GridSpec, seed: number): GridJob[] {
  const jobs: GridJob[] = [];
  // alpha outermost, so that a partial grid has the IID-like (alpha 1.0) comparison of every dataset first
  for (const alpha of spec.alphas)
    for (const ds of spec.datasets)
      for (const sites of spec.sites) {
        const config = configKey(ds, alpha, sites);
        const base = ['--dataset', ds.dataset, '--sites', String(sites), '--sites-per-round', String(spec.sitesPerRound[sites] ?? sites),
          '--alpha', String(alpha), ...ds.flags, '--seed', String(seed)];
        for (const arm of spec.arms) jobs.push({ config, arm, args: [...base, '--arms', arm] });
        for (const e of spec.encodings.filter((x) => x.config === config))
          for (const enc of e.encodings)
            jobs.push({ config, arm: `fedavg-${enc}`, args: [...base, '--arms', 'fedavg', '--encoding', enc] });
      }
  return jobs;
}

/**
 * The centralized baseline reads only the pooled training data, the seed and the federation's planned samples per
 * round (plannedSamplesPerRound), not the partition itself. Configs whose plans agree (with the step cap, every
 * sampled site usually processes the same number of samples) would train the identical run, so it runs once and the
 * others reuse it (metrics.json says reusedFrom).
 */
export async function dedupeCentralized(jobs: GridJob[]): Promise<GridJob[]> {
  const seen = new Map<string, string>();
  const labelsOf = new Map<string, number[]>(); // one read of each dataset, not one per config
  const out: GridJob[] = [];
  for (const j of jobs) {
    if (j.arm !== 'centralized') {
      out.push(j);
      continue;
    }
    const o = parseSimArgs(j.args);
    if (o === 'help') throw new FedloraError('INTERNAL', `grid job ${j.config}/${j.arm} has no simulation flags`);
    const dataKey = JSON.stringify([o.dataset, o.limit, o.seed]);
    let labels = labelsOf.get(dataKey);
    if (!labels) {
      labels = labelIds((await loadSimData(o.dataset, { limit: o.limit, heldoutLimit: o.heldoutLimit, seed: o.seed })).train);
      labelsOf.set(dataKey, labels);
    }
    const sites = partitionSites(labels, { sites: o.sites, alpha: o.alpha, quantitySkew: o.quantitySkew, seed: o.seed });
    const { dataset, limit, heldoutLimit, maxLength, batchSize, learningRate, localEpochs, maxSteps, seed, rounds, backend, lora } = o;
    const key = JSON.stringify({ dataset, limit, heldoutLimit, maxLength, batchSize, learningRate, localEpochs, maxSteps, seed, rounds, backend, lora, plan: plannedSamplesPerRound(sites, o) });
    const first = seen.get(key);
    if (first === undefined) seen.set(key, j.config);
    out.push(first === undefined ? j : { ...j, reuseOf: first });
  }
  return out;
}

interface ArmFile extends SimResult {
  command: string;
}

const readArm = (dir: string): ArmFile => JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8')) as ArmFile;

/** Merges the arm folders of one config into one SimResult (federated arms, centralized, local-only). */
export function mergeConfig(dir: string, armNames: string[]): { res: SimResult; commands: string[] } | null {
  const parts = armNames.filter((a) => existsSync(join(dir, a, 'metrics.json'))).map((a) => ({ name: a, file: readArm(join(dir, a)) }));
  if (parts.length === 0) return null;
  const first = parts[0].file;
  const arms: Record<string, ArmSummary> = {};
  const armSeconds: Record<string, number> = {};
  let centralized: SimResult['centralized'] = null;
  let localOnly: SimResult['localOnly'] = null;
  let tCentral = 0;
  let tLocal = 0;
  for (const { name, file } of parts) {
    for (const a of Object.values(file.arms)) {
      arms[name] = { ...a, strategy: name };
      armSeconds[name] = file.seconds.arms[a.strategy];
    }
    if (file.centralized) {
      centralized = file.centralized;
      tCentral = file.seconds.centralized;
    }
    if (file.localOnly) {
      localOnly = file.localOnly;
      tLocal = file.seconds.localOnly;
    }
  }
  const options = { ...first.options, strategies: Object.keys(arms) as SimResult['options']['strategies'], centralized: !!centralized, localOnly: !!localOnly };
  const total = Object.values(armSeconds).reduce((s, x) => s + x, 0) + tCentral + tLocal;
  return {
    res: { ...first, options, arms, centralized, localOnly, seconds: { total, arms: armSeconds, centralized: tCentral, localOnly: tLocal } },
    commands: parts.map((p) => p.file.command),
  };
}


/** The grid's Markdown table: one row per config, accuracy in % per arm. */
export function gridTable(spec: GridSpec, out: string, merged: Map<string, SimResult>): string {
  const title: Record<string, string> = { fedavg: 'FedAvg', fedprox: 'FedProx', fedadam: 'FedAdam', fedavgm: 'FedAvgM', centralized: 'centralized', 'local-only': 'local-only mean / worst' };
  const cols = spec.arms.filter((a) => a in title);
  const lines = [
    `| dataset | α | sites (per round) | ${cols.map((c) => title[c]).join(' | ')} | plot |`,
    `|---|---|---|${cols.map(() => '---|').join('')}---|`,
  ];
  for (const ds of spec.datasets)
    for (const alpha of spec.alphas)
      for (const sites of spec.sites) {
        const key = configKey(ds, alpha, sites);
        const r = merged.get(key);
        const cell = (c: string) =>
          c === 'centralized' ? pct(r?.centralized?.accuracy)
          : c === 'local-only' ? (r?.localOnly ? `${pct(r.localOnly.mean)} / ${pct(r.localOnly.worst)}` : '–')
          : pct(r?.arms[c]?.accuracy);
        lines.push(`| ${ds.dataset} | ${alpha.toFixed(1)} | ${sites} (${spec.sitesPerRound[sites] ?? sites}) | ${cols.map(cell).join(' | ')} | ${r ? `${out}/${key}/accuracy.png` : '–'} |`);
      }
  return lines.join('\n');
}

function reuseJob(job: GridJob & { reuseOf: string }, out: string): boolean {
  const src = join(out, job.reuseOf, job.arm, 'metrics.json');
  if (!existsSync(src)) return false;
  const dir = join(out, job.config, job.arm);
  mkdirSync(dir, { recursive: true });
  const file = JSON.parse(readFileSync(src, 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dir, 'metrics.json'), JSON.stringify({ ...file, reusedFrom: `${job.reuseOf}/${job.arm}` }, null, 2) + '\n');
  return true;
}

function runJob(job: GridJob, out: string, simCommand: string[]): Promise<{ ok: boolean; seconds: number; tail: string }> {
  const dir = join(out, job.config, job.arm);
  mkdirSync(dir, { recursive: true });
  const log = openSync(join(dir, 'run.log'), 'w');
  const t0 = performance.now();
  return new Promise((done) => {
    const child = spawn(simCommand[0], [...simCommand.slice(1), ...job.args, '--out', dir, '--json'], { stdio: ['ignore', 'pipe', log] });
    let stdout = '';
    child.stdout?.on('data', (b: Buffer) => (stdout += b.toString()));
    child.on('close', (code) => {
      closeSync(log);
      const tail = stdout.trim().split('\n').pop() ?? '';
      done({ ok: code === 0 && existsSync(join(dir, 'metrics.json')), seconds: (performance.now() - t0) / 1000, tail });
    });
  });
}

export const GRID_HELP = `npm run simulate:grid -- [options]
  Runs a grid of docs/RESULTS.md, one process per arm:
    results  (default) banking77 and medical-abstracts × alpha 0.1, 1.0 × 10, 50 sites × FedAvg, FedProx, FedAdam,
             centralized, local-only, 10 rounds, plus FedAvg with fp16/int8 uploads on one config
    plateau  the alpha 1.0 configs with 50 rounds, FedAvg and centralized (FedAvg vs centralized at the plateau)
    drift    the plateau grid's 50-site configs with 1/5 of the local steps, 10 sites per round and 200 rounds:
             FedAvg, FedAvgM (server momentum) and centralized
    medical-wide        Medical Abstracts, alpha 1.0, 10 sites, plateau budget, LoRA on every linear layer:
                        FedAvg, centralized, local-only
    medical-wide-drift  the same adapter with 50 sites at the drift budget: FedAvg
  --grid NAME (results)   --jobs N (cores) arms run at once   --out DIR (runs/<grid folder>)   --seed N (0)
  --only REGEX       only jobs whose "<config>/<arm>" matches         --list   print the jobs and exit
  --merge-only       do not train; merge finished arms into per-config folders and results.md
  --sim CMD          command that runs one simulation (default: this Node with tsx on simulations/src/main.ts)
  Finished arms (<out>/<config>/<arm>/metrics.json) are skipped, so rerunning resumes an interrupted grid.`;

async function main(argv: string[]): Promise<number> {
  let f;
  try {
    f = parseCommandLine(argv, {
      grid: { type: 'string' }, jobs: { type: 'string' }, out: { type: 'string' }, seed: { type: 'string' }, only: { type: 'string' },
      list: { type: 'boolean' }, 'merge-only': { type: 'boolean' }, sim: { type: 'string' },
    }).values;
  } catch (err) {
    process.stderr.write(usageErrorText('simulate:grid', err, GRID_HELP) + '\n');
    return USAGE_EXIT_CODE;
  }
  if (f.help) {
    process.stdout.write(GRID_HELP + '\n');
    return 0;
  }
  const jobsAtOnce = f.jobs === undefined ? availableParallelism() : Number(f.jobs);
  if (!Number.isInteger(jobsAtOnce) || jobsAtOnce < 1) throw new FedloraError('CONFIG_INVALID', `--jobs must be an integer >= 1, got "${f.jobs}"`);
  const seed = f.seed === undefined ? 0 : Number(f.seed);
  const gridName = f.grid ?? 'results';
  const grid = Object.hasOwn(GRIDS, gridName) ? GRIDS[gridName] : undefined;
  if (!grid) throw new FedloraError('CONFIG_INVALID', `--grid must be one of ${Object.keys(GRIDS).join(', ')}, got "${f.grid}"`);
  const out = resolve(f.out ?? fileURLToPath(new URL(`../../${grid.out}`, import.meta.url)));
  const only = f.only ? new RegExp(f.only) : null;
  const mainTs = fileURLToPath(new URL('./main.ts', import.meta.url));
  const simCommand = f.sim ? f.sim.split(' ').filter(Boolean) : [process.execPath, '--import', 'tsx', mainTs];
  const all = (await dedupeCentralized(gridJobs(grid.spec, seed))).filter((j) => !only || only.test(`${j.config}/${j.arm}`));
  if (f.list) {
    for (const j of all)
      process.stdout.write(j.reuseOf ? `${j.config}/${j.arm}: same inputs as ${j.reuseOf}/${j.arm}, reused\n` : `${j.config}/${j.arm}: npm run simulate -- ${j.args.join(' ')} --out ${join(out, j.config, j.arm)} --json\n`);
    return 0;
  }
  let failed = 0;
  if (!f['merge-only']) {
    const todo = all.filter((j) => !j.reuseOf && !existsSync(join(out, j.config, j.arm, 'metrics.json')));
    const reused = all.filter((j) => j.reuseOf).length;
    process.stderr.write(`grid: ${all.length} arms: ${all.length - reused - todo.length} already done, ${reused} reused, ${todo.length} to run, ${jobsAtOnce} at once → ${out}\n`);
    let next = 0;
    let finished = 0;
    const t0 = performance.now();
    const worker = async () => {
      while (next < todo.length) {
        const job = todo[next++];
        const r = await runJob(job, out, simCommand);
        finished++;
        if (!r.ok) failed++;
        const el = ((performance.now() - t0) / 60000).toFixed(1);
        process.stderr.write(`[${finished}/${todo.length} · ${el} min] ${r.ok ? 'done' : 'FAILED'} ${job.config}/${job.arm} in ${r.seconds.toFixed(0)} s ${r.ok ? r.tail.slice(0, 160) : `(see ${join(out, job.config, job.arm, 'run.log')})`}\n`);
      }
    };
    await Promise.all(Array.from({ length: Math.min(jobsAtOnce, todo.length) }, worker));
  }
  for (const j of all)
    if (j.reuseOf && !existsSync(join(out, j.config, j.arm, 'metrics.json')) && !reuseJob(j as GridJob & { reuseOf: string }, out)) {
      failed++;
      process.stderr.write(`grid: ${j.config}/${j.arm} reuses ${j.reuseOf}/${j.arm}, which has not run\n`);
    }
  const merged = new Map<string, SimResult>();
  for (const config of [...new Set(all.map((j) => j.config))]) {
    const names = [...new Set(all.filter((j) => j.config === config).map((j) => j.arm))];
    const m = mergeConfig(join(out, config), names);
    if (!m) continue;
    writeRun(m.res, join(out, config), `npm run simulate:grid -- ${f.grid ? `--grid ${f.grid} ` : ''}--only '^${config}/' (one process per arm: ${m.commands.join(' ; ')})`);
    merged.set(config, m.res);
  }
  writeFileSync(join(out, 'results.md'), gridTable(grid.spec, out, merged) + '\n');
  process.stdout.write(readFileSync(join(out, 'results.md'), 'utf8'));
  if (failed) process.stderr.write(`grid: ${failed} arm(s) failed; rerun the same command to retry only those\n`);
  return failed ? 1 : 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url))
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`simulate:grid: ${describeError(err)}\n`);
      process.exit(isFedloraError(err, 'CONFIG_INVALID') ? USAGE_EXIT_CODE : 1);
    },
  );
