// The console's server side over a real port: login refuses a wrong token and sets an HttpOnly SameSite=Strict
// session cookie for the right one; the cookie opens /api and the /admin namespace until logout; `/` serves the
// built console, or a clear message when there is no build; GET /api/sites carries the activity fields. And what the
// console draws from GET /api/rounds, /api/versions and /api/privacy (coordinator/web/src/views.ts, privacy.ts),
// rendered into a stand-in document: each round's aggregation mode, SecAgg+ counts, Multi-Krum's kept sites and ε.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io as connect } from 'socket.io-client';
import { memoryLogger } from '../log';
import { type Coordinator } from '../app';
import { SESSION_COOKIE } from './session';
import { listeningTestCoordinator, MemoryAdapterStore } from '../testing';
import { DEFAULT_SETTINGS, DEFAULT_STOP } from '../rounds/settings';
import type { RoundRecord, VersionList } from './admin-schemas';
import type { PrivacyReport } from '../rounds/privacy-budget';
import { renderCurrent, renderRounds, renderVersions, retrainingText } from '../../web/src/views';
import { chartSeries } from '../../web/src/charts';
import { renderPrivacy } from '../../web/src/privacy';

const ADMIN = 'admin-token-for-tests-0123456789';
let dir: string;
let built: Coordinator;
let bare: Coordinator;
const log = memoryLogger();

async function coordinator(consoleDir: string): Promise<Coordinator> {
  return listeningTestCoordinator({ adminToken: ADMIN, consoleDir, log });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fedlora-console-'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>console</title>');
  built = await coordinator(dir);
  bare = await coordinator(join(dir, 'missing'));
});

after(async () => {
  await built.close();
  await bare.close();
  rmSync(dir, { recursive: true, force: true });
});

const login = (url: string, token: unknown) =>
  fetch(url + '/api/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token }),
  });

function adminSocket(
  url: string,
  cookie: string,
  transport: 'websocket' | 'polling' = 'websocket',
): Promise<void> {
  const s = connect(url + '/admin', {
    transports: [transport],
    reconnection: false,
    forceNew: true,
    extraHeaders: { cookie },
  });
  return new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('connect_error', reject);
  }).finally(() => s.disconnect());
}

test('when the console logs in with a wrong token, then it is refused with 401 and no cookie', async () => {
  const url = built.url as string;
  for (const token of ['wrong-token-wrong-token', '', undefined, ADMIN + ' ']) {
    const r = await login(url, token);
    assert.equal(r.status, 401, String(token));
    assert.equal(r.headers.get('set-cookie'), null);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'UNAUTHORIZED');
  }
});

test('when the console logs in with the admin token, then the HttpOnly cookie opens /api and /admin until logout', async () => {
  const url = built.url as string;
  const r = await login(url, ADMIN);
  assert.equal(r.status, 200);
  const setCookie = r.headers.get('set-cookie') ?? '';
  assert.match(
    setCookie,
    new RegExp(`^${SESSION_COOKIE}=[A-Za-z0-9_-]{43}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200$`),
  );
  assert.ok(!setCookie.includes(ADMIN), 'the cookie holds a session id, never the token');
  const cookie = setCookie.split(';')[0];

  assert.equal((await fetch(url + '/api/status')).status, 401);
  assert.equal((await fetch(url + '/api/status', { headers: { cookie } })).status, 200);
  assert.equal((await fetch(url + '/api/status', { headers: { cookie: `${cookie}x` } })).status, 401);
  await adminSocket(url, cookie);
  // browsers start with long-polling: socket.io alone must answer those requests, express must stay out
  await adminSocket(url, cookie, 'polling');
  assert.deepEqual(
    log.lines.filter((l) => l.includes('api.error')),
    [],
  );
  await assert.rejects(adminSocket(url, `${SESSION_COOKIE}=forged`), /UNAUTHORIZED/);

  const proxied = await fetch(url + '/api/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-proto': 'https' },
    body: JSON.stringify({ token: ADMIN }),
  });
  assert.match(
    proxied.headers.get('set-cookie') ?? '',
    /; Secure$/,
    'behind a TLS proxy the cookie is Secure',
  );

  const out = await fetch(url + '/api/logout', { method: 'POST', headers: { cookie } });
  assert.equal(out.status, 200);
  assert.match(out.headers.get('set-cookie') ?? '', /Max-Age=0/);
  assert.equal((await fetch(url + '/api/status', { headers: { cookie } })).status, 401);
  await assert.rejects(adminSocket(url, cookie), /UNAUTHORIZED/);
});

