// Issue 5 "Must show" 1 end to end in a real Chromium: the operator logs into the console, enrolls two sites in the
// UI, a Node agent (wasm) joins with one token and a browser site joins from the other enrollment link (a second,
// isolated browser context on WebGPU/SwiftShader, CSV picked through the file picker), the operator starts the
// federation in the UI and both sites contribute to round 1; v1 reaches the versions table and the accuracy chart
// without a reload, and the browser site reported backend webgpu. Also: a site revoked in the console cannot join from
// its link (a visible UNAUTHORIZED). Screenshots of both pages go to test-artifacts/console-federation/.
// Sizes are the smallest that make a real round (40 held-out, one step of batch 4 at 32 tokens) for a 2-core machine.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { browserUnavailable, ensureSiteBuild, openBrowser } from './browser';
import { ConsolePage } from './console-page';
import { joinSite, Procs, ROOT, runSite, siteFiles, startCoordinator } from './federation-harness';
import { adminApi, type RoundRecord, type SiteRecord, type VersionRecord } from './admin-client';

const BUILT = join(ROOT, 'coordinator/dist/console/index.html');
const skip =
  browserUnavailable() ??
  (existsSync(BUILT) ? null : `the console is not built (${BUILT}): run npm run build`);
if (skip) console.log(`# skipping the console federation e2e test: ${skip}`);
const MIN = 60_000;

const cleanup: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => {});
});

/** Picks `file` through the page's file chooser (the operator's "Browse…"), then joins; resolves once it was clicked. */
async function pickAndJoin(page: Page, file: string): Promise<void> {
  const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.click('#data-file')]);
  await chooser.setFiles(file);
  await page.locator('#join:not([disabled])').click();
}

