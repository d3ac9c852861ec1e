// Pinned coordinator trust (issue 21 must-show 4, unit level): fingerprints, the hello proof, signed messages and
// their domain separation, the canonical encoding they sign, and join tokens that carry the fingerprint.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import nacl from 'tweetnacl';
import { isFedloraError } from '../errors';
import { canonicalBytes } from './canonical';
import {
  coordinatorFingerprint,
  parseFingerprint,
  signCoordinatorMessage,
  signHello,
  trustCoordinator,
  type CoordinatorTrust,
} from './coordinator-trust';
import { bytesEqual, randomBytes } from './bytes';
import { parseJoinToken, pinnedJoinToken, projectNamespace } from '../protocol/join-token';
import { projectOfNamespace } from '../protocol/project-id';
import { asAckSocket } from '../connection/session';
import { signServerMessage, verifyAdapterVersion, verifyServerMessage } from '../protocol/signed-messages';

const coordinator = nacl.sign.keyPair();
const impostor = nacl.sign.keyPair();

const untrusted = (re: RegExp) => (err: unknown) => isFedloraError(err, 'UNTRUSTED_COORDINATOR') && re.test(err.message);

async function trusted(project?: string): Promise<CoordinatorTrust> {
  const nonce = randomBytes(32);
  const hello = { coordinatorId: 'coord-1', signingPublicKey: coordinator.publicKey, signature: signHello(nonce, 'coord-1', coordinator.secretKey) };
  return trustCoordinator(hello, nonce, await coordinatorFingerprint(coordinator.publicKey), project);
}

const configure = () => ({
  roundId: 'r7',
  round: 7,
  config: { localEpochs: 1, batchSize: 8, learningRate: 0.001, proximalMu: 0 },
  adapterVersionId: 'v6',
  coordinatorBoxPublicKey: new Uint8Array(32).fill(3),
  encoding: 'fp32' as const,
  deadline: 1_700_000_000_000,
});

test('when a key is fingerprinted, then it reads as 8 groups of 4 base32 characters and a typed variant parses back to it', async () => {
  const fp = await coordinatorFingerprint(coordinator.publicKey);
  assert.match(fp, /^[a-z2-7]{4}(-[a-z2-7]{4}){7}$/);
  assert.equal(parseFingerprint(fp.toUpperCase().replace(/-/g, ' ')), fp);
  assert.notEqual(await coordinatorFingerprint(impostor.publicKey), fp);
  assert.throws(() => parseFingerprint('abcd-1234'), (e) => isFedloraError(e, 'CONFIG_INVALID'));
});

test('when the coordinator presents the pinned key and signs the nonce, then the site trusts it', async () => {
  const trust = await trusted();
  assert.equal(trust.coordinatorId, 'coord-1');
  assert.equal(trust.fingerprint, await coordinatorFingerprint(coordinator.publicKey));
});

test('when the coordinator presents another key than the pinned one, then the site refuses naming both fingerprints', async () => {
  const nonce = randomBytes(32);
  const hello = { coordinatorId: 'coord-1', signingPublicKey: impostor.publicKey, signature: signHello(nonce, 'coord-1', impostor.secretKey) };
  const expected = await coordinatorFingerprint(coordinator.publicKey);
  const presented = await coordinatorFingerprint(impostor.publicKey);
  await assert.rejects(
    trustCoordinator(hello, nonce, expected),
    untrusted(new RegExp(`fingerprint mismatch: expected ${expected}, the coordinator presented ${presented}`)),
  );
});

test('when a peer presents the pinned public key without its secret (a replayed or forged hello), then the site refuses', async () => {
  const nonce = randomBytes(32);
  const pinned = await coordinatorFingerprint(coordinator.publicKey);
  // an attacker relaying an old hello: signed, but over another nonce
  const old = { coordinatorId: 'coord-1', signingPublicKey: coordinator.publicKey, signature: signHello(randomBytes(32), 'coord-1', coordinator.secretKey) };
  await assert.rejects(trustCoordinator(old, nonce, pinned), untrusted(/did not prove it holds it/));
  const forged = { ...old, signature: signHello(nonce, 'coord-1', impostor.secretKey) };
  await assert.rejects(trustCoordinator(forged, nonce, pinned), untrusted(/did not prove/));
});

