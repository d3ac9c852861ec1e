// End-to-end federation on loopback with real processes (issue 8, "Must show" 1, 2, 4, 5): `npm start --json` learns
// on the shipped SpamAssassin data; a site SIGKILLed mid-training is dropped and the round versions the other two;
// a coordinator SIGKILLed after version 2 restarts with its versions intact and rounds continue from v2; the PEFT
// export re-imports bit for bit; the admin API needs its token and a revoked site is refused.
// Sizes are kept small (300 training messages, 120 held-out, 8 local steps, 48 tokens) for a 2-core machine.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importPeft } from '@fedlora/shared/lora/peft.ts';
import { decodeAdapter } from '@fedlora/shared/protocol/codec.ts';
import { writeSiteFiles } from '../scripts/make-site-data';
import {
  ROOT,
  SITE_BIN,
  Procs,
  launchFederation,
  poll,
  processesMentioning,
  within,
} from './federation-harness';
import { adminApi, adminFeed, type AdminFeed, type RoundRecord, type VersionRecord } from './admin-client';

const TRAIN = ['--max-steps', '8', '--max-length', '48', '--lr', '0.005'];
const COORD = [...TRAIN, '--heldout-limit', '120', '--min-sites', '2', '--sites-per-round', '1.0'];
const MIN = 60_000;

let dir: string;
let siteFiles: string[];
const procs = new Procs();
const feeds: AdminFeed[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fedlora-e2e-'));
  siteFiles = await writeSiteFiles({
    out: join(dir, 'data'),
    sites: 3,
    alpha: 1,
    seed: 42,
    limit: 300,
    log: () => {},
  });
});

after(async () => {
  for (const f of feeds) f.close();
  await procs.stopAll();
  rmSync(dir, { recursive: true, force: true });
});

/** Stops every process a scenario started and checks that none is left. */
async function endScenario(scenarioDir: string): Promise<void> {
  for (const f of feeds.splice(0)) f.close();
  await procs.stopAll();
  assert.deepEqual(procs.running(), []);
  assert.deepEqual(processesMentioning(scenarioDir), []);
}

test(
  'when `npm start -- --rounds 3 --json` runs, then the last version beats version 0 and the majority class by a clear margin and every process is gone',
  { timeout: 8 * MIN },
  async () => {
    const runDir = join(dir, 'start');
    const t0 = Date.now();
    const start = procs.spawn('npm start', [
      '--import',
      'tsx',
      join(ROOT, 'scripts/start.ts'),
      '--rounds',
      '3',
      '--json',
      '--site-limit',
      '300',
      '--heldout-limit',
      '120',
      ...TRAIN,
      '--dir',
      runDir,
    ]);
    const { code } = await within(start.exited, 7 * MIN, 'npm start to finish 3 rounds');
    assert.equal(code, 0, start.output().slice(-3000));
    const lastLine = start.output().trim().split('\n').at(-1) as string;
    const summary = JSON.parse(lastLine) as {
      versions: { id: string; round: number; accuracy: number; macroF1: number }[];
      bytesUploadedPerSitePerRound: number;
      roundSeconds: number[];
    };
    // the held-out subset's class balance, from version 0's per-class support (on the coordinator's disk)
    const index = JSON.parse(readFileSync(join(runDir, 'coordinator', 'index.json'), 'utf8')) as {
      versions: VersionRecord[];
    };
    const support = (index.versions[0].metrics?.perClass ?? []).map((c) => c.support);
    const majority = Math.max(...support) / support.reduce((a, b) => a + b, 0);
    const v0 = summary.versions[0];
    const last = summary.versions.at(-1) as (typeof summary.versions)[number];
    const modelBytes = statSync(join(ROOT, 'models/fedlora-bert-mini/model.safetensors')).size;
    console.log(
      `npm start: ${((Date.now() - t0) / 1000).toFixed(0)} s; accuracy ${summary.versions.map((v) => `${v.id} ${v.accuracy.toFixed(3)}`).join(', ')}; ` +
        `held-out majority rate ${majority.toFixed(3)}; ${summary.bytesUploadedPerSitePerRound} B uploaded per site per round ` +
        `(model ${modelBytes} B); round seconds ${summary.roundSeconds.join(', ')}`,
    );

    assert.deepEqual(
      summary.versions.map((v) => [v.id, v.round]),
      [
        ['v0', 0],
        ['v1', 1],
        ['v2', 2],
        ['v3', 3],
      ],
    );
    // measured (seed 42): v0 0.483 → v3 0.908, majority 0.692; the margins leave room for run-to-run noise
    assert.ok(last.accuracy >= v0.accuracy + 0.15, `last ${last.accuracy} vs v0 ${v0.accuracy}`);
    assert.ok(last.accuracy >= majority + 0.05, `last ${last.accuracy} vs majority rate ${majority}`);
    assert.ok(last.macroF1 >= v0.macroF1 + 0.15, `macro-F1 ${last.macroF1} vs v0 ${v0.macroF1}`);
    assert.ok(summary.bytesUploadedPerSitePerRound > 0);
    // the adapter delta (r = 8 on query/value + head) is well under 1 % of the 29.8 MB base model
    assert.ok(
      summary.bytesUploadedPerSitePerRound < modelBytes / 100,
      `${summary.bytesUploadedPerSitePerRound} B per upload`,
    );
    assert.deepEqual(processesMentioning(runDir), [], 'npm start left processes running');
  },
);

