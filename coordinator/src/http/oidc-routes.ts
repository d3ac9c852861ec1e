// The console's OpenID Connect sign-in (users/oidc.ts does the protocol): three browser-facing routes outside /api,
// because they answer a browser's navigation (redirects and small HTML pages), not the console's JSON calls.
//   GET /auth/oidc/config    the sign-in button's label (404 when OIDC is not configured: the console hides it)
//   GET /auth/oidc/login     → 302 to the provider, with the flow's transaction in a cookie
//   GET /auth/oidc/callback  ← the provider; on success a console session, as POST /api/login makes
// A sign-in succeeds only for an existing, enabled user: the username claim names it. Every finished attempt is one
// audit entry (action login, detail "oidc"), refused ones included; callbacks are rate-limited like POST /api/login
// (the start only redirects: the provider limits its own sign-in page).

import express, { type NextFunction, type Request, type Response } from 'express';
import { isFedloraError } from '@fedlora/shared/errors.ts';
import type { AuditStore } from '../audit/audit-log';
import type { Logger } from '../log';
import type { OidcLogin, OidcTransaction } from '../users/oidc';
import type { UserStore } from '../users/types';
import { loginAddress, loginRateLimit, type LoginLimits } from './login-limits';
import { parseCookies, type AdminSessions } from './session';

export const OIDC_COOKIE = 'fedlora_oidc';
/** how long a person may take at the provider's sign-in page */
const TRANSACTION_TTL_S = 600;

export interface OidcRouteDeps {
  oidc: OidcLogin;
  sessions: AdminSessions;
  users: UserStore;
  audit: AuditStore;
  log: Logger;
  loginLimits: Pick<LoginLimits, 'attemptsPerWindow' | 'windowMs'>;
}

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);

/** A minimal page: the browser lands here from the provider, so a JSON error would be a dead end. */
function page(res: Response, status: number, title: string, body: string, refresh?: string): void {
  res
    .status(status)
    .type('html')
    .set('Cache-Control', 'no-store')
    .send(
      `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>` +
        (refresh ? `<meta http-equiv="refresh" content="0;url=${escapeHtml(refresh)}">` : '') +
        `</head><body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(body)}</p><p><a href="/console">Back to the console</a></p></body></html>`,
    );
}

const isHttps = (req: Request) => req.secure || req.get('x-forwarded-proto') === 'https';

/** The transaction cookie: SameSite=Lax because the provider's redirect back is a cross-site top-level GET. */
function transactionCookie(value: string, maxAge: number, secure: boolean): string {
  return [`${OIDC_COOKIE}=${value}`, 'Path=/auth/oidc', 'HttpOnly', 'SameSite=Lax', `Max-Age=${maxAge}`, ...(secure ? ['Secure'] : [])].join('; ');
}

function readTransaction(req: Request): OidcTransaction | null {
  const raw = parseCookies(req.get('cookie'))[OIDC_COOKIE];
  if (!raw) return null;
  try {
    const t = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as Partial<OidcTransaction>;
    return typeof t.state === 'string' && typeof t.nonce === 'string' && typeof t.verifier === 'string'
      ? { state: t.state, nonce: t.nonce, verifier: t.verifier }
      : null;
  } catch {
    return null;
  }
}

export function oidcRoutes(d: OidcRouteDeps): express.Router {
  const r = express.Router();
  const limit = loginRateLimit(d.loginLimits, d.log);

  r.get('/config', (_req, res) => {
    res.json({ label: d.oidc.settings.label });
  });

  r.get('/login', async (req, res) => {
    const { url, transaction } = await d.oidc.start();
    const value = Buffer.from(JSON.stringify(transaction), 'utf8').toString('base64url');
    res.set('Set-Cookie', transactionCookie(value, TRANSACTION_TTL_S, isHttps(req)));
    res.set('Cache-Control', 'no-store');
    res.redirect(302, url);
  });

  r.get('/callback', limit, async (req, res) => {
    const address = loginAddress(req);
    // the transaction is single-use: dropped whatever the outcome
    res.set('Set-Cookie', transactionCookie('', 0, isHttps(req)));
    const transaction = readTransaction(req);
    const refuse = async (code: string, actor: string, target: string, message: string) => {
      await d.audit.append({ actor, role: 'none', action: 'login', target, outcome: code, detail: 'oidc' });
      d.log('admin.login_refused', { address, method: 'oidc', reason: message });
      page(res, code === 'FORBIDDEN' ? 403 : 401, 'Sign-in refused', message);
    };
    if (!transaction)
      return refuse('UNAUTHORIZED', 'anonymous', 'oidc', 'this sign-in was not started here or took too long: start again from the console');
    let identity;
    try {
      identity = await d.oidc.finish(new URL(req.originalUrl, 'http://callback.invalid'), transaction);
    } catch (err) {
      if (!isFedloraError(err)) throw err;
      if (err.code === 'UNREACHABLE') return page(res, 503, 'Sign-in unavailable', err.message);
      return refuse(err.code, 'anonymous', 'oidc', err.message);
    }
    const user = await d.users.get(identity.username);
    // the same answer for an unknown and a disabled user; the audit entry keeps the provider's subject for the
    // operator, under a placeholder when no such user exists (as POST /api/login does)
    if (!user || user.disabled)
      return refuse(
        'FORBIDDEN',
        'anonymous',
        user ? user.username : '(unknown user)',
        `${identity.username} signed in at the provider but is not an enabled user of this coordinator: ask an admin to create it`,
      );
    await d.audit.append({ actor: user.username, role: user.role, action: 'login', target: user.username, outcome: 'ok', detail: 'oidc' });
    d.log('admin.login', { address, actor: user.username, method: 'oidc' });
    res.append('Set-Cookie', d.sessions.cookie(await d.sessions.create(user.username), isHttps(req)));
    // a page, not a redirect: the session cookie is SameSite=Strict, and a redirect chain that began at the provider
    // is a cross-site navigation that would load the console without it
    page(res, 200, 'Signed in', `Signed in as ${user.username} (${user.role}).`, '/console');
  });

  // the rate limiter's refusal, and anything unexpected, as a page
  r.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (isFedloraError(err, 'RATE_LIMITED')) return page(res, 429, 'Too many sign-in attempts', err.message);
    d.log('admin.oidc_error', { reason: err instanceof Error ? err.message : String(err) });
    const message = isFedloraError(err) ? err.message : 'the sign-in failed; see the coordinator log';
    page(res, isFedloraError(err, 'UNREACHABLE') ? 503 : 500, 'Sign-in failed', message);
  });
  return r;
}
