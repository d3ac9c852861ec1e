// Serves the admin console (coordinator/web/, built by Vite into coordinator/dist/console/ by `npm run build`, which
// `npm ci` runs through the root `prepare` script) at `/`. Without a build, `/` says how to make one instead of a 404.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type Response } from 'express';

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

function secure(res: Response): void {
  res.set({
    'Content-Security-Policy': CSP,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'X-Frame-Options': 'DENY',
  });
}

export const MISSING_BUILD = `<!doctype html>
<meta charset="utf-8"><title>fedlora console: not built</title>
<h1>The fedlora admin console is not built</h1>
<p>The coordinator and its <code>/api</code> are running, but <code>coordinator/dist/console/</code> is missing.
Build it from the repository root with <code>npm run build</code> (<code>npm ci</code> does this too), then reload.</p>
`;

export function consoleRoutes(dir: string = DEFAULT_CONSOLE_DIR): express.Router {
  const r = express.Router();
  const serve = express.static(dir, {
    index: 'index.html',
    setHeaders: (res) => secure(res as unknown as Response),
  });
  r.use((req, res, next) => {
    const root = req.path === '/' || req.path === '/index.html';
    // checked per request: a build made after the coordinator started is picked up without a restart
    if (root && (req.method === 'GET' || req.method === 'HEAD') && !existsSync(join(dir, 'index.html'))) {
      secure(res);
      res.status(503).type('html').send(MISSING_BUILD);
      return;
    }
    serve(req, res, next);
  });
  return r;
}
