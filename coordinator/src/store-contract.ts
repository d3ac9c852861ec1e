// The contract every AdapterStore, SiteStore, UserStore and AuditStore keeps, as one test suite run against each implementation: the file
// registry (the embedded default), the in-memory test stores and PostgreSQL (store-contract.test.ts,
// postgres/stores.test.ts). A store passes only if the round loop, the socket edge and the admin API could not tell
// it from the others.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isFedloraError } from '@fedlora/shared/errors.ts';
import { generateSiteKeys, publicIdentity } from '@fedlora/shared/crypto/keys.ts';
import { sha256Hex } from '@fedlora/shared/crypto/hash.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import type { AdapterStore, NewVersion, PromotionDecision, RoundRecord } from './registry/types';
import type { SiteStore } from './sites/types';
import type { Role, UserRecord, UserStore } from './users/types';
import type { AuditStore } from './audit/audit-log';
import { verifyAuditChain } from './audit/chain';

/** A store under test and a way to open it again on the same backing data (a restart). */
export interface Opened<S> {
  store: S;
  reopen(): Promise<S>;
  close?(): Promise<void>;
}

function adapter(fill: number): NamedTensors {
  return {
    'layer.lora_A': { shape: [2, 3], data: new Float32Array(6).map((_, i) => fill + i / 10) },
    'classifier.bias': { shape: [2], data: new Float32Array([fill, -fill]) },
  };
}

function newVersion(round: number, parent: string | null): NewVersion {
  return {
    parent,
    round,
    strategy: 'fedavg',
    sites: round === 0 ? 0 : 3,
    examples: round * 10,
    metrics: { accuracy: 0.5 + round / 100, macroF1: 0.5, loss: 1, examples: 40, perClass: [] },
    trainMetrics: {},
    uploadedBytes: round * 100,
  };
}

function roundRecord(round: number, versionId: string | null): RoundRecord {
  return {
    round,
    roundId: `r${round}-${Math.random().toString(16).slice(2, 10)}`,
    startedAt: new Date().toISOString(),
    durationMs: 5,
    outcome: versionId ? 'aggregated' : 'kept',
    reason: versionId ? null : 'too few updates',
    stage: versionId ? 'version' : 'collect',
    strategy: 'fedavg',
    baseVersionId: 'v0',
    versionId,
    sampled: 3,
    participants: 3,
    updates: versionId ? 3 : 1,
    failures: [],
    rejections: [],
    uploadedBytes: 10,
    bytesPerUpload: [10],
    mode: 'secure',
    secureAggregation: { contributors: 3, dropped: 0, degree: 2, threshold: 2, clip: 0.1, levels: 1000, maxWeight: 1 },
  };
}

function decision(action: PromotionDecision['action'], actor: string, reason: string): PromotionDecision {
  return { action, actor, reason, policy: 'manual', metric: 'accuracy', value: 0.4, currentId: 'v0', currentValue: 0.5, at: new Date().toISOString() };
}

const code = (c: string) => (e: unknown) => isFedloraError(e, c as never);

