// The pseudo-random generator behind every SecAgg+ mask (Bonawitz et al. 2017, "Practical Secure Aggregation for
// Privacy-Preserving Machine Learning", §4: masks are PRG(seed)): XSalsa20 keyed by the full 32-byte seed.
// tweetnacl does not expose nacl.stream, but nacl.lowlevel.crypto_stream(c, cpos, len, nonce24, key32) is exactly
// XSalsa20's keystream (HSalsa20 on the key and the first 16 nonce bytes, then Salsa20 with the last 8): the same
// primitive secretbox encrypts with, without the Poly1305 tag or the 32 zero bytes secretbox prepends. The nonce is a
// fixed 24-byte label per purpose; that is safe because every seed is used for one purpose in one round attempt only
// (self-mask seeds are fresh random bytes, pairwise seeds hash in run, round, attempt and both site ids).

import nacl from 'tweetnacl';
import { utf8Bytes } from '../crypto/bytes';

interface NaclStream {
  crypto_stream(c: Uint8Array, cpos: number, len: number, nonce: Uint8Array, key: Uint8Array): number;
}
const lowlevel = (nacl as unknown as { lowlevel: NaclStream }).lowlevel;

export const SEED_BYTES = 32;
export type MaskPurpose = 'self-mask' | 'pairwise-mask' | 'graph';

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function purposeNonce(purpose: MaskPurpose, block: number): Uint8Array {
  // "fedlora/secagg/<purpose>" padded with zeros, the last 4 bytes a block counter (only the graph stream uses it)
  const nonce = new Uint8Array(nacl.secretbox.nonceLength);
  nonce.set(utf8Bytes(`fedlora/sa/${purpose}`).subarray(0, 20));
  new DataView(nonce.buffer).setUint32(20, block, false);
  return nonce;
}

/** XSalsa20(seed) read as `length` little-endian uint32 words, identical on every engine. */
export function expandSeed(seed: Uint8Array, purpose: MaskPurpose, length: number, block = 0): Uint32Array {
  if (seed.length !== SEED_BYTES) throw new RangeError(`expandSeed: seed must be ${SEED_BYTES} bytes, got ${seed.length}`);
  const bytes = new Uint8Array(length * 4);
  lowlevel.crypto_stream(bytes, 0, bytes.length, purposeNonce(purpose, block), seed);
  const words = new Uint32Array(bytes.buffer);
  if (!LITTLE_ENDIAN) {
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < length; i++) words[i] = view.getUint32(i * 4, true);
  }
  return words;
}

/** An endless stream of uniform integers from a seed (the coordinator's graph shuffle), refilled 1,024 words a time. */
export class SeededStream {
  private words: Uint32Array = new Uint32Array(0);
  private next = 0;
  private block = 0;

  constructor(
    private readonly seed: Uint8Array,
    private readonly purpose: MaskPurpose,
  ) {}

  uint32(): number {
    if (this.next === this.words.length) {
      this.words = expandSeed(this.seed, this.purpose, 1024, this.block++);
      this.next = 0;
    }
    return this.words[this.next++];
  }

  /** Uniform integer in [0, n), without modulo bias (rejection sampling). */
  below(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 2 ** 32) throw new RangeError(`below: n must be in [1, 2^32], got ${n}`);
    const limit = 2 ** 32 - (2 ** 32 % n);
    for (;;) {
      const x = this.uint32();
      if (x < limit) return x % n;
    }
  }
}
