// End-to-end simulator checks on a tiny in-memory dataset (seconds, not minutes): a 3-site 2-round run with every
// arm and baseline and the run folder it writes, and determinism (same seed → identical curves and losses).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeDataset, type LabeledExample } from '@fedlora/shared/data/dataset.ts';
import { DEFAULT_SIM_OPTIONS, parseSimArgs, type SimOptions } from './options';
import { jsonSummary, runSimulation } from './simulate';
import { plannedSamplesPerRound } from './federation';
import { writeRun } from './report';
import type { SimData } from './data';

const SPAM = ['win cash now', 'cheap pills online', 'claim your free prize', 'buy cheap watches', 'you won a lottery'];
const HAM = ['meeting moved to noon', 'see the attached report', 'lunch with the team today', 'notes from the call', 'the budget review'];

/** 48 examples per site for 3 sites, and a 64-example held-out set; texts vary by a number so none repeat. */
function tinyData(): SimData {
  const make = (n: number, offset: number): LabeledExample[] =>
    Array.from({ length: n }, (_, i) => {
      const spam = i % 2 === 0;
      const pool = spam ? SPAM : HAM;
      return { text: `${pool[i % pool.length]} ${offset + i}`, label: spam ? 'spam' : 'ham' };
    });
  const labels = ['ham', 'spam'];
  return { train: makeDataset('tiny-train', make(144, 0), labels), heldout: makeDataset('tiny-heldout', make(64, 1000), labels), labels };
}

const TINY: SimOptions = {
  ...DEFAULT_SIM_OPTIONS,
  sites: 3,
  sitesPerRound: 3,
  rounds: 2,
  alpha: null,
  maxSteps: 2,
  batchSize: 8,
  maxLength: 32,
  localSites: 3,
  quiet: true,
};

