// Issue 23 defect 8: POST /api/login took 1,000 guesses at ~75/s. Now attempts per client address are rate-limited
// and consecutive wrong tokens lock the address out (429 RATE_LIMITED with Retry-After), even for the right token;
// Bearer requests keep working, and the submitted token never reaches the log. The limits are made small here,
// and expiry is checked on a fake clock, so nothing sleeps.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { memoryLogger } from '../log';
import { type Coordinator } from '../app';
import { DEFAULT_LOGIN_LIMITS, LoginLockout, type LoginLimits } from './login-limits';
import { listeningTestCoordinator } from '../testing';

const ADMIN = 'admin-token-for-tests-0123456789';
const GUESS = 'a-wrong-guess-0123456789';
const log = memoryLogger();
const started: Coordinator[] = [];

async function coordinator(loginLimits: LoginLimits): Promise<string> {
  const c = await listeningTestCoordinator({ adminToken: ADMIN, loginLimits, log });
  started.push(c);
  return c.url as string;
}

after(async () => {
  for (const c of started) await c.close();
});

const login = (url: string, token: string) =>
  fetch(url + '/api/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token }),
  });

async function errorCode(r: Response): Promise<string> {
  return ((await r.json()) as { error: { code: string } }).error.code;
}

test('when one address makes more login attempts than the rate limit allows, then the rest get 429 with Retry-After', async () => {
  const url = await coordinator({ ...DEFAULT_LOGIN_LIMITS, attemptsPerWindow: 3, maxFailures: 1000 });
  for (let i = 0; i < 3; i++) assert.equal((await login(url, GUESS)).status, 401, `attempt ${i + 1}`);
  const limited = await login(url, GUESS);
  assert.equal(limited.status, 429);
  assert.equal(await errorCode(limited), 'RATE_LIMITED');
  const retryAfter = Number(limited.headers.get('retry-after'));
  assert.ok(retryAfter > 0 && retryAfter <= 60, `Retry-After ${retryAfter}`);
  assert.equal((await login(url, ADMIN)).status, 429, 'the right token counts as an attempt too');
  const bearer = await fetch(url + '/api/status', { headers: { authorization: `Bearer ${ADMIN}` } });
  assert.equal(bearer.status, 200, 'scripts with the token are not slowed down');
});

test('when one address sends the lockout number of wrong tokens in a row, then even the right token is refused until the lockout ends', async () => {
  const url = await coordinator({ ...DEFAULT_LOGIN_LIMITS, maxFailures: 3, lockoutMs: 10 * 60_000 });
  assert.equal((await login(url, GUESS)).status, 401);
  assert.equal((await login(url, ADMIN)).status, 200, 'a success clears the count');
  for (let i = 0; i < 3; i++) assert.equal((await login(url, GUESS)).status, 401, `failure ${i + 1}`);
  const locked = await login(url, ADMIN);
  assert.equal(locked.status, 429);
  assert.equal(await errorCode(locked), 'RATE_LIMITED');
  assert.equal(locked.headers.get('set-cookie'), null);
  const retryAfter = Number(locked.headers.get('retry-after'));
  assert.ok(retryAfter > 590 && retryAfter <= 600, `Retry-After ${retryAfter}`);
  assert.equal(
    (await fetch(url + '/api/status', { headers: { authorization: `Bearer ${ADMIN}` } })).status,
    200,
  );
  const lines = log.lines.join('\n');
  assert.match(lines, /admin\.login_refused .*locked=true/);
  assert.ok(!lines.includes(GUESS) && !lines.includes(ADMIN), 'no submitted token in the log');
});

test('when a lockout runs out, then the address starts again from a clean count', () => {
  let now = 1_000_000;
  const lockout = new LoginLockout({ maxFailures: 3, lockoutMs: 60_000 }, () => now);
  assert.equal(lockout.failed('a'), false);
  lockout.succeeded('a');
  assert.equal(lockout.failed('a'), false);
  assert.equal(lockout.failed('a'), false);
  assert.equal(lockout.retryAfterMs('a'), 0, 'two failures in a row after the success: not yet');
  assert.equal(lockout.failed('a'), true);
  assert.equal(lockout.retryAfterMs('a'), 60_000);
  assert.equal(lockout.retryAfterMs('b'), 0, 'other addresses are not locked');
  now += 59_999;
  assert.equal(lockout.retryAfterMs('a'), 1);
  now += 1;
  assert.equal(lockout.retryAfterMs('a'), 0);
  assert.equal(lockout.failed('a'), false, 'one new failure does not lock again');
});
