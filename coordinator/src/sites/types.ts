// What the coordinator records of an enrolled site, and the SiteStore interface the socket handlers, the admin API
// and the round loop see (registry.ts keeps it in sites.json and its journal; postgres/stores.ts in PostgreSQL).

import type { Awaitable } from '../registry/types';

export interface SiteRecord {
  id: string;
  name: string;
  /** sha256 hex of the join token */
  tokenHash: string;
  createdAt: string;
  enrolledAt: string | null;
  revokedAt: string | null;
  /** base64 Ed25519 / X25519 public keys, set at enrollment */
  signingPublicKey: string | null;
  boxPublicKey: string | null;
}

/** What the admin API shows: never the token hash. */
export type PublicSiteRecord = Omit<SiteRecord, 'tokenHash'>;

/** Enrolled sites. Callers await every method; each refusal is a FedloraError with the code named here. */
export interface SiteStore {
  list(): Awaitable<PublicSiteRecord[]>;
  get(id: string): Awaitable<PublicSiteRecord | undefined>;
  /** sites that may still take part (created and not revoked) */
  activeCount(): Awaitable<number>;
  /**
   * Creates a site named `name` with a one-time join token (`token` pre-provisions it), or re-enrolls a revoked one
   * under its id. BAD_MESSAGE for a bad name, CONFIG_INVALID for a bad token or a site that exists and is not revoked.
   */
  create(
    name: string,
    token?: string,
  ): Promise<{ site: PublicSiteRecord; joinToken: string; reenrolled: boolean }>;
  /** Redeems a join token once: UNAUTHORIZED for an unknown token or a revoked site, TOKEN_USED the second time. */
  enroll(token: string, keys: { signingPublicKey: string; boxPublicKey: string }): Promise<PublicSiteRecord>;
  /** NOT_FOUND for an unknown id; revoking twice is not an error. */
  revoke(id: string): Promise<PublicSiteRecord>;
  /** The registered Ed25519 key of an enrolled, non-revoked site, or null. */
  signingKey(id: string): Awaitable<Uint8Array | null>;
}
