// Issue 21: OpenID Connect sign-in for the console, against a real local issuer (oidc-provider, in this process, on
// loopback, with its development sign-in pages) and a real coordinator. The browser is played by fetch with a cookie
// jar per origin: the coordinator's /auth/oidc/login sends it to the provider, it signs in and consents there, and
// the provider sends it back to /auth/oidc/callback. An existing user gets a console session with its role; an
// unknown or disabled user, a callback from another sign-in (state mismatch), and a callback with no sign-in
// started get no session; each finished attempt leaves one audit entry.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';
import { FedloraError } from '@fedlora/shared/errors.ts';
import type { Coordinator } from '../app';
import { memoryLogger } from '../log';
import { OidcLogin } from '../users/oidc';
import { DEFAULT_LOGIN_LIMITS } from './login-limits';
import { listeningTestCoordinator } from '../testing';
import { parseConfig } from '../config';

const ADMIN = 'admin-token-for-tests-0123456789';
const CLIENT_ID = 'fedlora-console';
const CLIENT_SECRET = 'the-test-client-secret-0123456789';
const log = memoryLogger();

let issuerServer: Server;
let issuer: string;
let coordinator: Coordinator;
let url: string;

/** A free loopback port (the provider and the client must know each other's URLs before either listens). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

before(async () => {
  const coordinatorPort = await freePort();
  url = `http://127.0.0.1:${coordinatorPort}`;
  const issuerPort = await freePort();
  issuer = `http://127.0.0.1:${issuerPort}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: [`${url}/auth/oidc/callback`],
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
    ],
    // whoever signs in at the development pages is who they say: the login name becomes sub and preferred_username
    findAccount: (_ctx, id) => ({ accountId: id, claims: () => ({ sub: `sub-${id}`, preferred_username: id }) }),
    claims: { openid: ['sub'], profile: ['preferred_username'] },
    cookies: { keys: ['a-cookie-key-for-the-test-issuer-0123'] },
    features: { devInteractions: { enabled: true } },
  });
  issuerServer = createServer(provider.callback());
  await new Promise<void>((r) => issuerServer.listen(issuerPort, '127.0.0.1', r));

  coordinator = await listeningTestCoordinator({
    port: coordinatorPort,
    adminToken: ADMIN,
    log,
    loginLimits: { ...DEFAULT_LOGIN_LIMITS, attemptsPerWindow: 1000 },
    oidc: new OidcLogin({
      issuer,
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      redirectUrl: `${url}/auth/oidc/callback`,
      usernameClaim: 'preferred_username',
      label: 'Hospital SSO',
    }),
  });
  const admin = { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' };
  for (const [username, role] of [['alice', 'operator'], ['dora', 'viewer']]) {
    const r = await fetch(`${url}/api/users`, { method: 'POST', headers: admin, body: JSON.stringify({ username, role }) });
    assert.equal(r.status, 201, await r.text());
  }
  const off = await fetch(`${url}/api/users/dora`, { method: 'PUT', headers: admin, body: JSON.stringify({ disabled: true }) });
  assert.equal(off.status, 200);
});

after(async () => {
  await coordinator?.close();
  await new Promise((r) => issuerServer?.close(r));
});

/** A browser's cookies, per origin (paths and expiry ignored: each test's jar lives for one sign-in). */
class Browser {
  private readonly jar = new Map<string, Map<string, string>>();

  cookie(origin: string, name: string): string | undefined {
    return this.jar.get(origin)?.get(name);
  }

  setCookie(origin: string, name: string, value: string): void {
    if (!this.jar.has(origin)) this.jar.set(origin, new Map());
    (this.jar.get(origin) as Map<string, string>).set(name, value);
  }

  async fetch(target: string, init: { method?: string; form?: Record<string, string> } = {}): Promise<Response> {
    const origin = new URL(target).origin;
    const cookies = [...(this.jar.get(origin) ?? new Map<string, string>())].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(target, {
      method: init.method ?? 'GET',
      redirect: 'manual',
      headers: {
        ...(cookies ? { cookie: cookies } : {}),
        ...(init.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
      },
      ...(init.form ? { body: new URLSearchParams(init.form).toString() } : {}),
    });
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const gone = /max-age=0\b/i.test(line) || /expires=Thu, 01 Jan 1970/i.test(line) || value === '';
      if (gone) this.jar.get(origin)?.delete(name);
      else this.setCookie(origin, name, value);
    }
    return res;
  }

