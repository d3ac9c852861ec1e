// A canonical byte encoding of a parsed protocol message, so that the coordinator and a site sign and verify the same
// bytes whatever order the fields were built or decoded in (socket.io does not promise key order, and Node hands
// binary fields over as Buffer where browsers give ArrayBuffer). Used by coordinator-trust.ts.
// Why not JSON.stringify: key order, and binary fields. Why not msgpackr: it encodes Buffer and Uint8Array
// differently, and its key order is insertion order.
//
// Layout: one tag byte per value, then its contents; objects list their defined keys in sorted order (UTF-16 code
// unit order, the same in every JS engine); a binary field is replaced by its length and SHA-512 digest, so a
// 1 MiB adapter is hashed once (the coordinator caches the digest per array) and the signed bytes stay small.

import nacl from 'tweetnacl';
import { FedloraError } from '../errors';
import { utf8Bytes } from './bytes';

/** SHA-512 of a binary field; the coordinator passes a cached native one, sites use tweetnacl's. */
export type Digest = (bytes: Uint8Array) => Uint8Array;

export const portableDigest: Digest = (b) => nacl.hash(b);

const NULL = 0;
const FALSE = 1;
const TRUE = 2;
const NUMBER = 3;
const STRING = 4;
const BYTES = 5;
const ARRAY = 6;
const OBJECT = 7;

/** deeper nesting than any fedlora message has: a hostile value cannot exhaust the stack */
const MAX_DEPTH = 16;

class Writer {
  private parts: Uint8Array[] = [];
  private size = 0;

  push(b: Uint8Array): void {
    this.parts.push(b);
    this.size += b.length;
  }

  tag(t: number): void {
    this.push(Uint8Array.of(t));
  }

  u32(n: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n, false);
    this.push(b);
  }

  string(s: string): void {
    const b = utf8Bytes(s);
    this.u32(b.length);
    this.push(b);
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.size);
    let off = 0;
    for (const p of this.parts) {
      out.set(p, off);
      off += p.length;
    }
    return out;
  }
}

function write(w: Writer, v: unknown, digest: Digest, depth: number): void {
  if (depth > MAX_DEPTH) throw new FedloraError('BAD_MESSAGE', `canonical encoding: nested deeper than ${MAX_DEPTH}`);
  if (v === null) return w.tag(NULL);
  if (v === false) return w.tag(FALSE);
  if (v === true) return w.tag(TRUE);
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new FedloraError('BAD_MESSAGE', 'canonical encoding: a number is not finite');
    w.tag(NUMBER);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v === 0 ? 0 : v, false); // -0 and 0 encode alike
    return w.push(b);
  }
  if (typeof v === 'string') {
    w.tag(STRING);
    return w.string(v);
  }
  if (v instanceof Uint8Array || v instanceof ArrayBuffer) {
    const b = v instanceof Uint8Array ? v : new Uint8Array(v);
    w.tag(BYTES);
    w.u32(b.length);
    return w.push(digest(b));
  }
  if (Array.isArray(v)) {
    w.tag(ARRAY);
    w.u32(v.length);
    for (const item of v) write(w, item, digest, depth + 1);
    return;
  }
  if (typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    w.tag(OBJECT);
    w.u32(entries.length);
    for (const [k, x] of entries) {
      w.string(k);
      write(w, x, digest, depth + 1);
    }
    return;
  }
  throw new FedloraError('BAD_MESSAGE', `canonical encoding: a value of type ${typeof v} has no encoding`);
}

/** The canonical bytes of a message: equal for equal content, whatever its key order or binary type. */
export function canonicalBytes(value: unknown, digest: Digest = portableDigest): Uint8Array {
  const w = new Writer();
  write(w, value, digest, 0);
  return w.bytes();
}
