// Issue 17 must-show 6: the coordinator process is SIGKILLed inside each secure-aggregation stage of a round (after
// setup's key exchange, after share-keys, after the masked uploads were collected, after the sum was unmasked but
// before it was versioned), each time restarted on its data dir. The last version stays intact, no half round is
// recorded, and the round reruns with a new round id (so new keys, seeds and masks) until it completes.
// The stop point is the coordinator's fault-hold failpoint (coordinator/src/rounds/fault-hold.ts): it holds the round
// loop after the named stage and logs `fault.hold`, so the kill lands at a known point rather than by timing luck.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launchFederation, poll, Procs, siteFiles } from './federation-harness';
import { adminApi, type RoundRecord, type VersionRecord } from './admin-client';

const MIN = 60_000;
const cleanup: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => {});
});

const HOLD = 'FEDLORA_FAULT_HOLD_AFTER_STAGE';
const STAGES = ['setup', 'share-keys', 'collect', 'unmask'] as const;

test(
  'when the coordinator is SIGKILLed in each secure-aggregation stage and restarted, then the last version is intact, no half round is recorded, and the round reruns with fresh keys until it versions',
  { timeout: 20 * MIN },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedlora-secagg-crash-'));
    cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
    const csvs = await siteFiles(dir, 3, 40);
    const procs = new Procs(join(dir, 'logs'));
    cleanup.push(() => procs.stopAll());
    const fed = await launchFederation(
      procs,
      dir,
      csvs,
      [
        ...['--heldout-limit', '40', '--max-steps', '1', '--batch-size', '4', '--max-length', '32'],
        ...['--min-sites', '3', '--rounds', '1', '--sample-wait-s', '60', '--secure-aggregation'],
      ],
      { coordinatorEnv: { [HOLD]: STAGES[0] } },
    );
    let api = adminApi(fed.url);
    const v0 = (await api.json<{ versions: VersionRecord[] }>('/api/versions')).versions;
    assert.deepEqual(v0.map((v) => v.id), ['v0']);

    for (let i = 0; i < STAGES.length; i++) {
      const stage = STAGES[i];
      await fed.coordinator.line(new RegExp(`fault\\.hold stage=${stage} round=1`), 6 * MIN);
      fed.coordinator.child.kill('SIGKILL');
      await fed.coordinator.exited;
      // the next coordinator holds after the next stage; after the last kill it runs the round through
      await fed.startCoordinator(i + 1 < STAGES.length ? { [HOLD]: STAGES[i + 1] } : {});
      api = adminApi(fed.url);
      const { versions, currentId } = await api.json<{ versions: VersionRecord[]; currentId: string }>('/api/versions');
      assert.equal(currentId, 'v0', `after the kill in ${stage}`);
      assert.deepEqual(versions, v0, `v0 changed after the kill in ${stage}`);
      assert.deepEqual(await api.json<RoundRecord[]>('/api/rounds'), [], `a round was recorded after the kill in ${stage}`);
    }

    const v1 = await poll(
      async () => (await api.json<{ versions: (VersionRecord & { mode?: string })[] }>('/api/versions')).versions.find((v) => v.id === 'v1'),
      8 * MIN,
      'version v1 after the last restart',
      1000,
    );
    assert.equal(v1.parent, 'v0');
    assert.equal(v1.mode, 'secure');
    assert.equal(v1.sites, 3);
    const rounds = await api.json<(RoundRecord & { mode?: string; roundId: string })[]>('/api/rounds');
    assert.deepEqual(rounds.map((r) => [r.round, r.outcome, r.mode]), [[1, 'aggregated', 'secure']]);

    // every site was configured for round 1 five times, each time with a new round id (fresh keys and masks)
    for (const site of fed.sites) {
      const ids = [...site.output().matchAll(/"type":"configured","roundId":"([^"]+)","round":1,"accepted":true/g)].map((m) => m[1]);
      assert.equal(new Set(ids).size, ids.length, `${site.name} saw a round id twice`);
      assert.equal(ids.length, STAGES.length + 1, `${site.name} accepted ${ids.length} attempts of round 1:\n${site.output().slice(-1500)}`);
      assert.ok(ids.includes(rounds[0].roundId));
    }
  },
);
