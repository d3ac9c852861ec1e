// Console sessions: cookie parsing, token check, expiry on a fake clock, logout, and the bounded session count.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdminSessions, parseCookies, SESSION_COOKIE } from './session';

const TOKEN = 'admin-token-for-tests-0123456789';

test('when a Cookie header is parsed, then names map to decoded values and junk parts are skipped', () => {
  assert.deepEqual(parseCookies('a=1; fedlora_session=x%2By; =nope; b; c=%E0%A4%A'), {
    a: '1',
    fedlora_session: 'x+y',
  });
  assert.deepEqual(parseCookies(undefined), {});
});

test('when a token is checked, then only the exact admin token passes', () => {
  const s = new AdminSessions(TOKEN);
  assert.equal(s.checkToken(TOKEN), true);
  assert.equal(s.checkToken(TOKEN + 'x'), false);
  assert.equal(s.checkToken(TOKEN.slice(0, -1)), false);
  assert.equal(s.checkToken(undefined), false);
  assert.equal(s.checkToken(42), false);
});

test('when a session is created, then its cookie authorizes until it expires or is destroyed', async () => {
  let now = 1_000_000;
  const s = new AdminSessions(TOKEN, () => now, 60_000);
  const id = await s.create();
  assert.match(id, /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url');
  const cookie = `other=1; ${SESSION_COOKIE}=${id}`;
  assert.equal(await s.authorize({ cookie }), true);
  assert.equal(await s.authorize({ cookie: `${SESSION_COOKIE}=${id}x` }), false);
  // a wrong Bearer header is refused even next to a good cookie: an explicit credential is never overridden
  assert.equal(await s.authorize({ cookie, authorization: 'Bearer wrong-wrong-wrong-wrong' }), false);
  assert.equal(await s.authorize({ authorization: `Bearer ${TOKEN}` }), true);
  now += 59_999;
  assert.equal(await s.valid(id), true);
  now += 1;
  assert.equal(await s.valid(id), false, 'expired at exactly ttl');
  const id2 = await s.create();
  await s.destroy(id2);
  assert.equal(await s.valid(id2), false);
});

test('when the cookie is written, then it is HttpOnly, SameSite=Strict, path /, and Secure only over https', () => {
  const s = new AdminSessions(TOKEN, Date.now, 3_600_000);
  assert.equal(
    s.cookie('abc', false),
    `${SESSION_COOKIE}=abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=3600`,
  );
  assert.match(s.cookie('abc', true), /; Secure$/);
  assert.match(s.clearCookie(), /Max-Age=0/);
});

test('when more than 256 sessions are created, then the oldest is dropped first', async () => {
  const s = new AdminSessions(TOKEN);
  const first = await s.create();
  const second = await s.create();
  for (let i = 0; i < 255; i++) await s.create();
  assert.equal(await s.valid(first), false);
  assert.equal(await s.valid(second), true);
});
