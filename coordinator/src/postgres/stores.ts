// The coordinator's AdapterStore and SiteStore on PostgreSQL (`--store postgres --database-url …`), for several
// coordinator processes serving one federation. Adapter bytes live in bytea beside their record: one transaction makes
// a version's bytes, its record and the current pointer durable together, so a crash (or a SIGKILLed leader) leaves
// either the whole version or none of it, and the unique round index refuses a second version of one round. (Adapters
// are ~130 KB by default and a few MB for large ranks: well inside bytea, with no second system such as S3 to keep
// consistent.) Site enrollment checks and changes a row under SELECT … FOR UPDATE, so concurrent joins never race.

import pg, { type Pool, type PoolClient } from 'pg';
import { FedloraError } from '@fedlora/shared/errors.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import type { StrategyState } from '@fedlora/shared/aggregation/strategy.ts';
import { parsePublicIdentity } from '@fedlora/shared/crypto/keys.ts';
import { decodeAdapter, encodeAdapter } from '@fedlora/shared/protocol/codec.ts';
import { sha256Hex } from '@fedlora/shared/crypto/hash.ts';
import {
  applyDecision,
  versionRecord,
  type AdapterStore,
  type NewVersion,
  type PromotionDecision,
  type RoundRecord,
  type SettingsChange,
  type VersionRecord,
} from '../registry/types';
import { decodeStrategyState, encodeStrategyState } from '../registry/strategy-state';
import { hashToken, newSiteRecord, siteExists } from '../sites/registry';
import type { PublicSiteRecord, SiteRecord, SiteStore } from '../sites/types';
import { migrate } from './migrate';
import type { SessionStore, StoredSession } from '../http/session';
import { publicUser, type PublicUser, type UserChange, type UserRecord, type UserStore } from '../users/types';
import { chainEntry, type AuditEntry, type AuditInput } from '../audit/chain';
import type { AuditPage, AuditStore } from '../audit/audit-log';

const UNIQUE_VIOLATION = '23505';

/** Runs `fn` in a transaction on one pooled connection (rolled back when it throws). */
async function transaction<T>(pool: Pool, fn: (c: PoolClient) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    const out = await fn(c);
    await c.query('COMMIT');
    return out;
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    c.release();
  }
}

/** Points current_version at `id` (the row exists once a version was current). */
async function setCurrent(c: PoolClient, id: string): Promise<void> {
  await c.query(
    'INSERT INTO current_version (singleton, version_id) VALUES (true, $1) ON CONFLICT (singleton) DO UPDATE SET version_id = EXCLUDED.version_id',
    [id],
  );
}

const bytes = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

export class PgAdapterStore implements AdapterStore {
  constructor(private readonly pool: Pool) {}

  async list(): Promise<VersionRecord[]> {
    const r = await this.pool.query<{ record: VersionRecord }>('SELECT record FROM versions ORDER BY seq');
    return r.rows.map((x) => x.record);
  }

  async get(id: string): Promise<VersionRecord | undefined> {
    const r = await this.pool.query<{ record: VersionRecord }>('SELECT record FROM versions WHERE id = $1', [id]);
    return r.rows[0]?.record;
  }

  async currentId(): Promise<string | null> {
    const r = await this.pool.query<{ version_id: string }>('SELECT version_id FROM current_version');
    return r.rows[0]?.version_id ?? null;
  }

  async lastRound(): Promise<number> {
    const r = await this.pool.query<{ n: number }>(
      'SELECT GREATEST(COALESCE((SELECT max(round) FROM versions), 0), COALESCE((SELECT max(round) FROM rounds), 0)) AS n',
    );
    return Number(r.rows[0].n);
  }