test('when / is requested, then the built console is served with a CSP, or without a build a 503 says how to build', async () => {
  const ok = await fetch((built.url as string) + '/');
  assert.equal(ok.status, 200);
  assert.equal(await ok.text(), '<!doctype html><title>console</title>');
  assert.match(ok.headers.get('content-security-policy') ?? '', /default-src 'self'/);
  assert.equal(ok.headers.get('x-frame-options'), 'DENY');

  const missing = await fetch((bare.url as string) + '/');
  assert.equal(missing.status, 503);
  assert.match(await missing.text(), /console is not built[\s\S]*npm run build/);
  // the API is unaffected by a missing build
  assert.equal((await fetch((bare.url as string) + '/healthz')).status, 200);
  assert.equal((await fetch((bare.url as string) + '/nothing-here')).status, 404);
});

test('when sites are listed, then each carries lastSeen, roundsContributed and lastError', async () => {
  const url = built.url as string;
  const auth = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
  const created = await fetch(url + '/api/sites', {
    method: 'POST',
    headers: auth,
    body: '{"name":"Lab 1"}',
  });
  assert.equal(created.status, 201);
  const sites = (await (await fetch(url + '/api/sites', { headers: auth })).json()) as Record<
    string,
    unknown
  >[];
  const lab = sites.find((s) => s.id === 'lab-1');
  assert.ok(lab);
  assert.equal(lab.online, false);
  assert.equal(lab.lastSeen, null);
  assert.equal(lab.roundsContributed, 0);
  assert.equal(lab.lastError, null);
});

// ---- the console's rendering, in a stand-in document ----

/** The little of the DOM that the console's h() and render functions use: elements, attributes, text. */
class FakeElement {
  readonly attrs = new Map<string, string>();
  readonly dataset: Record<string, string> = {};
  children: (FakeElement | string)[] = [];
  constructor(readonly tag: string) {}
  setAttribute(k: string, v: string): void {
    this.attrs.set(k, v);
  }
  addEventListener(): void {}
  append(...nodes: (FakeElement | string)[]): void {
    this.children.push(...nodes);
  }
  replaceChildren(...nodes: (FakeElement | string)[]): void {
    this.children = [...nodes];
  }
  get textContent(): string {
    return this.children.map((c) => (typeof c === 'string' ? c : c.textContent)).join('');
  }
  /** every descendant element for which `match` holds, in document order */
  findAll(match: (e: FakeElement) => boolean): FakeElement[] {
    return this.children.flatMap((c) =>
      typeof c === 'string' ? [] : [...(match(c) ? [c] : []), ...c.findAll(match)],
    );
  }
  find(match: (e: FakeElement) => boolean): FakeElement {
    const [e] = this.findAll(match);
    assert.ok(e, 'no such element');
    return e;
  }
}

/** Runs `render` against a stand-in document and returns the root it drew into. */
function draw(render: (root: HTMLElement) => void): FakeElement {
  const g = globalThis as { document?: unknown };
  const saved = g.document;
  g.document = { createElement: (tag: string) => new FakeElement(tag) };
  try {
    const root = new FakeElement('root');
    render(root as unknown as HTMLElement);
    return root;
  } finally {
    g.document = saved;
  }
}

const col = (row: FakeElement, name: string) => row.find((e) => e.attrs.get('data-col') === name);
const row = (root: FakeElement, attr: string, value: string) => root.find((e) => e.attrs.get(attr) === value);

function roundRecord(round: number, extra: Partial<RoundRecord>): RoundRecord {
  return {
    round,
    roundId: `r${round}`,
    startedAt: '2026-12-05T08:00:00.000Z',
    durationMs: 1000,
    outcome: 'aggregated',
    reason: null,
    stage: 'version',
    strategy: 'fedavg',
    baseVersionId: `v${round - 1}`,
    versionId: `v${round}`,
    sampled: 6,
    participants: 6,
    updates: 5,
    failures: [],
    rejections: [],
    uploadedBytes: 0,
    bytesPerUpload: [],
    ...extra,
  };
}

