// Admin sessions for the web console: POST /api/login trades the admin token, or a user's name and password, for a
// random session id kept server-side (with the username it belongs to: the user's role is looked up on each request,
// so a role change or a disabled user takes effect at once) and sent back as an HttpOnly, SameSite=Strict cookie, so
// no secret sits in page JS storage or a URL. The REST API and the /admin socket.io namespace accept either `Authorization: Bearer <token>` or the cookie.
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

/** A live session: whose it is (null: the bootstrap admin token's) and when it expires (epoch ms). */
export interface StoredSession {
  expiresAt: number;
  user: string | null;
}

/**
 * Where sessions are kept, by the hash of their id (a store's contents never hand out a live cookie), each with its
 * expiry in epoch ms and its user. Callers await every method.
 */
export interface SessionStore {
  put(idHash: string, session: StoredSession, now: number): Promise<void>;
  /** undefined for an unknown session */
  get(idHash: string): Promise<StoredSession | undefined>;
  delete(idHash: string): Promise<void>;
}

/** One process's sessions, bounded: if someone with the token logs in in a loop, the oldest go first. */
export class MemorySessionStore implements SessionStore {
  private readonly sessions = new Map<string, StoredSession>();

  async put(idHash: string, session: StoredSession, now: number): Promise<void> {
    for (const [k, s] of this.sessions) if (s.expiresAt <= now) this.sessions.delete(k);
    while (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value as string);
    this.sessions.set(idHash, { ...session });
  }

  async get(idHash: string): Promise<StoredSession | undefined> {
    const s = this.sessions.get(idHash);
    return s && { ...s };
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

  /** A new session id (256 random bits) for `user` (null: the bootstrap admin token). */
  async create(user: string | null = null): Promise<string> {
    const id = randomBytes(32).toString('base64url');
    const t = this.now();
    await this.store.put(digest(id).toString('hex'), { expiresAt: t + this.ttlMs, user }, t);
    return id;
  }

  /** The live session `id` names, or null (unknown, or expired: then it is dropped). */
  async session(id: string | undefined): Promise<{ user: string | null } | null> {
    if (!id) return null;
    const k = digest(id).toString('hex');
    const s = await this.store.get(k);
    if (s === undefined) return null;
    if (s.expiresAt <= this.now()) {
      await this.store.delete(k);
      return null;
    }
    return { user: s.user };
  }

  async valid(id: string | undefined): Promise<boolean> {
    return (await this.session(id)) !== null;
  }

  async destroy(id: string | undefined): Promise<void> {
    if (id) await this.store.delete(digest(id).toString('hex'));
  }

  /** The session id carried by a Cookie header, if any. */
  fromCookies(header: string | undefined): string | undefined {
    return parseCookies(header)[SESSION_COOKIE];
  }

  /** true if the request proves the bootstrap admin: its token, or a live session made with it */
  async authorize(h: { authorization?: string; cookie?: string }): Promise<boolean> {
    const token = bearerToken(h.authorization);
    if (token !== undefined) return this.checkToken(token);
    return (await this.session(this.fromCookies(h.cookie)))?.user === null;
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
