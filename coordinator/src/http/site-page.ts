// Serves the browser site page (client-web/, built by Vite into client-web/dist/ by `npm run build`) at `/site`,
// so a site operator only needs the coordinator's address (enrollment links: /site/#token=…). Without a build,
// `/site/` says how to make one instead of a 404.

import { fileURLToPath } from 'node:url';
import type express from 'express';
import { builtPageRoutes } from './built-page';

export const DEFAULT_SITE_DIR = fileURLToPath(new URL('../../../client-web/dist', import.meta.url));

/**
 * Same-origin only (the socket, model chunks and the tfjs wasm files all come from the coordinator);
 * 'wasm-unsafe-eval' lets the wasm backend compile its binary, without allowing eval of scripts.
 */
const CSP = [
  "default-src 'self'",
  "connect-src 'self' ws: wss:",
  "img-src 'self' data:",
  "style-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "worker-src 'self' blob:",
  "frame-ancestors 'none'",
  "base-uri 'self'",
  "form-action 'none'",
].join('; ');

export const MISSING_SITE_BUILD = `<!doctype html>
<meta charset="utf-8"><title>fedlora site page: not built</title>
<h1>The fedlora site page is not built</h1>
<p>The coordinator is running, but <code>client-web/dist/</code> is missing. Build it from the repository root with
<code>npm run build</code> (<code>npm ci</code> does this too), then reload.</p>
`;

/** Mount at '/site'. */
export function sitePageRoutes(dir: string = DEFAULT_SITE_DIR): express.Router {
  return builtPageRoutes({ dir, csp: CSP, missingHtml: MISSING_SITE_BUILD });
}
