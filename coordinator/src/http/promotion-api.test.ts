// POST /api/versions/:id/approve and /reject over a real port (issue 20, must-show 3): the admin's verdict on a
// candidate, with the reason and the actor (how the admin authenticated, never a secret) recorded on the version and
// shown by GET /api/versions; PUT /api/settings sets the promotion policy. The round loop's side is
// rounds/promotion.test.ts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { io as connect } from 'socket.io-client';
import { listeningTestCoordinator, tinyAdapter } from '../testing';
import type { VersionRecord } from '../registry/types';
import type { Coordinator } from '../app';
import type { VersionList } from './admin-schemas';

const ADMIN = 'promotion-admin-token-0123456789';
const bearer = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };

async function candidates(c: Coordinator, n: number): Promise<void> {
  for (let i = 1; i <= n; i++)
    await c.store.addVersion(
      { parent: 'v0', round: i, strategy: 'fedavg', sites: 2, examples: 20, metrics: null, trainMetrics: {}, uploadedBytes: 0 },
      tinyAdapter(i / 10),
      null,
      { candidate: true },
    );
}

const post = (c: Coordinator, path: string, body: unknown, headers: Record<string, string> = bearer) =>
  fetch(`${c.url}/api${path}`, { method: 'POST', headers, body: JSON.stringify(body) });

test('when an admin approves and rejects candidates, then GET /api/versions shows each status with the reason and actor', async () => {
  const c = await listeningTestCoordinator({ adminToken: ADMIN });
  try {
    const put = await fetch(`${c.url}/api/settings`, { method: 'PUT', headers: bearer, body: JSON.stringify({ promotion: 'manual', promotionMetric: 'macro_f1', promotionTolerance: 0.02 }) });
    assert.equal(put.status, 200);
    const settings = (await put.json()) as { promotion: string; promotionMetric: string; promotionTolerance: number };
    assert.deepEqual([settings.promotion, settings.promotionMetric, settings.promotionTolerance], ['manual', 'macro_f1', 0.02]);
    await candidates(c, 3);
    // a console that is open elsewhere hears of each decision on the /admin namespace
    const admin = connect(`${c.url}/admin`, { auth: { token: ADMIN }, transports: ['websocket'] });
    const decided: VersionRecord[] = [];
    admin.on('version:decided', (v: VersionRecord) => decided.push(v));
    await new Promise<void>((resolve, reject) => (admin.once('connect', resolve), admin.once('connect_error', reject)));

    const approve = await post(c, '/versions/v1/approve', { reason: '  signed off by the board  ' });
    assert.equal(approve.status, 200);
    assert.equal(((await approve.json()) as { status: string }).status, 'promoted');

    // the console's way: a session cookie, same-origin write
    const login = await fetch(`${c.url}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json', origin: c.url as string }, body: JSON.stringify({ token: ADMIN }) });
    const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0];
    const reject = await post(c, '/versions/v2/reject', { reason: 'worse on site B' }, { cookie, origin: c.url as string, 'content-type': 'application/json' });
    assert.equal(reject.status, 200);

    const list = (await (await fetch(`${c.url}/api/versions`, { headers: bearer })).json()) as VersionList;
    assert.equal(list.currentId, 'v1');
    assert.deepEqual(list.versions.map((v) => v.status), ['promoted', 'promoted', 'rejected', 'candidate']);
    const [a] = list.versions[1].decisions ?? [];
    assert.deepEqual([a.action, a.actor, a.reason, a.policy, a.metric, a.currentId], ['approve', 'bootstrap-token', 'signed off by the board', 'manual', 'macro_f1', 'v0']);
    assert.ok(!Number.isNaN(Date.parse(a.at)));
    const [r] = list.versions[2].decisions ?? [];
    assert.equal(r.action, 'reject');
    assert.equal(r.reason, 'worse on site B');
    assert.equal(r.actor, 'bootstrap-token', 'a session of the bootstrap token acts as bootstrap-token');
    assert.ok(!r.actor.includes(cookie.split('=')[1]), 'the actor never holds the session id');
    assert.ok(!JSON.stringify(list).includes(ADMIN), 'nor the token');

    // decided once: 409; no reason: 400; an explicit promote of the rejected one works and is recorded too
    assert.equal((await post(c, '/versions/v2/approve', { reason: 'second thoughts' })).status, 409);
    assert.equal((await post(c, '/versions/v1/reject', { reason: 'too late' })).status, 409);
    assert.equal((await post(c, '/versions/v3/approve', {})).status, 400);
    assert.equal((await post(c, '/versions/v9/approve', { reason: 'x' })).status, 404);
    const promote = await post(c, '/versions/v2/promote', { reason: 'roll forward' });
    assert.equal(promote.status, 200);
    const v2 = (await (await fetch(`${c.url}/api/versions/v2`, { headers: bearer })).json()) as VersionList['versions'][number];
    assert.deepEqual(v2.decisions?.map((d) => [d.action, d.reason]), [['reject', 'worse on site B'], ['promote', 'roll forward']]);
    for (let i = 0; i < 100 && decided.length < 3; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(decided.map((v) => [v.id, v.status]), [['v1', 'promoted'], ['v2', 'rejected'], ['v2', 'promoted']]);
    admin.close();
    // promote without a body still works (as before issue 20)
    assert.equal((await fetch(`${c.url}/api/versions/v0/promote`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } })).status, 200);
  } finally {
    await c.close();
  }
});
