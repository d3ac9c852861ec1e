// End to end in a real Chromium: a real coordinator (fedlora-bert-mini, held-out subset of 60, 2 steps of 32
// tokens) and a Node site agent on wasm. The operator is refused with a wrong token, logs in, enrolls a site in the
// console, the agent joins with the token the page showed, the operator starts the federation, and the new version
// reaches the versions table and the accuracy chart over the live socket without a reload. Screenshots of the
// console go to test-artifacts/console-e2e/ (and to docs/img/, the operator guide's pictures, with FEDLORA_DOCS_IMG=1).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { browserUnavailable, openBrowser, type BrowserSession } from './browser';
import { ConsolePage } from './console-page';
import { joinSite, Procs, ROOT, runSite, siteFiles, startCoordinator } from './federation-harness';

const BUILT = join(ROOT, 'coordinator/dist/console/index.html');
const skip =
  browserUnavailable() ??
  (existsSync(BUILT) ? null : `the console is not built (${BUILT}): run npm run build`);
if (skip) console.log(`# skipping the console e2e test: ${skip}`);
// the operator guide's pictures are refreshed on request only, so a test run leaves committed files alone
const DOCS_IMG = process.env.FEDLORA_DOCS_IMG === '1' ? join(ROOT, 'docs/img') : undefined;

const cleanup: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c().catch(() => {});
});

