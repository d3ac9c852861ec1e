// Issue 24 must-show 1 groundwork: `fedlora-site pretrain --lora` with seed S and N steps saves the LoRA weights (and
// MLM head transform) that the shared masked-LM round (training/mlm-round.ts, what a federated `mlm` round will call)
// trains with the same seed and steps, to 1e-5; another seed trains other weights; and the saved adapter merges
// into its base with `fedlora-site merge` (its recorded base-model hash is the base's).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initNodeBackend } from '@fedlora/shared/node/backend.ts';
import { loadBertCheckpoint } from '@fedlora/shared/node/model/load.ts';
import { readLoraAdapterDir } from '@fedlora/shared/node/model/adapter-dir.ts';
import { modelDirSha256 } from '@fedlora/shared/node/model/model-hash.ts';
import { LINEAGE_FILE, type Lineage } from '@fedlora/shared/node/model/merge-base.ts';
import { loadTokenizer } from '@fedlora/shared/node/tokenizer/load.ts';
import { LORA_TARGETS } from '@fedlora/shared/lora/config.ts';
import { mlmLocalRound, MLM_TRANSFORM_NAMES } from '@fedlora/shared/training/mlm-round.ts';
import { splitDocuments } from '@fedlora/shared/training/pretrain.ts';
import { seededRandom } from '@fedlora/shared/random.ts';
import { randomDocuments, saveFixtureWithMlmHead } from '@fedlora/shared/node/testing/mlm-fixture.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { main } from '../cli';

