// Must-show 3 (Shamir part): every t-subset reconstructs, t−1 shares and a tampered share are refused.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import nacl from 'tweetnacl';
import { isFedloraError } from '../errors';
import { combineRobust, combineShares, splitSecret } from './shamir';

function subsets<T>(items: readonly T[], size: number): T[][] {
  if (size === 0) return [[]];
  return items.flatMap((x, i) => subsets(items.slice(i + 1), size - 1).map((rest) => [x, ...rest]));
}

test('when any 3 of 7 shares are combined, then each of the 35 subsets gives the secret', async () => {
  const secret = nacl.randomBytes(32);
  const shares = await splitSecret(secret, 7, 3);
  const all = subsets(shares, 3);
  assert.equal(all.length, 35);
  for (const s of all) assert.deepEqual(await combineShares(s, 3), secret);
});

test('when 5-of-9 shares are split, then every 5-subset reconstructs and every 4-subset forced through is refused', async () => {
  const secret = nacl.randomBytes(32);
  const shares = await splitSecret(secret, 9, 5);
  for (const s of subsets(shares, 5)) assert.deepEqual(await combineShares(s, 5), secret);
  for (const s of subsets(shares, 4)) {
    // below the threshold: refused by count, and also refused by the tag when the count check is bypassed
    await assert.rejects(combineShares(s, 5), (e) => isFedloraError(e, 'ROUND_ABORTED') && /threshold is 5/.test(e.message));
    await assert.rejects(combineShares(s, 4), (e) => isFedloraError(e, 'ROUND_ABORTED') && /authentic/.test(e.message));
  }
});

test('when one byte of one share is flipped, then combining t shares is refused, not silently wrong', async () => {
  const secret = nacl.randomBytes(32);
  const shares = await splitSecret(secret, 5, 3);
  for (let byte = 0; byte < 48; byte += 7) {
    const tampered = shares.slice(0, 3).map((s) => s.slice());
    tampered[1][byte] ^= 0x01;
    await assert.rejects(combineShares(tampered, 3), (e) => isFedloraError(e, 'ROUND_ABORTED'));
  }
});

test('when one of five shares is tampered, then the robust combine still finds the secret from three honest ones', async () => {
  const secret = nacl.randomBytes(32);
  const shares = (await splitSecret(secret, 5, 3)).map((s) => s.slice());
  shares[2][0] ^= 0xff;
  assert.deepEqual(await combineRobust(shares, 3), secret);
});

test('when shares of two different secrets are mixed, then the combine is refused', async () => {
  const a = await splitSecret(nacl.randomBytes(32), 5, 3);
  const b = await splitSecret(nacl.randomBytes(32), 5, 3);
  const mixed = [a[0], a[1], b[2]];
  // the two splits may pick the same x-coordinate, which is refused as malformed; otherwise the tag refuses
  await assert.rejects(combineShares(mixed, 3), (e) => isFedloraError(e, 'ROUND_ABORTED') || isFedloraError(e, 'BAD_MESSAGE'));
});

test('when shares arrive as Node Buffers (as socket.io and msgpack deliver them), then they still reconstruct the secret', async () => {
  const secret = new Uint8Array(32).map((_, i) => i * 7);
  const shares = await splitSecret(secret, 5, 3);
  const fromWire = shares.slice(0, 3).map((s) => Buffer.from(s));
  assert.deepEqual(await combineShares(fromWire, 3), secret);
});