  async loadNative(id: string): Promise<Uint8Array> {
    const r = await this.pool.query<{ native: Buffer; record: VersionRecord }>('SELECT native, record FROM versions WHERE id = $1', [id]);
    const row = r.rows[0];
    if (!row) throw new FedloraError('NOT_FOUND', `no version ${id}`);
    const native = bytes(row.native);
    if ((await sha256Hex(native)) !== row.record.sha256)
      throw new FedloraError('FILE_CORRUPT', `postgres: the bytes of ${id} do not match its recorded sha256`);
    return native;
  }

  async loadState(id: string): Promise<NamedTensors> {
    return decodeAdapter(await this.loadNative(id)).adapter;
  }

  async loadStrategyState(id: string): Promise<StrategyState | null> {
    const r = await this.pool.query<{ strategy_state: Buffer | null }>('SELECT strategy_state FROM versions WHERE id = $1', [id]);
    if (r.rows.length === 0) throw new FedloraError('NOT_FOUND', `no version ${id}`);
    const s = r.rows[0].strategy_state;
    return s ? decodeStrategyState(bytes(s), `postgres: strategy state of ${id}`) : null;
  }

  async addVersion(
    v: NewVersion,
    state: NamedTensors,
    strategyState: StrategyState | null,
    o: { candidate?: boolean } = {},
  ): Promise<VersionRecord> {
    try {
      return await transaction(this.pool, async (c) => {
        // one writer numbers versions at a time (a lock on the table, held to the commit)
        await c.query('LOCK TABLE versions IN SHARE ROW EXCLUSIVE MODE');
        const seq = Number((await c.query<{ n: number }>('SELECT count(*)::int AS n FROM versions')).rows[0].n);
        const id = `v${seq}`;
        const native = encodeAdapter({ versionId: id, round: v.round, adapter: state });
        const record = await versionRecord(v, id, native, o);
        await c.query(
          'INSERT INTO versions (seq, id, round, record, native, strategy_state) VALUES ($1, $2, $3, $4, $5, $6)',
          [seq, id, v.round, record, Buffer.from(native), encodeStrategyState(strategyState) && Buffer.from(encodeStrategyState(strategyState)!)],
        );
        if (!o.candidate) await setCurrent(c, id);
        return record;
      });
    } catch (err) {
      if ((err as { code?: string }).code === UNIQUE_VIOLATION)
        throw new FedloraError('CONFIG_INVALID', `round ${v.round} already has a version: another coordinator published it`, { cause: err });
      throw err;
    }
  }

  async promote(id: string, decision?: PromotionDecision): Promise<VersionRecord> {
    return this.change(id, (v, currentId) =>
      decision
        ? applyDecision(v, { ...decision, action: 'promote' }, currentId)
        : { record: { ...v, status: 'promoted' }, current: true },
    );
  }

  async decide(id: string, decision: PromotionDecision): Promise<VersionRecord> {
    return this.change(id, (v, currentId) => applyDecision(v, decision, currentId));
  }

  /** Reads version `id` and the current pointer under locks, writes the changed record (and pointer) in one transaction. */
  private change(
    id: string,
    fn: (v: VersionRecord, currentId: string | null) => { record: VersionRecord; current: boolean },
  ): Promise<VersionRecord> {
    return transaction(this.pool, async (c) => {
      const cur = await c.query<{ version_id: string }>('SELECT version_id FROM current_version FOR UPDATE');
      const r = await c.query<{ record: VersionRecord }>('SELECT record FROM versions WHERE id = $1 FOR UPDATE', [id]);
      if (!r.rows[0]) throw new FedloraError('NOT_FOUND', `no version ${id}`);
      const { record, current } = fn(r.rows[0].record, cur.rows[0]?.version_id ?? null);
      await c.query('UPDATE versions SET record = $2 WHERE id = $1', [id, record]);
      if (current) await setCurrent(c, id);
      return record;
    });
  }

  async rounds(): Promise<RoundRecord[]> {
    const r = await this.pool.query<{ record: RoundRecord }>('SELECT record FROM rounds ORDER BY seq');
    return r.rows.map((x) => x.record);
  }