export function adapterStoreContract(label: string, open: () => Promise<Opened<AdapterStore>>, skip: string | false = false): void {
  const it = (name: string, fn: (o: Opened<AdapterStore>) => Promise<void>) =>
    test(`${label} AdapterStore: ${name}`, { skip }, async () => {
      const o = await open();
      try {
        await fn(o);
      } finally {
        await o.close?.();
      }
    });

  it('when it is new, then it has no versions, no current one, no rounds and round 0', async ({ store }) => {
    assert.deepEqual(await store.list(), []);
    assert.equal(await store.currentId(), null);
    assert.equal(await store.lastRound(), 0);
    assert.deepEqual(await store.rounds(), []);
    assert.equal(await store.get('v0'), undefined);
  });

  it('when versions are added, then each is numbered, current, hash-checked and loads back exactly', async ({ store }) => {
    const v0 = await store.addVersion(newVersion(0, null), adapter(0), null);
    const v1 = await store.addVersion(newVersion(1, 'v0'), adapter(1), {
      strategy: 'fedadam',
      step: 1,
      tensors: { 'm.classifier.bias': { shape: [2], data: new Float32Array([0.5, 0.25]) } },
    });
    assert.deepEqual([v0.id, v1.id], ['v0', 'v1']);
    assert.equal(await store.currentId(), 'v1');
    assert.deepEqual((await store.list()).map((v) => [v.id, v.parent, v.round, v.metrics?.accuracy]), [
      ['v0', null, 0, 0.5],
      ['v1', 'v0', 1, 0.51],
    ]);
    assert.deepEqual(await store.get('v1'), v1);
    const native = await store.loadNative('v1');
    assert.equal(await sha256Hex(native), v1.sha256);
    assert.equal(native.byteLength, v1.bytes);
    assert.deepEqual(await store.loadState('v1'), adapter(1));
    assert.equal(await store.loadStrategyState('v0'), null);
    const s = await store.loadStrategyState('v1');
    assert.deepEqual([s?.strategy, s?.step, [...(s?.tensors['m.classifier.bias'].data ?? [])]], ['fedadam', 1, [0.5, 0.25]]);
    await assert.rejects(Promise.resolve().then(() => store.loadNative('v9')), code('NOT_FOUND'));
  });

  it('when an older version is promoted, then it is current; an unknown one is NOT_FOUND and changes nothing', async ({ store }) => {
    await store.addVersion(newVersion(0, null), adapter(0), null);
    await store.addVersion(newVersion(1, 'v0'), adapter(1), null);
    assert.equal((await store.promote('v0')).id, 'v0');
    assert.equal(await store.currentId(), 'v0');
    await assert.rejects(store.promote('v7'), code('NOT_FOUND'));
    assert.equal(await store.currentId(), 'v0');
  });

  it('when rounds are recorded, then they come back in order with every field, and lastRound counts them', async ({ store }) => {
    await store.addVersion(newVersion(0, null), adapter(0), null);
    const r1 = roundRecord(1, null);
    const r2 = roundRecord(2, null);
    await store.addRound(r1);
    await store.addRound(r2);
    assert.deepEqual(await store.rounds(), [r1, r2]);
    assert.equal(await store.lastRound(), 2);
  });

  it('when two versions are added at once, then they get distinct ids and both load', async ({ store }) => {
    await store.addVersion(newVersion(0, null), adapter(0), null);
    const [a, b] = await Promise.all([
      store.addVersion(newVersion(1, 'v0'), adapter(1), null),
      store.addVersion(newVersion(2, 'v0'), adapter(2), null),
    ]);
    assert.deepEqual([a.id, b.id].sort(), ['v1', 'v2']);
    assert.deepEqual(await store.loadState(a.id), adapter(a.round));
    assert.deepEqual(await store.loadState(b.id), adapter(b.round));
  });

  it('when a version is published as a candidate, then it is stored and loads, but the current version stays', async ({ store }) => {
    await store.addVersion(newVersion(0, null), adapter(0), null);
    const v1 = await store.addVersion(newVersion(1, 'v0'), adapter(1), null, { candidate: true });
    assert.equal(v1.status, 'candidate');
    assert.deepEqual(v1.decisions, []);
    assert.equal(await store.currentId(), 'v0');
    assert.equal((await store.get('v0'))?.status, 'promoted');
    assert.deepEqual(await store.get('v1'), v1);
    assert.deepEqual(await store.loadState('v1'), adapter(1));
    const kept = await store.decide('v1', decision('keep', 'policy', 'accuracy 0.51 < current 0.6'));
    assert.equal(kept.status, 'candidate');
    assert.equal(await store.currentId(), 'v0', 'keep only records');
  });

  it('when an admin approves or rejects a candidate, then the decision is recorded with reason and actor, and only approval makes it current', async ({ store }) => {
    await store.addVersion(newVersion(0, null), adapter(0), null);
    await store.addVersion(newVersion(1, 'v0'), adapter(1), null, { candidate: true });
    await store.addVersion(newVersion(2, 'v0'), adapter(2), null, { candidate: true });
    await store.decide('v1', decision('wait', 'policy', 'manual policy: waits for an admin'));
    const approved = await store.decide('v1', decision('approve', 'admin (token)', 'board approved 2026-12-05'));
    assert.equal(approved.status, 'promoted');
    assert.deepEqual(approved.decisions?.map((d) => [d.action, d.actor, d.reason]), [
      ['wait', 'policy', 'manual policy: waits for an admin'],
      ['approve', 'admin (token)', 'board approved 2026-12-05'],
    ]);
    assert.equal(await store.currentId(), 'v1');
    const rejected = await store.decide('v2', decision('reject', 'admin (session 0123abcd)', 'worse on site B'));
    assert.equal(rejected.status, 'rejected');
    assert.equal(await store.currentId(), 'v1');
    assert.deepEqual((await store.get('v2'))?.decisions?.[0], rejected.decisions?.[0]);
    assert.equal(rejected.decisions?.[0].currentValue, 0.5);
    // only a candidate is approved or rejected: not the current version, not one decided already
    await assert.rejects(store.decide('v1', decision('reject', 'admin (token)', 'x')), code('CONFLICT'));
    await assert.rejects(store.decide('v0', decision('approve', 'admin (token)', 'x')), code('CONFLICT'));
    await assert.rejects(store.decide('v9', decision('approve', 'admin (token)', 'x')), code('NOT_FOUND'));
    assert.equal(await store.currentId(), 'v1');
  });

  it('when a version was rejected, then approval cannot make it current; only an explicit promote does, and is recorded', async ({ store }) => {
    await store.addVersion(newVersion(0, null), adapter(0), null);
    await store.addVersion(newVersion(1, 'v0'), adapter(1), null, { candidate: true });
    await store.decide('v1', decision('reject', 'admin (token)', 'not yet'));
    await assert.rejects(store.decide('v1', decision('approve', 'admin (token)', 'changed my mind')), code('CONFLICT'));
    assert.equal((await store.get('v1'))?.status, 'rejected');
    assert.equal(await store.currentId(), 'v0');
    const promoted = await store.promote('v1', decision('promote', 'admin (token)', 'explicit promote'));
    assert.equal(promoted.status, 'promoted');
    assert.deepEqual(promoted.decisions?.map((d) => d.action), ['reject', 'promote']);
    assert.equal(await store.currentId(), 'v1');
  });

  it('when it is opened again after decisions, then statuses, decisions and the current pointer are all there', async (o) => {
    await o.store.addVersion(newVersion(0, null), adapter(0), null);
    await o.store.addVersion(newVersion(1, 'v0'), adapter(1), null, { candidate: true });
    await o.store.addVersion(newVersion(2, 'v0'), adapter(2), null, { candidate: true });
    await o.store.addVersion(newVersion(3, 'v0'), adapter(3), null, { candidate: true });
    await o.store.decide('v1', decision('reject', 'admin (token)', 'too noisy'));
    await o.store.decide('v2', decision('approve', 'admin (token)', 'looks good'));
    await o.store.decide('v3', decision('wait', 'policy', 'waits for an admin'));
    const again = await o.reopen();
    assert.deepEqual(await again.list(), await o.store.list());
    assert.deepEqual((await again.list()).map((v) => v.status), ['promoted', 'rejected', 'promoted', 'candidate']);
    assert.equal((await again.get('v1'))?.decisions?.[0].reason, 'too noisy');
    assert.equal((await again.get('v2'))?.decisions?.[0].actor, 'admin (token)');
    assert.equal(await again.currentId(), 'v2');
  });

  it('when it is opened again on the same data, then versions, the current pointer, bytes and rounds are all there', async (o) => {
    await o.store.addVersion(newVersion(0, null), adapter(0), null);
    const v1 = await o.store.addVersion(newVersion(1, 'v0'), adapter(1), null);
    await o.store.promote('v0');
    const r = roundRecord(1, 'v1');
    await o.store.addRound(r);
    const again = await o.reopen();
    assert.deepEqual(await again.list(), await o.store.list());
    assert.equal(await again.currentId(), 'v0');
    assert.deepEqual(await again.rounds(), [r]);
    assert.equal(await sha256Hex(await again.loadNative('v1')), v1.sha256);
    assert.equal(await again.lastRound(), 1);
  });

  it('when settings changes are kept, then they come back in order, nested values intact, after reopening too', async (o) => {
    assert.deepEqual(await o.store.settingsChanges(), []);
    const changes = [
      { at: '2026-12-06T10:00:00.000Z', patch: { minSites: 3, sitesPerRound: '0.5' } },
      { at: '2026-12-06T10:05:00.000Z', patch: { strategy: 'fedadam', strategyOptions: { fedadam: { eta: 0.05 } }, schedule: null } },
    ];
    for (const c of changes) await o.store.addSettingsChange(c);
    assert.deepEqual(await o.store.settingsChanges(), changes);
    assert.deepEqual(await (await o.reopen()).settingsChanges(), changes);
  });
}

