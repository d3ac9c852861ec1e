// The exact bytes a SecAgg+ participant signs or seals, each bound to the run, round, attempt and stage with a
// domain tag (Bonawitz et al. 2017 §6: signatures bind keys to the round so a replay from another round fails).

import { FedloraError } from '../errors';
import { concatLengthPrefixed, utf8Bytes } from '../crypto/bytes';
import type { AttemptContext } from './masks';

const te = utf8Bytes;
const contextParts = (ctx: AttemptContext) => [te(ctx.runId), te(ctx.roundId), te(String(ctx.attempt))];

export function setupKeysSignedBytes(ctx: AttemptContext, siteId: string, encryptionPublicKey: Uint8Array, maskPublicKey: Uint8Array): Uint8Array {
  return concatLengthPrefixed([te('fedlora/sa/setup-keys/v1'), ...contextParts(ctx), te(siteId), encryptionPublicKey, maskPublicKey]);
}

/** The survivor list a site signs before it reveals any share: sorted, so every site signs the same bytes. */
export function survivorListSignedBytes(ctx: AttemptContext, survivors: readonly string[]): Uint8Array {
  return concatLengthPrefixed([te('fedlora/sa/survivors/v1'), ...contextParts(ctx), ...[...survivors].sort().map(te)]);
}

/** Plaintext inside a sealed share pair: who, for whom, which attempt, and the two shares. */
export function sharePairPlaintext(ctx: AttemptContext, from: string, to: string, selfMaskShare: Uint8Array, maskKeyShare: Uint8Array): Uint8Array {
  return concatLengthPrefixed([te('fedlora/sa/share-pair/v1'), ...contextParts(ctx), te(from), te(to), selfMaskShare, maskKeyShare]);
}

/** Inverse of concatLengthPrefixed; BAD_MESSAGE on any inconsistency. */
function splitLengthPrefixed(bytes: Uint8Array): Uint8Array[] {
  const parts: Uint8Array[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let off = 0;
  while (off < bytes.length) {
    if (off + 4 > bytes.length) throw new FedloraError('BAD_MESSAGE', 'share pair: truncated');
    const len = view.getUint32(off, false);
    if (off + 4 + len > bytes.length) throw new FedloraError('BAD_MESSAGE', 'share pair: truncated');
    parts.push(bytes.subarray(off + 4, off + 4 + len));
    off += 4 + len;
  }
  return parts;
}

/** Opens a share-pair plaintext and checks it is for this attempt, from `from` to `to`. */
export function readSharePair(ctx: AttemptContext, from: string, to: string, plaintext: Uint8Array): { selfMaskShare: Uint8Array; maskKeyShare: Uint8Array } {
  const parts = splitLengthPrefixed(plaintext);
  const expected = [te('fedlora/sa/share-pair/v1'), ...contextParts(ctx), te(from), te(to)];
  const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);
  if (parts.length !== expected.length + 2 || !expected.every((e, i) => same(e, parts[i])))
    throw new FedloraError('BAD_MESSAGE', `share pair from ${from}: not bound to this attempt and recipient`);
  return { selfMaskShare: parts[expected.length].slice(), maskKeyShare: parts[expected.length + 1].slice() };
}