  async addRound(rec: RoundRecord): Promise<void> {
    await this.pool.query('INSERT INTO rounds (round, round_id, record) VALUES ($1, $2, $3)', [rec.round, rec.roundId, rec]);
  }

  async settingsChanges(): Promise<SettingsChange[]> {
    const r = await this.pool.query<{ change: SettingsChange }>('SELECT change FROM settings_changes ORDER BY seq');
    return r.rows.map((x) => x.change);
  }

  async addSettingsChange(c: SettingsChange): Promise<void> {
    await this.pool.query('INSERT INTO settings_changes (change) VALUES ($1)', [c]);
  }
}

const toPublic = ({ tokenHash: _t, ...pub }: SiteRecord): PublicSiteRecord => ({ ...pub });

export class PgSiteStore implements SiteStore {
  constructor(private readonly pool: Pool) {}

  async list(): Promise<PublicSiteRecord[]> {
    const r = await this.pool.query<{ record: SiteRecord }>("SELECT record FROM sites ORDER BY record->>'createdAt', id");
    return r.rows.map((x) => toPublic(x.record));
  }

  async get(id: string): Promise<PublicSiteRecord | undefined> {
    const r = await this.pool.query<{ record: SiteRecord }>('SELECT record FROM sites WHERE id = $1', [id]);
    return r.rows[0] && toPublic(r.rows[0].record);
  }

  async activeCount(): Promise<number> {
    const r = await this.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM sites WHERE record->>'revokedAt' IS NULL");
    return r.rows[0].n;
  }

  async create(name: string, token?: string): Promise<{ site: PublicSiteRecord; joinToken: string; reenrolled: boolean }> {
    const { rec, joinToken } = newSiteRecord(name, token);
    return transaction(this.pool, async (c) => {
      const old = (await c.query<{ record: SiteRecord }>('SELECT record FROM sites WHERE id = $1 FOR UPDATE', [rec.id])).rows[0]?.record;
      if (old && !old.revokedAt) throw siteExists(rec.id);
      // re-enrollment: the old token and keys are dropped (they must never authenticate again), the id stays
      const next: SiteRecord = { ...rec, createdAt: old?.createdAt ?? rec.createdAt };
      await c.query(
        'INSERT INTO sites (id, token_hash, record) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET token_hash = EXCLUDED.token_hash, record = EXCLUDED.record',
        [next.id, next.tokenHash, next],
      );
      return { site: toPublic(next), joinToken, reenrolled: old !== undefined };
    });
  }

  async enroll(token: string, keys: { signingPublicKey: string; boxPublicKey: string }): Promise<PublicSiteRecord> {
    const pub = parsePublicIdentity(keys);
    return transaction(this.pool, async (c) => {
      const row = (await c.query<{ record: SiteRecord }>('SELECT record FROM sites WHERE token_hash = $1 FOR UPDATE', [hashToken(token).toString('hex')])).rows[0];
      const site = row?.record;
      if (!site || site.revokedAt) throw new FedloraError('UNAUTHORIZED', 'unknown join token');
      if (site.enrolledAt) throw new FedloraError('TOKEN_USED', 'this join token was already used');
      const next: SiteRecord = { ...site, enrolledAt: new Date().toISOString(), signingPublicKey: pub.signingPublicKey, boxPublicKey: pub.boxPublicKey };
      await c.query('UPDATE sites SET record = $2 WHERE id = $1', [site.id, next]);
      return toPublic(next);
    });
  }

  async revoke(id: string): Promise<PublicSiteRecord> {
    return transaction(this.pool, async (c) => {
      const site = (await c.query<{ record: SiteRecord }>('SELECT record FROM sites WHERE id = $1 FOR UPDATE', [id])).rows[0]?.record;
      if (!site) throw new FedloraError('NOT_FOUND', `no site ${id}`);
      if (site.revokedAt) return toPublic(site);
      const next: SiteRecord = { ...site, revokedAt: new Date().toISOString() };
      await c.query('UPDATE sites SET record = $2 WHERE id = $1', [id, next]);
      return toPublic(next);
    });
  }

