// Isomorphic byte helpers (Node and browsers): base64, UTF-8, length-prefixed concatenation, constant-time compare.
// No Buffer (node-only): btoa/atob and TextEncoder exist in Node >= 16 and every browser.

import nacl from 'tweetnacl';
import { FedloraError, type FedloraErrorCode } from '../errors';

const utf8 = new TextEncoder();

export function utf8Bytes(s: string): Uint8Array {
  return utf8.encode(s);
}

export function toBase64(bytes: Uint8Array): string {
  let s = '';
  // chunked so String.fromCharCode never gets more arguments than the engine allows
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict base64 (padded, standard alphabet); `what` names the field in the error. */
export function fromBase64(s: unknown, what: string, code: FedloraErrorCode = 'BAD_MESSAGE'): Uint8Array {
  if (typeof s !== 'string' || !BASE64_RE.test(s))
    throw new FedloraError(code, `${what} is not valid base64`);
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * Bytes received over socket.io: Node delivers Buffer (a Uint8Array), browsers deliver ArrayBuffer.
 * Returns a Uint8Array view for either, else throws BAD_MESSAGE.
 */
export function asBytes(x: unknown, what: string): Uint8Array {
  if (x instanceof Uint8Array) return x;
  if (x instanceof ArrayBuffer) return new Uint8Array(x);
  if (ArrayBuffer.isView(x)) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  throw new FedloraError('BAD_MESSAGE', `${what} must be binary`);
}

/**
 * Unambiguous concatenation: each part is prefixed by its 4-byte big-endian length, so that
 * ("ab","c") and ("a","bc") never produce the same signed message.
 */
export function concatLengthPrefixed(parts: readonly Uint8Array[]): Uint8Array {
  const total = parts.reduce((n, p) => n + 4 + p.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let off = 0;
  for (const p of parts) {
    view.setUint32(off, p.length, false);
    out.set(p, off + 4);
    off += 4 + p.length;
  }
  return out;
}

/** Constant-time equality (length is not secret). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && (a.length === 0 || nacl.verify(a, b));
}

export function randomBytes(n: number): Uint8Array {
  return nacl.randomBytes(n);
}