export function siteStoreContract(label: string, open: () => Promise<Opened<SiteStore>>, skip: string | false = false): void {
  const it = (name: string, fn: (o: Opened<SiteStore>) => Promise<void>) =>
    test(`${label} SiteStore: ${name}`, { skip }, async () => {
      const o = await open();
      try {
        await fn(o);
      } finally {
        await o.close?.();
      }
    });

  it('when a site is created and enrolls with its token, then its keys are registered and the token is spent', async ({ store }) => {
    const { site, joinToken, reenrolled } = await store.create('Hospital A');
    assert.equal(site.id, 'hospital-a');
    assert.equal(reenrolled, false);
    assert.match(joinToken, /^hospital-a\./);
    assert.equal(await store.activeCount(), 1);
    assert.ok(!('tokenHash' in ((await store.list())[0] as object)), 'the list never shows the token hash');
    assert.equal(await store.signingKey('hospital-a'), null);
    const keys = generateSiteKeys();
    const enrolled = await store.enroll(joinToken, publicIdentity(keys));
    assert.ok(enrolled.enrolledAt);
    assert.deepEqual(await store.signingKey('hospital-a'), keys.signing.publicKey);
    await assert.rejects(store.enroll(joinToken, publicIdentity(generateSiteKeys())), code('TOKEN_USED'));
    await assert.rejects(store.enroll('hospital-a.not-the-token-at-all', publicIdentity(keys)), code('UNAUTHORIZED'));
    assert.deepEqual(await store.signingKey('hospital-a'), keys.signing.publicKey, 'a refused enrollment changes nothing');
  });

  it('when a site is revoked, then it cannot authenticate or enroll, and creating it again re-enrolls it under its id', async ({ store }) => {
    const first = await store.create('Bank Branch 7', 'bank-branch-7.preset-token-0123456789');
    await store.enroll(first.joinToken, publicIdentity(generateSiteKeys()));
    await assert.rejects(store.create('Bank Branch 7'), code('CONFIG_INVALID'));
    const revoked = await store.revoke('bank-branch-7');
    assert.ok(revoked.revokedAt);
    assert.ok((await store.revoke('bank-branch-7')).revokedAt, 'revoking twice is no error');
    assert.equal(await store.signingKey('bank-branch-7'), null);
    assert.equal(await store.activeCount(), 0);
    await assert.rejects(store.enroll(first.joinToken, publicIdentity(generateSiteKeys())), code('UNAUTHORIZED'));
    const again = await store.create('Bank Branch 7');
    assert.equal(again.reenrolled, true);
    assert.equal(again.site.id, 'bank-branch-7');
    assert.equal(again.site.createdAt, first.site.createdAt);
    assert.equal(again.site.revokedAt, null);
    assert.equal(again.site.enrolledAt, null);
    await assert.rejects(store.enroll(first.joinToken, publicIdentity(generateSiteKeys())), code('UNAUTHORIZED'));
    const keys = generateSiteKeys();
    await store.enroll(again.joinToken, publicIdentity(keys));
    assert.deepEqual(await store.signingKey('bank-branch-7'), keys.signing.publicKey);
    await assert.rejects(store.revoke('no-such-site'), code('NOT_FOUND'));
    await assert.rejects(store.create('   '), code('BAD_MESSAGE'));
    await assert.rejects(store.create('x', 'short'), code('CONFIG_INVALID'));
  });

  it('when several sites enroll at once, then every one keeps its own keys', async ({ store }) => {
    const made = await Promise.all(['Site A', 'Site B', 'Site C', 'Site D'].map((n) => store.create(n)));
    const keys = made.map(() => generateSiteKeys());
    await Promise.all(made.map((m, i) => store.enroll(m.joinToken, publicIdentity(keys[i]))));
    for (const [i, m] of made.entries()) assert.deepEqual(await store.signingKey(m.site.id), keys[i].signing.publicKey);
    assert.equal((await store.list()).length, 4);
  });

  it('when it is opened again on the same data, then sites, keys and revocations are all there', async (o) => {
    const a = await o.store.create('Site A');
    const keys = generateSiteKeys();
    await o.store.enroll(a.joinToken, publicIdentity(keys));
    await o.store.create('Site B');
    await o.store.revoke('site-b');
    const again = await o.reopen();
    assert.deepEqual(await again.list(), await o.store.list());
    assert.deepEqual(await again.signingKey('site-a'), keys.signing.publicKey);
    assert.equal(await again.activeCount(), 1);
    await assert.rejects(again.enroll(a.joinToken, publicIdentity(keys)), code('TOKEN_USED'));
  });
}

