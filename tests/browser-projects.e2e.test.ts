// The browser site joins the project its join token names (issue 21): the site page, given an enrollment link with a
// token of project 'triage', talks on triage's namespace, enrolls there (and nowhere else), and keeps the project in
// its address (?project=triage) for the visits after enrollment, which come without the token. In process: the tiny
// fake task (the page enrolls before it loads any model, which is as far as this test goes).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listeningTestCoordinator } from '@fedlora/coordinator/testing';
import { browserUnavailable, ensureSiteBuild, openBrowser } from './browser';
import { poll } from './federation-harness';

const skip = browserUnavailable();
if (skip) console.log(`# skipping the browser projects e2e test: ${skip}`);
const ADMIN = 'browser-projects-admin-token-0123456789';

test('when a browser site opens an enrollment link of another project, then it enrolls in that project only and its address keeps the project', { skip: skip ?? false, timeout: 180_000 }, async () => {
  ensureSiteBuild();
  const dir = mkdtempSync(join(tmpdir(), 'fedlora-browser-projects-'));
  const coord = await listeningTestCoordinator({ adminToken: ADMIN });
  const browser = await openBrowser('browser-projects');
  const api = async <T>(path: string, body?: unknown): Promise<T> => {
    const r = await fetch(`${coord.url}/api${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    assert.ok(r.ok, `${path}: ${r.status} ${await r.clone().text()}`);
    return (await r.json()) as T;
  };
  try {
    await api('/projects', { id: 'triage', labels: ['billing', 'tech'] });
    const { joinToken } = await api<{ joinToken: string }>('/projects/triage/sites', { name: 'web-ward' });
    assert.match(joinToken, /@triage$/);
    const csv = join(dir, 'tickets.csv');
    writeFileSync(csv, 'text,label\nI was charged twice,billing\nthe app crashes at login,tech\nrefund my card,billing\nblank screen after update,tech\n');

    const page = await browser.newPage('site', { isolated: true });
    await page.goto(`${coord.url}/site#token=${encodeURIComponent(joinToken)}`);
    const [chooser] = await Promise.all([page.waitForEvent('filechooser'), page.click('#data-file')]);
    await chooser.setFiles(csv);
    await page.locator('#join:not([disabled])').click();
    const enrolled = await poll(
      async () => (await api<{ id: string; enrolledAt: string | null }[]>('/projects/triage/sites')).find((s) => s.enrolledAt !== null),
      60_000,
      'the browser site enrolled in triage',
    );
    assert.equal(enrolled.id, 'web-ward');
    // nothing enrolled in the default project, and the page's address names the project (the token is gone from it)
    assert.deepEqual((await api<{ enrolledAt: string | null }[]>('/sites')).filter((s) => s.enrolledAt !== null), []);
    assert.match(page.url(), /\/site\/?\?project=triage$/);
  } finally {
    await browser.close();
    await coord.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