  /**
   * Follows redirects and fills the provider's development pages (sign in as `login`, then consent) until a
   * response comes from `stopAt` (the coordinator's callback), which is returned unfollowed and unread.
   */
  async signIn(start: string, login: string, stopAt: string): Promise<{ callback: string }> {
    let next = start;
    for (let hop = 0; hop < 20; hop++) {
      if (next.startsWith(stopAt)) return { callback: next };
      const res = await this.fetch(next);
      if (res.status >= 300 && res.status < 400) {
        next = new URL(res.headers.get('location') as string, next).href;
        continue;
      }
      const html = await res.text();
      assert.equal(res.status, 200, `unexpected ${res.status} at ${next}: ${html.slice(0, 300)}`);
      const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
      const prompt = /name="prompt" value="([^"]+)"/.exec(html)?.[1];
      assert.ok(action && prompt, `no sign-in form at ${next}: ${html.slice(0, 300)}`);
      const form: Record<string, string> = prompt === 'login' ? { prompt, login, password: 'any' } : { prompt };
      const posted = await this.fetch(new URL(action.replace(/&amp;/g, '&'), next).href, { method: 'POST', form });
      assert.ok(posted.status >= 300 && posted.status < 400, `the ${prompt} form answered ${posted.status}`);
      next = new URL(posted.headers.get('location') as string, next).href;
    }
    throw new Error('the sign-in did not come back to the coordinator in 20 hops');
  }
}

async function auditEntries(): Promise<{ actor: string; action: string; target: string; outcome: string; detail?: string }[]> {
  const r = await fetch(`${url}/api/audit?limit=100`, { headers: { authorization: `Bearer ${ADMIN}` } });
  assert.equal(r.status, 200);
  return ((await r.json()) as { entries: { actor: string; action: string; target: string; outcome: string; detail?: string }[] }).entries;
}

const lastOidcLogin = async () => (await auditEntries()).find((e) => e.action === 'login' && e.detail === 'oidc');

test('the console learns the sign-in button from /auth/oidc/config; a coordinator without OIDC answers 404', async () => {
  const r = await fetch(`${url}/auth/oidc/config`);
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { label: 'Hospital SSO' });
  const plain = await listeningTestCoordinator({ adminToken: ADMIN });
  try {
    assert.equal((await fetch(`${plain.url}/auth/oidc/config`)).status, 404);
    assert.equal((await fetch(`${plain.url}/auth/oidc/login`, { redirect: 'manual' })).status, 404);
  } finally {
    await plain.close();
  }
});

test('when an existing user signs in at the provider, then the callback opens a console session with that user\'s role, audited', async () => {
  const browser = new Browser();
  const { callback } = await browser.signIn(`${url}/auth/oidc/login`, 'alice', `${url}/auth/oidc/callback`);
  assert.ok(browser.cookie(url, 'fedlora_oidc'), 'the sign-in keeps its transaction in a cookie');
  const res = await browser.fetch(callback);
  const html = await res.text();
  assert.equal(res.status, 200, html);
  assert.match(html, /Signed in as alice \(operator\)/);
  assert.match(html, /http-equiv="refresh" content="0;url=\/console"/);
  assert.equal(browser.cookie(url, 'fedlora_oidc'), undefined, 'the transaction is single-use');
  const session = browser.cookie(url, 'fedlora_session');
  assert.ok(session, 'a session cookie');
  const me = await fetch(`${url}/api/me`, { headers: { cookie: `fedlora_session=${session}` } });
  assert.equal(me.status, 200);
  assert.deepEqual(await me.json(), { actor: 'alice', role: 'operator', user: 'alice', projects: null });
  const entry = await lastOidcLogin();
  assert.deepEqual([entry?.actor, entry?.target, entry?.outcome], ['alice', 'alice', 'ok']);
  // the same callback again (a replayed code, and no transaction any more) gets nothing
  const again = await browser.fetch(callback);
  assert.equal(again.status, 401);
  assert.equal(again.headers.getSetCookie().some((c) => c.startsWith('fedlora_session=')), false);
});

for (const [who, why] of [
  ['mallory', 'is no user of the coordinator'],
  ['dora', 'is a disabled user'],
] as const) {
  test(`when a person who ${why} signs in at the provider, then the coordinator refuses with 403 and no session`, async () => {
    const browser = new Browser();
    const { callback } = await browser.signIn(`${url}/auth/oidc/login`, who, `${url}/auth/oidc/callback`);
    const res = await browser.fetch(callback);
    const html = await res.text();
    assert.equal(res.status, 403, html);
    assert.match(html, new RegExp(`${who} signed in at the provider but is not an enabled user of this coordinator`));
    assert.equal(browser.cookie(url, 'fedlora_session'), undefined);
    const entry = await lastOidcLogin();
    assert.equal(entry?.outcome, 'FORBIDDEN');
    assert.equal(entry?.actor, 'anonymous');
    assert.equal(entry?.target, who === 'dora' ? 'dora' : '(unknown user)');
  });
}