// round 1: SecAgg+ with DP, one site dropped after share keys; round 2: plaintext Multi-Krum; round 3: before issue 17
const SECURE_DP = roundRecord(1, {
  mode: 'secure',
  secureAggregation: {
    contributors: 5,
    dropped: 1,
    degree: 5,
    threshold: 4,
    clip: 1,
    levels: 4194304,
    maxWeight: 1000,
  },
  privacy: {
    sampleRate: 0.6,
    noiseMultiplier: 1.1,
    clipNorm: 0.5,
    expectedParticipants: 6,
    noiseStd: (1.1 * 0.5) / 6,
    delta: 1e-5,
    roundEpsilon: 0.4123,
    epsilon: 0.4123,
  },
});
const KRUM = roundRecord(2, {
  mode: 'plaintext',
  strategy: 'multi-krum',
  selected: ['lab-a', 'lab-b', 'lab-c'],
});
const OLD = roundRecord(3, {});

test('when the history has a secure DP round and a Multi-Krum round, then each row shows its mode, counts or kept sites, and ε', async () => {
  // Arrange: a coordinator whose store holds the three rounds, answering GET /api/rounds and /api/versions
  const store = new MemoryAdapterStore();
  for (const r of [SECURE_DP, KRUM, OLD]) await store.addRound(r);
  const c = await listeningTestCoordinator({ adminToken: ADMIN, adapterStore: store, log });
  try {
    const get = async <T>(path: string) =>
      (await (
        await fetch(`${c.url}/api${path}`, { headers: { authorization: `Bearer ${ADMIN}` } })
      ).json()) as T;
    const rounds = await get<RoundRecord[]>('/rounds');
    const { versions, currentId } = await get<VersionList>('/versions');

    // Act
    const table = draw((tbody) => renderRounds(tbody, rounds));
    const versionTable = draw((tbody) =>
      renderVersions(
        tbody,
        [...versions, { ...versions[0], id: 'v1', round: 1, parent: 'v0', mode: 'secure' }],
        currentId,
        () => {},
      ),
    );

    // Assert: the secure round names counts only, and what DP spent in it
    const secure = row(table, 'data-round', '1');
    const mode = col(secure, 'aggregation');
    assert.equal(mode.find((e) => e.tag === 'span').textContent, 'secure');
    assert.equal(mode.find((e) => e.tag === 'div').textContent, '5 sites in the sum · 1 dropped');
    assert.match(mode.attrs.get('title') ?? '', /only the sum of 5 masked updates.*degree 5, threshold 4/);
    const eps = col(secure, 'epsilon');
    assert.equal(eps.textContent, 'ε 0.41total 0.41');
    assert.match(
      eps.attrs.get('title') ?? '',
      /^δ = 1e-5; noise multiplier z = 1.1, clip S = 0.5, m = 6, q = 0.6/,
    );
    // the Multi-Krum round names the sites it kept, and spent no privacy
    const krum = row(table, 'data-round', '2');
    assert.equal(
      col(krum, 'aggregation').textContent,
      'plaintextMulti-Krum kept 3 of 5: lab-a, lab-b, lab-c',
    );
    assert.equal(col(krum, 'epsilon').textContent, '–');
    // a round recorded before modes existed was plaintext
    assert.equal(col(row(table, 'data-round', '3'), 'aggregation').textContent, 'plaintext');
    assert.equal(col(row(versionTable, 'data-version', 'v1'), 'mode').textContent, 'secure');
    assert.equal(col(row(versionTable, 'data-version', 'v0'), 'mode').textContent, 'plaintext');
  } finally {
    await c.close();
  }
});

