// Users, roles and the audit trail in a real Chromium (issue 21, must-show 5 without projects): an operator logs in
// with a username and password, sees their name and role, has no settings or user management, approves a candidate,
// and finds the approval as an entry of the Audit table (and in GET /api/audit); a viewer sees no action buttons.
// An in-process coordinator (fake task, no model): the candidate is published to its registry directly.
// Screenshot of the Audit view: test-artifacts/console-governance/ (and docs/img/ with FEDLORA_DOCS_IMG=1).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_SETTINGS } from '@fedlora/coordinator';
import { listeningTestCoordinator, tinyAdapter } from '@fedlora/coordinator/testing';
import { browserUnavailable, openBrowser } from './browser';
import { ROOT } from './federation-harness';
import { DOCS_IMG } from './console-docs-shots';

const BUILT = join(ROOT, 'coordinator/dist/console/index.html');
const skip = browserUnavailable() ?? (existsSync(BUILT) ? null : `the console is not built (${BUILT}): run npm run build`);
if (skip) console.log(`# skipping the console governance e2e test: ${skip}`);
const ADMIN = 'governance-e2e-admin-token-0123456789';
const PASSWORD = 'operator passphrase 2026';

test('when an operator logs in with a password and approves a candidate, then the console shows the role and the approval appears in the Audit view', { skip: skip ?? false, timeout: 180_000 }, async () => {
  const coord = await listeningTestCoordinator({ adminToken: ADMIN, settings: { ...DEFAULT_SETTINGS, promotion: 'manual' } });
  const browser = await openBrowser('console-governance');
  const admin = (path: string, body: unknown) =>
    fetch(`${coord.url}/api${path}`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  try {
    assert.equal((await admin('/users', { username: 'olivia', role: 'operator', password: PASSWORD })).status, 201);
    await coord.store.addVersion(
      { parent: 'v0', round: 1, strategy: 'fedavg', sites: 2, examples: 20, metrics: null, trainMetrics: {}, uploadedBytes: 0 },
      tinyAdapter(0.1),
      null,
      { candidate: true },
    );
    const page = browser.page;
    await page.goto(`${coord.url}/`);
    await page.locator('#login:not([hidden])').waitFor();
    await page.fill('#username', 'olivia');
    await page.fill('#password', PASSWORD);
    await page.click('#login-form button[type=submit]');
    await page.waitForSelector('#app:not([hidden])[data-socket=connected]');
    await page.waitForFunction(() => document.getElementById('who')?.textContent === 'olivia (operator)');
    // an operator runs the federation but neither changes settings nor manages users
    assert.equal(await page.isVisible('#btn-start'), true);
    assert.equal(await page.isVisible('#users'), false);
    assert.equal(await page.isVisible('#settings-form'), false);

    const row = '#versions-body tr[data-version="v1"]';
    await page.waitForSelector(`${row} button[data-action=approve]`);
    page.on('dialog', (d) => void d.accept('signed off by the review board'));
    await page.click(`${row} button[data-action=approve]`);
    await page.waitForFunction((sel) => document.querySelector(sel)?.textContent === 'current', `${row} td[data-col=status] .badge`);
    const entry = '#audit-body tr:has(td[data-col=action]:text-is("version.approve"))';
    await page.waitForSelector(entry);
    assert.equal((await page.textContent(`${entry} td[data-col=actor]`))?.trim(), 'olivia (operator)');
    assert.equal((await page.textContent(`${entry} td[data-col=target]`))?.trim(), 'v1');
    assert.equal((await page.textContent(`${entry} td[data-col=outcome]`))?.trim(), 'ok');
    await page.waitForFunction(() => /Hash chain verified/.test(document.getElementById('audit-check')?.textContent ?? ''));
    await browser.screenshot('console-governance.png', { copyTo: DOCS_IMG, selector: '#audit' });

    const audit = (await (await fetch(`${coord.url}/api/audit`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as {
      entries: { actor: string; action: string; target: string; outcome: string; detail?: string }[];
    };
    const approve = audit.entries.find((e) => e.action === 'version.approve');
    assert.deepEqual([approve?.actor, approve?.target, approve?.outcome, approve?.detail], ['olivia', 'v1', 'ok', 'signed off by the review board']);
    assert.ok(audit.entries.some((e) => e.action === 'login' && e.actor === 'olivia' && e.outcome === 'ok'));

    // a viewer: no start, no row actions
    assert.equal((await admin('/users', { username: 'victor', role: 'viewer', password: PASSWORD })).status, 201);
    await page.click('#btn-logout');
    await page.locator('#login:not([hidden])').waitFor();
    await page.fill('#username', 'victor');
    await page.fill('#password', PASSWORD);
    await page.click('#login-form button[type=submit]');
    await page.waitForFunction(() => document.getElementById('who')?.textContent === 'victor (viewer)');
    assert.equal(await page.isVisible('#btn-start'), false);
    assert.equal(await page.isVisible('#enroll-form'), false);
    assert.equal(await page.locator('#versions-body button:visible').count(), 0);
    assert.deepEqual(browser.log.filter((l) => l.includes('[pageerror]')), [], 'no uncaught page errors');
  } finally {
    await browser.close();
    await coord.close();
  }
});
