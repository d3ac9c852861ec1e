// The store contract (store-contract.ts) on PostgreSQL: a throwaway server on loopback (testing-servers.ts), a fresh
// database per case, and "reopen" = a second pool on the same database (a coordinator restart). Also: migrations
// apply once and a database from a newer coordinator is refused.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { isFedloraError } from '@fedlora/shared/errors.ts';
import { skipUnlessServers, startPostgres, type TestServer } from '../testing-servers';
import { adapterStoreContract, auditStoreContract, siteStoreContract, userStoreContract } from '../store-contract';
import { migrate, migrations } from './migrate';
import { openPostgresStores, type PostgresStores } from './stores';
import { AdminSessions } from '../http/session';

const skip = skipUnlessServers('postgres');
let server: TestServer | null = null;
let n = 0;

before(async () => {
  if (!skip) server = await startPostgres();
});
after(async () => {
  await server?.stop();
});

/** a new empty database on the test server */
async function freshDatabase(): Promise<string> {
  const admin = new pg.Client({ connectionString: server!.url });
  await admin.connect();
  const name = `contract_${++n}`;
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  return server!.url.replace(/\/fedlora$/, `/${name}`);
}

function opened<K extends 'adapters' | 'sites' | 'users' | 'audit'>(kind: K) {
  return async () => {
    const url = await freshDatabase();
    const pools: PostgresStores[] = [await openPostgresStores(url, { max: 4 })];
    return {
      store: pools[0][kind],
      reopen: async () => {
        const again = await openPostgresStores(url, { max: 4 });
        pools.push(again);
        return again[kind];
      },
      close: async () => {
        for (const p of pools) await p.close();
      },
    };
  };
}

adapterStoreContract('postgres', opened('adapters'), skip);
siteStoreContract('postgres', opened('sites'), skip);
userStoreContract('postgres', opened('users'), skip);
auditStoreContract('postgres', opened('audit'), skip);

test('when two coordinators migrate one database at once, then each migration is applied exactly once; a newer schema is refused', { skip }, async () => {
  const url = await freshDatabase();
  const a = new pg.Pool({ connectionString: url });
  const b = new pg.Pool({ connectionString: url });
  try {
    const [ra, rb] = await Promise.all([migrate(a), migrate(b)]);
    assert.deepEqual([...ra, ...rb].sort(), migrations().map((m) => m.version));
    const rows = (await a.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version')).rows;
    assert.deepEqual(rows.map((r) => r.version), migrations().map((m) => m.version));
    await a.query("INSERT INTO schema_migrations (version, name) VALUES (999, 'from_the_future')");
    await assert.rejects(migrate(b), (e) => isFedloraError(e, 'CONFIG_INVALID') && /schema version 999/.test(e.message));
  } finally {
    await a.end();
    await b.end();
  }
});

test('when a round already has a version, then a second version of that round is refused and the registry keeps one', { skip }, async () => {
  const stores = await openPostgresStores(await freshDatabase());
  try {
    const t = { 'classifier.bias': { shape: [1], data: new Float32Array([1]) } };
    const v = (round: number) => ({ parent: null, round, strategy: 'fedavg', sites: 1, examples: 1, metrics: null, trainMetrics: {}, uploadedBytes: 0 });
    await stores.adapters.addVersion(v(0), t, null);
    await stores.adapters.addVersion(v(1), t, null);
    await assert.rejects(stores.adapters.addVersion(v(1), t, null), (e) => isFedloraError(e, 'CONFIG_INVALID') && /round 1 already has a version/.test(e.message));
    assert.deepEqual((await stores.adapters.list()).map((x) => x.id), ['v0', 'v1']);
  } finally {
    await stores.close();
  }
});

test('when two coordinator processes share the session table, then a login on one is valid on the other, and a logout on one ends it on both', { skip }, async () => {
  const url = await freshDatabase();
  const [a, b] = [await openPostgresStores(url), await openPostgresStores(url)];
  try {
    let now = 1_000_000;
    const onA = new AdminSessions('admin-token-for-tests-0123456789', () => now, 60_000, a.sessions);
    const onB = new AdminSessions('admin-token-for-tests-0123456789', () => now, 60_000, b.sessions);
    const id = await onA.create();
    assert.equal(await onB.valid(id), true);
    assert.equal(await onB.valid(id + 'x'), false);
    const stored = (await a.pool.query<{ id_hash: string }>('SELECT id_hash FROM admin_sessions')).rows;
    assert.ok(stored.length === 1 && stored[0].id_hash !== id, 'only a hash of the id is stored');
    await onB.destroy(id);
    assert.equal(await onA.valid(id), false);
    const later = await onA.create();
    now += 60_000;
    assert.equal(await onB.valid(later), false, 'expired at exactly the ttl');
  } finally {
    await a.close();
    await b.close();
  }
});
