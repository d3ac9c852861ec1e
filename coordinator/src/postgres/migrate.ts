// Schema migrations for the Postgres store: the numbered .sql files beside this module, each applied once, in order,
// in one transaction with the others that are pending, under an advisory lock so that two coordinators starting
// together do not both apply them. Applied versions are recorded in schema_migrations.

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Pool } from 'pg';
import { FedloraError } from '@fedlora/shared/errors.ts';

const DIR = join(dirname(fileURLToPath(import.meta.url)), 'migrations');
/** any constant: the key of the advisory lock that serializes migrations across coordinator processes */
const MIGRATION_LOCK = 0x66_6c_6d_69; // 'flmi'

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** The migrations shipped with this build, by version. */
export function migrations(): Migration[] {
  return readdirSync(DIR)
    .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: Number(f.slice(0, 3)), name: f.slice(4, -4), sql: readFileSync(join(DIR, f), 'utf8') }));
}

/** Applies the pending migrations; returns the versions it applied. Refuses a database newer than this build. */
export async function migrate(pool: Pool): Promise<number[]> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await client.query(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    const done = new Set((await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version));
    const known = migrations();
    const newest = Math.max(0, ...known.map((m) => m.version));
    const ahead = [...done].filter((v) => v > newest);
    if (ahead.length)
      throw new FedloraError('CONFIG_INVALID', `the database has schema version ${Math.max(...ahead)}, newer than this coordinator's ${newest}: upgrade the coordinator`);
    const applied: number[] = [];
    for (const m of known) {
      if (done.has(m.version)) continue;
      await client.query(m.sql);
      await client.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      applied.push(m.version);
    }
    await client.query('COMMIT');
    return applied;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}
