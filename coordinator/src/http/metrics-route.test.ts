// GET /metrics over HTTP: served only behind its own bearer token (the admin token does not open it) or on the
// metrics port; a refused admin socket shows up in the rejection counter; request ids reach the response and the log.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { io as connect } from 'socket.io-client';
import { listeningTestCoordinator } from '../testing';
import type { Coordinator } from '../app';
import { memoryLogger } from '../log';
import { serveMetrics } from './metrics-route';

const ADMIN = 'admin-token-for-tests-0123456789';
const METRICS = 'metrics-token-for-tests-0123456';
const log = memoryLogger();
let coord: Coordinator;
let url: string;

before(async () => {
  coord = await listeningTestCoordinator({ adminToken: ADMIN, metrics: { token: METRICS }, log });
  url = coord.url as string;
});
after(() => coord.close());

const scrape = (token?: string, base = url) =>
  fetch(`${base}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('when /metrics is asked for without the metrics token, then it is 401; with it, then 200 in Prometheus text format', async () => {
  const none = await scrape();
  const admin = await scrape(ADMIN);
  const ok = await scrape(METRICS);

  assert.equal(none.status, 401);
  assert.equal((await none.json()).error.code, 'UNAUTHORIZED');
  assert.equal(admin.status, 401, 'the admin token is not a metrics token');
  assert.equal(ok.status, 200);
  assert.match(ok.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const body = await ok.text();
  assert.equal(sample(body, 'fedlora_rounds_total{outcome="aggregated"}'), 0);
  assert.equal(sample(body, 'fedlora_sites_online'), 0);
});

test('when no metrics token is configured, then /metrics is not served on the main port', async () => {
  const bare = await listeningTestCoordinator({ adminToken: ADMIN });
  try {
    const r = await scrape(undefined, bare.url as string);
    assert.equal(r.status, 404);
  } finally {
    await bare.close();
  }
});

test('when an admin socket is refused, then fedlora_rejections_total counts it by source and code', async () => {
  const s = connect(`${url}/admin`, { transports: ['websocket'], reconnection: false, forceNew: true, auth: { token: 'wrong-token-wrong-token' } });
  await new Promise<void>((resolve) => s.once('connect_error', () => resolve()));
  s.disconnect();

  const body = await (await scrape(METRICS)).text();

  assert.equal(sample(body, 'fedlora_rejections_total{source="admin.unauthorized",code="UNAUTHORIZED"}'), 1);
});

test('when an API request is refused, then its response and its log line carry the same request id', async () => {
  const r = await fetch(`${url}/api/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: 'not-the-admin-token-at-all' }),
  });
  const id = r.headers.get('x-request-id');

  assert.equal(r.status, 401);
  assert.match(id ?? '', /^[0-9a-f]{16}$/);
  const line = log.lines.find((l) => l.includes('admin.login_refused'));
  assert.ok(line?.endsWith(`requestId=${id}`), line);
  assert.ok(!log.lines.some((l) => l.includes('not-the-admin-token-at-all')));
});

test('when the metrics port is used, then it serves /metrics only, with the token when one is set', async () => {
  const open = await serveMetrics(coord.metrics, { port: 0, host: '127.0.0.1' });
  const guarded = await serveMetrics(coord.metrics, { port: 0, host: '127.0.0.1', token: METRICS });
  try {
    assert.equal((await fetch(open.url)).status, 200);
    assert.equal((await fetch(open.url.replace('/metrics', '/api/status'))).status, 404);
    assert.equal((await fetch(guarded.url)).status, 401);
    assert.equal((await fetch(guarded.url, { headers: { authorization: `Bearer ${METRICS}` } })).status, 200);
  } finally {
    await open.close();
    await guarded.close();
  }
});

test('when an admin downloads an adapter, then its bytes count as adapter bytes out', async () => {
  const before = sample(await (await scrape(METRICS)).text(), 'fedlora_transfer_bytes_total{direction="out",kind="adapter"}') ?? 0;

  const r = await fetch(`${url}/api/versions/v0/native`, { headers: { authorization: `Bearer ${ADMIN}` } });
  const n = (await r.arrayBuffer()).byteLength;
  const body = await (await scrape(METRICS)).text();

  assert.equal(r.status, 200);
  assert.ok(n > 0);
  assert.equal(sample(body, 'fedlora_transfer_bytes_total{direction="out",kind="adapter"}'), before + n);
});
