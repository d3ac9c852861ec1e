// `npx tsx scripts/recipe-bench.ts [section…]`: the default train-local recipe on the data sets of issue 22, with time
// and samples/s, and on Banking77 subsets against a PyTorch reference of the same recipe run on the same rows
// (scripts/recipe_reference.py, Debian's python3-torch). Reads ../shared/assets/data (skips with a reason when it is
// absent); the subsets and splits it writes go to a temporary folder that is removed afterwards (never into the repo).
//   subsets     Banking77 train subsets of 1,000 and 2,000 rows (stratified, seed 0; a stratified tenth of each is the
//               validation part) evaluated on all 3,080 test queries: fedlora vs the PyTorch reference, macro-F1 gap
//   banking77   all 10,003 training queries (a tenth held back for validation), 3,080 test queries
//   medical     Medical Abstracts' fixed 80/20 split, class weights none and auto
//   spam        the embedded SpamAssassin default (no flags)
// Not part of npm test: the full sections take 15-30 minutes each on 2 cores.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCommandLineOrExit } from '@fedlora/shared/node/command-line.ts';
import { DEFAULT_MODEL_DIR } from '@fedlora/shared/node/default-model.ts';
import { loadBanking77, loadMedicalAbstractsSplit, sharedDataDir } from '@fedlora/shared/node/data/public-datasets.ts';
import { labelIds, sortedLabels, subsetDataset, type LabeledDataset } from '@fedlora/shared/data/dataset.ts';
import { stratifiedSplit, stratifiedSubset } from '@fedlora/shared/data/split.ts';
import { DEFAULT_RECIPE, validationSize } from '@fedlora/shared/training/recipe.ts';

const SECTIONS = ['subsets', 'banking77', 'medical', 'spam'];
const USAGE = `npx tsx scripts/recipe-bench.ts [section…] [--python PATH]
  sections: ${SECTIONS.join(' ')} (default: all; see the file's header)`;