  async signingKey(id: string): Promise<Uint8Array | null> {
    const s = (await this.pool.query<{ record: SiteRecord }>('SELECT record FROM sites WHERE id = $1', [id])).rows[0]?.record;
    if (!s || s.revokedAt || !s.signingPublicKey) return null;
    return new Uint8Array(Buffer.from(s.signingPublicKey, 'base64'));
  }
}

/** What app.ts keeps as the coordinator's identity (coordinator.json in a data dir). */
export interface IdentityRecord {
  coordinatorId?: string;
  baseModel?: { id: string; sha256: string };
  /** the coordinator's long-term signing key (coordinator-key.ts): every process of the federation signs with it */
  signingKey?: { publicKey: string; secretKey: string };
}

/** The identity record every process of the federation shares: the first process to write it wins. */
export class PgIdentity {
  constructor(private readonly pool: Pool) {}

  async read(): Promise<IdentityRecord | null> {
    const r = await this.pool.query<{ record: IdentityRecord }>('SELECT record FROM coordinator_identity');
    return r.rows[0]?.record ?? null;
  }

  /** Writes `rec` unless another process wrote one first (or, for a record from before pinned trust, gave it a
   * signing key first); returns the record that holds. */
  async write(rec: IdentityRecord): Promise<IdentityRecord> {
    await this.pool.query(
      'INSERT INTO coordinator_identity (singleton, record) VALUES (true, $1) ON CONFLICT (singleton) DO UPDATE SET record = coordinator_identity.record || EXCLUDED.record WHERE coordinator_identity.record->>\'coordinatorId\' IS NULL OR coordinator_identity.record->\'signingKey\' IS NULL',
      [rec],
    );
    return (await this.read()) as IdentityRecord;
  }
}

/** Console sessions in the shared database (expired rows are swept when a session is created). */
export class PgSessionStore implements SessionStore {
  constructor(private readonly pool: Pool) {}

  async put(idHash: string, session: StoredSession, now: number): Promise<void> {
    await this.pool.query('DELETE FROM admin_sessions WHERE expires_at <= $1', [now]);
    await this.pool.query('INSERT INTO admin_sessions (id_hash, expires_at, username) VALUES ($1, $2, $3)', [idHash, session.expiresAt, session.user]);
  }

  async get(idHash: string): Promise<StoredSession | undefined> {
    const r = await this.pool.query<{ expires_at: string; username: string | null }>('SELECT expires_at, username FROM admin_sessions WHERE id_hash = $1', [idHash]);
    return r.rows[0] ? { expiresAt: Number(r.rows[0].expires_at), user: r.rows[0].username } : undefined;
  }

  async delete(idHash: string): Promise<void> {
    await this.pool.query('DELETE FROM admin_sessions WHERE id_hash = $1', [idHash]);
  }
}

/** Console users, shared by every coordinator process (a user's token is found by its indexed hash). */
export class PgUserStore implements UserStore {
  constructor(private readonly pool: Pool) {}

  async list(): Promise<PublicUser[]> {
    const r = await this.pool.query<{ record: UserRecord }>('SELECT record FROM users ORDER BY seq');
    return r.rows.map((x) => publicUser(x.record));
  }

  async get(username: string): Promise<UserRecord | undefined> {
    return (await this.pool.query<{ record: UserRecord }>('SELECT record FROM users WHERE username = $1', [username])).rows[0]?.record;
  }

  async byTokenHash(tokenHash: string): Promise<UserRecord | undefined> {
    return (await this.pool.query<{ record: UserRecord }>('SELECT record FROM users WHERE token_hash = $1', [tokenHash])).rows[0]?.record;
  }