function userRecord(username: string, role: Role, tokenHash: string | null = null): UserRecord {
  const now = new Date().toISOString();
  return { username, role, disabled: false, createdAt: now, updatedAt: now, passwordHash: 'scrypt$32768$8$3$c2FsdA==$a2V5', tokenHash };
}

export function userStoreContract(label: string, open: () => Promise<Opened<UserStore>>, skip: string | false = false): void {
  const it = (name: string, fn: (o: Opened<UserStore>) => Promise<void>) =>
    test(`${label} UserStore: ${name}`, { skip }, async () => {
      const o = await open();
      try {
        await fn(o);
      } finally {
        await o.close?.();
      }
    });

  it('when users are created and changed, then they list in creation order without hashes, and come back after a reopen', async (o) => {
    assert.deepEqual(await o.store.list(), []);
    await o.store.create(userRecord('olivia', 'operator', 'a'.repeat(64)));
    await o.store.create(userRecord('victor', 'viewer'));
    await assert.rejects(Promise.resolve().then(() => o.store.create(userRecord('olivia', 'admin'))), code('CONFLICT'));
    assert.deepEqual((await o.store.list()).map((u) => [u.username, u.role, u.hasPassword, u.hasToken]), [
      ['olivia', 'operator', true, true],
      ['victor', 'viewer', true, false],
    ]);
    assert.ok(!JSON.stringify(await o.store.list()).includes('scrypt'), 'the list never shows a hash');
    assert.equal((await o.store.byTokenHash('a'.repeat(64)))?.username, 'olivia');
    const changed = await o.store.update('olivia', { role: 'admin', disabled: true, tokenHash: 'b'.repeat(64) });
    assert.deepEqual([changed.role, changed.disabled], ['admin', true]);
    assert.equal(await o.store.byTokenHash('a'.repeat(64)), undefined, 'the old token is gone');
    assert.equal((await o.store.byTokenHash('b'.repeat(64)))?.username, 'olivia');
    await assert.rejects(Promise.resolve().then(() => o.store.update('nobody', { role: 'admin' })), code('NOT_FOUND'));
    const again = await o.reopen();
    assert.deepEqual(await again.list(), await o.store.list());
    assert.deepEqual(await again.get('olivia'), await o.store.get('olivia'));
    assert.equal(await again.get('nobody'), undefined);
  });
}

