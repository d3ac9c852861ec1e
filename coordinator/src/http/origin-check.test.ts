// Issue 23 defect 7: a cross-origin POST with a valid console cookie (pause, promote) was obeyed, since only
// SameSite=Strict stood in the way and that does not cover another origin of the same site. Now every cookie write
// and the /admin cookie handshake must come from the coordinator's own origin or an --allowed-origin; Bearer
// requests (scripts) and clients that send no Origin (curl) are unaffected.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { io as connect } from 'socket.io-client';
import { isFedloraError } from '@fedlora/shared/errors.ts';
import { memoryLogger } from '../log';
import { type Coordinator } from '../app';
import { DEFAULT_SETTINGS } from '../rounds/settings';
import { crossOriginReason, parseAllowedOrigin } from './origin-check';
import { listeningTestCoordinator } from '../testing';

const ADMIN = 'admin-token-for-tests-0123456789';
const PROXY_ORIGIN = 'https://fedlora.example.org';
const log = memoryLogger();
let plain: Coordinator;
let proxied: Coordinator;

async function coordinator(allowedOrigins?: string[]): Promise<Coordinator> {
  return listeningTestCoordinator({ adminToken: ADMIN, allowedOrigins, log });
}

before(async () => {
  plain = await coordinator();
  proxied = await coordinator([PROXY_ORIGIN]);
});

after(async () => {
  await plain.close();
  await proxied.close();
});

async function sessionCookie(url: string): Promise<string> {
  const r = await fetch(url + '/api/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json', origin: url },
    body: JSON.stringify({ token: ADMIN }),
  });
  assert.equal(r.status, 200);
  return (r.headers.get('set-cookie') ?? '').split(';')[0];
}

const post = (url: string, path: string, headers: Record<string, string>) =>
  fetch(url + path, { method: 'POST', headers });

async function errorCode(r: Response): Promise<string> {
  return ((await r.json()) as { error: { code: string } }).error.code;
}

test('when a cookie-authenticated POST comes from another origin, then pause and promote answer 403 CROSS_ORIGIN', async () => {
  const url = plain.url as string;
  const cookie = await sessionCookie(url);
  // another port of the same host is the same *site*: a browser attaches the SameSite=Strict cookie to its requests
  for (const origin of ['http://127.0.0.1:1', 'https://evil.example', 'null']) {
    for (const path of ['/api/federation/pause', '/api/versions/v0/promote']) {
      const r = await post(url, path, { cookie, origin });
      assert.equal(r.status, 403, `${origin} ${path}`);
      assert.equal(await errorCode(r), 'CROSS_ORIGIN');
    }
  }
  const fetchMetadata = await post(url, '/api/federation/pause', { cookie, 'sec-fetch-site': 'same-site' });
  assert.equal(fetchMetadata.status, 403, 'no Origin, but Sec-Fetch-Site says another origin');
  const put = await fetch(url + '/api/settings', {
    method: 'PUT',
    headers: { cookie, origin: 'https://evil.example', 'content-type': 'application/json' },
    body: '{"minSites": 1}',
  });
  assert.equal(put.status, 403);
  assert.equal(
    plain.federation.settings.minSites,
    DEFAULT_SETTINGS.minSites,
    'the refused write changed nothing',
  );
  assert.ok(log.lines.some((l) => l.includes('admin.cross_origin_refused') && l.includes('evil.example')));
});

test('when a cookie-authenticated POST comes from the coordinator itself, or from no browser, then it is obeyed', async () => {
  const url = plain.url as string;
  const cookie = await sessionCookie(url);
  assert.equal((await post(url, '/api/federation/pause', { cookie, origin: url })).status, 200);
  assert.equal(
    (await post(url, '/api/federation/pause', { cookie, 'sec-fetch-site': 'same-origin' })).status,
    200,
  );
  assert.equal((await post(url, '/api/versions/v0/promote', { cookie })).status, 200, 'curl sends no Origin');
  // reads are not writes: a cross-origin GET cannot read the answer anyway (no CORS headers)
  assert.equal(
    (await fetch(url + '/api/status', { headers: { cookie, origin: 'https://evil.example' } })).status,
    200,
  );
});

