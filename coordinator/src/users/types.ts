// Named console users and their roles (issue 21): what the coordinator records of a user, the roles and what each
// may do, and the UserStore interface the admin API sees (registry.ts keeps users in users.json, memory-stores.ts in
// memory, postgres/stores.ts in PostgreSQL). A user's password and API token are kept only as hashes (password.ts).

import { z } from 'zod';
import type { Awaitable } from '../registry/types';

/**
 * The roles, weakest first: a viewer reads, an operator also runs the federation (start/pause rounds, create and
 * revoke sites, promote/approve/reject versions), an admin also changes settings and manages users.
 */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** What a route of the admin API needs (admin-schemas.ts): a role, or nothing ('public': login and logout). */
export type RouteRole = Role | 'public';

/** true when `role` may do what `needed` may (roles are ordered: admin ⊃ operator ⊃ viewer). */
export function roleAllows(role: Role, needed: RouteRole): boolean {
  return needed === 'public' || ROLES.indexOf(role) >= ROLES.indexOf(needed);
}

/** The actor recorded for the bootstrap admin token (FEDLORA_ADMIN_TOKEN): no user may take this name. */
export const BOOTSTRAP_ACTOR = 'bootstrap-token';

const USERNAME = 'must be 1-64 characters: lowercase letters, digits and _ . - (starting with a letter or digit)';
export const UsernameSchema = z
  .string({ error: USERNAME })
  .regex(/^[a-z0-9][a-z0-9_.-]{0,63}$/, { error: USERNAME })
  .refine((u) => u !== BOOTSTRAP_ACTOR, { error: `${BOOTSTRAP_ACTOR} is reserved for the bootstrap admin token` });

export interface UserRecord {
  username: string;
  role: Role;
  /** a disabled user cannot log in, and its sessions and token stop working at once */
  disabled: boolean;
  createdAt: string;
  updatedAt: string;
  /** scrypt$N$r$p$salt$hash (password.ts), or null: no password login */
  passwordHash: string | null;
  /** sha256 hex of the user's API token, or null: no token */
  tokenHash: string | null;
  /**
   * the projects an operator or viewer may act on (issue 21); absent or null: every project (users from before
   * projects keep their rights). An admin acts on every project whatever it holds
   */
  projects?: string[] | null;
}

/** What the admin API shows of a user: never a hash. */
export interface PublicUser {
  username: string;
  role: Role;
  disabled: boolean;
  createdAt: string;
  updatedAt: string;
  hasPassword: boolean;
  hasToken: boolean;
  /** null: every project */
  projects: string[] | null;
}

export function publicUser(u: UserRecord): PublicUser {
  return {
    username: u.username,
    role: u.role,
    disabled: u.disabled,
    createdAt: u.createdAt,
    updatedAt: u.updatedAt,
    hasPassword: u.passwordHash !== null,
    hasToken: u.tokenHash !== null,
    projects: u.projects ?? null,
  };
}

/** What an admin may change of a user (the hashes are computed by the caller, never stored in clear). */
export type UserChange = Partial<Pick<UserRecord, 'role' | 'disabled' | 'passwordHash' | 'tokenHash' | 'projects'>>;

/** Console users. Callers await every method; each refusal is a FedloraError with the code named here. */
export interface UserStore {
  /** every user, in creation order */
  list(): Awaitable<PublicUser[]>;
  /** the full record (hashes included: for login), or undefined */
  get(username: string): Awaitable<UserRecord | undefined>;
  /** the user whose API token hashes to `tokenHash` (sha256 hex), or undefined */
  byTokenHash(tokenHash: string): Awaitable<UserRecord | undefined>;
  /** CONFLICT when the username is taken */
  create(rec: UserRecord): Awaitable<PublicUser>;
  /** NOT_FOUND for an unknown user; sets updatedAt */
  update(username: string, change: UserChange): Awaitable<PublicUser>;
}
