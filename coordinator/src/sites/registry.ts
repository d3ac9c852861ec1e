// Enrolled sites: an admin creates a site and gets a one-time join token (only its SHA-256 is stored); the site
// redeems it once to register its public keys. A revoked site can be created again under its name: it gets a new
// token and must enroll new keys, and keeps its id, so its history (rounds, activity) stays with it. Persisted as
// sites.json on the coordinator's Storage.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { parsePublicIdentity } from '@fedlora/shared/crypto/keys.ts';
import { IdSchema } from '@fedlora/shared/protocol/schemas.ts';
import { readJson, writeJson, type Storage } from '../storage';
import type { PublicSiteRecord, SiteRecord, SiteStore } from './types';

export type { PublicSiteRecord, SiteRecord, SiteStore };

const FILE = 'sites.json';

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/**
 * A new site's record and its join token, checked: BAD_MESSAGE for a bad name, CONFIG_INVALID for a bad token. The
 * join token is `<siteId>.<32 random bytes, base64url>` so a site can read its id from it; `token` pre-provisions one
 * (deployment files that hand tokens to sites through the environment). Every SiteStore creates sites with it.
 */
export function newSiteRecord(name: string, token?: string): { rec: SiteRecord; joinToken: string } {
  if (typeof name !== 'string' || name.trim().length === 0 || name.length > 64)
    throw new FedloraError('BAD_MESSAGE', 'name must be a non-empty string of at most 64 characters');
  const id = siteIdFromName(name);
  if (!IdSchema.safeParse(id).success || id.length === 0)
    throw new FedloraError('BAD_MESSAGE', 'name must contain letters or digits');
  const joinToken = token ?? `${id}.${randomBytes(32).toString('base64url')}`;
  if (joinToken.length < 16 || joinToken.length > 256)
    throw new FedloraError('CONFIG_INVALID', `join token for ${id} must be 16-256 characters`);
  const rec: SiteRecord = {
    id,
    name: name.trim(),
    tokenHash: hashToken(joinToken).toString('hex'),
    createdAt: new Date().toISOString(),
    enrolledAt: null,
    revokedAt: null,
    signingPublicKey: null,
    boxPublicKey: null,
  };
  return { rec, joinToken };
}

/** The error for creating a site whose id exists and is not revoked. */
export function siteExists(id: string): FedloraError {
  return new FedloraError('CONFIG_INVALID', `a site with id ${id} exists; revoke it first to enroll it again with new keys`);
}

/** "Hospital A" → "hospital-a": an id that passes the wire's IdSchema. */
export function siteIdFromName(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9_.-]+/g, '-')
    .replace(/^[^a-z0-9]+|-+$/g, '')
    .slice(0, 64);
}

export class SiteRegistry implements SiteStore {
  private sites: SiteRecord[] = [];
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(private readonly storage: Storage) {}

  static async open(storage: Storage): Promise<SiteRegistry> {
    const r = new SiteRegistry(storage);
    const f = await readJson<{ v: 1; sites: SiteRecord[] }>(storage, FILE);
    if (f) {
      if (f.v !== 1 || !Array.isArray(f.sites))
        throw new FedloraError('FILE_CORRUPT', `${storage.where}: ${FILE} has an unknown layout`);
      r.sites = f.sites;
    }
    return r;
  }

  /**
   * Check-and-change one at a time: `change` sees the sites as left by every earlier change, so concurrent
   * enrollments (three sites joining at once) cannot overwrite each other's keys with a stale list.
   */
  private mutate(change: (sites: readonly SiteRecord[]) => SiteRecord[] | null): Promise<void> {
    const run = async () => {
      const next = change(this.sites);
      if (!next) return;
      await writeJson(this.storage, FILE, { v: 1, sites: next });
      this.sites = next;
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => {});
    return p;
  }

  list(): PublicSiteRecord[] {
    return this.sites.map(({ tokenHash: _t, ...pub }) => ({ ...pub }));
  }

  get(id: string): PublicSiteRecord | undefined {
    return this.list().find((s) => s.id === id);
  }

  /** sites that may still take part (created and not revoked) */
  activeCount(): number {
    return this.sites.filter((s) => !s.revokedAt).length;
  }

  /**
   * Creates a site (newSiteRecord), or re-enrolls a revoked one with the same id. A site that exists and is not
   * revoked is refused (CONFIG_INVALID).
   */
  async create(
    name: string,
    token?: string,
  ): Promise<{ site: PublicSiteRecord; joinToken: string; reenrolled: boolean }> {
    const { rec, joinToken } = newSiteRecord(name, token);
    const id = rec.id;
    let reenrolled = false;
    await this.mutate((sites) => {
      const old = sites.find((s) => s.id === id);
      reenrolled = old !== undefined;
      if (!old) return [...sites, rec];
      if (!old.revokedAt) throw siteExists(id);
      // re-enrollment: the old token and keys are dropped (they must never authenticate again), the id stays
      return sites.map((s) => (s.id === id ? { ...rec, createdAt: old.createdAt } : s));
    });
    return { site: this.get(id) as PublicSiteRecord, joinToken, reenrolled };
  }

  /** Redeems a join token: UNAUTHORIZED for an unknown token or revoked site, TOKEN_USED the second time. */
  async enroll(
    token: string,
    keys: { signingPublicKey: string; boxPublicKey: string },
  ): Promise<PublicSiteRecord> {
    const h = hashToken(token);
    const pub = parsePublicIdentity(keys);
    const now = new Date().toISOString();
    let id = '';
    await this.mutate((sites) => {
      const site = sites.find((s) => timingSafeEqual(Buffer.from(s.tokenHash, 'hex'), h));
      if (!site || site.revokedAt) throw new FedloraError('UNAUTHORIZED', 'unknown join token');
      if (site.enrolledAt) throw new FedloraError('TOKEN_USED', 'this join token was already used');
      id = site.id;
      return sites.map((s) =>
        s.id === site.id
          ? { ...s, enrolledAt: now, signingPublicKey: pub.signingPublicKey, boxPublicKey: pub.boxPublicKey }
          : s,
      );
    });
    return this.get(id) as PublicSiteRecord;
  }

  async revoke(id: string): Promise<PublicSiteRecord> {
    await this.mutate((sites) => {
      const site = sites.find((s) => s.id === id);
      if (!site) throw new FedloraError('NOT_FOUND', `no site ${id}`);
      if (site.revokedAt) return null;
      return sites.map((s) => (s.id === id ? { ...s, revokedAt: new Date().toISOString() } : s));
    });
    return this.get(id) as PublicSiteRecord;
  }

  /** The registered Ed25519 key of an enrolled, non-revoked site, or null. */
  signingKey(id: string): Uint8Array | null {
    const s = this.sites.find((x) => x.id === id);
    if (!s || s.revokedAt || !s.signingPublicKey) return null;
    return new Uint8Array(Buffer.from(s.signingPublicKey, 'base64'));
  }
}
