// Enrolled sites: an admin creates a site and gets a one-time join token (only its SHA-256 is stored); the site
// redeems it once to register its public keys. A revoked site can be created again under its name: it gets a new
// token and must enroll new keys, and keeps its id, so its history (rounds, activity) stays with it. Persisted on the
// coordinator's Storage as a snapshot, sites.json, plus a journal, sites.journal: each change appends the changed
// records (one JSON line each, fsynced), and the snapshot is rewritten once the journal holds more lines than there
// are sites. Why: rewriting sites.json per change made enrolling n sites O(n²) in bytes written.

import { createHash, randomBytes } from 'node:crypto';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { parsePublicIdentity } from '@fedlora/shared/crypto/keys.ts';
import { IdSchema } from '@fedlora/shared/protocol/schemas.ts';
import { readJson, writeJson, type Storage } from '../storage';
import type { PublicSiteRecord, SiteRecord, SiteStore } from './types';
import type { Logger } from '../log';

export type { PublicSiteRecord, SiteRecord, SiteStore };

const FILE = 'sites.json';
const JOURNAL = 'sites.journal';
/** the journal is folded into the snapshot once it has more lines than this or than there are sites */
const MIN_JOURNAL_LINES = 256;

/**
 * The records of a journal, in order. A last line without its newline is a write torn by a crash (never
 * acknowledged): it is left out, and `torn` says the journal must be rewritten before anything is appended to it.
 * Any other line that is not a record is corruption: FILE_CORRUPT, naming the line.
 */
export function parseJournal(bytes: Uint8Array, where: string): { records: SiteRecord[]; torn: boolean } {
  const lines = new TextDecoder().decode(bytes).split('\n');
  const last = lines.pop() as string;
  const records = lines.map((line, i) => {
    let r: unknown;
    try {
      r = JSON.parse(line);
    } catch (err) {
      throw new FedloraError('FILE_CORRUPT', `${where}: ${JOURNAL} line ${i + 1} is not valid JSON`, { cause: err });
    }
    const rec = r as SiteRecord;
    if (typeof rec !== 'object' || rec === null || typeof rec.id !== 'string' || typeof rec.tokenHash !== 'string')
      throw new FedloraError('FILE_CORRUPT', `${where}: ${JOURNAL} line ${i + 1} is not a site record`);
    return rec;
  });
  return { records, torn: last.length > 0 };
}

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