export function auditStoreContract(label: string, open: () => Promise<Opened<AuditStore>>, skip: string | false = false): void {
  const it = (name: string, fn: (o: Opened<AuditStore>) => Promise<void>) =>
    test(`${label} AuditStore: ${name}`, { skip }, async () => {
      const o = await open();
      try {
        await fn(o);
      } finally {
        await o.close?.();
      }
    });
  const input = (target: string) => ({ actor: 'olivia', role: 'operator' as const, action: 'site.revoke', target, outcome: 'ok' });

  it('when entries are appended, some at once, then they chain in seq order, page newest first, and the chain continues after a reopen', async (o) => {
    assert.deepEqual(await o.store.all(), []);
    await o.store.append(input('a'));
    await Promise.all(['b', 'c', 'd'].map((t) => o.store.append(input(t))));
    const all = await o.store.all();
    assert.deepEqual(all.map((e) => e.seq), [1, 2, 3, 4]);
    assert.deepEqual(all.map((e) => e.target).sort(), ['a', 'b', 'c', 'd']);
    assert.equal(verifyAuditChain(all).ok, true);
    const page = await o.store.page({ limit: 2, before: 4 });
    assert.deepEqual([page.total, page.entries.map((e) => e.seq)], [4, [3, 2]]);
    assert.deepEqual((await o.store.page({ limit: 10 })).entries.map((e) => e.seq), [4, 3, 2, 1]);
    const again = await o.reopen();
    const next = await again.append({ ...input('e'), detail: 'a reason' });
    assert.equal(next.seq, 5);
    assert.equal(next.prevHash, all[3].hash);
    const after = await again.all();
    assert.deepEqual(after.slice(0, 4), all);
    assert.deepEqual(verifyAuditChain(after), { ok: true, entries: 5, headHash: next.hash });
  });
}
