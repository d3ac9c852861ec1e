// Issue 24 at the coordinator: a masked-LM federation's task (eval/mlm-task.ts) makes version 0 from the base (its
// held-out MLM loss is the base's own) and scores adapters by masked-LM loss; the file registry keeps a version's task;
// and MergedBases (POST /api/versions/:id/merge) folds an mlm version into a new base directory whose own MLM loss,
// with no adapter, is the adapter's on the old base (to 1e-4), with a new hash and lineage. A classification version,
// an unknown one, and a second merge of the same version are answered as they should be.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initNodeBackend } from '@fedlora/shared/node/backend.ts';
import { modelDirSha256 } from '@fedlora/shared/node/model/model-hash.ts';
import { LINEAGE_FILE, type Lineage } from '@fedlora/shared/node/model/merge-base.ts';
import { BERT_REFERENCE_FIXTURE, randomDocuments, saveFixtureWithMlmHead } from '@fedlora/shared/node/testing/mlm-fixture.ts';
import { LORA_TARGETS, type LoraConfig } from '@fedlora/shared/lora/config.ts';
import { seededRandom } from '@fedlora/shared/random.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { loadMlmTask } from '../eval/mlm-task';
import { DirStorage } from '../storage';
import { AdapterRegistry } from './registry';
import { MergedBases } from './merged-bases';
import type { NewVersion } from './types';

const scratch = mkdtempSync(join(tmpdir(), 'fedlora-merged-bases-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const LORA: LoraConfig = { r: 4, alpha: 16, dropout: 0, targetModules: [...LORA_TARGETS], layers: null };
const rand = seededRandom(7);
let baseDir: string;
let docs: string[];

before(async () => {
  await initNodeBackend({ force: 'cpu', log: () => {} });
  baseDir = join(scratch, 'base');
  saveFixtureWithMlmHead(baseDir, rand);
  docs = randomDocuments(rand, 12, 8, 8);
});

const version = (round: number, task?: 'mlm'): NewVersion => ({
  parent: round === 0 ? null : `v${round - 1}`,
  round,
  strategy: 'fedavg',
  sites: round === 0 ? 0 : 3,
  examples: 0,
  metrics: null,
  trainMetrics: {},
  uploadedBytes: 0,
  ...(task ? { task } : {}),
});

/** `state` moved as a few rounds would move it: B off zero, the head's transform off the base's */
function trained(state: NamedTensors): NamedTensors {
  const out: NamedTensors = {};
  for (const [k, t] of Object.entries(state))
    out[k] = { shape: t.shape, data: k.endsWith('.lora_B') || k.startsWith('cls.') ? t.data.map((x) => x + (rand() * 2 - 1) * 0.05) : t.data };
  return out;
}

test('when a masked-LM version is merged through the coordinator, then the new base scores what base + adapter scored, with a new hash and lineage; a classification version is refused', async () => {
  const task = loadMlmTask({ modelDir: baseDir, lora: LORA, headTransform: true, heldoutDocs: docs, maxLength: () => 24, seed: 1 });
  const v0 = await task.initialState();
  const m0 = await task.evaluator.evaluate(v0);
  assert.equal(m0.task, 'mlm');
  assert.equal(m0.macroF1, undefined);
  assert.ok(Number.isFinite(m0.loss) && m0.loss > 0 && (m0.maskedTokens ?? 0) > 0);
  const state = trained(v0);
  const m1 = await task.evaluator.evaluate(state);
  assert.notEqual(m1.loss, m0.loss, 'the adapter and the head transform change the held-out loss');
  task.dispose();

  const registry = await AdapterRegistry.open(new DirStorage(join(scratch, 'coordinator')));
  await registry.addVersion(version(0, 'mlm'), v0, null);
  const v1 = await registry.addVersion(version(1, 'mlm'), state, null);
  assert.equal((await registry.get('v1'))?.task, 'mlm', 'the registry records the task of a version');
  const bases = new MergedBases({ store: registry, baseDir, lora: LORA, dir: join(scratch, 'coordinator', 'bases'), tool: 'test' });
  const merged = await bases.merge('v1');
  assert.equal(merged.dir, join(scratch, 'coordinator', 'bases', 'v1'));
  assert.equal(merged.parentBaseSha256, await modelDirSha256(baseDir));
  assert.equal(merged.sha256, await modelDirSha256(merged.dir));
  assert.notEqual(merged.sha256, merged.parentBaseSha256);
  const lineage = JSON.parse(readFileSync(join(merged.dir, LINEAGE_FILE), 'utf8')) as Lineage;
  assert.equal(lineage.adapter.versionId, 'v1');
  assert.equal(lineage.adapter.sha256, v1.sha256);
  assert.equal(lineage.adapter.headTensors.length, 4);

  // the merged base with a fresh adapter (B = 0) and its own head: the loss base + adapter had
  const after = loadMlmTask({ modelDir: merged.dir, lora: LORA, headTransform: false, heldoutDocs: docs, maxLength: () => 24, seed: 1 });
  try {
    const m = await after.evaluator.evaluate(await after.initialState());
    assert.ok(Math.abs(m.loss - m1.loss) < 1e-4, `merged base loss ${m.loss} vs base + adapter ${m1.loss}`);
    assert.equal(m.accuracy, m1.accuracy);
  } finally {
    after.dispose();
  }

  // merging again answers the same base; the listing shows it
  assert.deepEqual(await bases.merge('v1'), merged);
  assert.deepEqual(bases.list(), [merged]);
  await assert.rejects(bases.merge('v9'), (e: Error & { code?: string }) => e.code === 'NOT_FOUND');

  // a classification version has a classifier head, not a base's: refused, nothing written
  const cls = await AdapterRegistry.open(new DirStorage(join(scratch, 'classification')));
  await cls.addVersion(version(0), v0, null);
  const refused = new MergedBases({ store: cls, baseDir, lora: LORA, dir: join(scratch, 'classification', 'bases'), tool: 'test' });
  await assert.rejects(refused.merge('v0'), (e: Error & { code?: string }) => e.code === 'CONFLICT' && /masked-LM/.test(e.message));
  assert.equal(existsSync(join(scratch, 'classification', 'bases', 'v0')), false);
});

test('when the base has no MLM head, then a masked-LM task is refused at startup naming it', () => {
  assert.throws(
    () => loadMlmTask({ modelDir: BERT_REFERENCE_FIXTURE, lora: LORA, headTransform: false, heldoutDocs: docs, maxLength: () => 24, seed: 0 }),
    (e: Error & { code?: string }) => e.code === 'MODEL_UNSUPPORTED' && /MLM head/.test(e.message),
  );
});
