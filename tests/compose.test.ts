// The deployment files, checked without a Docker engine: docker-compose.yml parses, has two coordinators (each its
// own named data volume, admin token from the environment, /healthz health check, both on one PostgreSQL and one
// Redis whose secrets come from the environment), the two servers, a proxy that publishes port 8080 and balances
// both coordinators, and three sites (own read-only data file, own state volume, token from the environment, reaching
// the federation through the proxy), and every Dockerfile and host path it references exists (the gitignored site
// CSVs: the script that writes them); the coordinator image builds the console and the site page from its sources.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { parse } from 'yaml';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SITES = ['site-a', 'site-b', 'site-c'] as const;

interface Service {
  build?: { context: string; dockerfile: string };
  image?: string;
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  command?: string[];
}

// compose resolves YAML merge keys (<<: *coordinator), so the parser must too
const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
};

/** "src:dst[:mode]" → parts; a src starting with . or / is a host path, anything else a named volume. */
function mount(v: string): { src: string; dst: string; mode?: string; host: boolean } {
  const [src, dst, mode] = v.split(':');
  return { src, dst, mode, host: src.startsWith('.') || src.startsWith('/') };
}

const COORDINATORS = ['coordinator', 'coordinator-2'] as const;

test('when the compose file is parsed, then it holds two coordinators, PostgreSQL, Redis, the proxy and three sites', () => {
  assert.deepEqual(Object.keys(compose.services).sort(), [...COORDINATORS, 'postgres', 'proxy', 'redis', ...SITES].sort());
});

for (const name of COORDINATORS)
  test(`when ${name} is read, then its data dir is its own named volume, its secrets come from the environment, it joins PostgreSQL and Redis once they are healthy, and /healthz is its health check`, () => {
    const c = compose.services[name];
    assert.equal(c.build?.dockerfile, 'Dockerfile.coordinator');
    const data = (c.volumes ?? []).map(mount).find((m) => m.dst === c.environment?.FEDLORA_DATA_DIR);
    assert.ok(data && !data.host, 'the data dir must be a named volume');
    assert.ok(data.src in compose.volumes, `volume ${data.src} must be declared at the top level`);
    assert.match(c.environment?.FEDLORA_ADMIN_TOKEN ?? '', /^\$\{FEDLORA_ADMIN_TOKEN(:\?[^}]*)?\}$/, 'admin token must be taken from the environment, never written in the file');
    assert.match(c.environment?.FEDLORA_DATABASE_URL ?? '', /^postgres:\/\/fedlora:\$\{FEDLORA_DB_PASSWORD(:\?[^}]*)?\}@postgres:5432\/fedlora$/, 'the database password comes from the environment');
    assert.equal(c.environment?.FEDLORA_REDIS_URL, 'redis://redis:6379');
    assert.equal(c.environment?.FEDLORA_PORT, '8080');
    assert.deepEqual(c.ports ?? [], [], 'only the proxy publishes a port');
    assert.equal(c.depends_on?.postgres?.condition, 'service_healthy');
    assert.equal(c.depends_on?.redis?.condition, 'service_healthy');
    const probe = (c.healthcheck?.test ?? []).join(' ');
    assert.match(probe, /http:\/\/127\.0\.0\.1:8080\/healthz/);
  });

test('when the coordinators are compared, then each has its own node id and data volume', () => {
  const [a, b] = COORDINATORS.map((n) => compose.services[n]);
  assert.notEqual(a.environment?.FEDLORA_NODE_ID, b.environment?.FEDLORA_NODE_ID);
  assert.notEqual(a.volumes?.[0], b.volumes?.[0]);
});

test('when the servers and the proxy are read, then they are pinned images with health checks, the database password is not in the file, and the proxy balances both coordinators on port 8080', () => {
  const { postgres, redis, proxy } = compose.services;
  assert.match(postgres.image ?? '', /^postgres:\d+-bookworm$/);
  assert.match(postgres.environment?.POSTGRES_PASSWORD ?? '', /^\$\{FEDLORA_DB_PASSWORD(:\?[^}]*)?\}$/);
  assert.match((postgres.healthcheck?.test ?? []).join(' '), /pg_isready/);
  assert.match(redis.image ?? '', /^redis:\d+-bookworm$/);
  assert.match((redis.healthcheck?.test ?? []).join(' '), /redis-cli ping/);
  assert.match(proxy.image ?? '', /^nginx:[\d.]+-bookworm$/);
  assert.ok(proxy.ports?.includes('8080:8080'));
  for (const c of COORDINATORS) assert.equal(proxy.depends_on?.[c]?.condition, 'service_healthy');
  const conf = mount((proxy.volumes ?? [])[0]);
  assert.deepEqual([conf.src, conf.dst, conf.mode], ['./deploy/nginx.conf', '/etc/nginx/nginx.conf', 'ro']);
  const nginx = readFileSync(join(ROOT, 'deploy/nginx.conf'), 'utf8');
  for (const c of COORDINATORS) assert.match(nginx, new RegExp(`server ${c}:8080`));
  assert.match(nginx, /proxy_set_header Upgrade \$http_upgrade/, 'WebSocket upgrades pass the proxy');
  assert.match(nginx, /ip_hash/, 'long-polling clients stay on one process');
});

