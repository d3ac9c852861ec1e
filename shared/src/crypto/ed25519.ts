// Ed25519 signatures for envelopes and auth challenges, synchronous. tweetnacl is the portable implementation (the
// browser site, any JS runtime); on Node the coordinator and the agent install OpenSSL's through node:crypto
// (shared/src/node/native-ed25519.ts). Why: tweetnacl's verify costs ~9 ms of pure-JS point arithmetic per call,
// OpenSSL's ~0.3 ms; a coordinator verifies one challenge per connecting site and one signature per upload, so at
// 10,000 sites tweetnacl alone is ~90 s of the event loop per round (docs/BENCHMARKS.md, issue 18 load).
// Both follow RFC 8032 with the same 64-byte tweetnacl secret key layout (seed ‖ public key).

import nacl from 'tweetnacl';

export interface Ed25519 {
  readonly name: string;
  sign(message: Uint8Array, secretKey: Uint8Array): Uint8Array;
  verify(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean;
}

export const tweetnaclEd25519: Ed25519 = {
  name: 'tweetnacl',
  sign: (m, sk) => nacl.sign.detached(m, sk),
  verify: (m, sig, pk) => sig.length === 64 && pk.length === 32 && nacl.sign.detached.verify(m, sig, pk),
};

let current: Ed25519 = tweetnaclEd25519;

/** Replaces the implementation for this process (Node: useNativeEd25519 from @fedlora/shared/node). */
export function setEd25519(impl: Ed25519): void {
  current = impl;
}

export function ed25519(): Ed25519 {
  return current;
}

export function signDetached(message: Uint8Array, secretKey: Uint8Array): Uint8Array {
  return current.sign(message, secretKey);
}

export function verifyDetached(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
  return current.verify(message, signature, publicKey);
}