test('when a request carries a Bearer token, then its Origin does not matter', async () => {
  const url = plain.url as string;
  const auth = { authorization: `Bearer ${ADMIN}`, origin: 'https://evil.example' };
  assert.equal((await post(url, '/api/federation/pause', auth)).status, 200);
  // and a wrong Bearer token is still 401, whatever cookie rides along
  const cookie = await sessionCookie(url);
  const wrong = await post(url, '/api/federation/pause', {
    authorization: 'Bearer wrong-wrong-wrong-wrong',
    cookie,
  });
  assert.equal(wrong.status, 401);
});

test('when --allowed-origin names the public origin behind a proxy, then writes from it are obeyed and others still refused', async () => {
  const url = proxied.url as string;
  const cookie = await sessionCookie(url);
  // the proxy forwards the browser's Origin but talks to the coordinator under its own Host
  assert.equal((await post(url, '/api/federation/pause', { cookie, origin: PROXY_ORIGIN })).status, 200);
  assert.equal(
    (await post(url, '/api/federation/pause', { cookie, origin: `${PROXY_ORIGIN}:444` })).status,
    403,
  );
  assert.equal(
    (await post(url, '/api/federation/pause', { cookie, origin: 'http://fedlora.example.org' })).status,
    403,
  );
});

test('when the /admin feed is opened with the cookie from another origin, then the handshake fails with CROSS_ORIGIN', async () => {
  const url = plain.url as string;
  const cookie = await sessionCookie(url);
  const open = (headers: Record<string, string>) => {
    const s = connect(url + '/admin', {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      extraHeaders: headers,
    });
    return new Promise<void>((resolve, reject) => {
      s.once('connect', () => resolve());
      s.once('connect_error', reject);
    }).finally(() => s.disconnect());
  };
  await assert.rejects(open({ cookie, origin: 'http://127.0.0.1:1' }), /CROSS_ORIGIN/);
  await open({ cookie, origin: url });
  await open({ cookie });
});

test('when origins are compared, then Origin host:port must equal Host, default ports included', () => {
  const none = new Set<string>();
  assert.equal(crossOriginReason({ origin: 'http://a.example', host: 'a.example' }, none), null);
  assert.equal(crossOriginReason({ origin: 'http://a.example', host: 'a.example:80' }, none), null);
  assert.equal(crossOriginReason({ origin: 'https://a.example', host: 'a.example:443' }, none), null);
  assert.equal(crossOriginReason({ origin: 'http://A.example:8080', host: 'a.example:8080' }, none), null);
  assert.notEqual(crossOriginReason({ origin: 'http://a.example:8081', host: 'a.example:8080' }, none), null);
  assert.notEqual(crossOriginReason({ origin: 'http://a.example', host: 'a.example.evil' }, none), null);
  assert.notEqual(crossOriginReason({ origin: 'not a url', host: 'a.example' }, none), null);
  assert.notEqual(crossOriginReason({ origin: 'http://a.example' }, none), null, 'no Host: nothing to match');
  assert.equal(crossOriginReason({ secFetchSite: 'none' }, none), null, 'typed into the address bar');
  assert.notEqual(crossOriginReason({ secFetchSite: 'cross-site' }, none), null);
  assert.equal(crossOriginReason({}, none), null);
});

test('when an allowed origin is configured, then it is normalized, and anything but a bare origin is refused', () => {
  assert.equal(parseAllowedOrigin('https://Fedlora.Example.org:443/'), 'https://fedlora.example.org');
  assert.equal(parseAllowedOrigin(' http://10.0.0.5:8080 '), 'http://10.0.0.5:8080');
  for (const bad of [
    'fedlora.example.org',
    'https://x.example/console',
    'ftp://x.example',
    'https://u:p@x.example',
  ])
    assert.throws(
      () => parseAllowedOrigin(bad),
      (e: unknown) => isFedloraError(e, 'CONFIG_INVALID'),
      bad,
    );
});
