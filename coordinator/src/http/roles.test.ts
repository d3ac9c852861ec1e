// Issue 21 must-show 2: every admin route × every role (and no credentials) → allowed, 403 or 401, generated from
// ADMIN_ROUTES, so a route added without a role, or with a role the server does not enforce, fails here. Each request
// carries an unknown query parameter: a caller who is allowed gets the schema's 400 naming it (the request reached
// the route, and no handler acted), one who is not gets 403 (or 401) before the request is even parsed.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { listeningTestCoordinator } from '../testing';
import type { Coordinator } from '../app';
import { ROLES, type Role } from '../users/types';
import { ADMIN_ROUTES, type AdminRoute, type ApiErrorBody, type RouteSchemas } from './admin-schemas';

const ADMIN = 'roles-test-admin-token-0123456789';
let coord: Coordinator;
const tokens = {} as Record<Role, string>;

const api = (path: string, init: RequestInit & { token?: string } = {}) =>
  fetch(`${coord.url}/api${path}`, {
    ...init,
    headers: { 'content-type': 'application/json', ...(init.token ? { authorization: `Bearer ${init.token}` } : {}) },
  });

before(async () => {
  coord = await listeningTestCoordinator({ adminToken: ADMIN, loginLimits: { attemptsPerWindow: 1000, windowMs: 60_000, maxFailures: 1000, lockoutMs: 1 } });
  for (const role of ROLES) {
    const made = await api('/users', { method: 'POST', token: ADMIN, body: JSON.stringify({ username: `${role}-user`, role }) });
    assert.equal(made.status, 201);
    const issued = await api(`/users/${role}-user/token`, { method: 'POST', token: ADMIN });
    tokens[role] = ((await issued.json()) as { token: string }).token;
  }
  // a second project, and an operator assigned to the default project only (issue 21, projects)
  const made = await api('/projects', { method: 'POST', token: ADMIN, body: JSON.stringify({ id: 'proj-b', labels: ['x', 'y', 'z'] }) });
  assert.equal(made.status, 201, await made.clone().text());
  assert.equal((await api('/users', { method: 'POST', token: ADMIN, body: JSON.stringify({ username: 'op-a', role: 'operator', projects: ['default'] }) })).status, 201);
  opA = ((await (await api('/users/op-a/token', { method: 'POST', token: ADMIN })).json()) as { token: string }).token;
});
let opA: string;

after(async () => {
  await coord.close();
});

const ROUTES = Object.keys(ADMIN_ROUTES) as AdminRoute[];
/** the order of the roles, written out here rather than taken from the code under test */
const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };
const may = (role: Role, needed: RouteSchemas['role']) => needed === 'public' || RANK[role] >= RANK[needed];

test('when the route table is read, then every route declares a known role, and the policy holds: reads are open to viewers, writes need an operator, users and settings an admin', () => {
  for (const route of ROUTES) {
    const spec: RouteSchemas = ADMIN_ROUTES[route];
    assert.ok(['public', ...ROLES].includes(spec.role), `${route} declares no known role`);
    const [method, path] = route.split(' ');
    if (spec.role === 'public') assert.ok(['POST /login', 'POST /logout'].includes(route), `${route} must not be public`);
    else if (method === 'GET') assert.ok(spec.role === 'viewer' || path.startsWith('/users'), `${route}: reads are for viewers`);
    else assert.notEqual(spec.role, 'viewer', `${route}: a viewer must not change anything`);
    if (path.startsWith('/users') || route === 'PUT /settings') assert.equal(spec.role, 'admin', `${route} is for admins only`);
    // every change is audited
    if (method !== 'GET') assert.ok(spec.audit, `${route} changes state but records no audit action`);
  }
});

test('when every route is called as each role and with no credentials, then it is allowed exactly for the roles the table names, else 403 (401 without credentials)', async () => {
  const callers: [string, string | undefined, Role | null][] = [
    ['no credentials', undefined, null],
    ...ROLES.map((r): [string, string, Role] => [r, tokens[r], r]),
    ['bootstrap token', ADMIN, 'admin'],
  ];
  const seen: string[] = [];
  for (const route of ROUTES) {
    const spec: RouteSchemas = ADMIN_ROUTES[route];
    const [method, path] = route.split(' ');
    const at = path.replace(':id', path.startsWith('/sites') ? 'site-a' : 'v0').replace(':username', 'viewer-user');
    for (const [who, token, role] of callers) {
      const r = await api(`${at}?roleProbe=1`, { method, token });
      const body = (await r.json()) as ApiErrorBody;
      const what = `${route} as ${who}: ${JSON.stringify(body)}`;
      if (spec.role !== 'public' && role === null) {
        assert.equal(r.status, 401, what);
        assert.equal(body.error.code, 'UNAUTHORIZED', what);
      } else if (role !== null && !may(role, spec.role)) {
        assert.equal(r.status, 403, what);
        assert.equal(body.error.code, 'FORBIDDEN', what);
        assert.match(body.error.message, new RegExp(`needs the ${spec.role} role`), what);
      } else {
        assert.equal(r.status, 400, what);
        assert.match(body.error.message, /roleProbe is not a query parameter/, what);
      }
      seen.push(`${route}|${who}`);
    }
  }
  assert.equal(seen.length, ROUTES.length * 5);
});