test(
  'when one of three sites is SIGKILLed while training, then round 1 still makes a version from the other two and records the drop; FedProx mu changed over the API reaches round 2; a revoked site is refused; the admin API needs its token',
  { timeout: 8 * MIN },
  async () => {
    const scenarioDir = join(dir, 'dropout');
    const fed = await launchFederation(procs, scenarioDir, siteFiles, [
      ...COORD,
      ...['--rounds', '1', '--strategy', 'fedprox', '--mu', '0.01'],
    ]);
    const feed = await adminFeed(fed.url);
    feeds.push(feed);
    const api = adminApi(fed.url);

    await feed.next('round:stage', (d) => d.round === 1 && d.stage === 'train', 4 * MIN);
    const victim = fed.sites[2];
    victim.child.kill('SIGKILL');
    const v = await feed.next('version:new', (d) => d.round === 1, 4 * MIN);

    assert.equal(v.id, 'v1');
    assert.equal(v.sites, 2);
    const [r1] = await api.json<RoundRecord[]>('/api/rounds');
    assert.equal(r1.outcome, 'aggregated');
    assert.equal(r1.sampled, 3);
    assert.equal(r1.updates, 2);
    assert.deepEqual(r1.failures, [{ siteId: 'site-c', code: 'DISCONNECTED' }]);
    console.log(`dropout round: ${r1.durationMs} ms, ${r1.uploadedBytes} B uploaded by 2 sites`);

    // issue 16: FedProx's mu changed between rounds over the API is what round 2's sites train with
    assert.deepEqual([r1.strategy, r1.config?.proximalMu], ['fedprox', 0.01]);
    const put = await api.json<{ strategyOptions: { fedprox: { proximalMu: number } } }>('/api/settings', {
      method: 'PUT',
      body: JSON.stringify({ strategyOptions: { fedprox: { proximalMu: 0.5 } }, rounds: 2 }),
    });
    assert.equal(put.strategyOptions.fedprox.proximalMu, 0.5);
    await api.json('/api/federation/start', { method: 'POST' });
    await feed.next('version:new', (d) => d.round === 2, 4 * MIN);
    const r2 = (await api.json<RoundRecord[]>('/api/rounds')).find((r) => r.round === 2);
    assert.deepEqual([r2?.strategy, r2?.config?.proximalMu, r2?.updates], ['fedprox', 0.5, 2]);

    // the admin API without (or with a wrong) token
    const none = await adminApi(fed.url, null).call('/api/status');
    assert.equal(none.status, 401);
    assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'UNAUTHORIZED');
    assert.equal((await adminApi(fed.url, 'not-the-admin-token-at-all').call('/api/versions')).status, 401);
    await assert.rejects(adminFeed(fed.url, 'not-the-admin-token-at-all'), /UNAUTHORIZED/);

    // revoking site-b closes its connection; its agent reconnects, is refused, and exits with the reason
    const revoked = await api.json<{ id: string; revokedAt: string | null }>('/api/sites/site-b', {
      method: 'DELETE',
    });
    assert.ok(revoked.revokedAt);
    const exit = await within(fed.sites[1].exited, 2 * MIN, 'the revoked site agent to exit');
    assert.notEqual(exit.code, 0);
    assert.match(fed.sites[1].output(), /UNAUTHORIZED: authentication failed: unknown or revoked site/);
    // and a fresh `run` from its state dir is refused the same way
    const again = procs.spawn('site-b again', [
      SITE_BIN,
      'run',
      '--state-dir',
      join(scenarioDir, 'site-b'),
      '--quiet',
    ]);
    assert.notEqual((await within(again.exited, 2 * MIN, 'the second run of the revoked site')).code, 0);
    assert.match(again.output(), /UNAUTHORIZED: authentication failed: unknown or revoked site/);
    const sites = await api.json<{ id: string; online: boolean; revokedAt: string | null }[]>('/api/sites');
    assert.deepEqual(
      sites.map((s) => [s.id, s.online, s.revokedAt !== null]),
      [
        ['site-a', true, false],
        ['site-b', false, true],
        ['site-c', false, false],
      ],
    );
    await endScenario(scenarioDir);
  },
);

