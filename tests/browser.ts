// Chromium for the browser e2e tests: Debian's headless Chromium (installed by .ci/run) through playwright-core, with
// WebGPU on SwiftShader (a CPU "GPU"; docs/BACKENDS.md), the pages' console and errors collected, and screenshots in
// test-artifacts/<name>/ (gitignored). Also the site page's Vite build and a static server for tests without a coordinator.

import { createServer } from 'node:http';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { extname, join, normalize } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const CHROMIUM = process.env.FEDLORA_CHROMIUM ?? '/usr/bin/chromium';
/** headless, no sandbox (CI containers run as root), no background traffic, WebGPU on SwiftShader */
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
  /** the first page's context */
  context: BrowserContext;
  page: Page;
  /** test-artifacts/<name>/ */
  artifacts: string;
  /** every page's console lines and uncaught errors, in order ("[error] …", "site [pageerror] …") */
  log: string[];
  /** PNG of a page (the first by default; full page unless told) or of one element (`selector`) into the artifacts
   * folder, and into `copyTo` too when given (e.g. docs/img/); returns the artifact's path */
  screenshot(
    file: string,
    o?: { page?: Page; copyTo?: string; fullPage?: boolean; selector?: string },
  ): Promise<string>;
  /** another tab whose log lines are prefixed with `tag`; `isolated` gives it its own context (cookies, IndexedDB),
   * as if opened on another machine */
  newPage(tag: string, o?: { isolated?: boolean }): Promise<Page>;
  close(): Promise<void>;
}

function record(page: Page, log: string[], tag = ''): void {
  page.on('console', (m) => log.push(`${tag}[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => log.push(`${tag}[pageerror] ${e.message}`));
}

/** Launches Chromium (a fresh temporary profile per context); the log is saved next to the screenshots on close. */
export async function openBrowser(
  name: string,
  o: { viewport?: { width: number; height: number } } = {},
): Promise<BrowserSession> {
  const artifacts = join(ROOT, 'test-artifacts', name);
  mkdirSync(artifacts, { recursive: true });
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  const viewport = o.viewport ?? { width: 1360, height: 900 };
  const context = await browser.newContext({ viewport });
  const log: string[] = [];
  const page = await context.newPage();
  record(page, log);
  return {
    context,
    page,
    artifacts,
    log,
    async screenshot(file, so = {}) {
      const path = join(artifacts, file);
      const on = so.page ?? page;
      const png = so.selector
        ? await on.locator(so.selector).screenshot({ path })
        : await on.screenshot({ path, fullPage: so.fullPage ?? true });
      if (so.copyTo) {
        mkdirSync(so.copyTo, { recursive: true });
        writeFileSync(join(so.copyTo, file), png);
      }
      return path;
    },
    async newPage(tag, no = {}) {
      const p = await (no.isolated ? await browser.newContext({ viewport }) : context).newPage();
      record(p, log, `${tag} `);
      return p;
    },
    async close() {
      writeFileSync(join(artifacts, 'browser.log'), log.join('\n') + '\n');
      await browser.close().catch(() => {});
    },
  };
}

/** client-web/dist, running `vite build` first when it is missing (the install step normally builds it). */
export function ensureSiteBuild(): string {
  const dist = join(ROOT, 'client-web/dist');
  if (existsSync(join(dist, 'index.html'))) return dist;
  const vite = join(ROOT, 'node_modules/vite/bin/vite.js');
  const r = spawnSync(process.execPath, [vite, 'build', '--logLevel', 'error'], {
    cwd: join(ROOT, 'client-web'),
    stdio: 'inherit',
  });
  if (r.status !== 0) throw new Error(`vite build of client-web failed (exit ${r.status})`);
  return dist;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
};

/** Serves each URL prefix ('/site/') from a directory, on 127.0.0.1 and a free port. */
export async function serveStatic(
  mounts: Record<string, string>,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const prefix = Object.keys(mounts).find((p) => path.startsWith(p));
    if (!prefix) return void res.writeHead(404).end();
    const rel = normalize(path.slice(prefix.length) || 'index.html');
    const file = join(mounts[prefix], rel);
    if (rel.startsWith('..') || !existsSync(file) || !statSync(file).isFile())
      return void res.writeHead(404).end();
    res
      .writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' })
      .end(readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
