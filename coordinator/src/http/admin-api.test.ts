// Issue 16 part 5: the admin API is schema-checked at its edge. One table holds requests that break each route's
// schema (ADMIN_ROUTES: body, params, query); every one is answered 400 with a message naming the offending field,
// never 500, and no handler acts on it. A route added to ADMIN_ROUTES without a row here fails the test.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createStrategy } from '@fedlora/shared/aggregation/index.ts';
import { MemoryStorage } from '../storage';
import { memoryLogger } from '../log';
import { createCoordinator, type Coordinator } from '../app';
import { DEFAULT_SETTINGS, DEFAULT_STOP } from '../rounds/settings';
import { tinyFakeTask } from '../rounds/fakes';
import { ADMIN_ROUTES, type AdminRoute, type ApiErrorBody, type RouteSchemas, type Settings } from './admin-schemas';

const ADMIN = 'admin-token-for-tests-0123456789';
const log = memoryLogger();
let coord: Coordinator;

before(async () => {
  coord = await createCoordinator({
    adminToken: ADMIN,
    storage: new MemoryStorage(),
    strategy: createStrategy('fedavg', {}),
    settings: { ...DEFAULT_SETTINGS },
    stop: { ...DEFAULT_STOP },
    task: tinyFakeTask(),
    autostart: false,
    log,
  });
  await coord.listen(0);
});

after(async () => {
  await coord.close();
});

/** A request that breaks the route's schema, and the field its 400 must name. */
interface Bad {
  /** replaces the route's :id (default: a well-formed id) */
  id?: string;
  /** the query string (default: what the route needs, e.g. ?file=… for peft) */
  query?: string;
  /** JSON body (GET routes cannot carry one) */
  body?: unknown;
  field: RegExp;
}