const scratch = mkdtempSync(join(tmpdir(), 'fedlora-pretrain-lora-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const WORDS = 'the and for with are was card you this that what how why when can does not still waiting arrived account money transfer payment bank top declined refund fee exchange rate'.split(' ');
const SEED = 5;
const STEPS = 3;
let baseDir: string;
let textPath: string;

async function cli(...args: string[]): Promise<{ code: number; out: string[]; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => void out.push(a.join(' '));
  console.error = (...a: unknown[]) => void err.push(a.join(' '));
  try {
    return { code: await main(args), out, err: err.join('\n') };
  } finally {
    console.log = log;
    console.error = error;
  }
}

const pretrainArgs = (out: string, seed: number) => [
  'pretrain', '--model', baseDir, '--text', textPath, '--out', out, '--lora', '--lora-r', '4', '--head-transform',
  '--seed', String(seed), '--max-steps', String(STEPS), '--batch-size', '4', '--max-length', '24', '--lr', '5e-3',
  '--backend', 'cpu', '--quiet', '--json',
];

function maxDiff(a: NamedTensors, b: NamedTensors): number {
  assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort());
  let m = 0;
  for (const k of Object.keys(a)) {
    assert.deepEqual(a[k].shape, b[k].shape, k);
    for (let i = 0; i < a[k].data.length; i++) m = Math.max(m, Math.abs(a[k].data[i] - b[k].data[i]));
  }
  return m;
}

before(async () => {
  await initNodeBackend({ force: 'cpu', log: () => {} });
  const rand = seededRandom(11);
  baseDir = join(scratch, 'base');
  saveFixtureWithMlmHead(baseDir, rand);
  // 30 documents of 6-14 fixture-vocabulary words
  const lines = randomDocuments(rand, 30, 6, 9, WORDS);
  textPath = join(scratch, 'notes.txt');
  writeFileSync(textPath, lines.join('\n') + '\n');
});

test('when pretrain --lora runs with seed S and N steps, then its saved LoRA and head transform equal the shared MLM round with the same seed and steps to 1e-5', async () => {
  const outDir = join(scratch, 'adapter');
  const r = await cli(...pretrainArgs(outDir, SEED));
  assert.equal(r.code, 0, r.err);
  const summary = JSON.parse(r.out.at(-1) as string) as { steps: number; heldoutLossBefore: number; heldoutLossAfter: number };
  assert.equal(summary.steps, STEPS);
  assert.ok(Number.isFinite(summary.heldoutLossBefore) && Number.isFinite(summary.heldoutLossAfter));
  const saved = await readLoraAdapterDir(outDir);
  assert.equal(saved.baseModelSha256, await modelDirSha256(baseDir));
  assert.deepEqual(saved.config, { r: 4, alpha: 16, dropout: 0, targetModules: [...LORA_TARGETS], layers: null });

  const round = await mlmLocalRound({
    ckpt: loadBertCheckpoint(baseDir),
    tokenizer: loadTokenizer(baseDir),
    docs: splitDocuments(readFileSync(textPath, 'utf8')),
    lora: saved.config,
    trainHeadTransform: true,
    epochs: 1,
    batchSize: 4,
    learningRate: 5e-3,
    maxLength: 24,
    maxSteps: STEPS,
    seed: SEED,
  });
  assert.equal(round.steps, STEPS);
  for (const name of MLM_TRANSFORM_NAMES) assert.ok(name in round.state, name);
  const diff = maxDiff(saved.state, round.state);
  assert.ok(diff <= 1e-5, `pretrain --lora and the MLM round differ by ${diff}`);
  // the comparison can fail: training moved B off zero, and another seed trains other weights
  const someB = Object.keys(round.state).find((k) => k.endsWith('.lora_B')) as string;
  assert.ok(round.state[someB].data.some((x) => Math.abs(x) > 1e-4), 'B moved off its zero start');
  const other = join(scratch, 'adapter-other-seed');
  assert.equal((await cli(...pretrainArgs(other, SEED + 1))).code, 0);
  assert.ok(maxDiff((await readLoraAdapterDir(other)).state, round.state) > 1e-3, 'another seed, other weights');
  console.log(`pretrain --lora vs mlmLocalRound: max |diff| ${diff.toExponential(2)} over ${Object.keys(round.state).length} tensors`);
});

test('when a round starts from a global adapter and trains 0 steps, then it returns that adapter and its held-out loss is the one it ended with', async () => {
  const input = {
    ckpt: loadBertCheckpoint(baseDir),
    tokenizer: loadTokenizer(baseDir),
    docs: splitDocuments(readFileSync(textPath, 'utf8')),
    lora: { r: 4, alpha: 16, dropout: 0, targetModules: [...LORA_TARGETS], layers: null },
    trainHeadTransform: true,
    epochs: 1,
    batchSize: 4,
    learningRate: 5e-3,
    maxLength: 24,
    seed: SEED,
  };
  const first = await mlmLocalRound({ ...input, maxSteps: STEPS });
  const resumed = await mlmLocalRound({ ...input, maxSteps: 0, start: first.state });
  assert.equal(resumed.steps, 0);
  assert.equal(maxDiff(resumed.state, first.state), 0);
  // the same held-out set (same seed): LoRA and head transform were both loaded from the start state
  assert.ok(Math.abs(resumed.heldoutBefore.loss - first.heldoutAfter.loss) < 1e-5, `${resumed.heldoutBefore.loss} vs ${first.heldoutAfter.loss}`);
  assert.ok(Math.abs(resumed.heldoutBefore.loss - first.heldoutBefore.loss) > 1e-4, 'the start state is not the fresh adapter');
});

test('when the adapter pretrain --lora saved is merged, then merge accepts its recorded base and names it in the lineage', async () => {
  const merged = join(scratch, 'merged');
  const r = await cli('merge', '--base', baseDir, '--adapter', join(scratch, 'adapter'), '--out', merged, '--quiet');
  assert.equal(r.code, 0, r.err);
  const lineage = JSON.parse(readFileSync(join(merged, LINEAGE_FILE), 'utf8')) as Lineage;
  assert.equal(lineage.parentBaseSha256, await modelDirSha256(baseDir));
  assert.deepEqual(lineage.adapter.headTensors, [...MLM_TRANSFORM_NAMES].sort());
  // and its pretrain --lora cannot be merged into another base: the shipped model has another hash
  const wrong = await cli('merge', '--base', fileURLToPath(new URL('../../../models/fedlora-bert-mini/', import.meta.url)), '--adapter', join(scratch, 'adapter'), '--out', join(scratch, 'no'), '--quiet');
  assert.equal(wrong.code, 1);
  assert.match(wrong.err, /HASH_MISMATCH/);
});
