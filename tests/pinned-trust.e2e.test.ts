// Issue 21 must-show 4 and the built-in HTTPS, end to end: a real coordinator (fedlora-bert-mini, 2 steps of 32
// tokens) serving HTTPS with a self-signed certificate made here by the openssl CLI, and Node site agents on wasm
// that trust it through --ca. A join token pinned to another coordinator key is refused before the token is sent,
// naming both fingerprints; the right token joins and a round completes over HTTPS with every round message
// verified; a site whose pinned fingerprint is not the coordinator's refuses to train and says why.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_TOKEN, joinSite, Procs, runSite, SITE_BIN, siteFiles, startCoordinator, within } from './federation-harness';

const skip = spawnSync('openssl', ['version']).status === 0 ? null : 'the openssl CLI is not installed (needed to make a test certificate)';
if (skip) console.log(`# skipping the pinned-trust e2e test: ${skip}`);

const cleanup: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => {});
});

/** The admin API over HTTPS, trusting only the test's certificate. */
function api(url: string, ca: Buffer, path: string, method = 'GET', body?: unknown): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url + path,
      { method, ca, headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : null }));
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

test(
  'when a site gets a join token with the wrong coordinator fingerprint, then it refuses and says why; with the right one it trains a round over HTTPS',
  { skip: skip ?? false, timeout: 12 * 60_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedlora-trust-e2e-'));
    cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
      '-keyout', key, '-out', cert, '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
    ], { stdio: 'ignore' });
    const ca = readFileSync(cert);
    const [data] = await siteFiles(dir, 1, 60);
    const procs = new Procs(join(dir, 'logs'));
    cleanup.push(() => procs.stopAll());
    const coord = await startCoordinator(procs, {
      dataDir: join(dir, 'coordinator'),
      args: ['--tls-cert', cert, '--tls-key', key, '--heldout-limit', '60', '--max-steps', '2', '--max-length', '32', '--batch-size', '8', '--min-sites', '1', '--rounds', '1', '--paused'],
    });
    assert.match(coord.url, /^https:\/\//);
    assert.match(coord.fingerprint, /^[a-z2-7]{4}(-[a-z2-7]{4}){7}$/);
    const status = (await api(coord.url, ca, '/api/status')).json as { coordinator: { fingerprint: string } };
    assert.equal(status.coordinator.fingerprint, coord.fingerprint, 'GET /api/status shows the printed fingerprint');

    const created = (await api(coord.url, ca, '/api/sites', 'POST', { name: 'Site A' })).json as { joinToken: string };
    const [secret, pinned] = created.joinToken.split('~');
    assert.equal(pinned, coord.fingerprint.replace(/-/g, ''), 'the join token carries the fingerprint');
    const withCa = { FEDLORA_CA_FILE: cert };

    // Act 1: a token pinned to another key (a swapped coordinator, or an attacker in the path, from the site's view)
    const otherKey = 'a'.repeat(32);
    const wrong = await joinSite(procs, { dir, name: 'wrong-pin', url: coord.url, token: `${secret}~${otherKey}`, data, env: withCa });
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.output, /UNTRUSTED_COORDINATOR/);
    assert.ok(
      wrong.output.includes(`expected ${otherKey.match(/.{4}/g)?.join('-')}, the coordinator presented ${coord.fingerprint}`),
      wrong.output,
    );

    // without the private CA the TLS handshake itself fails: the site never talks to an unverified server
    const noCa = await joinSite(procs, { dir, name: 'no-ca', url: coord.url, token: created.joinToken, data });
    assert.notEqual(noCa.code, 0);
    assert.match(noCa.output, /UNREACHABLE/);

    // Act 2: the right token (not spent by the refused attempt: it was never sent) joins and trains over HTTPS
    const joined = await joinSite(procs, { dir, name: 'site-a', url: coord.url, token: created.joinToken, data, env: withCa });
    assert.equal(joined.code, 0, joined.output);
    assert.ok(joined.output.includes(`coordinator key ${coord.fingerprint} pinned`), joined.output);
    assert.equal((await api(coord.url, ca, '/api/federation/start', 'POST')).status, 200);
    const site = runSite(procs, { dir, name: 'site-a', args: ['--once', '--quiet'] });
    const ran = await within(site.exited, 8 * 60_000, 'site-a to finish its round');
    assert.equal(ran.code, 0, site.output());
    assert.doesNotMatch(site.output(), /refusing|UNTRUSTED/);
    const versions = (await api(coord.url, ca, '/api/versions')).json as { versions: { id: string }[] };
    assert.ok(versions.versions.some((v) => v.id === 'v1'), 'the round made version v1');

    // Act 3: the same site pinned to another key refuses to train, and says why
    const siteJson = join(dir, 'site-a', 'site.json');
    const cfg = JSON.parse(readFileSync(siteJson, 'utf8')) as Record<string, unknown>;
    writeFileSync(siteJson, JSON.stringify({ ...cfg, coordinatorFingerprint: otherKey }), { mode: 0o600 });
    const refused = procs.spawn('site-a-repinned', [SITE_BIN, 'run', '--state-dir', join(dir, 'site-a'), '--once', '--quiet']);
    const r = await within(refused.exited, 120_000, 'the re-pinned site to refuse');
    assert.notEqual(r.code, 0);
    assert.match(refused.output(), /UNTRUSTED_COORDINATOR: coordinator fingerprint mismatch/);
  },
);
