// Promotion and approval in a real Chromium (issue 20, must-show 3): under the manual policy the versions view shows
// candidates with Approve and Reject; each asks for a reason (a prompt), and the decision appears in the view and in
// GET /api/versions with the reason and the actor ("bootstrap-token": the console logged in with the bootstrap admin token). An in-process coordinator
// (fake task, no model): the candidates are published to its registry directly, as the version stage would.
// Screenshot: test-artifacts/console-approval/ (and docs/img/ with FEDLORA_DOCS_IMG=1).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_SETTINGS } from '@fedlora/coordinator';
import { listeningTestCoordinator, tinyAdapter } from '@fedlora/coordinator/testing';
import { browserUnavailable, openBrowser } from './browser';
import { ConsolePage } from './console-page';
import { ROOT } from './federation-harness';

const BUILT = join(ROOT, 'coordinator/dist/console/index.html');
const skip = browserUnavailable() ?? (existsSync(BUILT) ? null : `the console is not built (${BUILT}): run npm run build`);
if (skip) console.log(`# skipping the console approval e2e test: ${skip}`);
const DOCS_IMG = process.env.FEDLORA_DOCS_IMG === '1' ? join(ROOT, 'docs/img') : undefined;
const ADMIN = 'approval-e2e-admin-token-0123456789';

test('when the policy is manual, then the operator approves one candidate and rejects another in the console, each with a recorded reason', { skip: skip ?? false, timeout: 180_000 }, async () => {
  const coord = await listeningTestCoordinator({ adminToken: ADMIN, settings: { ...DEFAULT_SETTINGS, promotion: 'manual' } });
  const browser = await openBrowser('console-approval');
  try {
    for (const round of [1, 2])
      await coord.store.addVersion(
        { parent: 'v0', round, strategy: 'fedavg', sites: 2, examples: 20, metrics: null, trainMetrics: {}, uploadedBytes: 0 },
        tinyAdapter(round / 10),
        null,
        { candidate: true },
      );
    const ui = new ConsolePage(browser.page, coord.url as string);
    await ui.open();
    assert.equal(await ui.login(ADMIN), null);
    await ui.waitForVersion('v2', 30_000);
    const row = (id: string) => `#versions-body tr[data-version="${id}"]`;
    assert.equal((await browser.page.textContent(`${row('v1')} td[data-col=status] .badge`))?.trim(), 'candidate');

    // the operator guide's picture of the candidates waiting, before either is decided (FEDLORA_DOCS_IMG=1 only)
    if (DOCS_IMG) await browser.screenshot('console-candidates.png', { copyTo: DOCS_IMG, selector: '#versions-table' });

    // the reason prompt: approve v1, reject v2
    const reasons = ['signed off by the review board', 'macro-F1 dropped on site B'];
    browser.page.on('dialog', (d) => void d.accept(reasons.shift()));
    await browser.page.click(`${row('v1')} button[data-action=approve]`);
    await browser.page.waitForFunction((sel) => document.querySelector(sel)?.textContent === 'current', `${row('v1')} td[data-col=status] .badge`);
    await browser.page.click(`${row('v2')} button[data-action=reject]`);
    await browser.page.waitForFunction((sel) => document.querySelector(sel)?.textContent === 'rejected', `${row('v2')} td[data-col=status] .badge`);
    assert.match((await browser.page.textContent(`${row('v2')} td[data-col=status] .decision`)) ?? '', /^reject by bootstrap-token: macro-F1 dropped on site B$/);
    assert.equal(await browser.page.locator(`${row('v2')} button[data-action=promote]`).count(), 1, 'a rejected version can still be promoted explicitly');
    // the table, not its section: the table is wider than the section
    await browser.screenshot('console-approval.png', { copyTo: DOCS_IMG, selector: '#versions-table' });

    const list = (await (await fetch(`${coord.url}/api/versions`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as {
      currentId: string;
      versions: { id: string; status: string; decisions: { action: string; actor: string; reason: string }[] }[];
    };
    assert.equal(list.currentId, 'v1');
    const v1 = list.versions.find((v) => v.id === 'v1');
    const v2 = list.versions.find((v) => v.id === 'v2');
    assert.deepEqual([v1?.status, v1?.decisions.at(-1)?.action, v1?.decisions.at(-1)?.reason], ['promoted', 'approve', 'signed off by the review board']);
    assert.deepEqual([v2?.status, v2?.decisions.at(-1)?.action, v2?.decisions.at(-1)?.reason], ['rejected', 'reject', 'macro-F1 dropped on site B']);
    assert.equal(v1?.decisions.at(-1)?.actor, 'bootstrap-token');
    assert.deepEqual(browser.log.filter((l) => l.includes('[pageerror]')), [], 'no uncaught page errors');
  } finally {
    await browser.close();
    await coord.close();
  }
});
