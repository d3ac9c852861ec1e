// Public API of fedlora's crypto: site keys, sealed+signed envelopes, auth challenges, SHA-256.

export * from './keys';
export * from './envelope';
export { sha256, sha256Hex } from './hash';
export { asBytes, bytesEqual, fromBase64, randomBytes, toBase64 } from './bytes';
