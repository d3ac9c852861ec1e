// The grid runner's bookkeeping, without training: job list, centralized reuse across configs with equal inputs, and
// the merge of per-arm run folders into one config folder and the grid table.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dedupeCentralized, DRIFT_GRID, gridJobs, gridTable, MEDICAL_WIDE_DRIFT_GRID, MEDICAL_WIDE_GRID, mergeConfig, PLATEAU_GRID, RESULTS_GRID, type GridSpec } from './grid';
import { parseSimArgs } from './options';
import { writeRun } from './report';
import type { SimResult } from './simulate';
import { DEFAULT_SIM_OPTIONS } from './options';

test('when listing the RESULTS grid, then every dataset × alpha × sites config has all five arms and one extra encoding pair', () => {
  const jobs = gridJobs(RESULTS_GRID, 0);
  assert.equal(jobs.length, 2 * 2 * 2 * 5 + 2);
  assert.ok(jobs.every((j) => j.args.includes('--arms') && j.args.includes('--seed')));
  assert.deepEqual(new Set(jobs.map((j) => j.config)).size, 8);
  const enc = jobs.filter((j) => j.arm.startsWith('fedavg-'));
  assert.deepEqual(enc.map((j) => `${j.config}/${j.arm}`), ['banking77-a1.0-s10/fedavg-fp16', 'banking77-a1.0-s10/fedavg-int8']);
  const fp32 = jobs.find((j) => j.config === 'banking77-a1.0-s10' && j.arm === 'fedavg');
  for (const j of enc) {
    const i = j.args.indexOf('--encoding');
    assert.deepEqual([...j.args.slice(0, i), ...j.args.slice(i + 2)].filter((a) => !a.includes('fedavg-')), fp32?.args.filter((a) => !a.includes('/fedavg')), 'only the encoding differs');
  }
});

test('when listing the plateau grid, then it is the alpha 1.0 configs with 50 rounds and only FedAvg and centralized', () => {
  const jobs = gridJobs(PLATEAU_GRID, 0);
  assert.deepEqual([...new Set(jobs.map((j) => j.config))], ['banking77-a1.0-s10', 'banking77-a1.0-s50', 'medical-a1.0-s10', 'medical-a1.0-s50']);
  assert.deepEqual([...new Set(jobs.map((j) => j.arm))], ['fedavg', 'centralized']);
  for (const j of jobs) assert.equal(j.args[j.args.indexOf('--rounds') + 1], '50');
  // everything else is the RESULTS grid's budget: the same flags apart from the rounds
  const results = gridJobs(RESULTS_GRID, 0).find((j) => j.config === 'banking77-a1.0-s10' && j.arm === 'fedavg');
  const plateau = jobs.find((j) => j.config === 'banking77-a1.0-s10' && j.arm === 'fedavg');
  assert.deepEqual(plateau?.args.map((a) => (a === '50' ? '10' : a)), results?.args);
  assert.match(gridTable(PLATEAU_GRID, 'runs/plateau', new Map()), /^\| dataset \| α \| sites \(per round\) \| FedAvg \| centralized \| plot \|/);
});

test('when listing the drift grid, then it is the 50-site plateau configs with a fifth of the local steps, 10 sites per round, 200 rounds', () => {
  const jobs = gridJobs(DRIFT_GRID, 0);
  assert.deepEqual([...new Set(jobs.map((j) => j.config))], ['banking77-a1.0-s50', 'medical-a1.0-s50']);
  assert.deepEqual([...new Set(jobs.map((j) => j.arm))], ['fedavg', 'fedavgm', 'centralized']);
  const plateau = gridJobs(PLATEAU_GRID, 0);
  for (const j of jobs.filter((x) => x.arm === 'fedavg')) {
    const p = plateau.find((x) => x.config === j.config && x.arm === 'fedavg')!;
    const o = parseSimArgs(j.args) as Exclude<ReturnType<typeof parseSimArgs>, 'help'>;
    const po = parseSimArgs(p.args) as typeof o;
    assert.deepEqual([o.sitesPerRound, o.maxSteps * 5, o.rounds], [10, po.maxSteps, 200]);
    // everything else (data, batch, lr, lengths, seed) is the plateau grid's
    const same = (x: typeof o) => ({ ...x, sitesPerRound: 0, maxSteps: 0, rounds: 0 });
    assert.deepEqual(same(o), same(po));
  }
});

test('when listing the medical-wide grids, then they are the plateau (10 sites) and drift (50 sites) Medical configs with an adapter on every linear layer', () => {
  const wide = gridJobs(MEDICAL_WIDE_GRID, 0);
  const drift = gridJobs(MEDICAL_WIDE_DRIFT_GRID, 0);
  assert.deepEqual(wide.map((j) => `${j.config}/${j.arm}`), ['medical-a1.0-s10/fedavg', 'medical-a1.0-s10/centralized', 'medical-a1.0-s10/local-only']);
  assert.deepEqual(drift.map((j) => `${j.config}/${j.arm}`), ['medical-a1.0-s50/fedavg']);
  const parsed = (args: string[]) => parseSimArgs(args) as Exclude<ReturnType<typeof parseSimArgs>, 'help'>;
  const pairs = [
    [wide[0], gridJobs(PLATEAU_GRID, 0).find((j) => j.config === 'medical-a1.0-s10' && j.arm === 'fedavg')!],
    [drift[0], gridJobs(DRIFT_GRID, 0).find((j) => j.config === 'medical-a1.0-s50' && j.arm === 'fedavg')!],
  ];
  for (const [j, base] of pairs) {
    const o = parsed(j.args);
    const b = parsed(base.args);
    assert.deepEqual(o.lora.targetModules, ['query', 'key', 'value', 'attention.output', 'intermediate', 'output']);
    assert.deepEqual(b.lora.targetModules, ['query', 'value']);
    // only the adapter differs from the grid it extends
    assert.deepEqual({ ...o, lora: null }, { ...b, lora: null });
  }
});