test('when simulating 3 sites for 2 rounds with every strategy and int8 uploads, then each arm and baseline reports and the run folder is written', async () => {
  const res = await runSimulation({ ...TINY, strategies: ['fedavg', 'fedprox', 'fedadam', 'fedavgm'], encoding: 'int8' }, { data: tinyData() });
  assert.deepEqual(Object.keys(res.arms), ['fedavg', 'fedprox', 'fedadam', 'fedavgm']);
  assert.deepEqual(res.data.siteSizes, [48, 48, 48]);
  for (const arm of Object.values(res.arms)) {
    assert.equal(arm.curve.length, 2);
    for (const r of arm.rounds) {
      assert.equal(r.updates, 3);
      assert.equal(r.failures, 0);
      assert.ok(r.aggregated);
      assert.equal(r.samplesSeen, 3 * 2 * 8, 'each site trains 2 steps of 8');
      assert.ok(r.accuracy >= 0 && r.accuracy <= 1);
      assert.ok(r.updateBytes > 0 && r.envelopeBytes > r.updateBytes, 'the sealed envelope adds the box overhead');
    }
  }
  assert.deepEqual(res.centralized?.curve.length, 2);
  assert.equal(res.centralized?.samplesSeen, 2 * 48, 'centralized sees the federation\'s 48 samples per round');
  assert.equal(res.localOnly?.accuracies.length, 3);
  assert.ok((res.localOnly?.worst ?? 2) <= (res.localOnly?.mean ?? -1));

  const dir = mkdtempSync(join(tmpdir(), 'fedlora-sim-'));
  try {
    writeRun(res, dir, 'npm run simulate -- (test)');
    const png = readFileSync(join(dir, 'accuracy.png'));
    assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], 'a PNG file');
    assert.ok(existsSync(join(dir, 'accuracy.svg')));
    assert.match(readFileSync(join(dir, 'summary.md'), 'utf8'), /\| fedadam \| \d+\.\d \|/);
    assert.equal(JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8')).arms.fedavg.curve.length, 2);
    const line = JSON.parse(jsonSummary(res, dir));
    assert.deepEqual(Object.keys(line.arms), ['fedavg', 'fedprox', 'fedadam', 'fedavgm', 'centralized', 'localOnly']);
    assert.equal(line.runDir, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('when a site drops out with probability 1, then no round aggregates and the adapter is kept', async () => {
  const res = await runSimulation({ ...TINY, dropoutProb: 1, centralized: false, localOnly: false }, { data: tinyData() });
  const arm = res.arms.fedavg;
  assert.ok(arm.rounds.every((r) => !r.aggregated && r.updates === 0 && r.failures === 3));
  assert.deepEqual(arm.curve, [arm.initialAccuracy, arm.initialAccuracy]);
});

test('when the same seed runs twice, then the accuracy curves and training losses are identical', async () => {
  const opts = { ...TINY, strategies: ['fedavg', 'fedadam'] as SimOptions['strategies'], encoding: 'fp16' as const, centralized: false, localOnly: false, seed: 5 };
  const a = await runSimulation(opts, { data: tinyData() });
  const b = await runSimulation(opts, { data: tinyData() });
  for (const k of ['fedavg', 'fedadam']) {
    assert.deepEqual(b.arms[k].curve, a.arms[k].curve);
    assert.deepEqual(b.arms[k].rounds.map((r) => r.trainLoss), a.arms[k].rounds.map((r) => r.trainLoss));
    assert.deepEqual(b.arms[k].rounds.map((r) => r.heldoutLoss), a.arms[k].rounds.map((r) => r.heldoutLoss));
  }
});

test('when flags are parsed, then defaults apply, a comma list makes several arms, and a bad value names its flag', () => {
  const o = parseSimArgs(['--sites', '20', '--alpha', '0.3', '--rounds', '20', '--strategy', 'fedavg,fedadam']);
  assert.ok(o !== 'help');
  assert.equal(o.sitesPerRound, 10);
  assert.equal(o.alpha, 0.3);
  assert.deepEqual(o.strategies, ['fedavg', 'fedadam']);
  assert.equal((parseSimArgs(['--alpha', 'iid']) as SimOptions).alpha, null);
  assert.throws(() => parseSimArgs(['--strategy', 'fedsgd']), /--strategy/);
  assert.throws(() => parseSimArgs(['--sites', '3', '--sites-per-round', '4']), /--sites-per-round/);
  assert.throws(() => parseSimArgs(['--encoding', 'int4']), /--encoding/);
  // the server learning rate defaults per strategy (no option given here); momentum is fedavgm's
  assert.deepEqual(o.strategyOptions, {});
  const m = parseSimArgs(['--strategy', 'fedavgm', '--server-lr', '0.5', '--server-momentum', '0.8']) as SimOptions;
  assert.deepEqual([m.strategies, m.strategyOptions.fedavgm], [['fedavgm'], { eta: 0.5, momentum: 0.8 }]);
  assert.throws(() => parseSimArgs(['--server-momentum', '1']), /--server-momentum/);
  // the adapter: the product's recipe unless --rank/--lora-alpha/--targets
  assert.deepEqual([o.lora.r, o.lora.alpha, o.lora.targetModules], [8, 16, ['query', 'value']]);
  const l = parseSimArgs(['--rank', '16', '--lora-alpha', '32', '--targets', 'query,value,intermediate']) as SimOptions;
  assert.deepEqual([l.lora.r, l.lora.alpha, l.lora.targetModules], [16, 32, ['query', 'value', 'intermediate']]);
  assert.throws(() => parseSimArgs(['--targets', 'query,ffn']), /--targets/);
  assert.throws(() => parseSimArgs(['--rank', '0']), /--rank/);
});

test('when --arms names arms, then it selects federated arms and baselines, and it refuses to be mixed with --strategy', () => {
  const o = parseSimArgs(['--arms', 'fedprox,local-only']) as SimOptions;
  assert.deepEqual(o.strategies, ['fedprox']);
  assert.equal(o.centralized, false);
  assert.equal(o.localOnly, true);
  const c = parseSimArgs(['--arms', 'centralized']) as SimOptions;
  assert.deepEqual(c.strategies, []);
  assert.equal(c.centralized, true);
  assert.throws(() => parseSimArgs(['--arms', 'fedavg', '--strategy', 'fedavg']), /--arms/);
  assert.throws(() => parseSimArgs(['--arms', 'fedavg,oracle']), /--arms/);
  assert.throws(() => parseSimArgs(['--arms', 'fedavg,fedavg']), /twice/);
});

test('when stragglers and dropouts are on, then the planned samples per round equal what the sites processed', async () => {
  const o = { ...TINY, rounds: 4, maxSteps: 5, stragglerProb: 0.5, dropoutProb: 0.3, localOnly: false, seed: 3 };
  const res = await runSimulation(o, { data: tinyData() });
  const sites = [0, 1, 2].map((s) => Array.from({ length: 48 }, (_, i) => s * 48 + i)); // IID sizes only matter here
  const plan = plannedSamplesPerRound(sites, o);
  assert.deepEqual(res.arms.fedavg.rounds.map((r) => r.samplesSeen), plan);
  assert.ok(plan.some((x) => x > 0 && x < 3 * 5 * 8), 'some round had a straggler or a dropout');
  assert.equal(res.centralized?.samplesSeen, plan.reduce((s, x) => s + x, 0));
});

test('when the centralized baseline runs alone (--arms centralized), then it equals the one run beside the federation', async () => {
  const together = await runSimulation({ ...TINY, localOnly: false }, { data: tinyData() });
  const alone = await runSimulation({ ...TINY, strategies: [], localOnly: false }, { data: tinyData() });
  assert.deepEqual(Object.keys(alone.arms), []);
  assert.deepEqual(alone.centralized, together.centralized);
});

test('when --rank and --targets change the adapter, then every arm trains that adapter', async () => {
  let final: Record<string, { shape: number[] }> = {};
  const lora = { ...TINY.lora, r: 4, targetModules: ['query', 'intermediate'] as SimOptions['lora']['targetModules'] };
  await runSimulation(
    { ...TINY, rounds: 1, lora, centralized: false, localOnly: false },
    { data: tinyData(), onArmResult: (r) => (final = r.final as unknown as typeof final) },
  );
  const names = Object.keys(final);
  assert.ok(names.some((n) => n.includes('intermediate')), `an intermediate adapter among ${names.join(', ')}`);
  assert.ok(!names.some((n) => n.includes('value')), 'no value adapter');
  const loraNames = names.filter((x) => x.endsWith('.lora_A') || x.endsWith('.lora_B'));
  assert.equal(loraNames.length, 4 * 2 * 2, '4 layers x 2 modules x (A, B)');
  for (const n of loraNames) assert.ok(final[n].shape.includes(4), `${n} has rank 4`);
});

test('when sites end an epoch on a partial batch and the step cap cuts it, then every round\'s samples seen equal the plan, without a warning', async () => {
  // sizes not multiples of the batch of 8; 3 steps cut the epochs of the larger two, so whether their partial batch
  // (5 or 7 examples) is among the steps taken depends on the round's shuffle
  const sites = [20, 45, 79].map((n, s) => Array.from({ length: n }, (_, i) => [0, 20, 65][s] + i));
  const o = { ...TINY, rounds: 3, maxSteps: 3, localOnly: false };
  const res = await runSimulation(o, { data: tinyData(), sites });
  const plan = plannedSamplesPerRound(sites, o);
  assert.deepEqual(res.arms.fedavg.rounds.map((r) => r.samplesSeen), plan);
  assert.ok(plan.some((x) => x < 20 + 2 * 3 * 8), `some round trained a partial batch: ${plan.join(',')}`);
  assert.deepEqual(res.warnings, []);
  assert.equal(res.centralized?.curve.length, 3);
});

test('when the samples seen differ from the plan after the rounds, then the finished arms and baselines are kept and written, and the mismatch is a warning beside them', async () => {
  const wrongPlan: typeof plannedSamplesPerRound = (sites, o) => plannedSamplesPerRound(sites, o).map((x) => x + 1);
  const res = await runSimulation({ ...TINY, localOnly: false }, { data: tinyData(), plan: wrongPlan });
  assert.equal(res.arms.fedavg.curve.length, 2, 'both finished rounds are kept');
  assert.equal(res.centralized?.curve.length, 2, 'the centralized baseline still ran');
  assert.equal(res.warnings?.length, 1);
  assert.match(res.warnings?.[0] ?? '', /^fedavg: samples seen per round 48,48 differ from the plan 49,49/);

  const dir = mkdtempSync(join(tmpdir(), 'fedlora-sim-'));
  try {
    writeRun(res, dir, 'npm run simulate -- (test)');
    const metrics = JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8'));
    assert.equal(metrics.arms.fedavg.curve.length, 2);
    assert.deepEqual(metrics.warnings, res.warnings);
    assert.match(readFileSync(join(dir, 'summary.md'), 'utf8'), /Warnings[^\n]*\n\n- fedavg: samples seen per round 48,48/);
    const line = JSON.parse(jsonSummary(res, dir));
    assert.deepEqual(Object.keys(line.arms), ['fedavg', 'centralized']);
    assert.deepEqual(line.warnings, res.warnings);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
