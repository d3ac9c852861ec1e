// Issue 23 defect 11: a revoked site could not be enrolled again under its name (400 "exists"), though
// docs/OPERATOR.md says a lost token means revoking the site and enrolling it again. Over real sockets: the same
// POST /api/sites {name} re-enrolls a revoked site with a new token, the old token and keys never work again, the
// new keys do, and the site keeps its id and history. A site that is not revoked is still refused.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { io as connect, type Socket } from 'socket.io-client';
import { createStrategy } from '@fedlora/shared/aggregation/index.ts';
import { generateSiteKeys, publicIdentity, type SiteKeys } from '@fedlora/shared/crypto/keys.ts';
import { signChallenge } from '@fedlora/shared/crypto/envelope.ts';
import { MemoryStorage } from '../storage';
import { createCoordinator, type Coordinator } from '../app';
import { DEFAULT_SETTINGS, DEFAULT_STOP } from '../rounds/settings';
import { tinyFakeTask } from '../rounds/fakes';

const ADMIN = 'admin-token-for-tests-0123456789';
let coord: Coordinator;
let url: string;
const sockets: Socket[] = [];

before(async () => {
  coord = await createCoordinator({
    adminToken: ADMIN,
    storage: new MemoryStorage(),
    strategy: createStrategy('fedavg', {}),
    settings: { ...DEFAULT_SETTINGS },
    stop: { ...DEFAULT_STOP },
    task: tinyFakeTask(),
    autostart: false,
  });
  url = await coord.listen(0);
});

after(async () => {
  for (const s of sockets) s.disconnect();
  await coord.close();
});

const api = (method: string, path: string, body?: unknown) =>
  fetch(url + path, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

function open(): Promise<Socket> {
  const s = connect(url, { transports: ['websocket'], reconnection: false, forceNew: true });
  sockets.push(s);
  return new Promise((resolve, reject) => {
    s.once('connect', () => resolve(s));
    s.once('connect_error', reject);
  });
}

type Ack = { ok: boolean; code?: string; data?: { challenge?: number[]; coordinatorId?: string } };
const ask = (s: Socket, event: string, payload: unknown) =>
  s.timeout(5000).emitWithAck(event, payload) as Promise<Ack>;

async function authenticate(s: Socket, siteId: string, keys: SiteKeys): Promise<Ack> {
  const ch = await ask(s, 'auth:challenge', { siteId });
  if (!ch.ok) return ch;
  const signature = signChallenge(
    new Uint8Array(ch.data?.challenge as number[]),
    { siteId, coordinatorId: ch.data?.coordinatorId as string },
    keys.signing.secretKey,
  );
  return ask(s, 'auth:prove', { siteId, signature });
}

interface SiteRow {
  id: string;
  name: string;
  createdAt: string;
  enrolledAt: string | null;
  revokedAt: string | null;
  signingPublicKey: string | null;
  lastSeen: string | null;
}
const sites = async () => (await (await api('GET', '/api/sites')).json()) as SiteRow[];

test('when a revoked site is created again under its name, then it gets a new token and keys, keeps its id and history, and the old ones never work again', async () => {
  const created = await api('POST', '/api/sites', { name: 'Lab 1' });
  assert.equal(created.status, 201);
  const first = (await created.json()) as { siteId: string; joinToken: string };
  const oldKeys = generateSiteKeys();
  const s = await open();
  assert.equal(
    (await ask(s, 'site:enroll', { token: first.joinToken, siteId: 'lab-1', ...publicIdentity(oldKeys) })).ok,
    true,
  );
  assert.equal((await authenticate(s, 'lab-1', oldKeys)).ok, true);
  const before = (await sites()).find((x) => x.id === 'lab-1') as SiteRow;

  const active = await api('POST', '/api/sites', { name: 'Lab 1' });
  assert.equal(active.status, 400, 'a site that is not revoked is not replaced');
  assert.match(await active.text(), /revoke it first/);

  assert.equal((await api('DELETE', '/api/sites/lab-1')).status, 200);
  const again = await api('POST', '/api/sites', { name: 'Lab 1' });
  assert.equal(again.status, 201);
  const second = (await again.json()) as { siteId: string; joinToken: string };
  assert.equal(second.siteId, 'lab-1');
  assert.notEqual(second.joinToken, first.joinToken);

  const rows = (await sites()).filter((x) => x.id === 'lab-1');
  assert.equal(rows.length, 1, 'one site, not a second record');
  assert.equal(rows[0].revokedAt, null);
  assert.equal(rows[0].enrolledAt, null, 'awaiting enrollment with the new token');
  assert.equal(rows[0].signingPublicKey, null, 'the old keys are gone');
  assert.equal(rows[0].createdAt, before.createdAt);
  assert.ok(rows[0].lastSeen, 'its activity history stays');

  const t = await open();
  // the refusal's code is not asserted: how much an auth failure tells a peer is the site protocol's business
  assert.equal((await authenticate(t, 'lab-1', oldKeys)).ok, false, 'old keys before re-enrollment');
  const oldToken = await ask(t, 'site:enroll', {
    token: first.joinToken,
    siteId: 'lab-1',
    ...publicIdentity(generateSiteKeys()),
  });
  assert.equal(oldToken.code, 'UNAUTHORIZED', 'the old join token');

  const newKeys = generateSiteKeys();
  assert.equal(
    (await ask(t, 'site:enroll', { token: second.joinToken, siteId: 'lab-1', ...publicIdentity(newKeys) }))
      .ok,
    true,
  );
  assert.equal((await authenticate(t, 'lab-1', oldKeys)).ok, false, 'old keys after re-enrollment');
  assert.equal((await authenticate(t, 'lab-1', newKeys)).ok, true);
  assert.equal(
    (await ask(t, 'site:enroll', { token: second.joinToken, siteId: 'lab-1', ...publicIdentity(newKeys) }))
      .code,
    'TOKEN_USED',
  );
});