const BAD: Record<AdminRoute, Bad[]> = {
  'POST /login': [
    { body: { token: 5 }, field: /^token must be a string/ },
    { body: { username: 5, password: 'x' }, field: /^username must be a string/ },
  ],
  'GET /me': [{ query: 'x=1', field: /^x is not a query parameter of GET \/me/ }],
  'POST /logout': [{ body: { everywhere: true }, field: /^everywhere is not a field of POST \/logout/ }],
  'GET /status': [{ query: 'verbose=1', field: /^verbose is not a query parameter of GET \/status/ }],
  'POST /sites': [
    { body: { name: 7 }, field: /^name must be a non-empty string/ },
    { body: { name: '   ' }, field: /^name must be a non-empty string/ },
    { body: { name: 'x'.repeat(65) }, field: /^name must be a non-empty string/ },
    { body: {}, field: /^name must be a non-empty string/ },
    { body: { name: 'Lab', color: 'red' }, field: /^color is not a field of POST \/sites \(known: name\)/ },
  ],
  'GET /sites': [{ query: 'limit=5', field: /^limit is not a query parameter/ }],
  'DELETE /sites/:id': [{ id: encodeURIComponent('no spaces!'), field: /^id must be letters, digits/ }],
  'POST /federation/start': [{ body: { now: true }, field: /^now is not a field/ }],
  'POST /federation/pause': [{ body: { until: 5 }, field: /^until is not a field/ }],
  'GET /strategies': [{ query: 'name=fedavg', field: /^name is not a query parameter/ }],
  'GET /settings': [{ query: 'field=minSites', field: /^field is not a query parameter/ }],
  'PUT /settings': [
    { body: { minSites: 0 }, field: /^minSites must be an integer in \[1, 10000\]/ },
    { body: { lr: 1 }, field: /^lr is not a field of PUT \/settings \(known: sitesPerRound, / },
    { body: { encoding: 'fp8' }, field: /^encoding must be one of fp32, fp16, int8/ },
    { body: { strategy: 'fedmagic' }, field: /^strategy must be one of fedavg, fedprox, fedadam, fedavgm/ },
    { body: { strategyOptions: { fedprox: { proximalMu: -1 } } }, field: /^strategyOptions\.fedprox\.proximalMu must be ≥ 0/ },
    { body: { strategyOptions: { fedsgd: {} } }, field: /^strategyOptions\.fedsgd is not a strategy/ },
    { body: { strategyOptions: { fedavg: { mu: 1 } } }, field: /^strategyOptions\.fedavg\.mu is not an option of fedavg/ },
    // a cross-field rule, checked after the fields
    { body: { sitesPerRound: '2', minSites: 3 }, field: /^sitesPerRound \(2\) must be at least minSites \(3\)/ },
    { body: { dpNoiseMultiplier: 1.1 }, field: /^dpClipNorm is needed for client-level DP/ },
    { body: { dpDelta: 1 }, field: /^dpDelta must be a number in \(0, 1\)/ },
  ],
  'GET /rounds': [{ query: 'page=2', field: /^page is not a query parameter/ }],
  'GET /privacy': [{ query: 'round=1', field: /^round is not a query parameter/ }],
  'GET /versions': [{ query: 'current=1', field: /^current is not a query parameter/ }],
  'GET /versions/:id': [{ id: 'latest', field: /^id must be a version id/ }],
  'POST /versions/:id/promote': [
    { id: 'v1.5', field: /^id must be a version id/ },
    { body: { reason: '' }, field: /^reason must be a non-empty string of at most 500 characters/ },
    { body: { zz: 1 }, field: /^zz is not a field of POST \/versions\/:id\/promote \(known: reason\)/ },
  ],
  'POST /versions/:id/approve': [
    { id: 'v-1', body: { reason: 'ok' }, field: /^id must be a version id/ },
    { body: {}, field: /^reason must be a non-empty string of at most 500 characters/ },
    { body: { reason: '   ' }, field: /^reason must be a non-empty string/ },
    { body: { reason: 'x'.repeat(501) }, field: /^reason must be a non-empty string of at most 500 characters/ },
    { body: { reason: 'ok', actor: 'someone else' }, field: /^actor is not a field of POST \/versions\/:id\/approve \(known: reason\)/ },
  ],
  'POST /versions/:id/reject': [
    { body: { reason: 7 }, field: /^reason must be a non-empty string/ },
    { body: { reason: 'bad\u0007bell' }, field: /^reason must not contain control characters/ },
  ],
  'GET /versions/:id/native': [{ id: 'V0', field: /^id must be a version id/ }],
  'GET /versions/:id/peft': [
    { query: 'file=../x', field: /^file must be adapter_config.json or adapter_model.safetensors/ },
    { query: '', field: /^file must be adapter_config.json or adapter_model.safetensors/ },
    { query: 'file=adapter_config.json&file=adapter_config.json', field: /^file must be/ },
  ],
  'POST /versions/:id/merge': [
    { id: 'v0;rm', field: /^id must be a version id/ },
    { body: { force: true }, field: /^force is not a field of POST \/versions\/:id\/merge/ },
  ],
  'GET /bases': [{ query: 'all=1', field: /^all is not a query parameter of GET \/bases/ }],
  'GET /users': [{ query: 'role=admin', field: /^role is not a query parameter/ }],
  'POST /users': [
    { body: { username: 'Alice', role: 'viewer' }, field: /^username must be 1-64 characters: lowercase letters/ },
    { body: { username: 'bootstrap-token', role: 'admin' }, field: /bootstrap-token is reserved/ },
    { body: { username: 'alice', role: 'root' }, field: /^role must be one of viewer, operator, admin/ },
    { body: { username: 'alice', role: 'viewer', password: 'short' }, field: /^password must be a string of 12-256 characters/ },
    { body: { username: 'alice', role: 'viewer', token: 'x' }, field: /^token is not a field of POST \/users/ },
  ],
  'PUT /users/:username': [
    { id: 'Bad%20Name', body: { role: 'viewer' }, field: /^username must be 1-64 characters/ },
    { body: { role: 'god' }, field: /^role must be one of viewer, operator, admin/ },
    { body: { disabled: 'yes' }, field: /^disabled must be true or false/ },
  ],
  'POST /users/:username/password': [{ body: {}, field: /^password must be a string of 12-256 characters/ }],
  'POST /users/:username/token': [{ id: '-x', field: /^username must be 1-64 characters/ }],
  'GET /audit': [
    { query: 'limit=0', field: /^limit must be an integer in \[1, 1000\]/ },
    { query: 'limit=1001', field: /^limit must be an integer in \[1, 1000\]/ },
    { query: 'before=abc', field: /^before must be a positive integer/ },
  ],
  'GET /audit/export': [{ query: 'format=csv', field: /^format is not a query parameter/ }],
  'GET /audit/verify': [{ query: 'from=3', field: /^from is not a query parameter/ }],
  'GET /projects': [{ query: 'all=1', field: /^all is not a query parameter/ }],
  'POST /projects': [
    { body: { id: 'Triage', labels: ['a', 'b'] }, field: /^id must be 1-32 characters: lowercase letters/ },
    { body: { id: 'default', labels: ['a', 'b'] }, field: /^id default is the coordinator's own project/ },
    { body: { id: 'triage', labels: ['a'] }, field: /^labels must be 2-1000 distinct labels/ },
    { body: { id: 'triage', labels: ['a', 'a'] }, field: /^labels must be 2-1000 distinct labels/ },
    { body: { id: 'triage', labels: ['a', 'b'], settings: { minSites: 0 } }, field: /^settings\.minSites must be an integer/ },
    { body: { id: 'triage', labels: ['a', 'b'], owner: 'x' }, field: /^owner is not a field of POST \/projects/ },
  ],
};

/** Breaks every route the same ways too: an unknown query parameter, and a body that is not the route's object. */
function generic(route: AdminRoute): Bad[] {
  const method = route.split(' ')[0];
  const schemas: RouteSchemas = ADMIN_ROUTES[route];
  const query = defaultQuery(route);
  const out: Bad[] = [{ query: `${query ? `${query}&` : ''}zz=1`, field: /^zz is not a query parameter/ }];
  if (method !== 'GET') {
    out.push({ body: [1, 2], field: /^body must be an object/ });
    if (!schemas.body) out.push({ body: { zz: 1 }, field: /^zz is not a field/ });
  }
  return out;
}

const defaultQuery = (route: AdminRoute) => (route.endsWith('/peft') ? 'file=adapter_config.json' : '');

function send(route: AdminRoute, bad: Bad): Promise<Response> {
  const [method, path] = route.split(' ');
  const id = bad.id ?? (path.startsWith('/sites') ? 'site-a' : 'v0');
  const query = bad.query ?? defaultQuery(route);
  const at = path.replace(':id', id).replace(':username', bad.id ?? 'alice');
  return fetch(`${coord.url}/api${at}${query ? `?${query}` : ''}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: bad.body === undefined ? undefined : JSON.stringify(bad.body),
  });
}

test('when any admin route gets a body, param or query its schema refuses, then it answers 400 naming the field, never 500', async () => {
  const before = (await (await send('GET /settings', { query: '', field: /./ })).json()) as Settings;
  for (const route of Object.keys(ADMIN_ROUTES) as AdminRoute[]) {
    assert.ok(BAD[route]?.length, `no bad request for ${route} in the table`);
    for (const bad of [...BAD[route], ...generic(route)]) {
      const r = await send(route, bad);
      const what = `${route} ${JSON.stringify({ id: bad.id, query: bad.query, body: bad.body })}`;
      const body = (await r.json()) as ApiErrorBody;
      assert.equal(r.status, 400, `${what}: ${JSON.stringify(body)}`);
      assert.ok(['BAD_MESSAGE', 'CONFIG_INVALID'].includes(body.error.code), `${what}: ${body.error.code}`);
      assert.match(body.error.message, bad.field, what);
    }
  }

  // nothing acted on any of them: no site, the same settings, rounds not started, v0 still current
  const get = async <T>(path: string) =>
    (await (await fetch(`${coord.url}/api${path}`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as T;
  assert.deepEqual(await get('/sites'), []);
  assert.deepEqual(await get<Settings>('/settings'), before);
  assert.equal(coord.federation.state, 'idle');
  assert.equal((await get<{ currentId: string }>('/versions')).currentId, 'v0');
  assert.ok(!log.lines.some((l) => l.includes('api.error')), 'no request ended as a 500');
});

test('when a request is well-formed but names what does not exist or cannot be done, then it is 404 or 409, not 400', async () => {
  const call = (method: string, path: string) =>
    fetch(`${coord.url}/api${path}`, { method, headers: { authorization: `Bearer ${ADMIN}` } });
  assert.equal((await call('GET', '/versions/v9')).status, 404);
  assert.equal((await call('DELETE', '/sites/no-such-site')).status, 404);
  const put = await fetch(`${coord.url}/api/settings`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ rounds: 0 }),
  });
  assert.equal(put.status, 200);
  // a path parameter that is not valid percent-encoding (the router cannot decode it): 400, not a 500
  for (const [method, path] of [['DELETE', '/sites/%E0%A4%A'], ['GET', '/versions/%zz'], ['GET', '/versions/%E0%A4%A/native']]) {
    const r = await call(method, path);
    assert.equal(r.status, 400, `${method} ${path}`);
    assert.equal(((await r.json()) as ApiErrorBody).error.code, 'BAD_MESSAGE');
  }
  const start = await call('POST', '/federation/start');
  assert.equal(start.status, 409);
  assert.equal(((await start.json()) as ApiErrorBody).error.code, 'CONFLICT');
});
