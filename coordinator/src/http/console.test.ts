// The console's server side over a real port: login refuses a wrong token and sets an HttpOnly SameSite=Strict
// session cookie for the right one; the cookie opens /api and the /admin namespace until logout; `/` serves the
// built console, or a clear message when there is no build; GET /api/sites carries the activity fields.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { io as connect } from 'socket.io-client';
import { memoryLogger } from '../log';
import { type Coordinator } from '../app';
import { SESSION_COOKIE } from './session';
import { listeningTestCoordinator } from '../testing';

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
