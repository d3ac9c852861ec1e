// Tests for site keys, sealed+signed envelopes, auth challenges and SHA-256.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import nacl from 'tweetnacl';
import { isFedloraError } from '../errors';
import { bytesEqual, concatLengthPrefixed, fromBase64, toBase64, utf8Bytes } from './bytes';
import { createChallenge, openAndVerify, sealAndSign, signChallenge, verifyChallenge } from './envelope';
import { sha256Hex } from './hash';
import { generateBoxKeyPair, generateSiteKeys, parseSiteKeys, serializeSiteKeys } from './keys';

const code = (c: string) => (err: unknown) => isFedloraError(err) && err.code === c;

test('when site keys are serialized to JSON and parsed back, then they are identical', () => {
  const k = generateSiteKeys();
  const back = parseSiteKeys(JSON.parse(JSON.stringify(serializeSiteKeys(k))));
  assert.ok(bytesEqual(back.signing.secretKey, k.signing.secretKey));
  assert.ok(bytesEqual(back.box.publicKey, k.box.publicKey));
});

test('when a key file mixes keys of two identities, then parsing fails with CONFIG_INVALID', () => {
  const a = serializeSiteKeys(generateSiteKeys());
  const b = serializeSiteKeys(generateSiteKeys());
  assert.throws(() => parseSiteKeys({ ...a, boxPublicKey: b.boxPublicKey }), code('CONFIG_INVALID'));
  assert.throws(() => parseSiteKeys({ ...a, signingPublicKey: 'AAAA' }), code('CONFIG_INVALID'));
  assert.throws(() => parseSiteKeys({ ...a, v: 2 }), code('CONFIG_INVALID'));
});

test('when base64 is not canonical, then fromBase64 rejects it', () => {
  assert.equal(toBase64(new Uint8Array([0xfb, 0xff])), '+/8=');
  assert.deepEqual([...fromBase64('+/8=', 'x')], [0xfb, 0xff]);
  assert.throws(() => fromBase64('+/8', 'x'), code('BAD_MESSAGE'));
  assert.throws(() => fromBase64('a b=', 'x'), code('BAD_MESSAGE'));
});

test('when parts are length-prefixed, then different splits give different bytes', () => {
  const ab_c = concatLengthPrefixed([utf8Bytes('ab'), utf8Bytes('c')]);
  const a_bc = concatLengthPrefixed([utf8Bytes('a'), utf8Bytes('bc')]);
  assert.equal(bytesEqual(ab_c, a_bc), false);
  assert.deepEqual([...ab_c.subarray(0, 6)], [0, 0, 0, 2, 97, 98]);
});

function setup() {
  const site = generateSiteKeys();
  const round = generateBoxKeyPair();
  const payload = utf8Bytes('delta bytes go here');
  const env = sealAndSign(payload, {
    roundId: 'r-7',
    recipientBoxPublicKey: round.publicKey,
    signing: site.signing,
  });
  const open = { expectedSigningPublicKey: site.signing.publicKey, recipientSecretKey: round.secretKey };
  return { site, round, payload, env, open };
}

test('when an envelope is sealed and opened with the right keys, then the payload comes back', () => {
  const { payload, env, open } = setup();
  assert.deepEqual(openAndVerify(env, { ...open, expectedRoundId: 'r-7' }), payload);
});

test('when two envelopes carry the same payload, then nonces and ciphertexts differ', () => {
  const { site, round, payload, env } = setup();
  const env2 = sealAndSign(payload, {
    roundId: 'r-7',
    recipientBoxPublicKey: round.publicKey,
    signing: site.signing,
  });
  assert.equal(bytesEqual(env.nonce, env2.nonce), false);
  assert.equal(bytesEqual(env.ciphertext, env2.ciphertext), false);
  assert.equal(bytesEqual(env.ephemeralPublicKey, env2.ephemeralPublicKey), false);
});

test('when a ciphertext byte is flipped, then opening fails with BAD_SIGNATURE or DECRYPT_FAILED', () => {
  const { env, open } = setup();
  const ciphertext = new Uint8Array(env.ciphertext);
  ciphertext[3] ^= 1;
  assert.throws(
    () => openAndVerify({ ...env, ciphertext }, open),
    (e: unknown) => isFedloraError(e, 'BAD_SIGNATURE') || isFedloraError(e, 'DECRYPT_FAILED'),
  );
});