test('when DP runs toward a target ε, then the Privacy panel from GET /api/privacy shows ε spent of the target, δ, z and S', async () => {
  // Arrange: DP with a target (z found for 10 rounds), and one DP round in the history; SecAgg+ on
  const store = new MemoryAdapterStore();
  await store.addRound(SECURE_DP);
  const settings = { ...DEFAULT_SETTINGS, dpClipNorm: 0.5, dpTargetEpsilon: 8, secureAggregation: true };
  const c = await listeningTestCoordinator({
    adminToken: ADMIN,
    adapterStore: store,
    settings,
    stop: { ...DEFAULT_STOP, rounds: 10 },
    log,
  });
  try {
    const r = await fetch(`${c.url}/api/privacy`, { headers: { authorization: `Bearer ${ADMIN}` } });
    const report = (await r.json()) as PrivacyReport;

    // Act
    const panel = draw((el) => renderPrivacy(el, report, settings.secureAggregation));
    const off = draw((el) =>
      renderPrivacy(
        el,
        { ...report, enabled: false, clipNorm: null, targetEpsilon: null, rounds: [] },
        false,
      ),
    );

    // Assert: the accountant's ε (rebuilt from the round history) of the target, and the mechanism
    const lines = Object.fromEntries(
      panel
        .findAll((e) => e.tag === 'dt')
        .map((dt, i) => [dt.textContent, panel.findAll((e) => e.tag === 'dd')[i].textContent]),
    );
    assert.ok(report.epsilon > 0, 'one DP round spent some ε');
    assert.equal(lines['ε spent'], `${report.epsilon.toFixed(2)} of the target 8`);
    assert.equal(lines['δ'], '1e-5');
    assert.equal(lines['Noise multiplier z'], '1.100 (found from the target)');
    assert.equal(lines['Clip norm S'], '0.5');
    assert.match(lines['DP rounds'], /^1 \(last: round 1, ε \d+\.\d\d\); tightest at RDP order \d/);
    assert.match(lines.Aggregation, /^secure \(SecAgg\+\)/);
    assert.match(off.textContent, /Differential privacyoff: published versions carry no \(ε, δ\) guarantee/);
    assert.match(off.textContent, /plaintext: the coordinator sees each site's update/);
  } finally {
    await c.close();
  }
});

test('when a secure round is in its share-keys stage, then the live panel lists the SecAgg+ stages up to it', () => {
  const panel = draw((el) =>
    renderCurrent(el, null, { round: 4, roundId: 'r4', stage: 'share-keys', uploads: [] }),
  );
  const stages = panel.findAll((e) => e.tag === 'li');
  assert.deepEqual(
    stages.map((li) => `${li.textContent}${li.attrs.get('class') ? `:${li.attrs.get('class')}` : ''}`),
    [
      'sampling sites:done',
      'configuring:done',
      'exchanging keys:done',
      'sharing mask secrets:now',
      'training',
      'collecting uploads',
      'unmasking the sum',
      'aggregating',
      'evaluating',
      'versioned',
    ],
  );
});

test('when versions are candidates, rejected or current, then the versions view shows each status, the last decision, and approve/reject only for a candidate', async () => {
  const store = new MemoryAdapterStore();
  const c = await listeningTestCoordinator({ adminToken: ADMIN, adapterStore: store, log, settings: { ...DEFAULT_SETTINGS, promotion: 'manual' } });
  try {
    const v0 = (await store.list())[0];
    for (const i of [1, 2]) await store.addVersion({ ...v0, parent: 'v0', round: i }, await store.loadState('v0'), null, { candidate: true });
    await c.federation.reject('v2', 'admin (token)', 'worse on site B');
    const { versions, currentId } = (await (
      await fetch(`${c.url}/api/versions`, { headers: { authorization: `Bearer ${ADMIN}` } })
    ).json()) as VersionList;

    const table = draw((tbody) => renderVersions(tbody, versions, currentId, () => {}, () => {}));

    const status = (id: string) => col(row(table, 'data-version', id), 'status');
    const actions = (id: string) => row(table, 'data-version', id).findAll((e) => e.tag === 'button').map((b) => b.attrs.get('data-action'));
    assert.equal(status('v0').find((e) => e.tag === 'span').textContent, 'current');
    assert.equal(status('v1').textContent, 'candidate');
    assert.deepEqual(actions('v1'), ['approve', 'reject']);
    assert.equal(status('v2').find((e) => e.tag === 'span').textContent, 'rejected');
    assert.equal(status('v2').find((e) => e.tag === 'div').textContent, 'reject by admin (token): worse on site B');
    assert.equal(status('v0').find((e) => e.tag === 'div').textContent, 'promote by system', "the policy's and the system's reasons are in the title only");
    assert.match(status('v2').attrs.get('title') ?? '', /reject by admin \(token\): worse on site B$/);
    assert.deepEqual(actions('v2'), ['promote'], 'a rejected version comes back only by an explicit promote');
    assert.deepEqual(actions('v0'), []);
  } finally {
    await c.close();
  }
});

test('when a version has federated metrics, then the versions view shows the worst site and a per-site table with it marked', async () => {
  // Arrange: a version evaluated by three sites (no central set: the federated figures are its metrics)
  const store = new MemoryAdapterStore();
  const c = await listeningTestCoordinator({ adminToken: ADMIN, adapterStore: store, log });
  try {
    const v0 = (await store.list())[0];
    const sites = [
      { siteId: 'lab-a', examples: 20, accuracy: 0.9, macroF1: 0.88, loss: 0.3 },
      { siteId: 'lab-b', examples: 10, accuracy: 0.6, macroF1: 0.55, loss: 0.9 },
      { siteId: 'lab-c', examples: 10, accuracy: 1, macroF1: 1, loss: 0.1 },
    ];
    const federated = { accuracy: 0.85, macroF1: 0.8, loss: 0.4, examples: 40, perClass: [], worstSiteAccuracy: 0.6, worstSite: 'lab-b', sites, missing: [{ siteId: 'lab-d', code: 'NO_HOLDOUT' }] };
    await store.addVersion({ ...v0, parent: 'v0', round: 1, metrics: { ...federated, perClass: [], source: 'federated', federated } }, await store.loadState('v0'), null);
    const { versions, currentId } = (await (
      await fetch(`${c.url}/api/versions`, { headers: { authorization: `Bearer ${ADMIN}` } })
    ).json()) as VersionList;

    // Act
    const table = draw((tbody) => renderVersions(tbody, versions, currentId, () => {}));

    // Assert
    const cell = col(row(table, 'data-version', 'v1'), 'federated');
    assert.equal(cell.find((e) => e.attrs.has('data-worst')).textContent, 'worst: lab-b 60.0 %');
    const siteRows = cell.findAll((e) => e.attrs.has('data-site'));
    assert.deepEqual(siteRows.map((r) => r.attrs.get('data-site')), ['lab-a', 'lab-b', 'lab-c']);
    assert.deepEqual(siteRows.filter((r) => r.attrs.get('class') === 'worst').map((r) => r.attrs.get('data-site')), ['lab-b']);
    assert.equal(siteRows[1].textContent, 'lab-b1060.0 %55.0 %0.9000');
    assert.equal(cell.attrs.get('title'), 'left out: lab-d (NO_HOLDOUT)');
    assert.equal(col(row(table, 'data-version', 'v0'), 'federated').textContent, '–', 'a version without federated evaluation');
  } finally {
    await c.close();
  }
});

test('when rounds and versions record why they started and their data volume, then the console shows the trigger, the new examples, the schedule and a wall-clock series', async () => {
  // Arrange
  const rounds = [
    roundRecord(1, { trigger: { kind: 'startup' }, examples: 40, newExamples: 40 }),
    roundRecord(2, { trigger: { kind: 'schedule', detail: 'every 6h' }, examples: 240, newExamples: 200 }),
  ];
  const base = { parent: null, strategy: 'fedavg', sites: 1, metrics: null, trainMetrics: {}, sha256: 'x', bytes: 1, uploadedBytes: 0 };
  const versions = [
    { ...base, id: 'v0', round: 0, examples: 0, createdAt: '2026-12-05T08:00:00.000Z' },
    { ...base, id: 'v1', round: 1, examples: 40, newExamples: 40, trigger: { kind: 'startup' as const }, createdAt: '2026-12-05T08:01:00.000Z' },
    { ...base, id: 'v2', round: 2, examples: 240, newExamples: 200, trigger: { kind: 'schedule' as const, detail: 'every 6h' }, createdAt: '2026-12-05T14:01:00.000Z' },
  ];

  // Act
  const table = draw((tbody) => renderRounds(tbody, rounds));
  const versionTable = draw((tbody) => renderVersions(tbody, versions, 'v2', () => {}));
  const { volumeSeries } = await import('../../web/src/charts');
  const series = volumeSeries(versions);

  // Assert: each round and version names its trigger, with the schedule in the title
  const badge = row(table, 'data-round', '2').find((e) => e.attrs.has('data-trigger'));
  assert.equal(badge.attrs.get('data-trigger'), 'schedule');
  assert.equal(badge.attrs.get('title'), 'started by the schedule: every 6h');
  assert.equal(row(table, 'data-round', '1').find((e) => e.attrs.has('data-trigger')).textContent, 'startup');
  const v2 = row(versionTable, 'data-version', 'v2');
  assert.equal(v2.find((e) => e.attrs.has('data-trigger')).textContent, 'schedule');
  assert.match(v2.textContent, /240 \(\+200 new\)/);
  // the volume chart: versions after v0 on a time axis, examples and the new ones
  assert.deepEqual(series.datasets[0].data, [
    { x: Date.parse('2026-12-05T08:01:00.000Z'), y: 40, version: 'v1' },
    { x: Date.parse('2026-12-05T14:01:00.000Z'), y: 240, version: 'v2' },
  ]);
  assert.deepEqual(series.datasets[1].data.map((p) => p.y), [40, 200]);
  // the header's re-training line
  const next = '2026-12-05T20:01:00.000Z';
  assert.match(
    retrainingText({ retraining: { schedule: 'every 6h', nextScheduledAt: next, dataTrigger: { minSites: 2, minNew: 200 }, sitesWithNewData: 1 } }),
    new RegExp(`schedule "every 6h", next round ${new Date(next).toLocaleString().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} · data trigger: 2 site\\(s\\) with ≥ 200 new examples \\(1 now\\)`),
  );
  assert.equal(retrainingText({ retraining: { schedule: null, nextScheduledAt: null, dataTrigger: null, sitesWithNewData: null } }), 'Re-training: no schedule, no data trigger');
});

test('when the volume chart has one version or none, then its time axis spans an hour either side instead of years', async () => {
  // Arrange
  const { timeAxisRange } = await import('../../web/src/charts');
  const t = Date.parse('2026-12-05T08:01:00.000Z');
  const now = Date.parse('2026-12-06T03:00:00.000Z');
  const hour = 3_600_000;
  const series = (...xs: number[]) => ({ datasets: [{ label: 'examples trained on', data: xs.map((x, i) => ({ x, y: 40, version: `v${i + 1}` })) }] });

  // Act / Assert: one point (in one dataset or the same instant in both) is centred; none is centred on now
  assert.deepEqual(timeAxisRange(series(t), now), { min: t - hour, max: t + hour });
  assert.deepEqual(timeAxisRange({ datasets: [...series(t).datasets, ...series(t).datasets] }, now), { min: t - hour, max: t + hour });
  assert.deepEqual(timeAxisRange(series(), now), { min: now - hour, max: now + hour });
  // two instants: chart.js fits them (no bounds set)
  assert.deepEqual(timeAxisRange(series(t, t + 6 * hour), now), { min: undefined, max: undefined });
});

test('when versions are masked-LM versions, then the versions view marks them MLM, shows their loss with no macro-F1, and offers the merge only on them', () => {
  const base = { parent: null, strategy: 'fedavg', sites: 3, examples: 60, trainMetrics: {}, createdAt: new Date(0).toISOString(), sha256: 'a'.repeat(64), bytes: 1, uploadedBytes: 0, status: 'promoted' as const };
  const versions = [
    { ...base, id: 'v0', round: 0, task: 'mlm' as const, metrics: { task: 'mlm' as const, loss: 3.3799, accuracy: 0.394, maskedTokens: 213, examples: 50, perClass: [] } },
    { ...base, id: 'v1', round: 1, task: 'mlm' as const, metrics: { task: 'mlm' as const, loss: 3.1, accuracy: 0.41, maskedTokens: 213, examples: 50, perClass: [] } },
    { ...base, id: 'v2', round: 2, metrics: { loss: 0.5, accuracy: 0.7, macroF1: 0.41, examples: 40, perClass: [] } },
  ];
  const table = draw((tbody) => renderVersions(tbody, versions, 'v1', () => {}, () => {}, () => {}));
  const r = (id: string) => row(table, 'data-version', id);
  const cell = (id: string, metric: string) => r(id).find((e) => e.attrs.get('data-metric') === metric).textContent;
  const actions = (id: string) => r(id).findAll((e) => e.tag === 'button').map((b) => b.attrs.get('data-action'));
  assert.equal(r('v1').find((e) => e.attrs.get('data-task') === 'mlm').textContent, 'MLM');
  assert.deepEqual(r('v2').findAll((e) => e.attrs.has('data-task')), []);
  assert.equal(cell('v1', 'macroF1'), '–');
  assert.equal(cell('v1', 'accuracy'), '41.0 %');
  assert.match(r('v1').textContent, /3\.1000/);
  assert.deepEqual(actions('v1'), ['merge'], 'the current mlm version: merge only');
  assert.deepEqual(actions('v0'), ['promote', 'merge']);
  assert.deepEqual(actions('v2'), ['promote'], 'a classification version is never offered for merging');
  // the loss chart draws the held-out masked-LM loss of a masked-LM federation, and only there
  const mlmLoss = chartSeries(versions.slice(0, 2).map((v) => ({ ...v, trainMetrics: { loss: 3.5 } })), []).loss.datasets;
  assert.deepEqual(mlmLoss.map((d) => [d.label, d.data]), [['training loss (sites, example-weighted)', [3.5]], ['held-out masked-LM loss', [3.1]]]);
  assert.equal(chartSeries([{ ...versions[2], trainMetrics: { loss: 0.6 } }], []).loss.datasets.length, 1);
});
