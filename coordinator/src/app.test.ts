// The coordinator over real sockets on port 0 with socket.io-client: admin auth, enrollment and authentication
// rejections, and one full round with two scripted sites (a tiny fake model: no tfjs, no training).

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io as connect, type Socket } from 'socket.io-client';
import { createStrategy } from '@fedlora/shared/aggregation/index.ts';
import { generateSiteKeys, publicIdentity, type SiteKeys } from '@fedlora/shared/crypto/keys.ts';
import { signChallenge } from '@fedlora/shared/crypto/envelope.ts';
import { decodeAdapter } from '@fedlora/shared/protocol/codec.ts';
import { parseSafetensors } from '@fedlora/shared/model/safetensors.ts';
import { DirStorage } from './storage';
import { memoryLogger } from './log';
import { createCoordinator, type Coordinator } from './app';
import { hashModelFiles } from './model-files';
import { DEFAULT_SETTINGS, DEFAULT_STOP } from './rounds/settings';
import { makeUpload, tinyAdapter, tinyFakeTask } from './rounds/fakes';
import type { ConfigureMessage } from './rounds/types';
import type { VersionRecord } from './registry/types';

const ADMIN = 'admin-token-for-tests-0123456789';
let dir: string;
let coord: Coordinator;
let url: string;
const log = memoryLogger();
const sockets: Socket[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fedlora-coord-'));
  const modelDir = join(dir, 'model');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(modelDir);
  writeFileSync(join(modelDir, 'config.json'), '{"hidden_size": 2}');
  writeFileSync(join(modelDir, 'vocab.txt'), '[PAD]\n[UNK]\nhello\n');
  writeFileSync(
    join(modelDir, 'model.safetensors'),
    new Uint8Array(3000).map((_, i) => i % 251),
  );
  coord = await createCoordinator({
    adminToken: ADMIN,
    storage: new DirStorage(join(dir, 'data')),
    strategy: createStrategy('fedavg', {}),
    settings: {
      ...DEFAULT_SETTINGS,
      minSites: 2,
      sampleWaitS: 0,
      deadlineS: 30,
      ackTimeoutS: 5,
      // synthetic deltas far beyond what lr 2e-3 moves the tiny adapter: a fixed bound keeps them whole
      maxDeltaNorm: 10,
    },
    stop: { ...DEFAULT_STOP, rounds: 1 },
    task: tinyFakeTask(await hashModelFiles(modelDir)),
    autostart: false,
    log,
    retryDelayMs: 0,
  });
  url = await coord.listen(0);
});

after(async () => {
  for (const s of sockets) s.disconnect();
  await coord.close();
  rmSync(dir, { recursive: true, force: true });
});

const api = (path: string, init: RequestInit & { token?: string | null } = {}) =>
  fetch(url + path, {
    ...init,
    headers: {
      'content-type': 'application/json',
      ...(init.token === null ? {} : { authorization: `Bearer ${init.token ?? ADMIN}` }),
    },
  });

function open(ns = ''): Promise<Socket> {
  const s = connect(url + ns, { transports: ['websocket'], reconnection: false, forceNew: true });
  sockets.push(s);
  return new Promise((resolve, reject) => {
    s.once('connect', () => resolve(s));
    s.once('connect_error', reject);
  });
}

// acks are loose JSON here: each test asserts the fields it reads
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type LooseAck = { ok: boolean; code?: string; message?: string; data?: any };
const ask = (s: Socket, event: string, payload: unknown) =>
  s.timeout(5000).emitWithAck(event, payload) as Promise<LooseAck>;

async function newSite(name: string): Promise<{ siteId: string; token: string; keys: SiteKeys }> {
  const r = await api('/api/sites', { method: 'POST', body: JSON.stringify({ name }) });
  assert.equal(r.status, 201);
  const { siteId, joinToken } = (await r.json()) as { siteId: string; joinToken: string };
  return { siteId, token: joinToken, keys: generateSiteKeys() };
}

async function authenticate(s: Socket, siteId: string, keys: SiteKeys) {
  const ch = await ask(s, 'auth:challenge', { siteId });
  assert.equal(ch.ok, true, JSON.stringify(ch));
  const signature = signChallenge(
    new Uint8Array(ch.data.challenge),
    { siteId, coordinatorId: ch.data.coordinatorId },
    keys.signing.secretKey,
  );
  return ask(s, 'auth:prove', { siteId, signature });
}

