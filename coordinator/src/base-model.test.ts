// Issue 22: adapters belong to one base model. A data dir made with one base model (say version 1 of the shipped
// model) is refused by a coordinator serving another, naming both; the same base model restarts as before.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isFedloraError } from '@fedlora/shared/errors.ts';
import { createStrategy } from '@fedlora/shared/aggregation/index.ts';
import { baseModelRecord, createCoordinator } from './app';
import { DirStorage } from './storage';
import { memoryLogger } from './log';
import { DEFAULT_SETTINGS, DEFAULT_STOP } from './rounds/settings';
import { tinyFakeTask } from './rounds/fakes';

const file = (sha: string) => ({ path: 'model.safetensors', absPath: '/nonexistent', sha256: sha.repeat(64), bytes: 10 });
const v1 = [file('1')];
const v2 = [file('2')];

async function start(dataDir: string, modelFiles: typeof v1) {
  const c = await createCoordinator({
    adminToken: 'admin-token-for-tests-0123456789',
    storage: new DirStorage(dataDir),
    strategy: createStrategy('fedavg', {}),
    settings: DEFAULT_SETTINGS,
    stop: DEFAULT_STOP,
    task: tinyFakeTask(modelFiles),
    autostart: false,
    log: memoryLogger(),
  });
  await c.close();
}

test('when a data dir made with one base model is opened with another, then the coordinator refuses to start and names both', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fedlora-base-'));
  try {
    await start(dir, v1);
    const recorded = JSON.parse(readFileSync(join(dir, 'coordinator.json'), 'utf8')) as { baseModel: { sha256: string } };
    assert.equal(recorded.baseModel.sha256, baseModelRecord({ modelId: 'tiny-fake', modelFiles: v1 }).sha256);
    await start(dir, v1); // the same base model: starts as before

    await assert.rejects(start(dir, v2), (err) => {
      assert.ok(isFedloraError(err, 'HASH_MISMATCH'));
      assert.ok(err.message.includes(baseModelRecord({ modelId: 'tiny-fake', modelFiles: v1 }).sha256.slice(0, 16)));
      assert.ok(err.message.includes(baseModelRecord({ modelId: 'tiny-fake', modelFiles: v2 }).sha256.slice(0, 16)));
      assert.match(err.message, /new --data-dir/);
      return true;
    });
    // nothing was overwritten: the data dir still names its own base model
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'coordinator.json'), 'utf8')), recorded);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
