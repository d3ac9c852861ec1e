// The site's masked-LM round port (issue 24, must-show 1 at the site): a round started from the coordinator's version 0
// (mlmInitialState with seed S) with seed S and N steps uploads a delta that, added to version 0, is the adapter
// mlmLocalRound — what `fedlora-site pretrain --lora --seed S` runs (client-node pretrain-lora.test.ts) — trains from
// scratch; the shapes a site checks a global adapter against are version 0's; and the manifest carries the task.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initNodeBackend } from '../node/backend';
import { loadBertCheckpoint } from '../node/model/load';
import { loadTokenizer } from '../node/tokenizer/load';
import { MLM_HEAD_NAMES } from '../model/mlm';
import { LORA_TARGETS, type LoraConfig } from '../lora/config';
import { mlmLocalRound, MLM_TRANSFORM_NAMES } from '../training/mlm-round';
import { mlmInitialState, mlmStateShapes } from '../training/mlm-state';
import { seededRandom } from '../random';
import { randomDocuments, saveFixtureWithMlmHead } from '../node/testing/mlm-fixture';
import type { NamedTensors } from '../tensor';
import type { BertCheckpoint } from '../model/checkpoint';
import type { Tokenizer } from '../tokenizer/tokenizer';
import { parseManifest } from '../protocol/manifest';
import { mlmRoundModel } from './mlm-round-model';

