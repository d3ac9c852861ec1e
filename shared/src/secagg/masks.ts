// SecAgg masks (Bonawitz et al. 2017 §4; Bell et al. 2020 "Secure Single-Server Aggregation with (Poly)Logarithmic
// Overhead" §3 restrict the pairwise masks to graph neighbours): y_u = x_u + PRG(b_u) + Σ_v ±PRG(s_uv) mod 2^32.
// s_uv comes from X25519 between u's and v's mask keys, hashed (SHA-512, cut to 32 bytes) with the run, round,
// attempt and both site ids, so a seed is never reused across rounds or attempts even if a key were; the seed is
// never folded to fewer bits before it keys XSalsa20 (prg.ts).

import nacl from 'tweetnacl';
import { concatLengthPrefixed, utf8Bytes } from '../crypto/bytes';
import { x25519 } from './curve';
import { expandSeed, SEED_BYTES } from './prg';

/** What binds a seed or a signature to one attempt of one round of one run. */
export interface AttemptContext {
  runId: string;
  roundId: string;
  /** 0 for the first attempt of a round; a rerun after an abort is 1, 2, … with fresh keys */
  attempt: number;
}

const PAIRWISE_DOMAIN = utf8Bytes('fedlora/sa/pairwise-seed/v1');

/** +1 when `own` adds PRG(s_uv), −1 when it subtracts it: the two ends of an edge always disagree, so the masks cancel. */
export function pairwiseSign(own: string, other: string): 1 | -1 {
  if (own === other) throw new RangeError('pairwiseSign: a site has no pairwise mask with itself');
  return own < other ? 1 : -1;
}

/** s_uv, the same at both ends: X25519(own secret, other public) hashed with the attempt and both ids (ordered). */
export async function pairwiseSeed(
  ownMaskSecretKey: Uint8Array,
  otherMaskPublicKey: Uint8Array,
  ctx: AttemptContext,
  own: string,
  other: string,
): Promise<Uint8Array> {
  // x25519 refuses a low-order public key (an all-zero point would make the seed public)
  const shared = await x25519(ownMaskSecretKey, otherMaskPublicKey);
  const [a, b] = own < other ? [own, other] : [other, own];
  const input = concatLengthPrefixed([
    PAIRWISE_DOMAIN,
    utf8Bytes(ctx.runId),
    utf8Bytes(ctx.roundId),
    utf8Bytes(String(ctx.attempt)),
    utf8Bytes(a),
    utf8Bytes(b),
    shared,
  ]);
  shared.fill(0);
  return nacl.hash(input).slice(0, SEED_BYTES);
}

/** target += sign·PRG(seed), in place, mod 2^32 (a Uint32Array store wraps). */
export function addMask(target: Uint32Array, seed: Uint8Array, purpose: 'self-mask' | 'pairwise-mask', sign: 1 | -1): void {
  const mask = expandSeed(seed, purpose, target.length);
  if (sign === 1) for (let i = 0; i < target.length; i++) target[i] += mask[i];
  else for (let i = 0; i < target.length; i++) target[i] -= mask[i];
}
