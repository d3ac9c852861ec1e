// The operator guide's console pictures (docs/img/, docs/OPERATOR.md "Running for months") taken from the real
// federation an e2e test already runs: only with FEDLORA_DOCS_IMG=1, so a default test run opens no browser for them,
// takes no time and leaves the committed images alone.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { browserUnavailable, openBrowser, type BrowserSession } from './browser';
import { ConsolePage } from './console-page';
import { ROOT } from './federation-harness';

/** where the pictures go: docs/img/ with FEDLORA_DOCS_IMG=1, otherwise nowhere (and nothing is shot) */
export const DOCS_IMG = process.env.FEDLORA_DOCS_IMG === '1' ? join(ROOT, 'docs/img') : undefined;

const BUILT = join(ROOT, 'coordinator/dist/console/index.html');

/**
 * Logs into the console at `url` with `adminToken` in a fresh Chromium (1280 × 800) and lets `shoot` take its
 * pictures (browser.screenshot(file, {copyTo: DOCS_IMG, …})); the artifacts go to test-artifacts/<name>/ as usual.
 * Does nothing without FEDLORA_DOCS_IMG=1. Pictures that were asked for but cannot be taken fail the test rather than
 * leave the docs silently stale.
 */
export async function shootConsoleForDocs(
  name: string,
  url: string,
  adminToken: string,
  shoot: (browser: BrowserSession, ui: ConsolePage) => Promise<void>,
): Promise<void> {
  if (!DOCS_IMG) return;
  const why = browserUnavailable() ?? (existsSync(BUILT) ? null : `the console is not built (${BUILT}): run npm run build`);
  if (why) throw new Error(`FEDLORA_DOCS_IMG=1 asks for console pictures, but ${why}`);
  const browser = await openBrowser(name, { viewport: { width: 1280, height: 800 } });
  try {
    const ui = new ConsolePage(browser.page, url);
    await ui.open();
    assert.equal(await ui.login(adminToken), null, 'the console login');
    await shoot(browser, ui);
    assert.deepEqual(browser.log.filter((l) => l.includes('[pageerror]')), [], 'no uncaught page errors');
  } finally {
    await browser.close();
  }
}
