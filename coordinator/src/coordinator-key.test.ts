// The coordinator's long-term signing key: made once and kept across restarts with the identity (a record from
// before pinned trust gains one), refused when corrupt, never shown by the signer; what it signs verifies at a site.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { isFedloraError } from '@fedlora/shared/errors.ts';
import { createStrategy } from '@fedlora/shared/aggregation/index.ts';
import { randomBytes } from '@fedlora/shared/crypto/bytes.ts';
import { trustCoordinator } from '@fedlora/shared/crypto/coordinator-trust.ts';
import { createCoordinator, type Coordinator } from './app';
import { CoordinatorSigner, newSigningKeyRecord, parseSigningKeyRecord } from './coordinator-key';
import { DEFAULT_SETTINGS, DEFAULT_STOP } from './rounds/settings';
import { tinyFakeTask } from './rounds/fakes';
import { MemoryStorage, readJson, writeJson } from './storage';

const ADMIN = 'admin-token-for-tests-0123456789';

function coordinatorOn(storage: MemoryStorage): Promise<Coordinator> {
  return createCoordinator({
    adminToken: ADMIN,
    storage,
    strategy: createStrategy('fedavg', {}),
    settings: DEFAULT_SETTINGS,
    stop: DEFAULT_STOP,
    task: tinyFakeTask(),
    autostart: false,
  });
}

test('when the coordinator restarts on its data, then it keeps its signing key; a record from before pinning gains one', async () => {
  const storage = new MemoryStorage();
  const first = await coordinatorOn(storage);
  await first.close();
  const again = await coordinatorOn(storage);
  await again.close();
  assert.equal(again.fingerprint, first.fingerprint);

  // an identity record written before pinned trust: id and base model, no key
  const rec = (await readJson<Record<string, unknown>>(storage, 'coordinator.json')) as Record<string, unknown>;
  const { signingKey: _dropped, ...old } = rec;
  await writeJson(storage, 'coordinator.json', old);
  const upgraded = await coordinatorOn(storage);
  await upgraded.close();
  const after = (await readJson<Record<string, unknown>>(storage, 'coordinator.json')) as Record<string, unknown>;
  assert.equal(after.coordinatorId, rec.coordinatorId, 'the id is kept');
  assert.ok(after.signingKey, 'a signing key was added');
  assert.notEqual(upgraded.fingerprint, first.fingerprint);
});

test('when the stored key is damaged, then the coordinator refuses to start with FILE_CORRUPT and does not print the key', async () => {
  const storage = new MemoryStorage();
  await (await coordinatorOn(storage)).close();
  const rec = (await readJson<Record<string, unknown>>(storage, 'coordinator.json')) as { signingKey: { publicKey: string; secretKey: string } };
  const other = newSigningKeyRecord();
  await writeJson(storage, 'coordinator.json', { ...rec, signingKey: { ...rec.signingKey, publicKey: other.publicKey } });
  await assert.rejects(
    coordinatorOn(storage),
    (e: unknown) => isFedloraError(e, 'FILE_CORRUPT') && /halves do not belong together/.test(e.message) && !e.message.includes(rec.signingKey.secretKey),
  );
});

test('when the signer is logged or inspected, then only its fingerprint shows; its hello proves the key to a site', async () => {
  const keys = parseSigningKeyRecord(newSigningKeyRecord(), 'test');
  const signer = await CoordinatorSigner.create(keys);
  const secret = Buffer.from(keys.secretKey).toString('base64');
  assert.equal(JSON.stringify(signer), JSON.stringify({ fingerprint: signer.fingerprint }));
  assert.ok(!inspect(signer, { depth: 5 }).includes(secret.slice(0, 16)));
  const nonce = randomBytes(32);
  const trust = await trustCoordinator(
    { coordinatorId: 'coord-1', signingPublicKey: signer.publicKey, signature: signer.hello(nonce, 'coord-1') },
    nonce,
    signer.fingerprint,
  );
  const body = { roundId: 'r1', adapter: new Uint8Array(8192).fill(7), adapterSha256: 'e'.repeat(64) };
  const sig = signer.sign('round:train', body);
  assert.equal(signer.sign('round:train', { ...body }), sig, 'the same message to another site reuses the signature');
  assert.doesNotThrow(() => trust.verify('round:train', body, sig));
});
