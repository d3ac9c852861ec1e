// Who an admin request is (issue 21): the bootstrap admin token (FEDLORA_ADMIN_TOKEN, acting as an admin, recorded as
// "bootstrap-token"), a user's API token, or a console session cookie that names either. A user's role is read from
// the user store on every request, so a changed role or a disabled user takes effect at once, sessions included.

import { bearerToken, type AdminSessions } from '../http/session';
import { hashUserToken, verifyPassword } from './password';
import { BOOTSTRAP_ACTOR, type Role, type UserRecord, type UserStore } from './types';

/** An authenticated caller: the name its actions are recorded under, and its role. */
export interface Principal {
  actor: string;
  role: Role;
  /** the user (null: the bootstrap admin token) */
  user: string | null;
  /** the projects the user is assigned to (null: every project) */
  projects: string[] | null;
}

const BOOTSTRAP: Principal = { actor: BOOTSTRAP_ACTOR, role: 'admin', user: null, projects: null };

const asPrincipal = (u: UserRecord | undefined): Principal | null =>
  u && !u.disabled ? { actor: u.username, role: u.role, user: u.username, projects: u.projects ?? null } : null;

/**
 * Whether `p` may act on project `projectId` at all (its role then says what it may do there): an admin everywhere,
 * an operator or viewer in the projects assigned to it, or in every project when it has no list (issue 21).
 */
export function mayUseProject(p: Principal, projectId: string): boolean {
  return p.role === 'admin' || p.projects === null || p.projects.includes(projectId);
}

export class Authenticator {
  constructor(
    readonly sessions: AdminSessions,
    readonly users: UserStore,
  ) {}

  /**
   * The caller of a request, or null. A request with `Authorization: Bearer` is judged by it alone (a cookie next to
   * it is ignored): the bootstrap token (constant-time), else a user's API token (found by its SHA-256).
   */
  async principal(h: { authorization?: string; cookie?: string }): Promise<Principal | null> {
    const token = bearerToken(h.authorization);
    if (token !== undefined) {
      if (this.sessions.checkToken(token)) return BOOTSTRAP;
      return asPrincipal(await this.users.byTokenHash(hashUserToken(token)));
    }
    const s = await this.sessions.session(this.sessions.fromCookies(h.cookie));
    if (!s) return null;
    return s.user === null ? BOOTSTRAP : asPrincipal(await this.users.get(s.user));
  }

  /** A console login with the bootstrap token, a user's API token, or a username and password; null when refused. */
  async login(body: { token?: string; username?: string; password?: string }): Promise<Principal | null> {
    if (body.username !== undefined) {
      const u = await this.users.get(body.username);
      // an unknown user costs one scrypt too, so the answer's timing does not tell which usernames exist
      const ok = await verifyPassword(body.password ?? '', u?.passwordHash ?? null);
      return ok ? asPrincipal(u) : null;
    }
    return body.token === undefined ? null : this.principal({ authorization: `Bearer ${body.token}` });
  }
}
