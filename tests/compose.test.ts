// The deployment files, checked without a Docker engine: docker-compose.yml parses, has the coordinator (named data
// volume, admin token from the environment, /healthz health check, port 8080) and three sites (own read-only data
// file, own state volume, token from the environment, started after the coordinator is healthy), and every
// Dockerfile and host path it references exists (the gitignored site CSVs: the script that writes them); the
// coordinator image builds the console and the site page from its sources.

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
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  command?: string[];
}

const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
};

/** "src:dst[:mode]" → parts; a src starting with . or / is a host path, anything else a named volume. */
function mount(v: string): { src: string; dst: string; mode?: string; host: boolean } {
  const [src, dst, mode] = v.split(':');
  return { src, dst, mode, host: src.startsWith('.') || src.startsWith('/') };
}

test('when the compose file is parsed, then it holds exactly the coordinator and three sites', () => {
  assert.deepEqual(Object.keys(compose.services).sort(), ['coordinator', ...SITES]);
});

test('when the coordinator service is read, then its data dir is a named volume, its admin token comes from the environment, and /healthz is its health check', () => {
  const c = compose.services.coordinator;
  assert.equal(c.build?.dockerfile, 'Dockerfile.coordinator');
  const data = (c.volumes ?? []).map(mount).find((m) => m.dst === c.environment?.FEDLORA_DATA_DIR);
  assert.ok(data && !data.host, 'the data dir must be a named volume');
  assert.ok(data.src in compose.volumes, `volume ${data.src} must be declared at the top level`);
  assert.match(c.environment?.FEDLORA_ADMIN_TOKEN ?? '', /^\$\{FEDLORA_ADMIN_TOKEN(:\?[^}]*)?\}$/, 'admin token must be taken from the environment, never written in the file');
  assert.ok(c.ports?.some((p) => p.endsWith(':8080')));
  assert.equal(c.environment?.FEDLORA_PORT, '8080');
  const probe = (c.healthcheck?.test ?? []).join(' ');
  assert.match(probe, /http:\/\/127\.0\.0\.1:8080\/healthz/);
});

for (const [i, name] of SITES.entries()) {
  test(`when ${name} is read, then it mounts its own data file read-only, keeps keys in its own volume, and joins with its own token after the coordinator is healthy`, () => {
    const s = compose.services[name];
    assert.equal(s.build?.dockerfile, 'Dockerfile.site');
    assert.equal(s.depends_on?.coordinator?.condition, 'service_healthy');
    const mounts = (s.volumes ?? []).map(mount);
    const data = mounts.find((m) => m.host);
    assert.deepEqual(data, { src: `./deploy/sites/${name}.csv`, dst: '/data/site.csv', mode: 'ro', host: true });
    const state = mounts.find((m) => m.dst === s.environment?.FEDLORA_STATE_DIR);
    assert.ok(state && !state.host && state.src === `${name}-state` && state.src in compose.volumes);
    const letter = String.fromCharCode(65 + i);
    assert.match(s.environment?.FEDLORA_TOKEN ?? '', new RegExp(`^\\$\\{FEDLORA_TOKEN_${letter}(:-)?\\}$`));
    assert.equal(s.environment?.FEDLORA_COORDINATOR, 'http://coordinator:8080');
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
    assert.ok(s.build, 'every service is built from this repository');
    assert.ok(existsSync(join(ROOT, s.build.context, s.build.dockerfile)), `${s.build.dockerfile} exists`);
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