test('when the admin API is called without the right bearer token, then it answers 401 JSON; /healthz needs none', async () => {
  const none = await api('/api/status', { token: null });
  assert.equal(none.status, 401);
  assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'UNAUTHORIZED');
  assert.equal((await api('/api/versions', { token: 'wrong-token-wrong-token' })).status, 401);
  assert.equal((await api('/api/status')).status, 200);
  assert.equal((await api('/healthz', { token: null })).status, 200);
  await assert.rejects(open('/admin'), /UNAUTHORIZED/);
});

test('when a join token is reused or unknown, or a signature is forged, then the site is refused and nothing changes', async () => {
  const site = await newSite('Hospital A');
  assert.match(site.token, /^hospital-a\./);
  const s = await open();
  const enroll = (token: string, keys: SiteKeys) =>
    ask(s, 'site:enroll', { token, siteId: site.siteId, ...publicIdentity(keys) });

  assert.equal(
    (await ask(s, 'site:ready', { numExamples: 1, encodings: ['fp32'], backend: 'cpu' })).code,
    'UNAUTHORIZED',
  );
  // before enrollment the challenge is answered as for any id; the proof fails like every other failed proof
  const early = await authenticate(s, site.siteId, site.keys);
  assert.deepEqual([early.code, early.message], [
    'UNAUTHORIZED',
    'authentication failed: unknown or revoked site, or a signature that does not verify',
  ]);
  assert.equal((await enroll('not-a-real-token-0000', site.keys)).code, 'UNAUTHORIZED');
  assert.deepEqual(await enroll(site.token, site.keys), { ok: true, data: { siteId: 'hospital-a' } });
  // the site registry's snapshot and journal (sites/registry.ts)
  const readSites = () =>
    ['sites.json', 'sites.journal'].map((f) => (existsSync(join(dir, 'data', f)) ? readFileSync(join(dir, 'data', f), 'utf8') : '')).join('\n');
  const sitesFile = readSites();
  assert.match(sitesFile, /hospital-a/);
  assert.equal((await enroll(site.token, generateSiteKeys())).code, 'TOKEN_USED');
  assert.equal((await authenticate(s, site.siteId, generateSiteKeys())).code, 'UNAUTHORIZED');
  assert.equal(
    (await ask(s, 'auth:prove', { siteId: site.siteId, signature: new Uint8Array(64) })).code,
    'UNAUTHORIZED',
  );
  assert.equal(readSites(), sitesFile, "rejections leave the site registry's files as they were");
  assert.ok(!sitesFile.includes(site.token), 'the token itself is never stored');
  assert.ok(
    log.lines.every((l) => !l.includes(site.token) && !l.includes(ADMIN)),
    'no token is logged',
  );
  assert.ok(log.lines.some((l) => l.includes('request.rejected') && l.includes('code=TOKEN_USED')));

  const ok = await authenticate(s, site.siteId, site.keys);
  assert.equal(ok.ok, true);
  assert.equal(ok.data.manifest.baseModel.id, 'tiny-fake');
  assert.equal(ok.data.manifest.versionId, 'v0');
  assert.equal(ok.data.manifest.maxSeqLength, 64);
  // an authenticated site can download the base model in chunks; the bytes hash to the manifest's sha256
  const f = ok.data.manifest.baseModel.files.find((x: { path: string }) => x.path === 'model.safetensors');
  // …and each chunk hashes to the sha256 its reply carries
  const { createHash } = await import('node:crypto');
  const parts: Uint8Array[] = [];
  for (let off = 0; off < f.bytes; off += 1024) {
    const r = (await ask(s, 'model:chunk', { path: f.path, offset: off, length: 1024 })).data;
    parts.push(new Uint8Array(r.data));
    assert.equal(createHash('sha256').update(parts.at(-1) as Uint8Array).digest('hex'), r.sha256);
  }
  assert.equal(createHash('sha256').update(Buffer.concat(parts)).digest('hex'), f.sha256);
  assert.equal(
    (await ask(s, 'model:chunk', { path: 'secrets.txt', offset: 0, length: 10 })).code,
    'NOT_FOUND',
  );
  s.disconnect();
});