const scratch = mkdtempSync(join(tmpdir(), 'fedlora-mlm-round-model-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const SEED = 1;
const STEPS = 2;
const LORA: LoraConfig = { r: 4, alpha: 16, dropout: 0, targetModules: [...LORA_TARGETS], layers: null };
let ckpt: BertCheckpoint;
let tok: Tokenizer;
let docs: string[];

before(async () => {
  await initNodeBackend({ force: 'cpu', log: () => {} });
  const rand = seededRandom(3);
  // the fixture has no MLM head: give it one, as a BertForMaskedLM base has
  const baseDir = join(scratch, 'base');
  saveFixtureWithMlmHead(baseDir, rand);
  ckpt = loadBertCheckpoint(baseDir);
  tok = loadTokenizer(baseDir);
  docs = randomDocuments(rand, 24, 6, 9);
});

function maxDiff(a: NamedTensors, b: NamedTensors): number {
  assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort());
  let m = 0;
  for (const k of Object.keys(a)) {
    assert.deepEqual(a[k].shape, b[k].shape, k);
    for (let i = 0; i < a[k].data.length; i++) m = Math.max(m, Math.abs(a[k].data[i] - b[k].data[i]));
  }
  return m;
}

const shapesOf = (s: NamedTensors) => Object.fromEntries(Object.entries(s).map(([k, t]) => [k, [...t.shape]]));

test('when version 0 is made for a masked-LM federation, then it holds LoRA on every target and the base head transform, and no classifier', async () => {
  const v0 = await mlmInitialState(ckpt, LORA, true, SEED);
  assert.deepEqual(shapesOf(v0), mlmStateShapes(LORA, ckpt.config, true));
  assert.equal(Object.keys(v0).filter((k) => k.startsWith('classifier')).length, 0);
  assert.equal(Object.keys(v0).filter((k) => k.includes('.lora_')).length, 2 * LORA_TARGETS.length * ckpt.config.numLayers);
  for (const name of MLM_TRANSFORM_NAMES) assert.deepEqual([...v0[name].data], [...(ckpt.mlmHead as NamedTensors)[name].data], name);
  // without the transform: LoRA only
  assert.deepEqual(Object.keys(mlmStateShapes(LORA, ckpt.config, false)).filter((k) => !k.includes('.lora_')), []);
});

test('when a site trains a masked-LM round from version 0 with seed S, then version 0 + its delta equals mlmLocalRound (pretrain --lora) with seed S to 1e-5', async () => {
  const v0 = await mlmInitialState(ckpt, LORA, true, SEED);
  const model = mlmRoundModel({ ckpt, tokenizer: tok, lora: LORA, headTransform: true, docs: () => docs });
  assert.deepEqual(model.trainableShapes(), shapesOf(v0));
  const steps: number[] = [];
  const r = await model.train([], v0, { localEpochs: 1, batchSize: 4, learningRate: 5e-3, proximalMu: 0, maxSteps: STEPS }, {
    seed: SEED,
    maxLength: 24,
    onStep: (p) => steps.push(p.step),
    shouldStop: () => false,
  });
  assert.deepEqual(steps, [1, 2]);
  assert.equal(r.metrics.steps, STEPS);
  assert.ok(r.numExamples > 0 && Number.isFinite(r.metrics.loss));
  const trained: NamedTensors = {};
  for (const [k, g] of Object.entries(v0)) trained[k] = { shape: g.shape, data: g.data.map((x, i) => x + r.delta[k].data[i]) };

  const direct = await mlmLocalRound({
    ckpt, tokenizer: tok, docs, lora: LORA, trainHeadTransform: true,
    epochs: 1, batchSize: 4, learningRate: 5e-3, maxLength: 24, maxSteps: STEPS, seed: SEED,
  });
  const d = maxDiff(trained, direct.state);
  assert.ok(d <= 1e-5, `max |difference| ${d}`);
  // the round moved the adapter: B off zero, the transform off the base's
  const moved = (k: string) => r.delta[k].data.some((x) => Math.abs(x) > 1e-6);
  assert.ok(Object.keys(r.delta).some((k) => k.endsWith('.lora_B') && moved(k)));
  assert.ok(moved(MLM_HEAD_NAMES.denseW));

  // another seed trains other weights (the test can tell seeds apart)
  const other = await model.train([], v0, { localEpochs: 1, batchSize: 4, learningRate: 5e-3, proximalMu: 0, maxSteps: STEPS }, {
    seed: SEED + 1, maxLength: 24, onStep: () => {}, shouldStop: () => false,
  });
  assert.ok(Object.keys(r.delta).some((k) => r.delta[k].data.some((x, i) => Math.abs(x - other.delta[k].data[i]) > 1e-5)));
});

test('when the round runs under client-level DP, then the masked-LM delta leaves the site clipped to the DP norm', async () => {
  const v0 = await mlmInitialState(ckpt, LORA, false, SEED);
  const model = mlmRoundModel({ ckpt, tokenizer: tok, lora: LORA, headTransform: false, docs: () => docs });
  const config = { localEpochs: 1, batchSize: 4, learningRate: 5e-2, proximalMu: 0, maxSteps: STEPS };
  const control = { seed: SEED, maxLength: 24, onStep: () => {}, shouldStop: () => false };
  const norm = (d: NamedTensors) => Math.sqrt(Object.values(d).reduce((s, t) => s + t.data.reduce((a, x) => a + x * x, 0), 0));
  const free = norm((await model.train([], v0, config, control)).delta);
  const clip = free / 4;
  const clipped = norm((await model.train([], v0, { ...config, dpClipNorm: clip }, control)).delta);
  assert.ok(free > clip, `the unclipped delta (${free}) is larger than the clip`);
  assert.ok(Math.abs(clipped - clip) < 1e-4 * clip, `clipped norm ${clipped} vs ${clip}`);
});

test('when a manifest names the mlm task, then it must have no labels; a classification manifest needs at least 2', () => {
  const base = {
    v: 1,
    baseModel: { id: 'fedlora-bert-mini', files: [{ path: 'model.safetensors', sha256: 'a'.repeat(64), bytes: 1 }] },
    lora: LORA,
    maxSeqLength: 64,
    versionId: null,
  };
  assert.deepEqual(parseManifest({ ...base, labels: [], task: { kind: 'mlm', headTransform: true } }).task, { kind: 'mlm', headTransform: true });
  assert.equal(parseManifest({ ...base, labels: ['ham', 'spam'] }).task, undefined);
  assert.throws(() => parseManifest({ ...base, labels: [] }), (e: Error & { code?: string }) => e.code === 'BAD_MESSAGE' && /at least 2 labels/.test(e.message));
  assert.throws(() => parseManifest({ ...base, labels: ['ham', 'spam'], task: { kind: 'mlm', headTransform: false } }), /masked-LM one none/);
  assert.throws(() => parseManifest({ ...base, labels: [], task: { kind: 'summarize', headTransform: false } }), /task/);
});
