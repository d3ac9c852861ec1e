// t-of-k Shamir sharing of 32-byte secrets for SecAgg+ (Shamir 1979; Bonawitz et al. 2017 §4 share the self-mask
// seed b and the mask secret key s_sk this way). The arithmetic is privy-io's audited shamir-secret-sharing (byte-wise
// GF(2^8), random distinct x-coordinates stored as each share's last byte). That library does not check what it
// reconstructs (its README says so), so the shared value is authenticated: secret ‖ SHA-512("fedlora/sa/shamir/v1"
// ‖ secret)[0..16]. Fewer than t shares, or a tampered share, interpolate to a different 48-byte value whose tag
// matches with probability 2^-128, and combineShares refuses it instead of returning a wrong secret.

import nacl from 'tweetnacl';
import { combine, split } from 'shamir-secret-sharing';
import { FedloraError } from '../errors';
import { bytesEqual, utf8Bytes } from '../crypto/bytes';

export const SECRET_BYTES = 32;
const TAG_BYTES = 16;
/** secret ‖ tag ‖ x-coordinate */
export const SHARE_BYTES = SECRET_BYTES + TAG_BYTES + 1;
const TAG_DOMAIN = utf8Bytes('fedlora/sa/shamir/v1');

function tagOf(secret: Uint8Array): Uint8Array {
  const input = new Uint8Array(TAG_DOMAIN.length + secret.length);
  input.set(TAG_DOMAIN);
  input.set(secret, TAG_DOMAIN.length);
  return nacl.hash(input).subarray(0, TAG_BYTES);
}

/** k shares of a 32-byte secret, any t of which reconstruct it (2 ≤ t ≤ k ≤ 255, the library's bounds). */
export async function splitSecret(secret: Uint8Array, k: number, t: number): Promise<Uint8Array[]> {
  if (secret.length !== SECRET_BYTES) throw new RangeError(`splitSecret: secret must be ${SECRET_BYTES} bytes, got ${secret.length}`);
  if (!Number.isInteger(t) || !Number.isInteger(k) || t < 2 || t > k || k > 255)
    throw new RangeError(`splitSecret: need integers 2 ≤ t ≤ k ≤ 255, got t=${t}, k=${k}`);
  const tagged = new Uint8Array(SECRET_BYTES + TAG_BYTES);
  tagged.set(secret);
  tagged.set(tagOf(secret), SECRET_BYTES);
  const shares = await split(tagged, k, t);
  tagged.fill(0);
  return shares;
}

/**
 * The secret from at least t shares. Refuses (ROUND_ABORTED) fewer than t shares, malformed or duplicate shares, and
 * any set whose interpolation fails the tag, i.e. a tampered share or shares of different secrets.
 */
export async function combineShares(shares: readonly Uint8Array[], t: number): Promise<Uint8Array> {
  if (shares.length < t)
    throw new FedloraError('ROUND_ABORTED', `secret sharing: ${shares.length} shares, the threshold is ${t}`);
  const xs = new Set<number>();
  for (const s of shares) {
    if (s.length !== SHARE_BYTES) throw new FedloraError('BAD_MESSAGE', `secret sharing: a share must be ${SHARE_BYTES} bytes, got ${s.length}`);
    xs.add(s[SHARE_BYTES - 1]);
  }
  if (xs.size !== shares.length) throw new FedloraError('BAD_MESSAGE', 'secret sharing: two shares have the same x-coordinate');
  // the library wants exactly Uint8Array (constructor check), and shares from the socket arrive as Node Buffers
  const tagged = await combine(shares.map((x) => new Uint8Array(x)));
  const secret = tagged.slice(0, SECRET_BYTES);
  if (!bytesEqual(tagOf(secret), tagged.subarray(SECRET_BYTES)))
    throw new FedloraError('ROUND_ABORTED', `secret sharing: the ${shares.length} shares do not reconstruct an authentic secret (a share is wrong or missing)`);
  return secret;
}

/**
 * Like combineShares, but survives wrong shares among more than t: tries all shares, then t-subsets (at most
 * `maxSubsets`), and returns the first authentic secret. A site that sends a garbage share cannot abort the round
 * alone while t honest shares remain.
 */
export async function combineRobust(shares: readonly Uint8Array[], t: number, maxSubsets = 2000): Promise<Uint8Array> {
  try {
    return await combineShares(shares, t);
  } catch (err) {
    if (shares.length <= t) throw err;
  }
  let tried = 0;
  const pick: number[] = [];
  const search = async (from: number): Promise<Uint8Array | null> => {
    if (pick.length === t) {
      if (tried++ >= maxSubsets) return null;
      try {
        return await combineShares(pick.map((i) => shares[i]), t);
      } catch {
        return null;
      }
    }
    for (let i = from; i <= shares.length - (t - pick.length); i++) {
      pick.push(i);
      const found = await search(i + 1);
      pick.pop();
      if (found || tried >= maxSubsets) return found;
    }
    return null;
  };
  const found = await search(0);
  if (found) return found;
  throw new FedloraError('ROUND_ABORTED', `secret sharing: no ${t} of the ${shares.length} shares reconstruct an authentic secret`);
}
