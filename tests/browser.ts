// Playwright helper for the browser e2e tests: Debian's headless Chromium (installed by .ci/run) through
// playwright-core, with SwiftShader WebGPU (docs/DEVELOPERS.md), a fresh profile per session, the page's console
// and errors collected, and screenshots written to test-artifacts/<name>/ (gitignored).

import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

export const REPO = fileURLToPath(new URL('..', import.meta.url));
export const CHROMIUM = process.env.FEDLORA_CHROMIUM ?? '/usr/bin/chromium';
/** headless, no sandbox (CI containers run as root), no background traffic, WebGPU on SwiftShader (a CPU "GPU") */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu-sandbox',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--enable-unsafe-webgpu',
  '--use-webgpu-adapter=swiftshader',
  '--enable-unsafe-swiftshader',
];

/** Why browser tests cannot run here (null: they can). Tests skip with this reason. */
export function browserUnavailable(): string | null {
  return existsSync(CHROMIUM)
    ? null
    : `no Chromium at ${CHROMIUM} (install it: .ci/run does; or set FEDLORA_CHROMIUM)`;
}

export interface BrowserSession {
  context: BrowserContext;
  page: Page;
  /** test-artifacts/<name>/ */
  artifacts: string;
  /** the page's console lines and uncaught errors, in order ("[error] …", "[pageerror] …") */
  log: string[];
  /** PNG of the page (full page by default) or of one element (`selector`) into the artifacts folder, and into
   * `copyTo` too when given (e.g. docs/img/); returns the artifact's path */
  screenshot(file: string, o?: { copyTo?: string; fullPage?: boolean; selector?: string }): Promise<string>;
  /** a second tab in the same profile (its log lines are prefixed with `tag`) */
  newPage(tag: string): Promise<Page>;
  close(): Promise<void>;
}

function record(page: Page, log: string[], tag = ''): void {
  page.on('console', (m) => log.push(`${tag}[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`${tag}[pageerror] ${e.message}`));
}

/** Launches Chromium with a fresh user-data-dir (removed on close); the log is saved next to the screenshots. */
export async function openBrowser(
  name: string,
  o: { viewport?: { width: number; height: number } } = {},
): Promise<BrowserSession> {
  const artifacts = join(REPO, 'test-artifacts', name);
  mkdirSync(artifacts, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), 'fedlora-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: o.viewport ?? { width: 1360, height: 900 },
  });
  const log: string[] = [];
  const page = context.pages()[0] ?? (await context.newPage());
  record(page, log);
  return {
    context,
    page,
    artifacts,
    log,
    async screenshot(file, so = {}) {
      const path = join(artifacts, file);
      const png = so.selector
        ? await page.locator(so.selector).screenshot({ path })
        : await page.screenshot({ path, fullPage: so.fullPage ?? true });
      if (so.copyTo) {
        mkdirSync(so.copyTo, { recursive: true });
        writeFileSync(join(so.copyTo, file), png);
      }
      return path;
    },
    async newPage(tag) {
      const p = await context.newPage();
      record(p, log, `${tag} `);
      return p;
    },
    async close() {
      writeFileSync(join(artifacts, 'browser.log'), log.join('\n') + '\n');
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
