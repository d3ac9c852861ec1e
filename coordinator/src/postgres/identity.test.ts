// The coordinator identity in PostgreSQL (pinned trust, issue 21): processes of one federation that start at once on a
// database without a signing key (new, or from before pinning) all end up with the same key and coordinator id, the
// first writer's, so every process signs with the key the join tokens pin.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { skipUnlessServers, startPostgres, type TestServer } from '../testing-servers';
import { newSigningKeyRecord } from '../coordinator-key';
import { openPostgresStores } from './stores';

const skip = skipUnlessServers('postgres');
let server: TestServer | null = null;

before(async () => {
  if (!skip) server = await startPostgres();
});
after(async () => {
  await server?.stop();
});

test('when three processes add a signing key at once to an identity from before pinning, then all keep the first one', { skip }, async () => {
  const stores = await Promise.all([1, 2, 3].map(() => openPostgresStores(server!.url, { max: 2 })));
  try {
    const base = { id: 'tiny', sha256: 'f'.repeat(64) };
    await stores[0].identity.write({ coordinatorId: 'coord-old', baseModel: base });
    const kept = await Promise.all(stores.map((s) => s.identity.write({ coordinatorId: 'coord-old', baseModel: base, signingKey: newSigningKeyRecord() })));
    assert.ok(kept[0].signingKey, 'the record from before pinning gained a key');
    assert.equal(new Set(kept.map((k) => k.signingKey?.publicKey)).size, 1, 'one key for the federation');
    assert.ok(kept.every((k) => k.coordinatorId === 'coord-old'));
    // a later write (another restart) changes nothing
    const later = await stores[1].identity.write({ coordinatorId: 'coord-new', baseModel: base, signingKey: newSigningKeyRecord() });
    assert.deepEqual(later, kept[0]);
  } finally {
    for (const s of stores) await s.close();
  }
});
