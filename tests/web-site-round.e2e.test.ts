// The browser site in a real round: a real coordinator (the CLI, shipped fedlora-bert-mini, SpamAssassin held-out)
// and two sites, the Node agent and the built page in headless Chromium on WebGPU (SwiftShader). The page enrolls from
// an enrollment link (#token=…), reads a CSV picked in the tab, downloads the base model over the socket and trains;
// the round must aggregate both uploads into v1, and the coordinator must have recorded backend 'webgpu' for it.
// A second page with a revoked site's token must show a visible error.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { joinFederation, SiteAgent } from '../client-node/src/agent/index';
import { CHROMIUM, ensureSiteBuild, launchChromium } from './web-harness';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ADMIN = 'admin-token-for-web-e2e';
const WEB_TOKEN = 'browser-site.web-e2e-secret-0123456789';
const NODE_TOKEN = 'node-site.node-e2e-secret-0123456789';
const REVOKED_TOKEN = 'revoked-site.revoked-e2e-secret-0123456789';

// a few messages per label: the round is one step of batch 4, so the content only has to tokenize
const CSV = [
  'text,label',
  '"Meeting moved to Thursday, see you there",ham',
  '"Can you review my patch before the release?",ham',
  '"Lunch tomorrow? The usual place",ham',
  '"WIN a FREE cruise now!!! click here",spam',
  '"Cheap meds online, no prescription needed",spam',
  '"You have been selected for a cash prize",spam',
].join('\n');

function startCoordinator(dataDir: string): Promise<{ proc: ChildProcess; url: string }> {
  const args = [
    join(ROOT, 'coordinator/bin/fedlora-coordinator.js'),
    ...['--admin-token', ADMIN, '--port', '0', '--data-dir', dataDir],
    ...['--site-token', `browser-site=${WEB_TOKEN}`, '--site-token', `node-site=${NODE_TOKEN}`, '--site-token', `revoked-site=${REVOKED_TOKEN}`],
    ...['--max-steps', '1', '--batch-size', '4', '--max-length', '32', '--heldout-limit', '40', '--min-sites', '2', '--rounds', '1'],
    ...['--paused', '--deadline-s', '600'],
  ];
  const proc = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    proc.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve({ proc, url: m[1] });
    });
    proc.stderr?.on('data', (b: Buffer) => (out += b.toString()));
    proc.once('exit', (code) => reject(new Error(`coordinator exited with ${code}:\n${out.slice(-2000)}`)));
  });
}

async function api<T>(url: string, path: string, method = 'GET'): Promise<T> {
  const r = await fetch(`${url}${path}`, { method, headers: { authorization: `Bearer ${ADMIN}` } });
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
  return (await r.json()) as T;
}

type SiteRow = { id: string; name: string; backend?: string; ready: boolean };

test('when a browser site and a Node site join a real round, then both updates make v1 and the browser reported webgpu', { skip: existsSync(CHROMIUM) ? false : `no ${CHROMIUM}`, timeout: 540_000 }, async (t) => {
  // Arrange
  const dist = ensureSiteBuild();
  assert.ok(dist);
  const tmp = mkdtempSync(join(tmpdir(), 'fedlora-web-round-'));
  const { proc, url } = await startCoordinator(join(tmp, 'coordinator'));
  const browser = await launchChromium();
  let agent: SiteAgent | null = null;
  t.after(async () => {
    agent?.stop();
    await browser.close();
    proc.kill('SIGTERM');
    rmSync(tmp, { recursive: true, force: true });
  });
  const dataPath = join(tmp, 'node-site.csv');
  writeFileSync(dataPath, CSV);
  await joinFederation({ coordinator: url, token: NODE_TOKEN, data: dataPath, stateDir: join(tmp, 'node-state'), log: () => {} });
  agent = new SiteAgent({ stateDir: join(tmp, 'node-state'), once: true, quiet: true, log: () => {} });
  const agentDone = agent.run();

  // Act: the browser site joins from an enrollment link and a file picked in the tab
  const page = await browser.newPage();
  await page.goto(`${url}/site/#token=${encodeURIComponent(WEB_TOKEN)}`);
  assert.equal(new URL(page.url()).hash, '', 'the token is wiped from the address bar');
  await page.locator('#data-file').setInputFiles({ name: 'browser-site.csv', mimeType: 'text/csv', buffer: Buffer.from(CSV) });
  await page.locator('#join:not([disabled])').click();
  await page.locator('#mapping tbody tr').first().waitFor();
  // both sites ready, then one round
  for (;;) {
    const sites = await api<SiteRow[]>(url, '/api/sites');
    if (sites.filter((s) => s.ready).length >= 2) break;
    await page.waitForTimeout(500);
  }
  await api(url, '/api/federation/start', 'POST');
  await page.locator('#version', { hasText: 'v1' }).waitFor({ timeout: 480_000 });
  await agentDone;
  mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true });
  await page.screenshot({ path: join(ROOT, 'test-artifacts', 'site-page-round.png'), fullPage: true });

  // Assert
  const sites = await api<SiteRow[]>(url, '/api/sites');
  const web = sites.find((s) => s.name === 'browser-site');
  assert.equal(web?.backend, 'webgpu');
  const versions = await api<{ currentId: string; versions: { id: string; sites: number }[] }>(url, '/api/versions');
  assert.equal(versions.currentId, 'v1');
  assert.equal(versions.versions.find((v) => v.id === 'v1')?.sites, 2);
  assert.match((await page.locator('#backend').textContent()) ?? '', /^webgpu/);

  // a revoked site's enrollment link is refused with a visible message
  const revoked = sites.find((s) => s.name === 'revoked-site');
  await api(url, `/api/sites/${revoked?.id}`, 'DELETE');
  const page2 = await (await browser.newContext()).newPage();
  await page2.goto(`${url}/site/#token=${encodeURIComponent(REVOKED_TOKEN)}`);
  await page2.locator('#data-file').setInputFiles({ name: 'd.csv', mimeType: 'text/csv', buffer: Buffer.from(CSV) });
  await page2.locator('#join:not([disabled])').click();
  await page2.locator('#error:not([hidden])').waitFor();
  assert.match((await page2.locator('#error').textContent()) ?? '', /UNAUTHORIZED/);
});
