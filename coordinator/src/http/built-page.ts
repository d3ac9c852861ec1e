// Serves one Vite-built web page (a folder with index.html and assets) with its security headers; when the build is
// missing, the page's root answers 503 with a note on how to build it instead of a bare 404.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import express, { type Response } from 'express';

export interface BuiltPage {
  dir: string;
  /** Content-Security-Policy of the page */
  csp: string;
  /** HTML answered at the root while the build is missing */
  missingHtml: string;
}

export function builtPageRoutes(page: BuiltPage): express.Router {
  const secure = (res: Response) =>
    res.set({
      'Content-Security-Policy': page.csp,
      'X-Content-Type-Options': 'nosniff',
      // the site page's join token rides in the URL fragment, which is never sent; no referrer either
      'Referrer-Policy': 'no-referrer',
      'X-Frame-Options': 'DENY',
    });
  const r = express.Router();
  const serve = express.static(page.dir, {
    index: 'index.html',
    setHeaders: (res) => secure(res as unknown as Response),
  });
  r.use((req, res, next) => {
    const root = req.path === '/' || req.path === '/index.html';
    // checked per request: a build made after the coordinator started is picked up without a restart
    if (
      root &&
      (req.method === 'GET' || req.method === 'HEAD') &&
      !existsSync(join(page.dir, 'index.html'))
    ) {
      secure(res);
      res.status(503).type('html').send(page.missingHtml);
      return;
    }
    serve(req, res, next);
  });
  return r;
}