test('when the callback carries another sign-in\'s code and state (login CSRF), then the state check refuses it', async () => {
  const victim = new Browser();
  const attacker = new Browser();
  // the attacker completes a sign-in of its own at the provider, and stops before its callback
  const { callback } = await attacker.signIn(`${url}/auth/oidc/login`, 'alice', `${url}/auth/oidc/callback`);
  // the victim started a sign-in too (so it holds a transaction), and is then sent to the attacker's callback URL
  const started = await victim.fetch(`${url}/auth/oidc/login`);
  assert.equal(started.status, 302);
  const res = await victim.fetch(callback);
  const html = await res.text();
  assert.equal(res.status, 401, html);
  assert.match(html, /did not check out/);
  assert.equal(victim.cookie(url, 'fedlora_session'), undefined);
  assert.equal((await lastOidcLogin())?.outcome, 'UNAUTHORIZED');
});

test('when a callback arrives with no sign-in started in this browser, then it is refused with a way back', async () => {
  const res = await fetch(`${url}/auth/oidc/callback?code=abc&state=def`);
  const html = await res.text();
  assert.equal(res.status, 401);
  assert.match(html, /not started here or took too long/);
  assert.match(html, /href="\/console"/);
});

test('when one address sends more callbacks than the login rate limit allows, then the rest get a 429 page', async () => {
  const limited = await listeningTestCoordinator({
    adminToken: ADMIN,
    loginLimits: { ...DEFAULT_LOGIN_LIMITS, attemptsPerWindow: 2 },
    oidc: new OidcLogin({ issuer, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, redirectUrl: `${url}/auth/oidc/callback`, usernameClaim: 'preferred_username', label: 'SSO' }),
  });
  try {
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await fetch(`${limited.url}/auth/oidc/callback?code=c&state=s`)).status);
    assert.deepEqual(statuses, [401, 401, 429]);
  } finally {
    await limited.close();
  }
});

test('when the provider is down, then a sign-in answers 503 and the coordinator keeps serving', async () => {
  const port = await freePort();
  const down = await listeningTestCoordinator({
    adminToken: ADMIN,
    oidc: new OidcLogin({ issuer: `http://127.0.0.1:${port}`, clientId: 'x', redirectUrl: 'http://127.0.0.1/cb', usernameClaim: 'sub', label: 'SSO' }),
  });
  try {
    const res = await fetch(`${down.url}/auth/oidc/login`, { redirect: 'manual' });
    assert.equal(res.status, 503);
    assert.match(await res.text(), /cannot read the OpenID provider&#39;s configuration/);
    assert.equal((await fetch(`${down.url}/healthz`)).status, 200);
  } finally {
    await down.close();
  }
});

test('an issuer over plain http is refused unless it is on loopback', () => {
  const settings = { clientId: 'x', redirectUrl: 'https://fedlora.example/auth/oidc/callback', usernameClaim: 'sub', label: 'SSO' };
  assert.throws(
    () => new OidcLogin({ ...settings, issuer: 'http://idp.example' }),
    (e: unknown) => e instanceof FedloraError && e.code === 'CONFIG_INVALID' && /https/.test(e.message),
  );
  assert.doesNotThrow(() => new OidcLogin({ ...settings, issuer: 'https://idp.example' }));
  assert.doesNotThrow(() => new OidcLogin({ ...settings, issuer: 'http://localhost:9000' }));
});

test('the --oidc-* flags: all or nothing, the secret only from the environment, the callback URL derived or required', () => {
  const env = { FEDLORA_ADMIN_TOKEN: 'a-long-enough-admin-token' };
  const config = (args: string[], extra: Record<string, string> = {}) => {
    const c = parseConfig(args, { ...env, ...extra });
    assert.ok(c !== 'help');
    return c;
  };
  assert.equal(config([]).oidc, undefined);
  const c = config(['--oidc-issuer', 'https://idp.example', '--oidc-client-id', 'fedlora', '--port', '9443'], { FEDLORA_OIDC_CLIENT_SECRET: 's3cret' });
  assert.deepEqual(c.oidc, {
    issuer: 'https://idp.example',
    clientId: 'fedlora',
    clientSecret: 's3cret',
    redirectUrl: 'http://127.0.0.1:9443/auth/oidc/callback',
    usernameClaim: 'preferred_username',
    label: 'Single sign-on',
  });
  const invalid = (re: RegExp) => (e: unknown) => e instanceof FedloraError && e.code === 'CONFIG_INVALID' && re.test(e.message);
  assert.throws(() => config(['--oidc-issuer', 'https://idp.example']), invalid(/both --oidc-issuer URL and --oidc-client-id/));
  assert.throws(() => config(['--oidc-label', 'SSO']), invalid(/--oidc-label needs --oidc-issuer/));
  assert.throws(
    () => config(['--oidc-issuer', 'https://idp.example', '--oidc-client-id', 'x', '--host', '0.0.0.0']),
    invalid(/--oidc-redirect-url is required with --host 0.0.0.0/),
  );
  assert.equal(
    config(['--oidc-issuer', 'https://idp.example', '--oidc-client-id', 'x', '--host', '0.0.0.0', '--oidc-redirect-url', 'https://fl.example/auth/oidc/callback', '--oidc-username-claim', 'email'])
      .oidc?.usernameClaim,
    'email',
  );
});
