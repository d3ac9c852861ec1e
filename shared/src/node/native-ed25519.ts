// OpenSSL's Ed25519 through node:crypto, installed in place of tweetnacl's (shared/src/crypto/ed25519.ts says why).
// Keys stay in tweetnacl's raw layout on the wire and on disk; they are wrapped in DER here, and the wrapped
// KeyObjects are cached per key (a coordinator verifies many signatures of the same few thousand site keys).

import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { setEd25519, type Ed25519 } from '../crypto/ed25519';

// the fixed DER prefixes of an Ed25519 SubjectPublicKeyInfo and PKCS#8 private key (RFC 8410)
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const CACHE_LIMIT = 100_000;

function cached(cache: Map<string, KeyObject>, raw: Uint8Array, make: () => KeyObject): KeyObject {
  const id = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64');
  let k = cache.get(id);
  if (!k) {
    if (cache.size >= CACHE_LIMIT) cache.clear();
    k = make();
    cache.set(id, k);
  }
  return k;
}

export function nativeEd25519(): Ed25519 {
  const publicKeys = new Map<string, KeyObject>();
  const privateKeys = new Map<string, KeyObject>();
  return {
    name: 'node:crypto',
    sign: (message, secretKey) => {
      if (secretKey.length !== 64) throw new RangeError('bad secret key size');
      const key = cached(privateKeys, secretKey, () =>
        createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, secretKey.subarray(0, 32)]), format: 'der', type: 'pkcs8' }),
      );
      return new Uint8Array(sign(null, message, key));
    },
    verify: (message, signature, publicKey) => {
      if (signature.length !== 64 || publicKey.length !== 32) return false;
      try {
        const key = cached(publicKeys, publicKey, () => createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' }));
        return verify(null, message, key, signature);
      } catch {
        // a 32-byte string that is not a curve point: not a valid key, so nothing verifies under it
        return false;
      }
    },
  };
}

/** Uses OpenSSL's Ed25519 for every signature and verification in this process. */
export function useNativeEd25519(): void {
  setEd25519(nativeEd25519());
}