test('when a round message is signed by the coordinator, then it verifies whatever its key order and binary type on the wire', async () => {
  const trust = await trusted();
  const msg = signServerMessage('round:configure', configure(), (c, b) => signCoordinatorMessage(c, b, coordinator.secretKey));
  // as a browser receives it: keys in another order, binary fields as ArrayBuffer
  const wire = Object.fromEntries(Object.entries(msg).reverse().map(([k, v]) => [k, v instanceof Uint8Array ? v.slice().buffer : v]));
  const body = verifyServerMessage(trust, 'round:configure', wire);
  assert.equal(body.roundId, 'r7');
  assert.ok(bytesEqual(body.coordinatorBoxPublicKey, new Uint8Array(32).fill(3)));
});

test('when a signed round message is altered, unsigned, signed by another key or signed for another event, then the site refuses it', async () => {
  const trust = await trusted();
  const sign = (c: Parameters<typeof signCoordinatorMessage>[0], b: unknown) => signCoordinatorMessage(c, b, coordinator.secretKey);
  const msg = signServerMessage('round:configure', configure(), sign);
  assert.throws(() => verifyServerMessage(trust, 'round:configure', { ...msg, adapterVersionId: 'v-evil' }), untrusted(/bad signature on round:configure \(round r7\)/));
  assert.throws(() => verifyServerMessage(trust, 'round:configure', { ...msg, coordinatorBoxPublicKey: new Uint8Array(32).fill(9) }), untrusted(/bad signature/));
  assert.throws(() => verifyServerMessage(trust, 'round:configure', configure()), untrusted(/unsigned round:configure/));
  const byImpostor = signServerMessage('round:configure', configure(), (c, b) => signCoordinatorMessage(c, b, impostor.secretKey));
  assert.throws(() => verifyServerMessage(trust, 'round:configure', byImpostor), untrusted(/not signed by coordinator/));
  // domain separation: a version:published signature over the same fields is no round:train signature
  const published = { versionId: 'v6', round: 6, metrics: {}, adapterSha256: 'a'.repeat(64) };
  const signedPublished = signServerMessage('version:published', published, sign);
  assert.doesNotThrow(() => verifyServerMessage(trust, 'version:published', signedPublished));
  const asTrain = { roundId: 'r7', adapter: new Uint8Array(4), adapterSha256: 'a'.repeat(64) };
  const trainSig = signCoordinatorMessage('version:published', asTrain, coordinator.secretKey);
  assert.throws(() => verifyServerMessage(trust, 'round:train', { ...asTrain, coordinatorSignature: trainSig }), untrusted(/bad signature on round:train/));
});

test('when an inline adapter in round:train differs by one byte from the signed one, then the signature fails', async () => {
  const trust = await trusted();
  const adapter = new Uint8Array(5000).fill(1);
  const train = { roundId: 'r7', adapter, adapterSha256: 'b'.repeat(64) };
  const signed = signServerMessage('round:train', train, (c, b) => signCoordinatorMessage(c, b, coordinator.secretKey));
  assert.doesNotThrow(() => verifyServerMessage(trust, 'round:train', signed));
  const changed = adapter.slice();
  changed[4321] = 2;
  assert.throws(() => verifyServerMessage(trust, 'round:train', { ...signed, adapter: changed }), untrusted(/bad signature on round:train/));
});

test('when an adapter version is fetched, then only the (versionId, sha256) the coordinator signed is accepted', async () => {
  const trust = await trusted();
  const v = { versionId: 'v6', adapterSha256: 'c'.repeat(64) };
  const versionSignature = signCoordinatorMessage('adapter:version', v, coordinator.secretKey);
  assert.doesNotThrow(() => verifyAdapterVersion(trust, { ...v, versionSignature }));
  assert.throws(() => verifyAdapterVersion(trust, { ...v, adapterSha256: 'd'.repeat(64), versionSignature }), untrusted(/bad signature on adapter:version/));
  assert.throws(() => verifyAdapterVersion(trust, v), untrusted(/unsigned adapter:version/));
});

test('when values are canonically encoded, then key order and undefined fields do not matter and every type is tagged', () => {
  assert.ok(bytesEqual(canonicalBytes({ a: 1, b: 'x', c: undefined }), canonicalBytes({ b: 'x', a: 1 })));
  assert.ok(!bytesEqual(canonicalBytes({ a: '1' }), canonicalBytes({ a: 1 })));
  assert.ok(!bytesEqual(canonicalBytes(['ab', 'c']), canonicalBytes(['a', 'bc'])));
  assert.ok(bytesEqual(canonicalBytes({ x: -0 }), canonicalBytes({ x: 0 })));
  let deep: unknown = 1;
  for (let i = 0; i < 40; i++) deep = [deep];
  assert.throws(() => canonicalBytes(deep), (e) => isFedloraError(e, 'BAD_MESSAGE'));
});

