// Origin check for cookie-authenticated writes. The console's session cookie is SameSite=Strict, which keeps other
// *sites* from sending it, but a page on another origin of the same site (another port of the same host, a sibling
// subdomain) still gets it attached to its requests, and a plain HTML form needs no CORS preflight to POST. So a
// state-changing request that does not carry its own Bearer token must come from the coordinator's own origin, or
// from one the operator allowed with --allowed-origin (the public origin behind a reverse proxy that rewrites Host).

import type { NextFunction, Request, Response } from 'express';
import { FedloraError } from '@fedlora/shared/errors.ts';
import type { Logger } from '../log';
import { bearerToken } from './session';

/** Methods that change nothing on the coordinator (a browser may send these cross-origin freely). */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * "https://Fedlora.example.org:443/" → "https://fedlora.example.org". CONFIG_INVALID for anything that is not a bare
 * http(s) origin (a path, query, credentials or another scheme would never equal a browser's Origin header).
 */
export function parseAllowedOrigin(value: string): string {
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw new FedloraError(
      'CONFIG_INVALID',
      `--allowed-origin: "${value}" is not a URL such as https://host:port`,
    );
  }
  if (
    (url.protocol !== 'http:' && url.protocol !== 'https:') ||
    url.username ||
    url.password ||
    url.pathname !== '/' ||
    url.search ||
    url.hash
  )
    throw new FedloraError(
      'CONFIG_INVALID',
      `--allowed-origin: "${value}" must be a scheme, host and optional port only (e.g. https://fedlora.example.org)`,
    );
  return url.origin;
}

export interface RequestOriginHeaders {
  origin?: string;
  host?: string;
  /** Fetch Metadata: what the browser says about the request's initiator (same-origin, same-site, cross-site, none) */
  secFetchSite?: string;
}

/** Origin's host:port equals the Host header (default ports compared as the Origin's scheme implies). */
function sameHost(origin: URL, host: string): boolean {
  try {
    return new URL(`${origin.protocol}//${host}`).host === origin.host;
  } catch {
    return false;
  }
}

/**
 * Why a browser request must not act with the session cookie, or null when it may: its Origin is this coordinator
 * (Origin's host = Host) or an allowed origin. Without an Origin header, Fetch Metadata decides; with neither the
 * client is not a browser (browsers send Origin on every POST/PUT/PATCH/DELETE), so it holds no ambient cookie.
 */
export function crossOriginReason(h: RequestOriginHeaders, allowed: ReadonlySet<string>): string | null {
  if (h.origin !== undefined) {
    let origin: URL | null = null;
    try {
      origin = h.origin === 'null' ? null : new URL(h.origin);
    } catch {
      /* an unparsable Origin is refused below */
    }
    if (origin && (allowed.has(origin.origin) || (h.host !== undefined && sameHost(origin, h.host))))
      return null;
    return (
      `a request from origin ${h.origin} may not act with the console's session cookie here; ` +
      'use Authorization: Bearer <admin token>, or start the coordinator with --allowed-origin for that origin'
    );
  }
  if (h.secFetchSite !== undefined && h.secFetchSite !== 'same-origin' && h.secFetchSite !== 'none')
    return `a ${h.secFetchSite} request may not act with the console's session cookie`;
  return null;
}

/**
 * Express middleware: a POST/PUT/PATCH/DELETE without a Bearer token is refused with 403 CROSS_ORIGIN unless
 * crossOriginReason lets it through. Bearer requests (scripts) are judged by their token alone and pass untouched.
 */
export function cookieWriteOriginCheck(allowedOrigins: readonly string[], log: Logger) {
  const allowed = new Set(allowedOrigins);
  return (req: Request, _res: Response, next: NextFunction) => {
    if (SAFE_METHODS.has(req.method) || bearerToken(req.get('authorization')) !== undefined) return next();
    const why = crossOriginReason(
      { origin: req.get('origin'), host: req.get('host'), secFetchSite: req.get('sec-fetch-site') },
      allowed,
    );
    if (why === null) return next();
    log('admin.cross_origin_refused', { method: req.method, path: req.path, origin: req.get('origin') });
    next(new FedloraError('CROSS_ORIGIN', why));
  };
}
