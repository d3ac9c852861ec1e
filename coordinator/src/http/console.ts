// Serves the admin console (coordinator/web/, built by Vite into coordinator/dist/console/ by `npm run build`, which
// `npm ci` runs through the root `prepare` script) at `/`. Without a build, `/` says how to make one instead of a 404.

import { fileURLToPath } from 'node:url';
import type express from 'express';
import { builtPageRoutes } from './built-page';

export const DEFAULT_CONSOLE_DIR = fileURLToPath(new URL('../../dist/console', import.meta.url));

/** The page talks only to its own origin (REST + socket.io); no inline scripts, no frames. */
const CSP = [
  "default-src 'self'",
  "connect-src 'self' ws: wss:",
  "img-src 'self' data:",
  "style-src 'self'",
  "script-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join('; ');

export const MISSING_BUILD = `<!doctype html>
<meta charset="utf-8"><title>fedlora console: not built</title>
<h1>The fedlora admin console is not built</h1>
<p>The coordinator and its <code>/api</code> are running, but <code>coordinator/dist/console/</code> is missing.
Build it from the repository root with <code>npm run build</code> (<code>npm ci</code> does this too), then reload.</p>
`;

export function consoleRoutes(dir: string = DEFAULT_CONSOLE_DIR): express.Router {
  return builtPageRoutes({ dir, csp: CSP, missingHtml: MISSING_BUILD });
}
