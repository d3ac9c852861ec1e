// Issue 21 must-show 1, at the socket edge: two projects on one coordinator (the default one and 'triage', made with
// POST /api/projects, with another label set) each run a round at the same time with their own sites, and a site of
// one project cannot join, see or upload to the other. In process: the coordinator on the tiny fake task (no tfjs)
// in a temp data dir, and socket.io sites with a fixed delta (tests/socket-sites.ts), so every answer is the
// coordinator's own. The real-agent run of two projects is tests/projects-agents.e2e.test.ts.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCoordinator, DirStorage, DEFAULT_SETTINGS, DEFAULT_STOP, hashModelFiles, type Coordinator } from '@fedlora/coordinator';
import { tinyAdapter, tinyFakeTask, tinyProjectFactory, writeTinyModelDir } from '@fedlora/coordinator/testing';
import { createStrategy } from '@fedlora/shared/aggregation/index.ts';
import { generateSiteKeys, publicIdentity } from '@fedlora/shared/crypto/keys.ts';
import { signChallenge } from '@fedlora/shared/crypto/envelope.ts';
import { parseJoinToken } from '@fedlora/shared/protocol/join-token.ts';
import { ADMIN_TOKEN, poll } from './federation-harness';
import { adminApi } from './admin-client';
import { ask, authenticate, FakeSocketSite, openSocket, type SiteIdentity } from './socket-sites';

const QUICK = { minSites: 2, sampleWaitS: 0, deadlineS: 30, ackTimeoutS: 5, maxDeltaNorm: 10 };
const TRIAGE_LABELS = ['info', 'routine', 'urgent'];
let dir: string;
let coord: Coordinator;
let url: string;
let modelDir: string;
const api = () => adminApi(url);

async function start(): Promise<void> {
  const modelFiles = await hashModelFiles(modelDir);
  coord = await createCoordinator({
    adminToken: ADMIN_TOKEN,
    storage: new DirStorage(join(dir, 'data')),
    strategy: createStrategy('fedavg', {}),
    settings: { ...DEFAULT_SETTINGS, ...QUICK },
    stop: { ...DEFAULT_STOP, rounds: 1 },
    task: tinyFakeTask(modelFiles),
    projectFactory: tinyProjectFactory(modelFiles),
    autostart: false,
    retryDelayMs: 0,
  });
  url = await coord.listen(0);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fedlora-projects-'));
  modelDir = writeTinyModelDir(dir);
  await start();
});

