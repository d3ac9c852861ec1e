// WebCrypto and tweetnacl compute the same X25519 and Ed25519, so a browser on either path interoperates.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import nacl from 'tweetnacl';
import { isFedloraError } from '../errors';
import { boxSharedKey, verifyEd25519, x25519 } from './curve';

test('when two keys agree through curve.ts, then the point and the box key equal tweetnacl\'s scalarMult and box.before', async () => {
  for (let i = 0; i < 5; i++) {
    const a = nacl.box.keyPair();
    const b = nacl.box.keyPair();
    assert.deepEqual(await x25519(a.secretKey, b.publicKey), nacl.scalarMult(a.secretKey, b.publicKey));
    assert.deepEqual(await boxSharedKey(a.secretKey, b.publicKey), nacl.box.before(b.publicKey, a.secretKey));
  }
});

test('when a public key is a low-order point, then the agreement is refused', async () => {
  await assert.rejects(x25519(nacl.box.keyPair().secretKey, new Uint8Array(32)), (e) => isFedloraError(e, 'BAD_MESSAGE') && /low-order/.test(e.message));
});

test('when a tweetnacl signature is verified, then it passes, and a changed message or signature fails', async () => {
  const keys = nacl.sign.keyPair();
  const message = nacl.randomBytes(100);
  const signature = nacl.sign.detached(message, keys.secretKey);
  assert.equal(await verifyEd25519(message, signature, keys.publicKey), true);
  assert.equal(await verifyEd25519(message.map((b, i) => (i === 0 ? b ^ 1 : b)), signature, keys.publicKey), false);
  assert.equal(await verifyEd25519(message, signature.map((b, i) => (i === 9 ? b ^ 1 : b)), keys.publicKey), false);
  assert.equal(await verifyEd25519(message, signature, nacl.sign.keyPair().publicKey), false);
});
