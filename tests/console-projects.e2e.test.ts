// The console's project switcher in a real Chromium (issue 21, must-show 5 with projects): an operator logs in, switches
// to the 'triage' project, sees that project's versions (not the default project's), approves its candidate, and finds
// the approval in the Audit view, recorded for project triage; an operator assigned to one project sees only it.
// An in-process coordinator (fake task, no model): the candidate is published to triage's registry directly.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { listeningTestCoordinator, tinyAdapter } from '@fedlora/coordinator/testing';
import { browserUnavailable, openBrowser } from './browser';
import { ROOT } from './federation-harness';

const BUILT = join(ROOT, 'coordinator/dist/console/index.html');
const skip = browserUnavailable() ?? (existsSync(BUILT) ? null : `the console is not built (${BUILT}): run npm run build`);
if (skip) console.log(`# skipping the console projects e2e test: ${skip}`);
const ADMIN = 'projects-e2e-admin-token-0123456789';
const PASSWORD = 'operator passphrase 2026';

test('when an operator switches the console to another project and approves its candidate, then the page shows that project only and the audit entry names it', { skip: skip ?? false, timeout: 180_000 }, async () => {
  const coord = await listeningTestCoordinator({ adminToken: ADMIN });
  const browser = await openBrowser('console-projects');
  const admin = (path: string, body: unknown) =>
    fetch(`${coord.url}/api${path}`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  try {
    assert.equal((await admin('/projects', { id: 'triage', labels: ['billing', 'shipping', 'tech'], settings: { promotion: 'manual' } })).status, 201);
    assert.equal((await admin('/users', { username: 'tom', role: 'operator', password: PASSWORD })).status, 201);
    assert.equal((await admin('/users', { username: 'tina', role: 'operator', password: PASSWORD, projects: ['triage'] })).status, 201);
    const triage = coord.projects.get('triage');
    assert.ok(triage);
    await triage.store.addVersion(
      { parent: 'v0', round: 1, strategy: 'fedavg', sites: 2, examples: 20, metrics: null, trainMetrics: {}, uploadedBytes: 0 },
      tinyAdapter(0.1),
      null,
      { candidate: true },
    );
    const page = browser.page;
    const login = async (username: string) => {
      await page.goto(`${coord.url}/`);
      await page.locator('#login:not([hidden])').waitFor();
      await page.fill('#username', username);
      await page.fill('#password', PASSWORD);
      await page.click('#login-form button[type=submit]');
      await page.waitForSelector('#app:not([hidden])[data-socket=connected]');
      await page.waitForFunction((u) => document.getElementById('who')?.textContent === `${u} (operator)`, username);
    };
    await login('tom');
    // the default project first: its own v0 only
    await page.waitForSelector('#project-pick:not([hidden])');
    assert.deepEqual(await page.$$eval('#project option', (os) => os.map((o) => (o as HTMLOptionElement).value)), ['default', 'triage']);
    await page.waitForSelector('#versions-body tr[data-version="v0"]');
    assert.equal(await page.locator('#versions-body tr[data-version="v1"]').count(), 0);

    await page.selectOption('#project', 'triage');
    const row = '#versions-body tr[data-version="v1"]';
    await page.waitForSelector(`${row} button[data-action=approve]`);
    assert.match(page.url(), /#project=triage$/);
    page.on('dialog', (d) => void d.accept('triage board approved'));
    await page.click(`${row} button[data-action=approve]`);
    await page.waitForFunction((sel) => document.querySelector(sel)?.textContent === 'current', `${row} td[data-col=status] .badge`);
    const entry = '#audit-body tr:has(td[data-col=action]:text-is("version.approve"))';
    await page.waitForSelector(entry);
    assert.equal((await page.textContent(`${entry} td[data-col=actor]`))?.trim(), 'tom (operator)');
    assert.equal((await page.textContent(`${entry} td[data-col=target]`))?.trim(), 'v1');
    await browser.screenshot('console-projects.png', { selector: 'header' });

    // the approval acted on triage, and the audit entry says so; the default project has no v1
    assert.equal(await triage.store.currentId(), 'v1');
    assert.equal(await coord.store.currentId(), 'v0');
    const audit = (await (await fetch(`${coord.url}/api/audit`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as {
      entries: { actor: string; action: string; target: string; project: string }[];
    };
    const approve = audit.entries.find((e) => e.action === 'version.approve');
    assert.deepEqual([approve?.actor, approve?.target, approve?.project], ['tom', 'v1', 'triage']);

    // a reload keeps the project (the URL's hash)
    await page.reload();
    await page.waitForSelector('#app:not([hidden])[data-socket=connected]');
    await page.waitForFunction(() => (document.getElementById('project') as HTMLSelectElement | null)?.value === 'triage');

    // an operator assigned to triage only: no switcher, and the page shows triage
    await page.click('#btn-logout');
    await login('tina');
    await page.waitForSelector('#versions-body tr[data-version="v1"]');
    assert.equal(await page.isVisible('#project-pick'), false);
    assert.deepEqual(await page.$$eval('#project option', (os) => os.map((o) => (o as HTMLOptionElement).value)), ['triage']);
    assert.deepEqual(browser.log.filter((l) => l.includes('[pageerror]')), [], 'no uncaught page errors');
  } finally {
    await browser.close();
    await coord.close();
  }
});