test(
  'when an operator logs in, enrolls a Node site and starts the federation in the console, then the new version and its accuracy point appear live',
  { skip: skip ?? false, timeout: 15 * 60_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedlora-console-e2e-'));
    cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
    const [data] = await siteFiles(dir, 1, 60);
    const procs = new Procs(join(dir, 'logs'));
    cleanup.push(() => procs.stopAll());
    const coord = await startCoordinator(procs, {
      dataDir: join(dir, 'coordinator'),
      args: [
        '--heldout-limit',
        '60',
        '--max-steps',
        '2',
        '--max-length',
        '32',
        '--batch-size',
        '8',
        '--min-sites',
        '1',
        '--rounds',
        '1',
        '--paused',
      ],
    });
    const browser: BrowserSession = await openBrowser('console-e2e');
    cleanup.push(async () => {
      cpSync(join(dir, 'logs'), join(browser.artifacts, 'logs'), { recursive: true });
      await browser.close();
    });
    const ui = new ConsolePage(browser.page, coord.url);
    const api = (path: string) =>
      fetch(coord.url + path, { headers: { authorization: `Bearer ${coord.adminToken}` } }).then((r) =>
        r.json(),
      );

    // Arrange/Act 1: the API refuses without a token, and the login form refuses a wrong one
    const bare = await fetch(`${coord.url}/api/status`);
    assert.equal(bare.status, 401);
    assert.equal(((await bare.json()) as { error: { code: string } }).error.code, 'UNAUTHORIZED');
    await ui.open();
    assert.equal(await ui.login('not-the-admin-token-000000'), 'Wrong admin token.');
    assert.equal(await browser.page.isVisible('#app'), false);
    await browser.screenshot('console-login.png', { copyTo: DOCS_IMG, fullPage: false });

    // Act 2: the right token logs in; the session is an HttpOnly SameSite=Strict cookie, the token is in no URL
    assert.equal(await ui.login(coord.adminToken), null);
    const cookies = await browser.context.cookies(coord.url);
    const session = cookies.find((c) => c.name === 'fedlora_session');
    assert.ok(session, 'a session cookie is set');
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    assert.notEqual(session.value, coord.adminToken);
    assert.ok(!browser.page.url().includes(coord.adminToken));
    assert.equal(
      await browser.page.evaluate(() => document.cookie),
      '',
      'page scripts cannot read the session',
    );

    // Act 3: enroll a site in the UI and let a Node agent join with the token the page showed
    const enrolled = await ui.enroll('Node site A');
    assert.match(enrolled.token, /^node-site-a\./);
    assert.equal(enrolled.link, `${coord.url}/site#token=${encodeURIComponent(enrolled.token)}`);
    // the key sites pin, shown where sites are enrolled
    assert.match((await browser.page.textContent('#fingerprint')) ?? '', new RegExp(`^Coordinator fingerprint ${coord.fingerprint}:`));
    const joined = await joinSite(procs, {
      dir,
      name: 'node-a',
      url: coord.url,
      token: enrolled.token,
      data,
    });
    assert.equal(joined.code, 0, joined.output);
    runSite(procs, { dir, name: 'node-a' });
    await ui.waitForSite('node-site-a', /online, ready/);
    assert.equal((await ui.siteCells('node-site-a'))[3], 'wasm', 'the backend the agent reported');
    await browser.screenshot('console-sites.png', { copyTo: DOCS_IMG });

    // Act 4: edit a round setting in the form (PUT /api/settings underneath), then start in the UI; everything
    // after this arrives over the /admin socket
    assert.match(await ui.saveSettings({ deadlineS: '240' }), /Saved deadlineS/);
    const settings = (await api('/api/settings')) as { deadlineS: number; maxSteps: number };
    assert.equal(settings.deadlineS, 240);
    assert.equal(settings.maxSteps, 2, 'untouched fields are not sent');
    assert.deepEqual(await ui.versionIds(), ['v0']);
    const before = await ui.chart('accuracy');
    assert.deepEqual(before.labels, ['v0']);
    await ui.markDocument();
    await ui.recordStages();
    await ui.start();
    await browser.page.waitForSelector('#current-round:not([data-stage=""])');
    await browser.screenshot('console-rounds.png', { copyTo: DOCS_IMG, selector: '#rounds' });
    await ui.waitForVersion('v1');

    // Assert: same document (no reload), the live stages were shown, the table and chart carry v1's held-out metrics
    assert.equal(await ui.stillSameDocument(), true, 'the page was not reloaded');
    const stages = await ui.recordedStages();
    assert.ok(
      stages.includes('train') && stages.indexOf('train') < stages.indexOf('evaluate'),
      `live stages: ${stages.join(' → ')}`,
    );
    const { versions } = (await api('/api/versions')) as {
      versions: { id: string; metrics: { accuracy: number; macroF1: number } }[];
    };
    const v1 = versions.find((v) => v.id === 'v1');
    assert.ok(v1?.metrics, 'v1 was evaluated on the held-out set');
    await browser.page.waitForFunction(() =>
      JSON.parse(
        document.getElementById('chart-accuracy')?.dataset.series ?? '{"labels":[]}',
      ).labels.includes('v1'),
    );
    const after_ = await ui.chart('accuracy');
    assert.deepEqual(after_.labels, ['v0', 'v1']);
    assert.equal(after_.datasets[0].data[1], v1.metrics.accuracy);
    assert.equal(after_.datasets[1].data[1], v1.metrics.macroF1);
    assert.equal(
      await browser.page.textContent('#versions-body tr[data-version="v1"] td[data-metric=accuracy]'),
      `${(v1.metrics.accuracy * 100).toFixed(1)} %`,
    );
    // the round's history row and the site's contribution also arrive live
    await browser.page.waitForSelector('#rounds-body tr[data-round="1"]');
    await browser.page.waitForFunction(
      () =>
        document.querySelector('#sites-body tr[data-site="node-site-a"] td:nth-child(6)')?.textContent ===
        '1',
    );
    assert.equal((await ui.chart('bytes')).labels[0], 'round 1');
    assert.equal((await ui.chart('loss')).labels[0], 'round 1');
    await browser.page.waitForSelector('#fed-state[data-state=finished]');
    await browser.screenshot('console-overview.png', { copyTo: DOCS_IMG });
    await browser.screenshot('console-charts.png', { copyTo: DOCS_IMG, selector: '#charts' });
    assert.deepEqual(
      browser.log.filter((l) => l.includes('[pageerror]')),
      [],
      'no uncaught page errors',
    );

    // Act 5: revoking the site in the UI marks it revoked; logging out ends the session for the API too
    await ui.revoke('node-site-a');
    const sites = (await api('/api/sites')) as { id: string; revokedAt: string | null }[];
    assert.ok(sites.find((x) => x.id === 'node-site-a')?.revokedAt);
    await browser.page.click('#btn-logout');
    await browser.page.waitForSelector('#login:not([hidden])');
    const stale = await fetch(`${coord.url}/api/status`, {
      headers: { cookie: `fedlora_session=${session.value}` },
    });
    assert.equal(stale.status, 401);
  },
);
