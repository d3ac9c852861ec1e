// Admin sessions for the web console: POST /api/login trades the admin token for a random session id kept
// server-side and sent back as an HttpOnly, SameSite=Strict cookie, so the token never sits in page JS storage or a
// URL. The REST API and the /admin socket.io namespace accept either `Authorization: Bearer <token>` or the cookie.
// Sessions live in a SessionStore: this process's memory by default, the shared database when several coordinator
// processes serve one console (a login on one is valid on all, a logout on one ends it everywhere).

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const SESSION_COOKIE = 'fedlora_session';
/** a console left open over a working day stays logged in; after that the operator logs in again */
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
/** bounds memory if someone with the token logs in in a loop; the oldest sessions go first */
const MAX_SESSIONS = 256;

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/** `a=1; b=2` → {a: '1', b: '2'} (values URI-decoded; a malformed value is skipped, not thrown). */
export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of (header ?? '').split(';')) {
    const part = raw.trim();
    const eq = part.indexOf('=');
    if (eq < 1) continue;
    const name = part.slice(0, eq).trim();
    try {
      out[name] = decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      /* not ours to fix */
    }
  }
  return out;
}

/**
 * The token of an `Authorization: Bearer <token>` header, or undefined. A request that carries one is judged by it
 * alone (a cookie next to it is ignored), so it has no ambient browser authority.
 */
export function bearerToken(authorization: string | undefined): string | undefined {
  return /^Bearer (.+)$/.exec(authorization ?? '')?.[1];
}

/**
 * Where sessions are kept, by the hash of their id (a store's contents never hand out a live cookie), each with its
 * expiry in epoch ms. Callers await every method.
 */
export interface SessionStore {
  put(idHash: string, expiresAt: number, now: number): Promise<void>;
  /** the expiry, or undefined for an unknown session */
  get(idHash: string): Promise<number | undefined>;
  delete(idHash: string): Promise<void>;
}

/** One process's sessions, bounded: if someone with the token logs in in a loop, the oldest go first. */
export class MemorySessionStore implements SessionStore {
  private readonly sessions = new Map<string, number>();

  async put(idHash: string, expiresAt: number, now: number): Promise<void> {
    for (const [k, exp] of this.sessions) if (exp <= now) this.sessions.delete(k);
    while (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value as string);
    this.sessions.set(idHash, expiresAt);
  }

  async get(idHash: string): Promise<number | undefined> {
    return this.sessions.get(idHash);
  }

  async delete(idHash: string): Promise<void> {
    this.sessions.delete(idHash);
  }
}

export class AdminSessions {
  private readonly expected: Buffer;

  constructor(
    adminToken: string,
    private readonly now: () => number = Date.now,
    readonly ttlMs = SESSION_TTL_MS,
    private readonly store: SessionStore = new MemorySessionStore(),
  ) {
    this.expected = digest(adminToken);
  }

  /** Constant-time: both sides are hashed first, so neither length nor prefix leaks. */
  checkToken(token: unknown): boolean {
    return typeof token === 'string' && timingSafeEqual(digest(token), this.expected);
  }

  /** A new session id (256 random bits). */
  async create(): Promise<string> {
    const id = randomBytes(32).toString('base64url');
    const t = this.now();
    await this.store.put(digest(id).toString('hex'), t + this.ttlMs, t);
    return id;
  }

  async valid(id: string | undefined): Promise<boolean> {
    if (!id) return false;
    const k = digest(id).toString('hex');
    const exp = await this.store.get(k);
    if (exp === undefined) return false;
    if (exp <= this.now()) {
      await this.store.delete(k);
      return false;
    }
    return true;
  }

  async destroy(id: string | undefined): Promise<void> {
    if (id) await this.store.delete(digest(id).toString('hex'));
  }

  /** The session id carried by a Cookie header, if any. */
  fromCookies(header: string | undefined): string | undefined {
    return parseCookies(header)[SESSION_COOKIE];
  }

  /**
   * Who an authorized request is, for the records of its decisions (promotion and approval): there is one admin, so
   * this says only how it authenticated, "admin (token)" or "admin (session <first 12 hex of the session id's
   * SHA-256>)" (the hash the session store keys it by, never the id or the token).
   */
  actor(h: { authorization?: string; cookie?: string }): string {
    if (bearerToken(h.authorization) !== undefined) return 'admin (token)';
    const id = this.fromCookies(h.cookie);
    return id ? `admin (session ${digest(id).toString('hex').slice(0, 12)})` : 'admin';
  }

  /** true if the request proves the admin: a Bearer token or a live session cookie */
  async authorize(h: { authorization?: string; cookie?: string }): Promise<boolean> {
    const token = bearerToken(h.authorization);
    if (token !== undefined) return this.checkToken(token);
    return this.valid(this.fromCookies(h.cookie));
  }

  /** Set-Cookie value for a new session (Secure when served over https, e.g. behind a TLS proxy). */
  cookie(id: string, secure: boolean): string {
    return [
      `${SESSION_COOKIE}=${id}`,
      'Path=/',
      'HttpOnly',
      'SameSite=Strict',
      `Max-Age=${Math.floor(this.ttlMs / 1000)}`,
      ...(secure ? ['Secure'] : []),
    ].join('; ');
  }

  /** Set-Cookie value that removes the cookie */
  clearCookie(): string {
    return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`;
  }
}
