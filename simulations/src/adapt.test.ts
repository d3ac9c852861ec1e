// The two-phase recipe on a tiny in-memory dataset: phase 2 must train on the merged base (the adapter phase 1 made,
// folded in), not on the shipped one; the centralized arm gets the federation's total masked-LM steps; flags parse.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeDataset, labelIds, type LabeledExample } from '@fedlora/shared/data/dataset.ts';
import type { BertCheckpoint } from '@fedlora/shared/model/checkpoint.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { DEFAULT_SIM_OPTIONS, type SimOptions } from './options';
import type { SimData } from './data';
import { partitionSites } from './data';
import { runSimulation } from './simulate';
import { adaptContext, runAdaptCell, runAdaptStudy, type AdaptOptions } from './adapt';
import { mergedCheckpoint } from './mlm-phase';
import { parseAdaptArgs } from './adapt-main';

const CARDIO = ['the patient had chest pain and high blood pressure', 'an infarction of the heart muscle was seen', 'arterial stenosis after the angioplasty'];
const NEURO = ['seizures and headache in the young patient', 'a lesion of the brain on the scan', 'the nerve conduction study was normal'];

function tinyData(): SimData {
  const make = (n: number, offset: number): LabeledExample[] =>
    Array.from({ length: n }, (_, i) => {
      const cardio = i % 2 === 0;
      const pool = cardio ? CARDIO : NEURO;
      return { text: `${pool[i % pool.length]} case ${offset + i}`, label: cardio ? 'cardio' : 'neuro' };
    });
  const labels = ['cardio', 'neuro'];
  return { train: makeDataset('tiny-train', make(36, 0), labels), heldout: makeDataset('tiny-heldout', make(16, 1000), labels), labels };
}

const SIM: SimOptions = { ...DEFAULT_SIM_OPTIONS, sites: 3, sitesPerRound: 3, rounds: 1, alpha: null, maxSteps: 2, batchSize: 8, maxLength: 16, quiet: true };

const OPTS: AdaptOptions = {
  sim: SIM,
  mlm: {
    rounds: 1,
    steps: 2,
    batchSize: 4,
    learningRate: 5e-3,
    maxLength: 16,
    lora: { r: 4, alpha: 8, dropout: 0, targetModules: ['query', 'value', 'intermediate'], layers: null },
    headTransform: false,
  },
  adaptations: ['none', 'federated', 'centralized'],
  seeds: [3],
  mlmHeldoutDocs: 8,
};

const QUERY0 = 'encoder.layer.0.attention.self.query.weight';
const KEY0 = 'encoder.layer.0.attention.self.key.weight';

test('when the federated arm runs, then phase 2 trains on the merged base: adapted weights moved, the rest kept, and its rounds are those of a run on that base', async () => {
  const data = tinyData();
  const ctx = await adaptContext(OPTS, data.heldout);
  let seen: { state: NamedTensors | null; checkpoint: BertCheckpoint } | null = null;
  const cell = await runAdaptCell(OPTS, ctx, 3, 'federated', { data, onPhase2Base: (b) => (seen = b) });
  assert.ok(seen, 'phase 2 was handed a base');
  const { state, checkpoint } = seen as { state: NamedTensors | null; checkpoint: BertCheckpoint };
  assert.ok(state, 'the federated arm produced an adapter');
  assert.equal(cell.mlmPhase?.totalSteps, 3 * 2, '3 sites × 2 steps');

  // the base phase 2 got is the adapter merged into the shipped base: query moved (B left zero), key was not adapted
  const merged = mergedCheckpoint(ctx.stored, OPTS.mlm.lora, state);
  assert.deepEqual(checkpoint.weights[QUERY0].data, merged.weights[QUERY0].data);
  assert.notDeepEqual(checkpoint.weights[QUERY0].data, ctx.base.weights[QUERY0].data, 'the merged query weight differs from the base');
  assert.deepEqual(checkpoint.weights[KEY0].data, ctx.base.weights[KEY0].data, 'an unadapted weight is the base\'s');
  assert.notEqual(cell.mlmAfter.loss, cell.mlmBefore.loss, 'the held-out MLM loss is measured on the merged base');

  // phase 2 = the classification federation on that base: same rounds as a direct run on it, unlike one on the base
  const sites = partitionSites(labelIds(data.train), { sites: 3, alpha: null, quantitySkew: null, seed: 3 });
  const sim = { ...SIM, seed: 3, centralized: false, localOnly: false };
  const onMerged = await runSimulation(sim, { data, sites, checkpoint: merged });
  const onBase = await runSimulation(sim, { data, sites });
  assert.deepEqual(cell.rounds.map((r) => r.heldoutLoss), onMerged.arms.fedavg.rounds.map((r) => r.heldoutLoss));
  assert.notDeepEqual(cell.rounds.map((r) => r.heldoutLoss), onBase.arms.fedavg.rounds.map((r) => r.heldoutLoss));
});

test('when a study runs every arm, then cells and the report are written, none keeps the base, and centralized takes the federation\'s total steps', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fedlora-adapt-'));
  try {
    const cells = await runAdaptStudy(OPTS, dir, 'npm run simulate:adapt -- (test)', { data: tinyData() });
    const by = Object.fromEntries(cells.map((c) => [c.adaptation, c]));
    assert.deepEqual(Object.keys(by).sort(), ['centralized', 'federated', 'none']);
    assert.equal(by.none.mlmPhase, null);
    assert.equal(by.none.mlmAfter.loss, by.none.mlmBefore.loss);
    assert.equal(by.centralized.mlmPhase?.totalSteps, by.federated.mlmPhase?.totalSteps);
    assert.match(readFileSync(join(dir, 'summary.md'), 'utf8'), /\| federated \| 3 \| \d+\.\d{4} ± 0\.0000 \|/);
    assert.equal(JSON.parse(readFileSync(join(dir, 'metrics.json'), 'utf8')).cells.length, 3);
    // a rerun finds every cell and runs nothing; other options in the same folder are refused
    const again = await runAdaptStudy(OPTS, dir, 'rerun', { onEvent: () => assert.fail('a finished cell ran again') });
    assert.equal(again.length, 3);
    await assert.rejects(runAdaptStudy({ ...OPTS, mlm: { ...OPTS.mlm, steps: 3 } }, dir, 'other'), /other options/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('when adaptation flags are mixed with simulate flags, then each goes to its parser; --seed and --arms are refused', () => {
  const p = parseAdaptArgs(['--dataset', 'x.csv', '--mlm-rounds', '4', '--rounds', '7', '--seeds', '1,2', '--mlm-head-transform', '--adaptation', 'none,federated']);
  assert.notEqual(p, 'help');
  if (p === 'help') return;
  assert.equal(p.options.mlm.rounds, 4);
  assert.equal(p.options.sim.rounds, 7);
  assert.equal(p.options.sim.dataset, 'x.csv');
  assert.deepEqual(p.options.seeds, [1, 2]);
  assert.deepEqual(p.options.adaptations, ['none', 'federated']);
  assert.equal(p.options.mlm.headTransform, true);
  assert.equal(p.options.mlm.lora.targetModules.length, 6, 'every linear layer by default');
  assert.throws(() => parseAdaptArgs(['--seed', '1']), /--seeds/);
  assert.throws(() => parseAdaptArgs(['--arms', 'fedavg']), /--adaptation/);
  assert.throws(() => parseAdaptArgs(['--adaptation', 'pretrain']), /none, federated, centralized/);
  assert.equal(parseAdaptArgs(['--help']), 'help');
});