test('when a join token is pinned, then the site reads the secret and the fingerprint back; a token from before pinning has none', async () => {
  const fp = await coordinatorFingerprint(coordinator.publicKey);
  const token = pinnedJoinToken('hospital-a.abcDEF_123-xyz', fp);
  assert.ok(token.endsWith('~' + fp.replace(/-/g, '')));
  assert.deepEqual(parseJoinToken(` ${token}\n`), { secret: 'hospital-a.abcDEF_123-xyz', fingerprint: fp, project: null });
  assert.deepEqual(parseJoinToken('hospital-a.abcDEF_123-xyz'), { secret: 'hospital-a.abcDEF_123-xyz', fingerprint: null, project: null });
  assert.throws(() => parseJoinToken('hospital-a.abc~not-a-fingerprint'), (e) => isFedloraError(e, 'CONFIG_INVALID'));
});

test('when a join token names a project (issue 21), then the site reads the project back and connects to its namespace; the default project is not written', async () => {
  const fp = await coordinatorFingerprint(coordinator.publicKey);
  const token = pinnedJoinToken('ward-3.abcDEF_123-xyz', fp, 'triage');
  assert.ok(token.endsWith('@triage'));
  assert.deepEqual(parseJoinToken(token), { secret: 'ward-3.abcDEF_123-xyz', fingerprint: fp, project: 'triage' });
  assert.equal(projectNamespace(parseJoinToken(token).project), '/projects/triage');
  assert.equal(pinnedJoinToken('a.b', fp, 'default'), pinnedJoinToken('a.b', fp));
  assert.equal(projectNamespace(parseJoinToken(pinnedJoinToken('a.b', fp)).project), '/');
  for (const bad of ['@Triage', '@tri/age', '@', '@a@b', '@../x'])
    assert.throws(() => parseJoinToken(`a.b~${fp}${bad}`), (e) => isFedloraError(e, 'CONFIG_INVALID'), bad);
});

test('when one coordinator key serves several projects, then a message signed for one project verifies only at that project\'s sites', async () => {
  const signFor = (project?: string) => (c: Parameters<typeof signCoordinatorMessage>[0], b: unknown) =>
    signCoordinatorMessage(c, b, coordinator.secretKey, undefined, project);
  const [atDefault, atTriage, atRadiology] = await Promise.all([trusted(), trusted('triage'), trusted('radiology')]);
  const forTriage = signServerMessage('round:configure', configure(), signFor('triage'));
  assert.doesNotThrow(() => verifyServerMessage(atTriage, 'round:configure', forTriage));
  // replayed to another project's site, or to the default project's, it is refused
  assert.throws(() => verifyServerMessage(atRadiology, 'round:configure', forTriage), untrusted(/bad signature on round:configure/));
  assert.throws(() => verifyServerMessage(atDefault, 'round:configure', forTriage), untrusted(/bad signature/));
  // and the default project's messages are signed as before projects existed (its sites need nothing new)
  const forDefault = signServerMessage('round:configure', configure(), signFor());
  const body = configure();
  assert.deepEqual(signFor()('round:configure', body), signFor('default')('round:configure', body));
  assert.doesNotThrow(() => verifyServerMessage(atDefault, 'round:configure', forDefault));
  assert.throws(() => verifyServerMessage(atTriage, 'round:configure', forDefault), untrusted(/bad signature/));
  // an adapter version too
  const v = { versionId: 'v3', adapterSha256: 'b'.repeat(64) };
  const versionSignature = signCoordinatorMessage('adapter:version', v, coordinator.secretKey, undefined, 'triage');
  assert.doesNotThrow(() => verifyAdapterVersion(atTriage, { ...v, versionSignature }));
  assert.throws(() => verifyAdapterVersion(atRadiology, { ...v, versionSignature }), untrusted(/bad signature on adapter:version/));
});

test('the project a site belongs to is its socket\'s namespace, carried through asAckSocket', () => {
  assert.equal(projectOfNamespace('/projects/triage'), 'triage');
  assert.equal(projectOfNamespace('/'), 'default');
  assert.equal(projectOfNamespace(undefined), 'default');
  assert.equal(projectOfNamespace(projectNamespace('radiology')), 'radiology');
  assert.equal(asAckSocket({ nsp: '/projects/triage', connected: true, once() {}, off() {}, timeout() {} }).nsp, '/projects/triage');
});
