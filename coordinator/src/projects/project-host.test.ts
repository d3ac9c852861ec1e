// The projects a coordinator hosts (issue 21), at restart and where they cannot run: projects.json is reopened with
// each project's own files; a coordinator that cannot host more than its default project (a cluster, which gets no
// project factory) refuses to create one and refuses a data dir whose projects.json names one, rather than serving
// half of it; a project whose base model changed is refused like the default project's (HASH_MISMATCH).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createStrategy } from '@fedlora/shared/aggregation/index.ts';
import { isFedloraError } from '@fedlora/shared/errors.ts';
import { createCoordinator, type Coordinator, type CoordinatorOptions } from '../app';
import { MemoryStorage } from '../storage';
import { DEFAULT_SETTINGS, DEFAULT_STOP } from '../rounds/settings';
import { tinyFakeTask } from '../rounds/fakes';
import { tinyProjectFactory } from '../testing';

const ADMIN = 'project-host-test-admin-token-0123';
const file = (sha: string) => ({ path: 'model.safetensors', absPath: '/nowhere', sha256: sha.repeat(64), bytes: 1 });

async function coordinator(storage: MemoryStorage, o: Partial<CoordinatorOptions> = {}): Promise<Coordinator> {
  const c = await createCoordinator({
    adminToken: ADMIN,
    storage,
    strategy: createStrategy('fedavg', {}),
    settings: { ...DEFAULT_SETTINGS },
    stop: { ...DEFAULT_STOP },
    task: tinyFakeTask(),
    autostart: false,
    projectFactory: tinyProjectFactory([file('a')]),
    ...o,
  });
  await c.listen(0);
  return c;
}

const post = (c: Coordinator, path: string, body: unknown) =>
  fetch(`${c.url}/api${path}`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });

test('when a coordinator without a project factory (a cluster) is asked for a project, then it refuses with CONFIG_INVALID, and a data dir naming one does not start', async () => {
  const storage = new MemoryStorage();
  const c = await coordinator(storage);
  assert.equal((await post(c, '/projects', { id: 'triage', labels: ['a', 'b'] })).status, 201);
  await c.close();
  await assert.rejects(coordinator(storage, { projectFactory: undefined }), (e) => isFedloraError(e, 'CONFIG_INVALID') && /cannot host more than its default project/.test(e.message));
  const bare = await coordinator(new MemoryStorage(), { projectFactory: undefined });
  try {
    const r = await post(bare, '/projects', { id: 'triage', labels: ['a', 'b'] });
    assert.equal(r.status, 400);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'CONFIG_INVALID');
    assert.deepEqual(bare.projects.list().map((p) => p.id), ['default']);
  } finally {
    await bare.close();
  }
});

test('when a project\'s model directory holds other files at the next start, then the coordinator refuses it with HASH_MISMATCH naming the project; with the same files it opens again', async () => {
  const storage = new MemoryStorage();
  const c = await coordinator(storage);
  assert.equal((await post(c, '/projects', { id: 'triage', labels: ['a', 'b', 'c'] })).status, 201);
  await c.close();
  await assert.rejects(coordinator(storage, { projectFactory: tinyProjectFactory([file('b')]) }), (e) => isFedloraError(e, 'HASH_MISMATCH') && /project triage/.test(e.message));
  const again = await coordinator(storage);
  try {
    assert.deepEqual(again.projects.get('triage')?.model.labels, ['a', 'b', 'c']);
  } finally {
    await again.close();
  }
});

test('when projects.json is damaged, then the coordinator stops with FILE_CORRUPT rather than dropping the projects it cannot read', async () => {
  const storage = new MemoryStorage();
  await storage.write('projects.json', JSON.stringify({ v: 1, projects: [{ id: 'Bad Id', labels: ['a', 'b'] }] }));
  await assert.rejects(coordinator(storage), (e) => isFedloraError(e, 'FILE_CORRUPT') && /projects\.json/.test(e.message));
});
