// OpenSSL's Ed25519 (node:crypto) must be interchangeable with tweetnacl's: a signature made by either verifies
// under the other, and each refuses the same forgeries. The coordinator verifies with one, the browser site signs
// with the other.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import nacl from 'tweetnacl';
import { tweetnaclEd25519 } from '../crypto/ed25519';
import { nativeEd25519 } from './native-ed25519';

const native = nativeEd25519();

test('when either implementation signs, then both verify, and the signatures are identical (Ed25519 is deterministic)', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2048 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), (message, seed) => {
      const keys = nacl.sign.keyPair.fromSeed(seed);
      const a = tweetnaclEd25519.sign(message, keys.secretKey);
      const b = native.sign(message, keys.secretKey);
      assert.deepEqual(b, a);
      assert.ok(native.verify(message, a, keys.publicKey));
      assert.ok(tweetnaclEd25519.verify(message, b, keys.publicKey));
    }),
    { numRuns: 100 },
  );
});

test('when a message, a signature or the key is altered, then both refuse it', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 512 }), fc.nat(), fc.integer({ min: 0, max: 2 }), (message, at, what) => {
      const keys = nacl.sign.keyPair();
      const other = nacl.sign.keyPair();
      const sig = nacl.sign.detached(message, keys.secretKey);
      let [m, s, pk] = [message, sig, keys.publicKey];
      if (what === 0) {
        m = message.slice();
        m[at % m.length] ^= 1;
      }
      if (what === 1) {
        s = sig.slice();
        s[at % 64] ^= 1;
      }
      if (what === 2) pk = other.publicKey;
      assert.equal(native.verify(m, s, pk), false);
      assert.equal(tweetnaclEd25519.verify(m, s, pk), false);
    }),
    { numRuns: 100 },
  );
});

test('when the key or signature has the wrong size, or the key is not a curve point, then verify is false, not a throw', () => {
  const keys = nacl.sign.keyPair();
  const sig = nacl.sign.detached(new Uint8Array([1]), keys.secretKey);
  for (const impl of [native, tweetnaclEd25519]) {
    assert.equal(impl.verify(new Uint8Array([1]), sig.subarray(0, 63), keys.publicKey), false);
    assert.equal(impl.verify(new Uint8Array([1]), sig, keys.publicKey.subarray(0, 31)), false);
    // y = 2 is not on the curve (x² has no square root)
    const notAPoint = new Uint8Array(32);
    notAPoint[0] = 2;
    assert.equal(impl.verify(new Uint8Array([1]), sig, notAPoint), false, impl.name);
  }
});
