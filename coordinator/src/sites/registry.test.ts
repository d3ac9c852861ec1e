// Site registry under concurrent requests: enrollments that arrive together (three sites joining at once, as
// `npm start` does) must all be kept; a token still redeems exactly once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateSiteKeys, publicIdentity } from '@fedlora/shared/crypto/keys.ts';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { MemoryStorage } from '../storage';
import { SiteRegistry } from './registry';

test('when three sites enroll concurrently, then all three keep their keys, in memory and on storage', async () => {
  const storage = new MemoryStorage();
  const reg = await SiteRegistry.open(storage);
  const tokens: string[] = [];
  for (const name of ['site-a', 'site-b', 'site-c']) tokens.push((await reg.create(name)).joinToken);

  const enrolled = await Promise.all(tokens.map((t) => reg.enroll(t, publicIdentity(generateSiteKeys()))));

  assert.deepEqual(
    enrolled.map((s) => s.id),
    ['site-a', 'site-b', 'site-c'],
  );
  for (const id of ['site-a', 'site-b', 'site-c']) assert.ok(reg.signingKey(id), `${id} lost its key`);
  const again = await SiteRegistry.open(storage);
  assert.ok(['site-a', 'site-b', 'site-c'].every((id) => again.signingKey(id)));
});

test('when one token is redeemed twice at the same moment, then one wins and the other is TOKEN_USED', async () => {
  const reg = await SiteRegistry.open(new MemoryStorage());
  const { joinToken } = await reg.create('site-a');

  const results = await Promise.allSettled([
    reg.enroll(joinToken, publicIdentity(generateSiteKeys())),
    reg.enroll(joinToken, publicIdentity(generateSiteKeys())),
  ]);

  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
  assert.equal((lost.reason as { code: string }).code, 'TOKEN_USED');
});

test('when two sites with the same name are created concurrently, then the second is refused', async () => {
  const reg = await SiteRegistry.open(new MemoryStorage());
  const results = await Promise.allSettled([reg.create('Hospital A'), reg.create('hospital a')]);
  assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  assert.equal(reg.list().length, 1);
});

test('when a revoked site is created again, then the same record takes a new token and no keys, on storage too', async () => {
  const storage = new MemoryStorage();
  const reg = await SiteRegistry.open(storage);
  const first = await reg.create('Hospital A');
  assert.equal(first.reenrolled, false);
  const oldKeys = publicIdentity(generateSiteKeys());
  await reg.enroll(first.joinToken, oldKeys);
  await assert.rejects(reg.create('hospital a'), /revoke it first/, 'an active site is not replaced');
  await reg.revoke('hospital-a');

  const second = await reg.create('Hospital A');
  assert.equal(second.reenrolled, true);
  assert.equal(second.site.id, 'hospital-a');
  assert.deepEqual(
    [second.site.revokedAt, second.site.enrolledAt, second.site.signingPublicKey, second.site.boxPublicKey],
    [null, null, null, null],
  );
  assert.equal(second.site.createdAt, first.site.createdAt, 'the site keeps its history');
  assert.equal(reg.signingKey('hospital-a'), null, 'the old signing key authenticates nothing');
  await assert.rejects(reg.enroll(first.joinToken, oldKeys), /unknown join token/);
  assert.equal(reg.activeCount(), 1);

  const newKeys = publicIdentity(generateSiteKeys());
  await reg.enroll(second.joinToken, newKeys);
  const reopened = await SiteRegistry.open(storage);
  assert.equal(reopened.list().length, 1);
  assert.equal(
    Buffer.from(reopened.signingKey('hospital-a') as Uint8Array).toString('base64'),
    newKeys.signingPublicKey,
  );
});

/** MemoryStorage that counts writes and appends, and can be told to fail the next one */
class CountingStorage extends MemoryStorage {
  writes = 0;
  appends = 0;
  failNext = false;
  override async write(name: string, data: Uint8Array | string): Promise<void> {
    await new Promise((r) => setTimeout(r, 1)); // a write takes time, as a real fsync does
    this.writes++;
    this.maybeFail();
    return super.write(name, data);
  }
  override async append(name: string, data: Uint8Array | string): Promise<void> {
    await new Promise((r) => setTimeout(r, 1));
    this.appends++;
    this.maybeFail();
    return super.append(name, data);
  }
  private maybeFail(): void {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('disk full');
    }
  }
}

test('when 500 sites are created at once, then their changes are group-committed in far fewer appends and all are kept', async () => {
  const storage = new CountingStorage();
  const reg = await SiteRegistry.open(storage);

  const made = await Promise.all(Array.from({ length: 500 }, (_, i) => reg.create(`site ${i}`)));
  await Promise.all(made.map((m) => reg.enroll(m.joinToken, publicIdentity(generateSiteKeys()))));

  assert.ok(storage.writes + storage.appends <= 12, `${storage.writes} writes and ${storage.appends} appends for 1,000 changes`);
  const again = await SiteRegistry.open(storage);
  assert.equal(again.list().length, 500);
  assert.equal(again.list().filter((s) => s.enrolledAt).length, 500);
  assert.deepEqual(
    again.list().slice(0, 3).map((s) => s.id),
    ['site-0', 'site-1', 'site-2'],
  );
});