const { values: f, positionals } = parseCommandLineOrExit('recipe-bench', USAGE, process.argv.slice(2), {
  python: { type: 'string' },
}, { positionals: true });
if (f.help) {
  console.log(USAGE);
  process.exit(0);
}
const sections = positionals.length ? positionals : SECTIONS;
for (const s of sections) if (!SECTIONS.includes(s)) {
  console.error(`unknown section ${s} (known: ${SECTIONS.join(', ')})`);
  process.exit(2);
}
const repo = fileURLToPath(new URL('..', import.meta.url));
const python = f.python ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
const dataRoot = sharedDataDir();
const scratch = mkdtempSync(join(tmpdir(), 'fedlora-recipe-bench-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));

/** Writes a dataset as text,label CSV into the scratch folder. */
function csvFile(name: string, ds: LabeledDataset): string {
  const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
  const path = join(scratch, name);
  writeFileSync(path, 'text,label\n' + ds.examples.map((e) => `${q(e.text)},${q(e.label)}`).join('\n') + '\n');
  return path;
}

type Summary = Record<string, number | string | boolean | null>;

function trainLocal(args: string[]): Summary {
  const started = Date.now();
  console.error(`$ fedlora-site train-local ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [join(repo, 'client-node/bin/fedlora-site.js'), 'train-local', ...args, '--json'], {
    cwd: repo,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`train-local exited ${r.status}`);
  const summary = JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as Summary;
  return { ...summary, wallSeconds: (Date.now() - started) / 1000 };
}

function reference(train: string, validation: string, heldout: string, labels: string[]): Summary {
  const labelsPath = join(scratch, 'labels.json');
  writeFileSync(labelsPath, JSON.stringify(labels));
  const script = join(repo, 'scripts/recipe_reference.py');
  const args = [script, '--model', DEFAULT_MODEL_DIR, '--train', train, '--validation', validation, '--heldout', heldout, '--labels', labelsPath];
  console.error(`$ ${python} ${args.join(' ')}`);
  const r = spawnSync(python, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error(`recipe_reference.py exited ${r.status}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as Summary;
}

const fmt = (x: unknown, d = 4) => (typeof x === 'number' ? x.toFixed(d) : String(x));
const row = (name: string, s: Summary) =>
  `| ${name} | ${fmt(s.baselineAccuracy)} → **${fmt(s.accuracy)}** | ${fmt(s.macroF1)} | ${s.steps}/${s.plannedSteps} (best ${s.bestStep}) | ${fmt(s.trainSeconds, 0)} s | ${fmt(s.samplesPerSecond, 1)} |`;

if (!dataRoot) console.log('(../shared/assets/data is absent: Banking77 and Medical Abstracts sections skipped)');
const out: string[] = [];
if (sections.includes('subsets') && dataRoot) {
  const full = loadBanking77(dataRoot, 'train');
  const test = csvFile('banking77-test.csv', loadBanking77(dataRoot, 'test'));
  out.push('| Banking77 train rows | fedlora accuracy / macro-F1 | PyTorch reference accuracy / macro-F1 | \\|F1 gap\\| | fedlora steps (best), s | reference steps (best), s |', '|---|---|---|---|---|---|');
  for (const size of [1000, 2000]) {
    const subset = subsetDataset(full, stratifiedSubset(labelIds(full), size, 0));
    const nVal = validationSize(size, DEFAULT_RECIPE);
    const split = stratifiedSplit(labelIds(subset), nVal / size, 2);
    const train = csvFile(`b77-${size}-train.csv`, subsetDataset(subset, split.train));
    const val = csvFile(`b77-${size}-val.csv`, subsetDataset(subset, split.heldout));
    const labels = sortedLabels(subset.examples.map((e) => e.label));
    const ours = trainLocal(['--data', train, '--validation-data', val, '--heldout', test, '--quiet']);
    const ref = reference(train, val, test, labels);
    const gap = Math.abs((ours.macroF1 as number) - (ref.macroF1 as number));
    out.push(
      `| ${size} (${split.train.length} train + ${split.heldout.length} validation) | ${fmt(ours.accuracy)} / ${fmt(ours.macroF1)} | ${fmt(ref.accuracy)} / ${fmt(ref.macroF1)} | ${fmt(gap)}${gap <= 0.03 ? '' : ' (over 0.03)'} | ${ours.steps} (${ours.bestStep}), ${fmt(ours.trainSeconds, 0)} | ${ref.steps} (${ref.bestStep}), ${fmt(ref.seconds, 0)} |`,
    );
    console.log(out.at(-1));
  }
  out.push('');
}
const tableHead = ['| data | held-out accuracy before → after | macro-F1 | steps taken/planned (best) | train time | samples/s |', '|---|---|---|---|---|---|'];
const full: string[] = [];
if (sections.includes('banking77') && dataRoot) {
  const train = csvFile('banking77-train.csv', loadBanking77(dataRoot, 'train'));
  const test = csvFile('banking77-test.csv', loadBanking77(dataRoot, 'test'));
  full.push(row('Banking77 (10,003 train / 3,080 test)', trainLocal(['--data', train, '--heldout', test])));
  console.log(full.at(-1));
}
if (sections.includes('medical') && dataRoot) {
  const split = loadMedicalAbstractsSplit(dataRoot);
  const train = csvFile('medical-train.csv', split.train);
  const heldout = csvFile('medical-heldout.csv', split.heldout);
  for (const weights of ['none', 'auto']) {
    full.push(row(`Medical Abstracts (${split.stats.train} / ${split.stats.heldout}), --class-weights ${weights}`, trainLocal(['--data', train, '--heldout', heldout, '--class-weights', weights])));
    console.log(full.at(-1));
  }
}
if (sections.includes('spam')) {
  full.push(row('SpamAssassin (default, no flags)', trainLocal([])));
  console.log(full.at(-1));
}
if (full.length) out.push(...tableHead, ...full);
console.log('\n' + out.join('\n'));