test('when a validly signed ciphertext was sealed to another key, then opening fails with DECRYPT_FAILED', () => {
  const { site, round, open } = setup();
  // a buggy or malicious site seals to the wrong key but signs over the round key: the signature passes,
  // decryption must not
  const env = sealAndSign(utf8Bytes('x'), {
    roundId: 'r-7',
    recipientBoxPublicKey: generateBoxKeyPair().publicKey,
    signing: site.signing,
  });
  const signature = signLikeSealAndSign(env, round.publicKey, site.signing.secretKey);
  assert.throws(() => openAndVerify({ ...env, signature }, open), code('DECRYPT_FAILED'));
});

test('when the envelope was signed by another site, then opening fails with BAD_SIGNATURE', () => {
  const { payload, round, open } = setup();
  const mallory = generateSiteKeys();
  const env = sealAndSign(payload, {
    roundId: 'r-7',
    recipientBoxPublicKey: round.publicKey,
    signing: mallory.signing,
  });
  assert.throws(() => openAndVerify(env, open), code('BAD_SIGNATURE'));
  // without the public-key hint the signature check itself must catch it
  const { sitePublicKey: _hint, ...noHint } = env;
  assert.throws(() => openAndVerify(noHint, open), code('BAD_SIGNATURE'));
});

test('when the round id is altered after signing, then opening fails with BAD_SIGNATURE', () => {
  const { env, open } = setup();
  assert.throws(() => openAndVerify({ ...env, roundId: 'r-8' }, open), code('BAD_SIGNATURE'));
  assert.throws(() => openAndVerify(env, { ...open, expectedRoundId: 'r-8' }), code('WRONG_ROUND'));
});

test('when the envelope is opened with another round key, then it fails with BAD_SIGNATURE', () => {
  const { env, open } = setup();
  assert.throws(
    () => openAndVerify(env, { ...open, recipientSecretKey: generateBoxKeyPair().secretKey }),
    code('BAD_SIGNATURE'),
  );
});

test('when an envelope is malformed, then opening fails with BAD_MESSAGE', () => {
  const { env, open } = setup();
  assert.throws(() => openAndVerify({ ...env, nonce: env.nonce.subarray(0, 23) }, open), code('BAD_MESSAGE'));
  assert.throws(() => openAndVerify({ ...env, extra: 1 }, open), code('BAD_MESSAGE'));
  assert.throws(() => openAndVerify('nope', open), code('BAD_MESSAGE'));
  assert.throws(() => openAndVerify({ ...env, signature: [...env.signature] }, open), code('BAD_MESSAGE'));
});

test('when binary fields arrive as ArrayBuffer (browser socket.io), then the envelope still opens', () => {
  const { env, open, payload } = setup();
  const ab = (b: Uint8Array) => b.slice().buffer;
  const asBuffers = {
    ...env,
    ephemeralPublicKey: ab(env.ephemeralPublicKey),
    nonce: ab(env.nonce),
    ciphertext: ab(env.ciphertext),
  };
  assert.deepEqual(openAndVerify(asBuffers, open), payload);
});

test('when a challenge is signed, then it verifies only for the same site, coordinator and key', () => {
  const site = generateSiteKeys();
  const ch = createChallenge();
  const ctx = { siteId: 'hospital-a', coordinatorId: 'coord-1' };
  const sig = signChallenge(ch, ctx, site.signing.secretKey);
  assert.equal(verifyChallenge(ch, ctx, sig, site.signing.publicKey), true);
  assert.equal(verifyChallenge(ch, { ...ctx, siteId: 'hospital-b' }, sig, site.signing.publicKey), false);
  assert.equal(verifyChallenge(ch, { ...ctx, coordinatorId: 'coord-2' }, sig, site.signing.publicKey), false);
  assert.equal(verifyChallenge(createChallenge(), ctx, sig, site.signing.publicKey), false);
  assert.equal(verifyChallenge(ch, ctx, sig, generateSiteKeys().signing.publicKey), false);
});

test('when hashing "abc", then sha256Hex gives the FIPS 180-2 test vector', async () => {
  assert.equal(
    await sha256Hex(utf8Bytes('abc')),
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
  );
});

/** Signs an envelope body the way sealAndSign does, for forging tests (mirrors envelope.ts). */
function signLikeSealAndSign(
  e: { roundId: string; ephemeralPublicKey: Uint8Array; nonce: Uint8Array; ciphertext: Uint8Array },
  recipient: Uint8Array,
  secretKey: Uint8Array,
): Uint8Array {
  const msg = concatLengthPrefixed([
    utf8Bytes('fedlora/envelope/v1'),
    utf8Bytes(e.roundId),
    recipient,
    e.ephemeralPublicKey,
    e.nonce,
    e.ciphertext,
  ]);
  return nacl.sign.detached(msg, secretKey);
}
