// Settings changed while the coordinator runs (PUT /api/settings) survive a restart: each change is kept in the
// registry before it applies, and applied again, in order, over the command line's settings when the federation
// starts (Federation.init). A bad change is refused and not kept; a kept change that no longer validates is skipped
// with a log line, and the others still apply.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { memoryLogger } from '../log';
import { MemoryStorage } from '../storage';
import { listeningTestCoordinator } from '../testing';
import { AdapterRegistry } from '../registry/registry';
import { DEFAULT_SETTINGS } from './settings';

const ADMIN = 'admin-token-for-tests-0123456789';

async function put(url: string, body: unknown): Promise<Response> {
  return fetch(`${url}/api/settings`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

async function settings(url: string): Promise<Record<string, unknown>> {
  return (await (await fetch(`${url}/api/settings`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as Record<string, unknown>;
}

test('when settings are changed at run time and the coordinator restarts, then the changes apply again over the command line, in order', async () => {
  const storage = new MemoryStorage();
  const first = await listeningTestCoordinator({ adminToken: ADMIN, storage, settings: { ...DEFAULT_SETTINGS, minSites: 2 } });
  try {
    const r1 = await put(first.url as string, { minSites: 3, schedule: 'every 6h' });
    assert.equal(r1.status, 200, await r1.text());
    assert.equal((await put(first.url as string, { minSites: 4, strategy: 'fedadam', strategyOptions: { fedadam: { eta: 0.05 } } })).status, 200);
    const refused = await put(first.url as string, { minSites: -1 });
    assert.equal(refused.status, 400);
  } finally {
    await first.close();
  }
  const registry = await AdapterRegistry.open(storage);
  assert.deepEqual(
    registry.settingsChanges().map((c) => c.patch),
    [{ minSites: 3, schedule: 'every 6h' }, { minSites: 4, strategy: 'fedadam', strategyOptions: { fedadam: { eta: 0.05 } } }],
    'the refused change was not kept',
  );

  // the restarted coordinator has the command line's minSites 2 and learning rate 1e-3; the kept changes win for
  // their own fields only
  const log = memoryLogger();
  const again = await listeningTestCoordinator({ adminToken: ADMIN, storage, log, settings: { ...DEFAULT_SETTINGS, minSites: 2, learningRate: 1e-3 } });
  try {
    const s = await settings(again.url as string);
    assert.equal(s.minSites, 4);
    assert.equal(s.schedule, 'every 6h');
    assert.equal(s.strategy, 'fedadam');
    assert.equal((s.strategyOptions as { fedadam: { eta: number } }).fedadam.eta, 0.05);
    assert.equal(s.learningRate, 1e-3, 'a field no change touched keeps the command line value');
    assert.ok(log.lines.some((l) => /settings\.restored changes=2 fields=minSites,schedule,strategy,strategyOptions/.test(l)), log.lines.join('\n'));
  } finally {
    await again.close();
  }
});

test('when a kept change no longer validates, then it is skipped with a log line and the others still apply', async () => {
  const storage = new MemoryStorage();
  const registry = await AdapterRegistry.open(storage);
  await registry.addSettingsChange({ at: '2026-12-01T00:00:00.000Z', patch: { minSites: 5 } });
  await registry.addSettingsChange({ at: '2026-12-02T00:00:00.000Z', patch: { noSuchSetting: true } });
  await registry.addSettingsChange({ at: '2026-12-03T00:00:00.000Z', patch: { deadlineS: 120 } });
  const log = memoryLogger();
  const c = await listeningTestCoordinator({ adminToken: ADMIN, storage, log });
  try {
    const s = await settings(c.url as string);
    assert.deepEqual([s.minSites, s.deadlineS], [5, 120]);
    assert.ok(log.lines.some((l) => /settings\.restore_skipped at=2026-12-02T00:00:00.000Z fields=noSuchSetting/.test(l)), log.lines.join('\n'));
  } finally {
    await c.close();
  }
});