test('when two configs plan the same samples per round, then the second centralized arm reuses the first; otherwise it runs', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fedlora-grid-'));
  try {
    const csv = join(dir, 'toy.csv');
    const rows = Array.from({ length: 120 }, (_, i) => `"text ${i}",${['a', 'b', 'c'][i % 3]}`);
    writeFileSync(csv, 'text,label\n' + rows.join('\n') + '\n');
    const spec = (maxSteps: string): GridSpec => ({
      datasets: [{ dataset: csv, key: 'toy', flags: ['--rounds', '2', '--local-epochs', '100', '--max-steps', maxSteps, '--batch-size', '1'] }],
      alphas: [1.0, 0.1],
      sites: [3, 6],
      sitesPerRound: { 3: 2, 6: 2 },
      arms: ['fedavg', 'centralized'],
      encodings: [],
    });
    // a cap of 2 steps of 1: every sampled site (>= 1 example, 100 epochs) processes 2 samples → one plan for all
    // (a batch of 1 has no partial batch, whose place in the shuffled order would make the plans differ by site size)
    const capped = (await dedupeCentralized(gridJobs(spec('2'), 0))).filter((j) => j.arm === 'centralized');
    assert.equal(capped.filter((j) => !j.reuseOf).length, 1);
    assert.ok(capped.slice(1).every((j) => j.reuseOf === capped[0].config));
    // uncapped: 100 epochs of each site's own data → plans differ with the partition → every config runs its own
    const uncapped = (await dedupeCentralized(gridJobs(spec('100000'), 0))).filter((j) => j.arm === 'centralized');
    assert.ok(uncapped.filter((j) => !j.reuseOf).length > 1);
    // the same plan with another adapter is another run
    const wider = spec('2');
    wider.datasets[0] = { ...wider.datasets[0], key: 'toywide', flags: [...wider.datasets[0].flags, '--targets', 'query,value,intermediate'] };
    const both = (await dedupeCentralized([...gridJobs(spec('2'), 0), ...gridJobs(wider, 0)])).filter((j) => j.arm === 'centralized');
    assert.deepEqual(both.filter((j) => !j.reuseOf).map((j) => j.config), ['toy-a1.0-s3', 'toywide-a1.0-s3']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function fakeArm(kind: 'fedavg' | 'centralized' | 'local-only'): SimResult {
  const curve = [0.3, 0.6];
  const rounds = curve.map((accuracy, i) => ({ round: i + 1, accuracy, macroF1: accuracy, heldoutLoss: 1, trainLoss: 1, sampled: 2, updates: 2, failures: 0, stragglers: 0, samplesSeen: 8, updateBytes: 100, envelopeBytes: 116, aggregated: true, seconds: 1, transportSeconds: 0.1, rssMB: 1, heapUsedMB: 1 }));
  return {
    options: { ...DEFAULT_SIM_OPTIONS, rounds: 2, strategies: kind === 'fedavg' ? ['fedavg'] : [], centralized: kind === 'centralized', localOnly: kind === 'local-only' },
    model: 'm',
    backend: 'wasm',
    data: { name: 'toy', train: 10, heldout: 5, labels: 2, siteSizes: [5, 5] },
    arms: kind === 'fedavg' ? { fedavg: { strategy: 'fedavg', initialAccuracy: 0.1, accuracy: 0.6, macroF1: 0.6, curve, rounds } } : {},
    centralized: kind === 'centralized' ? { curve: [0.5, 0.8], trainLoss: [1, 0.5], macroF1: 0.8, accuracy: 0.8, samplesSeen: 16 } : null,
    localOnly: kind === 'local-only' ? { sites: [0, 1], accuracies: [0.4, 0.2], mean: 0.3, worst: 0.2, best: 0.4, sampled: false } : null,
    seconds: { total: 3, arms: kind === 'fedavg' ? { fedavg: 2 } : {}, centralized: kind === 'centralized' ? 2 : 0, localOnly: kind === 'local-only' ? 2 : 0 },
  };
}

test('when per-arm run folders are merged, then the config folder has every arm, a plot and a summary, and the table a row', () => {
  const out = mkdtempSync(join(tmpdir(), 'fedlora-grid-'));
  try {
    const cfg = join(out, 'banking77-a1.0-s10');
    for (const k of ['fedavg', 'centralized', 'local-only'] as const) writeRun(fakeArm(k), join(cfg, k), `npm run simulate -- --arms ${k}`);
    const m = mergeConfig(cfg, ['fedavg', 'fedprox', 'centralized', 'local-only']);
    assert.ok(m, 'merged');
    assert.deepEqual(Object.keys(m.res.arms), ['fedavg']);
    assert.equal(m.res.centralized?.accuracy, 0.8);
    assert.equal(m.res.localOnly?.worst, 0.2);
    assert.equal(m.commands.length, 3);
    writeRun(m.res, cfg, 'grid');
    assert.ok(existsSync(join(cfg, 'accuracy.png')));
    assert.match(readFileSync(join(cfg, 'summary.md'), 'utf8'), /\| centralized \(same samples seen\) \| 80\.0 \|/);
    const table = gridTable(RESULTS_GRID, 'runs/grid', new Map([['banking77-a1.0-s10', m.res]]));
    assert.match(table, /\| banking77 \| 1\.0 \| 10 \(5\) \| 60\.0 \| – \| – \| 80\.0 \| 30\.0 \/ 20\.0 \|/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