test(
  'when the operator enrolls a Node site and a browser site in the console and starts the federation, then both contribute to round 1 and v1 appears live with the browser on webgpu',
  { skip: skip ?? false, timeout: 15 * MIN },
  async () => {
    // Arrange: data for two sites, the coordinator (paused, two sites per round), the console logged in
    ensureSiteBuild();
    const dir = mkdtempSync(join(tmpdir(), 'fedlora-console-fed-'));
    cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
    const [nodeCsv, browserCsv] = await siteFiles(dir, 2, 40);
    const procs = new Procs(join(dir, 'logs'));
    cleanup.push(() => procs.stopAll());
    const coord = await startCoordinator(procs, {
      dataDir: join(dir, 'coordinator'),
      args: [
        ...['--heldout-limit', '40', '--max-steps', '1', '--batch-size', '4', '--max-length', '32'],
        ...['--min-sites', '2', '--rounds', '1', '--paused', '--deadline-s', '600'],
      ],
    });
    const browser = await openBrowser('console-federation');
    cleanup.push(async () => {
      await browser.close();
      cpSync(join(dir, 'logs'), join(browser.artifacts, 'logs'), { recursive: true });
    });
    const api = adminApi(coord.url, coord.adminToken);
    const ui = new ConsolePage(browser.page, coord.url);
    await ui.open();
    assert.equal(await ui.login(coord.adminToken), null);

    // Act 1: enroll both sites in the UI; each one-time token and link is read off the page
    const node = await ui.enroll('Node site');
    const web = await ui.enroll('Browser site');
    assert.match(node.token, /^node-site\./);
    assert.match(web.token, /^browser-site\./);
    assert.equal(web.link, `${coord.url}/site#token=${encodeURIComponent(web.token)}`);

    // Act 2: the Node agent joins with its token and runs
    const joined = await joinSite(procs, {
      dir,
      name: 'node-site',
      url: coord.url,
      token: node.token,
      data: nodeCsv,
    });
    assert.equal(joined.code, 0, joined.output);
    runSite(procs, { dir, name: 'node-site' });

    // Act 3: the browser site opens its enrollment link in its own context (another machine), picks its CSV and joins
    const site = await browser.newPage('site', { isolated: true });
    await site.goto(web.link);
    assert.equal(new URL(site.url()).hash, '', 'the token is wiped from the address bar');
    await pickAndJoin(site, browserCsv);
    await site
      .locator('#mapping tbody tr')
      .first()
      .waitFor({ timeout: 2 * MIN });
    await ui.waitForSite('node-site', /online, ready/);
    await ui.waitForSite('browser-site', /online, ready/, 4 * MIN);
    assert.equal((await ui.siteCells('node-site'))[3], 'wasm', 'the backend the agent reported');
    assert.equal((await ui.siteCells('browser-site'))[3], 'webgpu', 'the backend the page reported');
    await browser.screenshot('console-sites.png');
    await browser.screenshot('site-joined.png', { page: site });

    // Act 4: start in the console; from here on the console learns everything over its live socket
    assert.deepEqual(await ui.versionIds(), ['v0']);
    assert.deepEqual((await ui.chart('accuracy')).labels, ['v0']);
    await ui.markDocument();
    const t0 = Date.now();
    await ui.start();
    await ui.waitForVersion('v1', 10 * MIN);
    const roundS = (Date.now() - t0) / 1000;

    // Assert: round 1 aggregated both sites' updates into v1
    const rounds = await api.json<RoundRecord[]>('/api/rounds');
    const r1 = rounds.find((r) => r.round === 1);
    assert.ok(r1, 'round 1 is in the history');
    assert.equal(r1.outcome, 'aggregated');
    assert.equal(r1.versionId, 'v1');
    assert.equal(r1.participants, 2);
    assert.equal(r1.updates, 2);
    assert.deepEqual([r1.failures, r1.rejections], [[], []]);
    const { currentId, versions } = await api.json<{ currentId: string; versions: VersionRecord[] }>(
      '/api/versions',
    );
    const v1 = versions.find((v) => v.id === 'v1');
    assert.equal(currentId, 'v1');
    assert.equal(v1?.sites, 2);
    assert.ok(v1.metrics, 'v1 was evaluated on the held-out set');
    const sites = await api.json<SiteRecord[]>('/api/sites');
    const byName = (name: string) => sites.find((s) => s.name === name);
    assert.equal(byName('Browser site')?.backend, 'webgpu');
    assert.equal(byName('Node site')?.backend, 'wasm');

    // Assert: the console shows v1 in the table and on the chart, and both contributions, in the same document
    assert.equal(await ui.stillSameDocument(), true, 'the page was not reloaded');
    assert.equal(
      await browser.page.textContent('#versions-body tr[data-version="v1"] td[data-metric=accuracy]'),
      `${(v1.metrics.accuracy * 100).toFixed(1)} %`,
    );
    await browser.page.waitForFunction(() =>
      JSON.parse(
        document.getElementById('chart-accuracy')?.dataset.series ?? '{"labels":[]}',
      ).labels.includes('v1'),
    );
    const chart = await ui.chart('accuracy');
    assert.deepEqual(chart.labels, ['v0', 'v1']);
    assert.equal(chart.datasets[0].data[1], v1.metrics.accuracy);
    for (const id of ['node-site', 'browser-site'])
      await browser.page.waitForFunction(
        (sid) =>
          document.querySelector(`#sites-body tr[data-site="${sid}"] td:nth-child(6)`)?.textContent === '1',
        id,
      );
    await browser.page.waitForSelector('#fed-state[data-state=finished]');
    // the site page shows the version it trained towards and the backend it ran on
    await site.locator('#version', { hasText: 'v1' }).waitFor();
    assert.match((await site.textContent('#backend')) ?? '', /^webgpu/);
    await browser.screenshot('console-after-round.png');
    await browser.screenshot('console-charts.png', { selector: '#charts' });
    await browser.screenshot('site-after-round.png', { page: site });
    assert.deepEqual(
      browser.log.filter((l) => l.includes('[pageerror]')),
      [],
      'no uncaught error on the console or the site page',
    );

    // Act/Assert 5: a site enrolled and then revoked in the console cannot join from its link, and says so
    const gone = await ui.enroll('Revoked site');
    await ui.revoke('revoked-site');
    const refused = await browser.newPage('revoked', { isolated: true });
    await refused.goto(gone.link);
    await pickAndJoin(refused, browserCsv);
    await refused.locator('#error:not([hidden])').waitFor();
    assert.match((await refused.textContent('#error')) ?? '', /UNAUTHORIZED/);
    await browser.screenshot('site-revoked.png', { page: refused });
    console.log(`# console federation: start → v1 in the console in ${roundS.toFixed(0)} s`);
  },
);