test(
  'when the coordinator is SIGKILLed right after version 2 and restarted on its data dir, then v0..v2 are intact, sites come back by themselves and v3 grows from v2; its PEFT export re-imports bit for bit',
  { timeout: 9 * MIN },
  async () => {
    const scenarioDir = join(dir, 'restart');
    const fed = await launchFederation(procs, scenarioDir, siteFiles, [...COORD, '--rounds', '3']);
    const feed = await adminFeed(fed.url);
    feeds.push(feed);
    let api = adminApi(fed.url);

    await feed.next('version:new', (d) => d.round === 1, 4 * MIN);
    const before = (await api.json<{ versions: VersionRecord[] }>('/api/versions')).versions;
    const v2 = (await feed.next('version:new', (d) => d.round === 2, 4 * MIN)) as unknown as VersionRecord;
    fed.coordinator.child.kill('SIGKILL');
    await fed.coordinator.exited;
    feed.close();
    const expected = [...before.filter((v) => v.round < 2), v2].map((v) => [
      v.id,
      v.parent,
      v.round,
      v.sha256,
      v.metrics?.accuracy,
    ]);
    assert.deepEqual(
      expected.map((e) => e[0]),
      ['v0', 'v1', 'v2'],
    );

    const t0 = Date.now();
    await fed.startCoordinator();
    api = adminApi(fed.url);
    const { versions } = await api.json<{ currentId: string; versions: VersionRecord[] }>('/api/versions');
    assert.deepEqual(
      versions.map((v) => [v.id, v.parent, v.round, v.sha256, v.metrics?.accuracy]),
      expected,
    );
    for (const v of versions) {
      assert.ok(v.metrics && v.metrics.perClass.length === 2, `${v.id} lost its metrics`);
      const native = await api.bytes(`/api/versions/${v.id}/native`);
      assert.equal(createHash('sha256').update(native).digest('hex'), v.sha256, `${v.id} bytes changed`);
    }

    const v3 = await poll(
      async () =>
        (await api.json<{ versions: VersionRecord[] }>('/api/versions')).versions.find((v) => v.id === 'v3'),
      5 * MIN,
      'version v3 after the restart',
      1000,
    );
    console.log(
      `restart: v3 ${((Date.now() - t0) / 1000).toFixed(0)} s after the restart, from ${v3.sites} sites, accuracy ${v3.metrics?.accuracy}`,
    );
    assert.equal(v3.parent, 'v2');
    assert.equal(v3.round, 3);
    assert.ok(v3.sites >= 2 && v3.metrics);
    const rounds = await api.json<RoundRecord[]>('/api/rounds');
    assert.deepEqual(
      rounds.map((r) => [r.round, r.baseVersionId, r.versionId]),
      [
        [1, 'v0', 'v1'],
        [2, 'v1', 'v2'],
        [3, 'v2', 'v3'],
      ],
    );

    // PEFT export of v3 vs its native bytes
    const weights = await api.bytes('/api/versions/v3/peft?file=adapter_model.safetensors');
    const adapterConfig = await api.json<Record<string, unknown>>(
      '/api/versions/v3/peft?file=adapter_config.json',
    );
    const peft = importPeft({ adapterConfig, weights }, 'v3');
    const native = decodeAdapter(await api.bytes('/api/versions/v3/native'));
    assert.equal(native.versionId, 'v3');
    assert.deepEqual(Object.keys(peft.state).sort(), Object.keys(native.adapter).sort());
    for (const [k, t] of Object.entries(native.adapter)) {
      assert.deepEqual(peft.state[k].shape, t.shape, k);
      const a = Buffer.from(
        peft.state[k].data.buffer,
        peft.state[k].data.byteOffset,
        peft.state[k].data.byteLength,
      );
      const b = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      assert.ok(a.equals(b), `${k} differs between the PEFT export and the native adapter`);
    }
    assert.deepEqual([peft.config.r, peft.config.alpha, peft.labels], [8, 16, ['ham', 'spam']]);
    await endScenario(scenarioDir);
  },
);