test('when 3,000 sites enroll one after another, then the bytes written grow linearly, not with the square of the sites', async () => {
  // one rewrite of sites.json per change wrote ~n²/2 records for n changes; the journal writes each record once,
  // plus a snapshot each time the journal outgrows the sites (a geometric series)
  const written = { bytes: 0 };
  class Metered extends MemoryStorage {
    override async write(name: string, data: Uint8Array | string): Promise<void> {
      written.bytes += data.length;
      return super.write(name, data);
    }
    override async append(name: string, data: Uint8Array | string): Promise<void> {
      written.bytes += data.length;
      return super.append(name, data);
    }
  }
  const storage = new Metered();
  const reg = await SiteRegistry.open(storage);
  for (let i = 0; i < 3000; i++) await reg.create(`site ${i}`);
  const stored = ((await storage.read('sites.json'))?.length ?? 0) + ((await storage.read('sites.journal'))?.length ?? 0);
  const perSite = stored / 3000;

  assert.ok(written.bytes < 12 * 3000 * perSite, `${written.bytes} bytes written for 3,000 sites of ~${perSite.toFixed(0)} bytes`);
  assert.equal((await SiteRegistry.open(storage)).list().length, 3000);
});

test('when the write of a group fails, then every change of that group is refused and none is kept', async () => {
  const storage = new CountingStorage();
  const reg = await SiteRegistry.open(storage);
  await reg.create('kept');
  storage.failNext = true;

  const results = await Promise.allSettled([reg.create('lost-a'), reg.create('lost-b')]);

  assert.deepEqual(
    results.map((r) => r.status),
    ['rejected', 'rejected'],
  );
  assert.deepEqual(
    reg.list().map((s) => s.id),
    ['kept'],
  );
  // the names are free again, and the next change writes normally
  await reg.create('lost-a');
  assert.deepEqual(
    (await SiteRegistry.open(storage)).list().map((s) => s.id),
    ['kept', 'lost-a'],
  );
});

test('when the journal ends in a torn line (a crash mid-append), then the line is left out, the journal is rewritten, and later changes are kept', async () => {
  const storage = new MemoryStorage();
  const reg = await SiteRegistry.open(storage);
  await reg.create('site-a');
  await reg.create('site-b');
  await storage.append('sites.journal', '{"id":"site-c","na');

  const again = await SiteRegistry.open(storage);
  await again.create('site-d');

  assert.deepEqual(again.list().map((s) => s.id), ['site-a', 'site-b', 'site-d']);
  assert.deepEqual((await SiteRegistry.open(storage)).list().map((s) => s.id), ['site-a', 'site-b', 'site-d']);
});

test('when a journal line other than the last is not a record, then opening fails with FILE_CORRUPT naming the line', async () => {
  const storage = new MemoryStorage();
  const reg = await SiteRegistry.open(storage);
  await reg.create('site-a');
  await storage.append('sites.journal', 'garbage\n');
  await reg.create('site-b');

  await assert.rejects(SiteRegistry.open(storage), (err: unknown) => {
    assert.ok(err instanceof FedloraError && err.code === 'FILE_CORRUPT');
    assert.match(err.message, /sites\.journal line 2/);
    return true;
  });
});

test('when folding the journal into sites.json fails, then the changes stay kept (journal), the failure is logged, and a later change compacts', async () => {
  let failSnapshot = true;
  class FailingSnapshot extends MemoryStorage {
    override async write(name: string, data: Uint8Array | string): Promise<void> {
      if (failSnapshot && name === 'sites.json') throw new Error('disk full');
      return super.write(name, data);
    }
  }
  const storage = new FailingSnapshot();
  const logged: { event: string; fields?: Record<string, unknown> }[] = [];
  const reg = await SiteRegistry.open(storage, (event, fields) => logged.push({ event, fields }));
  // a group compacts once the journal has more lines than MIN_JOURNAL_LINES (256) and than there are sites: 150
  // creations and 150 enrollments make 300 lines for 150 sites
  for (let i = 0; i < 150; i++) {
    const { joinToken } = await reg.create(`site ${i}`);
    await reg.enroll(joinToken, publicIdentity(generateSiteKeys()));
  }
  const failures = logged.filter((l) => l.event === 'sites.compaction_failed');
  assert.ok(failures.length >= 1, 'the failed compaction is logged');
  assert.match(String(failures[0].fields?.error), /disk full/);
  const reopened = await SiteRegistry.open(storage);
  assert.equal(reopened.list().filter((x) => x.enrolledAt).length, 150, 'every change is in the journal');
  failSnapshot = false;
  const after = await reg.create('site after');
  await reg.enroll(after.joinToken, publicIdentity(generateSiteKeys()));
  assert.equal(logged.filter((l) => l.event === 'sites.compaction_failed').length, failures.length, 'no new failure');
  const snapshot = JSON.parse(new TextDecoder().decode((await storage.read('sites.json')) ?? new Uint8Array())) as { sites: unknown[] };
  assert.ok(snapshot.sites.length >= 151, `the journal was folded into the snapshot (${snapshot.sites.length} sites in sites.json)`);
  assert.equal((await SiteRegistry.open(storage)).list().length, 151);
});
