// Site registry under concurrent requests: enrollments that arrive together (three sites joining at once, as
// `npm start` does) must all be kept; a token still redeems exactly once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateSiteKeys, publicIdentity } from '@fedlora/shared/crypto/keys.ts';
import { MemoryStorage, readJson } from '../storage';
import { SiteRegistry, type SiteRecord } from './registry';

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
  const file = await readJson<{ sites: SiteRecord[] }>(storage, 'sites.json');
  assert.deepEqual(
    file?.sites.map((s) => s.enrolledAt !== null),
    [true, true, true],
  );
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