for (const [i, name] of SITES.entries()) {
  test(`when ${name} is read, then it mounts its own data file read-only, keeps keys in its own volume, and joins with its own token after the coordinator is healthy`, () => {
    const s = compose.services[name];
    assert.equal(s.build?.dockerfile, 'Dockerfile.site');
    assert.equal(s.depends_on?.proxy?.condition, 'service_started');
    const mounts = (s.volumes ?? []).map(mount);
    const data = mounts.find((m) => m.host);
    assert.deepEqual(data, { src: `./deploy/sites/${name}.csv`, dst: '/data/site.csv', mode: 'ro', host: true });
    const state = mounts.find((m) => m.dst === s.environment?.FEDLORA_STATE_DIR);
    assert.ok(state && !state.host && state.src === `${name}-state` && state.src in compose.volumes);
    const letter = String.fromCharCode(65 + i);
    assert.match(s.environment?.FEDLORA_TOKEN ?? '', new RegExp(`^\\$\\{FEDLORA_TOKEN_${letter}(:-)?\\}$`));
    assert.equal(s.environment?.FEDLORA_COORDINATOR, 'http://proxy:8080');
    const cmd = (s.command ?? []).join(' ');
    assert.match(cmd, /fedlora-site(\.js)? join --data \/data\/site\.csv && exec node \S+fedlora-site(\.js)? run/);
  });
}

test('when the sites are compared, then no two share a data file or a state volume', () => {
  const srcs = SITES.flatMap((n) => (compose.services[n].volumes ?? []).map((v) => mount(v).src));
  assert.equal(new Set(srcs).size, srcs.length);
});

test('when every referenced path is resolved, then the Dockerfiles, the scripts they run and the data script exist', () => {
  for (const s of Object.values(compose.services)) {
    assert.ok(s.build || s.image, 'every service is built from this repository or a pinned image');
    if (s.build) assert.ok(existsSync(join(ROOT, s.build.context, s.build.dockerfile)), `${s.build.dockerfile} exists`);
    for (const m of (s.volumes ?? []).map(mount).filter((x) => x.host)) {
      // deploy/sites/*.csv are generated and gitignored: the script that writes them must exist instead
      if (/^\.\/deploy\/sites\/site-[a-z]\.csv$/.test(m.src)) assert.ok(existsSync(join(ROOT, 'scripts/make-site-data.ts')));
      else assert.ok(existsSync(join(ROOT, m.src)), `${m.src} exists`);
    }
    for (const part of (s.command ?? []).join(' ').split(/\s+/).filter((p) => p.endsWith('.js')))
      assert.ok(existsSync(join(ROOT, part)), `${part} exists`);
  }
});

test('when the Dockerfiles are read, then they pin node:20.20-bookworm-slim, run npm ci, and copy every workspace manifest before it', () => {
  const workspaces = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[] }).workspaces;
  for (const file of ['Dockerfile.coordinator', 'Dockerfile.site']) {
    const text = readFileSync(join(ROOT, file), 'utf8');
    assert.match(text, /^FROM node:20\.20-bookworm-slim$/m, `${file}: pinned base image`);
    assert.match(text, /^RUN npm ci\b/m, `${file}: npm ci`);
    const ci = text.indexOf('RUN npm ci');
    for (const w of ['package-lock.json', ...workspaces.map((x) => `${x}/package.json`)]) {
      const at = text.indexOf(w);
      assert.ok(at >= 0 && at < ci, `${file}: ${w} is copied before npm ci (npm ci needs every workspace)`);
    }
    for (const bin of text.match(/[\w-]+\/bin\/[\w-]+\.js/g) ?? []) assert.ok(existsSync(join(ROOT, bin)), `${file}: ${bin} exists`);
  }
});

test('when Dockerfile.coordinator is read, then it builds the web pages after copying the sources, so the image serves the console and the site page', () => {
  const text = readFileSync(join(ROOT, 'Dockerfile.coordinator'), 'utf8');
  const copy = text.search(/^COPY \. \.$/m);
  const build = text.search(/^RUN npm run build$/m);
  const user = text.search(/^USER node$/m);
  // npm ci's prepare hook runs before the sources are copied and skips the build; dist is not in the build context
  assert.ok(copy >= 0 && build > copy, 'RUN npm run build comes after COPY . .');
  assert.ok(build < user, 'the build runs before USER node (it writes into /app)');
  const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
  assert.ok(ignored.includes('dist'), 'a local dist never stands in for the build');
  const pkg = (dir: string) => JSON.parse(readFileSync(join(ROOT, dir, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
  assert.match(pkg('.').scripts?.build ?? '', /--workspaces/);
  for (const w of ['coordinator', 'client-web']) assert.ok(pkg(w).scripts?.build, `${w} has a build script`);
});

test('when the docker build context is filtered, then node_modules, local state and site data stay out of the image', () => {
  const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
  for (const p of ['**/node_modules', '.fedlora', 'deploy/sites', '.git']) assert.ok(ignored.includes(p), `.dockerignore lists ${p}`);
});