const PROJECT_ROUTES = ROUTES.filter((r) => (ADMIN_ROUTES[r] as RouteSchemas).project);
const pathOf = (route: AdminRoute) => {
  const path = route.split(' ')[1];
  return path.replace(':id', path.startsWith('/sites') ? 'site-a' : 'v0').replace(':username', 'viewer-user');
};

test('when every project route is called under /projects/<id>/ as each role, then the roles decide as for the default project; a project nobody made is 404 to every caller with credentials', async () => {
  assert.ok(PROJECT_ROUTES.length >= 17, `${PROJECT_ROUTES.length} project routes`);
  for (const route of PROJECT_ROUTES) {
    const spec: RouteSchemas = ADMIN_ROUTES[route];
    const method = route.split(' ')[0];
    for (const project of ['proj-b', 'default']) {
      const none = await api(`/projects/${project}${pathOf(route)}?roleProbe=1`, { method });
      assert.equal(none.status, 401, `${route} in ${project} without credentials`);
      for (const role of ROLES) {
        const r = await api(`/projects/${project}${pathOf(route)}?roleProbe=1`, { method, token: tokens[role] });
        const body = (await r.json()) as ApiErrorBody;
        const what = `${route} in ${project} as ${role}: ${JSON.stringify(body)}`;
        if (may(role, spec.role)) {
          assert.equal(r.status, 400, what);
          assert.match(body.error.message, /roleProbe is not a query parameter/, what);
        } else assert.equal(r.status, 403, what);
      }
    }
    for (const token of [ADMIN, tokens.viewer, opA]) {
      const r = await api(`/projects/nope${pathOf(route)}?roleProbe=1`, { method, token });
      const body = (await r.json()) as ApiErrorBody;
      assert.equal(r.status, 404, `${route} in an unknown project: ${JSON.stringify(body)}`);
      assert.equal(body.error.code, 'NOT_FOUND');
    }
    assert.equal((await api(`/projects/Not_An_Id${pathOf(route)}`, { method, token: ADMIN })).status, 404, `${route} under a malformed project id`);
  }
});

test('when an operator is assigned to one project, then it acts there (under /api/ and /api/projects/default/) and gets 403 on every route of another, reads included; an admin acts everywhere', async () => {
  for (const route of PROJECT_ROUTES) {
    const spec: RouteSchemas = ADMIN_ROUTES[route];
    const method = route.split(' ')[0];
    const inB = await api(`/projects/proj-b${pathOf(route)}?roleProbe=1`, { method, token: opA });
    const body = (await inB.json()) as ApiErrorBody;
    // a route above the operator's role is refused for the role first, whatever the project
    assert.equal(inB.status, 403, `${route} in proj-b as op-a: ${JSON.stringify(body)}`);
    if (may('operator', spec.role)) assert.match(body.error.message, /op-a is not assigned to project proj-b/);
    for (const at of [pathOf(route), `/projects/default${pathOf(route)}`]) {
      const r = await api(`${at}?roleProbe=1`, { method, token: opA });
      assert.equal(r.status, may('operator', spec.role) ? 400 : 403, `${route} at ${at} as op-a`);
    }
  }
  // the list shows a user only its projects; GET /me says which
  const listed = (p: unknown) => (p as { id: string }[]).map((x) => x.id).sort();
  assert.deepEqual(listed(await (await api('/projects', { token: opA })).json()), ['default']);
  assert.deepEqual(listed(await (await api('/projects', { token: ADMIN })).json()), ['default', 'proj-b']);
  assert.deepEqual(((await (await api('/me', { token: opA })).json()) as { projects: string[] }).projects, ['default']);
  // and it acts for real: enrolls a site in its project, not in the other
  assert.equal((await api('/sites', { method: 'POST', token: opA, body: JSON.stringify({ name: 'ward-1' }) })).status, 201);
  assert.equal((await api('/projects/proj-b/sites', { method: 'POST', token: opA, body: JSON.stringify({ name: 'ward-1' }) })).status, 403);
  const inB = (await (await api('/projects/proj-b/sites', { token: ADMIN })).json()) as unknown[];
  assert.equal(inB.length, 0);
});

test('when a user is disabled or changes role, then its token follows at once', async () => {
  const status = (token: string) => api('/federation/pause', { method: 'POST', token }).then((r) => r.status);
  assert.equal(await status(tokens.operator), 200);
  assert.equal((await api('/users/operator-user', { method: 'PUT', token: ADMIN, body: JSON.stringify({ role: 'viewer' }) })).status, 200);
  assert.equal(await status(tokens.operator), 403);
  assert.equal((await api('/users/operator-user', { method: 'PUT', token: ADMIN, body: JSON.stringify({ role: 'operator', disabled: true }) })).status, 200);
  assert.equal(await status(tokens.operator), 401);
  assert.equal((await api('/users/operator-user', { method: 'PUT', token: ADMIN, body: JSON.stringify({ disabled: false }) })).status, 200);
  assert.equal(await status(tokens.operator), 200);
  // a new token ends the old one
  const again = (await (await api('/users/operator-user/token', { method: 'POST', token: ADMIN })).json()) as { token: string };
  assert.equal(await status(tokens.operator), 401);
  assert.equal(await status(again.token), 200);
  tokens.operator = again.token;
  // the list shows no hash, no token
  const listed = JSON.stringify(await (await api('/users', { token: ADMIN })).json());
  assert.ok(!listed.includes(again.token) && !/Hash/.test(listed), listed);
});