/** one queued change: the record it writes (null: nothing to write), and its caller's promise */
interface PendingChange {
  change: (find: (id: string) => SiteRecord | undefined, findByToken: (hashHex: string) => SiteRecord | undefined) => SiteRecord | null;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class SiteRegistry implements SiteStore {
  /** by id, in creation order (a Map keeps insertion order, and sites.json keeps that order) */
  private sites = new Map<string, SiteRecord>();
  /** token hash (hex) → site id. A Map lookup, not a constant-time scan: the key is the SHA-256 of a 32-byte random
   * token, so the lookup's timing can tell an attacker nothing about a token they do not already hold. */
  private byToken = new Map<string, string>();
  private pending: PendingChange[] = [];
  private writing: Promise<void> | null = null;
  /** lines in sites.journal */
  private journalLines = 0;
  /** the journal may end in a partial line (a torn or failed append): rewrite before appending again */
  private journalSuspect = false;

  private constructor(
    private readonly storage: Storage,
    private readonly log: Logger,
  ) {}

  /** `log` hears what is retried later instead of failing a change (a failed compaction) */
  static async open(storage: Storage, log: Logger = () => {}): Promise<SiteRegistry> {
    const r = new SiteRegistry(storage, log);
    const f = await readJson<{ v: 1; sites: SiteRecord[] }>(storage, FILE);
    if (f) {
      if (f.v !== 1 || !Array.isArray(f.sites))
        throw new FedloraError('FILE_CORRUPT', `${storage.where}: ${FILE} has an unknown layout`);
      for (const s of f.sites) r.put(s);
    }
    const journal = await storage.read(JOURNAL);
    if (journal) {
      const { records, torn } = parseJournal(journal, storage.where);
      for (const rec of records) r.put(rec);
      r.journalLines = records.length;
      r.journalSuspect = torn;
    }
    if (r.journalSuspect) await r.compact();
    return r;
  }

  /** sites.json ← every site; then an empty journal. A crash between the two replays the journal over a snapshot
   * that already holds it: the same records again, the same result. */
  private async compact(): Promise<void> {
    await writeJson(this.storage, FILE, { v: 1, sites: [...this.sites.values()] });
    await this.storage.write(JOURNAL, '');
    this.journalLines = 0;
    this.journalSuspect = false;
  }

  private put(rec: SiteRecord): void {
    const old = this.sites.get(rec.id);
    if (old && old.tokenHash !== rec.tokenHash) this.byToken.delete(old.tokenHash);
    this.sites.set(rec.id, rec);
    this.byToken.set(rec.tokenHash, rec.id);
  }

  /**
   * Check-and-change one at a time: `change` sees the sites as left by every earlier change, so concurrent
   * enrollments (three sites joining at once) cannot overwrite each other's keys with a stale list. Changes that
   * arrive while the journal is being written are group-committed: applied in order, then written once, and each
   * caller's promise settles when the journal append holding its change is durable (or failed: then none of that
   * group is kept).
   */
  private mutate(change: PendingChange['change']): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ change, resolve, reject });
      // flush() from a microtask: it clears `writing` when done, which must come after this assignment
      if (!this.writing) this.writing = Promise.resolve().then(() => this.flush());
    });
  }

  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const group = this.pending;
      this.pending = [];
      // the group's records over the committed ones, so that a later change in the group sees an earlier one's
      const draft = new Map<string, SiteRecord>();
      const draftToken = new Map<string, string>();
      const find = (id: string) => draft.get(id) ?? this.sites.get(id);
      const findByToken = (h: string) => {
        const id = draftToken.get(h) ?? this.byToken.get(h);
        const s = id === undefined ? undefined : find(id);
        return s && s.tokenHash === h ? s : undefined;
      };
      const accepted: PendingChange[] = [];
      for (const p of group) {
        try {
          const rec = p.change(find, findByToken);
          if (rec) {
            draft.set(rec.id, rec);
            draftToken.set(rec.tokenHash, rec.id);
          }
          accepted.push(p);
        } catch (err) {
          p.reject(err);
        }
      }
      if (draft.size > 0) {
        try {
          if (this.journalSuspect) await this.compact();
          await this.storage.append(JOURNAL, [...draft.values()].map((rec) => JSON.stringify(rec) + '\n').join(''));
        } catch (err) {
          // the append may have left part of a line: the next change rewrites the journal first
          this.journalSuspect = true;
          for (const p of accepted) p.reject(err);
          continue;
        }
        for (const rec of draft.values()) this.put(rec);
        this.journalLines += draft.size;
        // the group is durable in the journal; folding it into the snapshot may fail and is tried again next time
        if (this.journalLines > Math.max(MIN_JOURNAL_LINES, this.sites.size))
          await this.compact().catch((err: unknown) =>
            this.log('sites.compaction_failed', { where: this.storage.where, journalLines: this.journalLines, error: err instanceof Error ? err.message : String(err) }),
          );
      }
      for (const p of accepted) p.resolve();
    }
    this.writing = null;
  }

  list(): PublicSiteRecord[] {
    return [...this.sites.values()].map(publicRecord);
  }

  get(id: string): PublicSiteRecord | undefined {
    const s = this.sites.get(id);
    return s && publicRecord(s);
  }

  /** sites that may still take part (created and not revoked) */
  activeCount(): number {
    let n = 0;
    for (const s of this.sites.values()) if (!s.revokedAt) n++;
    return n;
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
    await this.mutate((find) => {
      const old = find(id);
      reenrolled = old !== undefined;
      if (!old) return rec;
      if (!old.revokedAt) throw siteExists(id);
      // re-enrollment: the old token and keys are dropped (they must never authenticate again), the id stays
      return { ...rec, createdAt: old.createdAt };
    });
    return { site: this.get(id) as PublicSiteRecord, joinToken, reenrolled };
  }

  /** Redeems a join token: UNAUTHORIZED for an unknown token or revoked site, TOKEN_USED the second time. */
  async enroll(
    token: string,
    keys: { signingPublicKey: string; boxPublicKey: string },
  ): Promise<PublicSiteRecord> {
    const h = hashToken(token).toString('hex');
    const pub = parsePublicIdentity(keys);
    const now = new Date().toISOString();
    let id = '';
    await this.mutate((_find, findByToken) => {
      const site = findByToken(h);
      if (!site || site.revokedAt) throw new FedloraError('UNAUTHORIZED', 'unknown join token');
      if (site.enrolledAt) throw new FedloraError('TOKEN_USED', 'this join token was already used');
      id = site.id;
      return { ...site, enrolledAt: now, signingPublicKey: pub.signingPublicKey, boxPublicKey: pub.boxPublicKey };
    });
    return this.get(id) as PublicSiteRecord;
  }

  async revoke(id: string): Promise<PublicSiteRecord> {
    await this.mutate((find) => {
      const site = find(id);
      if (!site) throw new FedloraError('NOT_FOUND', `no site ${id}`);
      if (site.revokedAt) return null;
      return { ...site, revokedAt: new Date().toISOString() };
    });
    return this.get(id) as PublicSiteRecord;
  }

  /** The registered Ed25519 key of an enrolled, non-revoked site, or null. */
  signingKey(id: string): Uint8Array | null {
    const s = this.sites.get(id);
    if (!s || s.revokedAt || !s.signingPublicKey) return null;
    return new Uint8Array(Buffer.from(s.signingPublicKey, 'base64'));
  }
}

function publicRecord({ tokenHash: _t, ...pub }: SiteRecord): PublicSiteRecord {
  return { ...pub };
}