  async create(rec: UserRecord): Promise<PublicUser> {
    try {
      await this.pool.query('INSERT INTO users (username, token_hash, record) VALUES ($1, $2, $3)', [rec.username, rec.tokenHash, rec]);
    } catch (err) {
      if ((err as { code?: string }).code === UNIQUE_VIOLATION)
        throw new FedloraError('CONFLICT', `a user named ${rec.username} exists`, { cause: err });
      throw err;
    }
    return publicUser(rec);
  }

  async update(username: string, change: UserChange): Promise<PublicUser> {
    return transaction(this.pool, async (c) => {
      const u = (await c.query<{ record: UserRecord }>('SELECT record FROM users WHERE username = $1 FOR UPDATE', [username])).rows[0]?.record;
      if (!u) throw new FedloraError('NOT_FOUND', `no user ${username}`);
      const next: UserRecord = { ...u, ...change, updatedAt: new Date().toISOString() };
      await c.query('UPDATE users SET record = $2, token_hash = $3 WHERE username = $1', [username, next, next.tokenHash]);
      return publicUser(next);
    });
  }
}

/**
 * The audit trail in the shared database: an append locks the table, reads the last entry and inserts the next, so
 * entries from several coordinator processes form one chain.
 */
export class PgAuditStore implements AuditStore {
  constructor(private readonly pool: Pool) {}

  append(input: AuditInput): Promise<AuditEntry> {
    return transaction(this.pool, async (c) => {
      await c.query('LOCK TABLE audit_log IN EXCLUSIVE MODE');
      const last = (await c.query<{ entry: AuditEntry }>('SELECT entry FROM audit_log ORDER BY seq DESC LIMIT 1')).rows[0]?.entry;
      const entry = chainEntry(input, last ?? null, new Date());
      await c.query('INSERT INTO audit_log (seq, entry) VALUES ($1, $2)', [entry.seq, entry]);
      return entry;
    });
  }

  async page(o: { before?: number; limit: number }): Promise<AuditPage> {
    const total = Number((await this.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_log')).rows[0].n);
    const r = await this.pool.query<{ entry: AuditEntry }>(
      'SELECT entry FROM audit_log WHERE seq < $1 ORDER BY seq DESC LIMIT $2',
      [o.before ?? Number.MAX_SAFE_INTEGER, o.limit],
    );
    return { total, entries: r.rows.map((x) => x.entry) };
  }

  async all(): Promise<AuditEntry[]> {
    return (await this.pool.query<{ entry: AuditEntry }>('SELECT entry FROM audit_log ORDER BY seq')).rows.map((x) => x.entry);
  }
}

export interface PostgresStores {
  adapters: PgAdapterStore;
  sites: PgSiteStore;
  identity: PgIdentity;
  sessions: PgSessionStore;
  users: PgUserStore;
  audit: PgAuditStore;
  pool: Pool;
  close(): Promise<void>;
}

/** Connects to `url`, applies pending migrations and returns both stores on one pool. */
export async function openPostgresStores(url: string, o: { max?: number } = {}): Promise<PostgresStores> {
  const pool = new pg.Pool({ connectionString: url, max: o.max ?? 10 });
  // an idle client that loses its server must not crash the process: the next query reconnects
  pool.on('error', () => {});
  try {
    await migrate(pool);
  } catch (err) {
    await pool.end().catch(() => {});
    throw new FedloraError('CONFIG_INVALID', `postgres at ${redactUrl(url)}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  return {
    adapters: new PgAdapterStore(pool),
    sites: new PgSiteStore(pool),
    identity: new PgIdentity(pool),
    sessions: new PgSessionStore(pool),
    users: new PgUserStore(pool),
    audit: new PgAuditStore(pool),
    pool,
    close: () => pool.end(),
  };
}

/** The URL without its password, for errors and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(an unparsable database URL)';
  }
}