after(async () => {
  await coord?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Enrolls `name` in `project` (null: the default project) through the admin API and that project's namespace. */
async function enroll(project: string | null, name: string): Promise<SiteIdentity & { joinToken: string }> {
  const prefix = project ? `/api/projects/${project}` : '/api';
  const made = await api().json<{ siteId: string; joinToken: string }>(`${prefix}/sites`, { method: 'POST', body: JSON.stringify({ name }) });
  const keys = generateSiteKeys();
  const s = await openSocket(project ? `${url}/projects/${project}` : url);
  try {
    const a = await ask(s, 'site:enroll', { token: made.joinToken, siteId: made.siteId, ...publicIdentity(keys) });
    assert.ok(a.ok, `site:enroll ${name} in ${project ?? 'default'}: ${a.code} ${a.message}`);
  } finally {
    s.close();
  }
  return { siteId: made.siteId, keys, joinToken: made.joinToken };
}

/** What auth:prove answers a site on `socketUrl` (the whole ack: the uniform failure must match byte for byte). */
async function proveOn(socketUrl: string, site: SiteIdentity): Promise<{ ok: boolean; code?: string; message?: string; data?: Record<string, unknown> }> {
  const s = await openSocket(socketUrl);
  try {
    const ch = await ask(s, 'auth:challenge', { siteId: site.siteId });
    assert.ok(ch.ok);
    const d = ch.data as { challenge: ArrayBuffer; coordinatorId: string };
    const signature = signChallenge(new Uint8Array(d.challenge), { siteId: site.siteId, coordinatorId: d.coordinatorId }, site.keys.signing.secretKey);
    return await ask(s, 'auth:prove', { siteId: site.siteId, signature });
  } finally {
    s.close();
  }
}

const sitesA: SiteIdentity[] = [];
const sitesB: SiteIdentity[] = [];

test('when a second project is made with POST /api/projects, then it has its own labels, namespace and files, and its join tokens name it', async () => {
  const made = await api().call('/api/projects', {
    method: 'POST',
    body: JSON.stringify({ id: 'triage', labels: TRIAGE_LABELS, settings: { ...QUICK, rounds: 1 } }),
  });
  assert.equal(made.status, 201, await made.clone().text());
  const row = (await made.json()) as { id: string; namespace: string; labels: string[]; currentVersionId: string };
  assert.deepEqual([row.id, row.namespace, row.labels, row.currentVersionId], ['triage', '/projects/triage', TRIAGE_LABELS, 'v0']);
  assert.equal((await api().call('/api/projects', { method: 'POST', body: JSON.stringify({ id: 'triage', labels: ['a', 'b'] }) })).status, 409);
  const listed = await api().json<{ id: string; labels: string[] }[]>('/api/projects');
  assert.deepEqual(listed.map((p) => [p.id, p.labels.length]), [['default', 2], ['triage', 3]]);
  // the same site name in both projects: two different sites, each known to its own project only
  for (const name of ['hospital-a', 'hospital-b']) sitesA.push(await enroll(null, name));
  for (const name of ['hospital-a', 'ward-2']) sitesB.push(await enroll('triage', name));
  assert.match((sitesB[0] as { joinToken: string } & SiteIdentity).joinToken, /@triage$/);
  assert.doesNotMatch((sitesA[0] as { joinToken: string } & SiteIdentity).joinToken, /@/);
  assert.ok(existsSync(join(dir, 'data', 'projects', 'triage')), 'the project keeps its files in projects/triage/');
  // each project's manifest names its own labels
  const proved = await proveOn(`${url}/projects/triage`, sitesB[1]);
  assert.ok(proved.ok, JSON.stringify(proved));
  assert.deepEqual((proved.data as { manifest: { labels: string[] } }).manifest.labels, TRIAGE_LABELS);
  const provedA = await proveOn(url, sitesA[1]);
  assert.deepEqual((provedA.data as { manifest: { labels: string[] } }).manifest.labels, ['ham', 'spam']);
});

test('when both projects start, then each runs its round with its own two sites at the same time, and neither project sees the other\'s round', async () => {
  // every site holds its upload until all four have their round:train: both rounds are in training at once
  let trained = 0;
  let release!: () => void;
  const allTraining = new Promise<void>((r) => (release = r));
  const beforeUpload = async () => {
    if (++trained === 4) release();
    await allTraining;
  };
  const delta = () => tinyAdapter(0.01);
  const a = await Promise.all(sitesA.map((s) => FakeSocketSite.connect(url, s, { delta, beforeUpload })));
  const b = await Promise.all(sitesB.map((s) => FakeSocketSite.connect(`${url}/projects/triage`, s, { delta, beforeUpload })));
  try {
    await api().json('/api/federation/start', { method: 'POST' });
    await api().json('/api/projects/triage/federation/start', { method: 'POST' });
    for (const prefix of ['/api', '/api/projects/triage'])
      await poll(async () => ((await api().json<{ currentId: string }>(`${prefix}/versions`)).currentId === 'v1' ? true : undefined), 60_000, `${prefix}: v1`);
    for (const [prefix, mine] of [['/api', a], ['/api/projects/triage', b]] as const) {
      const [round] = await api().json<{ outcome: string; participants: number; updates: number; failures: unknown[] }[]>(`${prefix}/rounds`);
      assert.deepEqual([round.outcome, round.participants, round.updates, round.failures.length], ['aggregated', 2, 2, 0], prefix);
      // one round:configure per site: the other project's round never reached it
      assert.deepEqual(mine.map((s) => s.configures), [1, 1], prefix);
      assert.ok(mine.every((s) => s.uploads.length === 1 && s.uploads[0].ok), `${prefix}: ${JSON.stringify(mine.map((s) => s.uploads))}`);
    }
    const sitesOf = async (prefix: string) => (await api().json<{ id: string; roundsContributed: number }[]>(`${prefix}/sites`)).map((s) => [s.id, s.roundsContributed]);
    assert.deepEqual(await sitesOf('/api'), [['hospital-a', 1], ['hospital-b', 1]]);
    assert.deepEqual(await sitesOf('/api/projects/triage'), [['hospital-a', 1], ['ward-2', 1]]);
  } finally {
    for (const s of [...a, ...b]) s.close();
  }
});

test('when a site of the default project tries the triage project, then it cannot join, authenticate, fetch or upload there, and every refusal is the answer an unknown site gets', async () => {
  const triage = `${url}/projects/triage`;
  // join: a join token of the default project enrolls nothing in triage, and stays unspent for its own project
  const spare = await api().json<{ siteId: string; joinToken: string }>('/api/sites', { method: 'POST', body: JSON.stringify({ name: 'spare' }) });
  const keys = generateSiteKeys();
  const s = await openSocket(triage);
  try {
    const refused = await ask(s, 'site:enroll', { token: spare.joinToken, siteId: spare.siteId, ...publicIdentity(keys) });
    const unknown = await ask(s, 'site:enroll', { token: `spare.${'x'.repeat(43)}`, siteId: 'spare', ...publicIdentity(keys) });
    // sites send the secret alone (the namespace names the project): triage's registry does not know it either
    const secretOnly = await ask(s, 'site:enroll', { token: parseJoinToken(spare.joinToken).secret, siteId: spare.siteId, ...publicIdentity(keys) });
    assert.deepEqual([refused.ok, refused.code, refused.message], [false, unknown.code, unknown.message]);
    assert.deepEqual([secretOnly.ok, secretOnly.code, secretOnly.message], [false, unknown.code, unknown.message]);
    assert.equal(refused.code, 'UNAUTHORIZED');
    // see and upload: before authenticating nothing is served
    for (const [event, payload] of [
      ['adapter:fetch', { versionId: 'latest' }],
      ['update:upload', { roundId: 'r', envelope: new Uint8Array(8) }],
      ['site:ready', { numExamples: 1, encodings: ['fp32'], backend: 'cpu' }],
    ] as const) {
      const r = await ask(s, event, payload);
      assert.deepEqual([r.ok, r.code], [false, 'UNAUTHORIZED'], `${event}: ${JSON.stringify(r)}`);
    }
  } finally {
    s.close();
  }
  const inDefault = await openSocket(url);
  try {
    const a = await ask(inDefault, 'site:enroll', { token: spare.joinToken, siteId: spare.siteId, ...publicIdentity(keys) });
    assert.ok(a.ok, `the token still enrolls in its own project: ${a.code}`);
  } finally {
    inDefault.close();
  }
  // authenticate: hospital-a of the default project against triage (where another hospital-a is enrolled with other
  // keys) and a site of the default project triage never heard of get the answer of an id nobody enrolled
  const nobody = await proveOn(triage, { siteId: 'nobody-at-all', keys: generateSiteKeys() });
  assert.deepEqual([nobody.ok, nobody.code], [false, 'UNAUTHORIZED']);
  for (const site of [sitesA[0], sitesA[1]]) {
    const r = await proveOn(triage, site);
    assert.deepEqual(r, nobody, `${site.siteId} of the default project in triage`);
  }
  // and the other way round; while each still authenticates in its own project
  assert.deepEqual(await proveOn(url, sitesB[1]), nobody);
  assert.ok((await proveOn(url, sitesA[0])).ok);
  assert.ok((await proveOn(triage, sitesB[0])).ok);
  // a socket authenticated in the default project uploads to the default project's round only: its namespace is its
  // session, and triage's handlers never saw it
  const own = await openSocket(url);
  const other = await openSocket(triage);
  try {
    await authenticate(own, sitesA[0]);
    const r = await ask(other, 'update:upload', { roundId: 'r', envelope: new Uint8Array(8) });
    assert.deepEqual([r.ok, r.code], [false, 'UNAUTHORIZED']);
  } finally {
    own.close();
    other.close();
  }
});

test('when the coordinator restarts on the same data dir, then the triage project is opened again with its sites and versions', async () => {
  await coord.close();
  await start();
  const listed = await api().json<{ id: string; labels: string[]; currentVersionId: string; sitesEnrolled: number }[]>('/api/projects');
  assert.deepEqual(
    listed.map((p) => [p.id, p.labels, p.currentVersionId, p.sitesEnrolled]),
    [['default', ['ham', 'spam'], 'v1', 3], ['triage', TRIAGE_LABELS, 'v1', 2]],
  );
  assert.ok((await proveOn(`${url}/projects/triage`, sitesB[0])).ok);
  // an unknown project is 404 on every project route
  const r = await api().call('/api/projects/oncology/versions');
  assert.equal(r.status, 404);
});