test('when two sites train through the sockets, then a version is made, published, and downloadable as PEFT and native', async () => {
  const admin = connect(url + '/admin', {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    auth: { token: ADMIN },
  });
  sockets.push(admin);
  const newVersion = new Promise<VersionRecord>((resolve) => admin.on('version:new', resolve));
  await new Promise<void>((r) => admin.once('connect', () => r()));

  for (const [name, bias, n] of [
    ['Site B', 0.1, 10],
    ['Site C', 0.4, 30],
  ] as const) {
    const site = await newSite(name);
    const s = await open();
    assert.equal(
      (await ask(s, 'site:enroll', { token: site.token, siteId: site.siteId, ...publicIdentity(site.keys) }))
        .ok,
      true,
    );
    assert.equal((await authenticate(s, site.siteId, site.keys)).ok, true);
    let cfg: ConfigureMessage;
    s.on(
      'round:configure',
      (m: ConfigureMessage, ack: (a: unknown) => void) => (
        (cfg = m),
        ack({ ok: true, data: { accepted: true } })
      ),
    );
    s.on('round:train', (m: { adapter: ArrayBuffer }, ack: (a: unknown) => void) => {
      ack({ ok: true, data: { started: true } });
      const global = decodeAdapter(new Uint8Array(m.adapter));
      assert.equal(global.versionId, 'v0');
      const delta = tinyAdapter(0);
      delta['classifier.bias'].data.fill(bias);
      void ask(
        s,
        'update:upload',
        makeUpload(
          site.keys,
          site.siteId,
          { ...cfg, coordinatorBoxPublicKey: new Uint8Array(cfg.coordinatorBoxPublicKey) },
          delta,
          { numExamples: n },
        ),
      );
    });
    assert.equal(
      (await ask(s, 'site:ready', { numExamples: n, encodings: ['fp32'], backend: 'cpu' })).ok,
      true,
    );
  }
  assert.equal((await api('/api/federation/start', { method: 'POST' })).status, 200);

  const v = await newVersion;

  // (10·0.1 + 30·0.4) / 40 = 0.325
  assert.equal(v.id, 'v1');
  assert.equal(v.sites, 2);
  const versions = (await (await api('/api/versions')).json()) as { currentId: string };
  assert.equal(versions.currentId, 'v1');
  const native = decodeAdapter(new Uint8Array(await (await api('/api/versions/v1/native')).arrayBuffer()));
  assert.ok(Math.abs(native.adapter['classifier.bias'].data[0] - 0.325) < 1e-6);
  const peft = parseSafetensors(
    new Uint8Array(await (await api('/api/versions/v1/peft?file=adapter_model.safetensors')).arrayBuffer()),
  );
  assert.deepEqual(
    [...peft.tensors['base_model.model.classifier.bias'].data],
    [...native.adapter['classifier.bias'].data],
  );
  const cfgJson = (await (await api('/api/versions/v1/peft?file=adapter_config.json')).json()) as {
    peft_type: string;
    r: number;
  };
  assert.deepEqual([cfgJson.peft_type, cfgJson.r], ['LORA', 2]);
  assert.equal((await api('/api/versions/v1/peft?file=../x')).status, 400);
  await coord.federation.whenStopped();
  const rounds = (await (await api('/api/rounds')).json()) as {
    outcome: string;
    updates: number;
    uploadedBytes: number;
  }[];
  assert.deepEqual([rounds[0].outcome, rounds[0].updates], ['aggregated', 2]);
  assert.ok(rounds[0].uploadedBytes > 0);
  assert.equal(coord.federation.state, 'finished');

  // roll back to v0 through the API
  const promoted = await api('/api/versions/v0/promote', { method: 'POST' });
  assert.equal(promoted.status, 200);
  assert.equal(coord.store.currentId(), 'v0');
  assert.equal((await api('/api/versions/v9/promote', { method: 'POST' })).status, 404);
  assert.equal(
    (await api('/api/settings', { method: 'PUT', body: JSON.stringify({ minSites: 0 }) })).status,
    400,
  );
  assert.equal(
    (await api('/api/settings', { method: 'PUT', body: JSON.stringify({ rounds: 3, lr: 1 }) })).status,
    400,
  );
  const put = await api('/api/settings', {
    method: 'PUT',
    body: JSON.stringify({ rounds: 3, learningRate: 0.01 }),
  });
  assert.equal(((await put.json()) as { learningRate: number }).learningRate, 0.01);
});
