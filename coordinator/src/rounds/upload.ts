// The trust boundary for a site's update: everything an upload must pass before it reaches the strategy's
// aggregator, in order from cheapest to most expensive, each failure a specific peer-visible code. The round's inbox
// (inbox.ts) runs it on every upload and hands what passes to the aggregator.

import { FedloraError } from '@fedlora/shared/errors.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { openAndVerify } from '@fedlora/shared/crypto/envelope.ts';
import { decodeUpdate } from '@fedlora/shared/protocol/codec.ts';
import type { ClientRequest } from '@fedlora/shared/protocol/events.ts';
import type { TensorEncoding } from '@fedlora/shared/protocol/quantize.ts';
import { assertSameLayout } from '@fedlora/shared/aggregation/math.ts';
import type { ClientResult } from '@fedlora/shared/aggregation/strategy.ts';
import type { DeltaNormPolicy } from './settings';
import { scaleDelta } from './update-bounds';

export type UploadRequest = ClientRequest<'update:upload'>;

/** Message nonces already seen; bounded (oldest forgotten first) since each round's key expires anyway. */
export class NonceLog {
  private readonly seen = new Set<string>();
  constructor(private readonly capacity = 100_000) {}

  /** false if the nonce was seen before */
  add(nonce: string): boolean {
    if (this.seen.has(nonce)) return false;
    this.seen.add(nonce);
    if (this.seen.size > this.capacity) this.seen.delete(this.seen.values().next().value as string);
    return true;
  }
}

export interface UploadCheck {
  roundId: string;
  /** the authenticated site on whose connection the upload arrived */
  siteId: string;
  /** the Ed25519 key registered at enrollment */
  siteSigningKey: Uint8Array;
  /** this round's X25519 secret key */
  roundSecretKey: Uint8Array;
  sampled: ReadonlySet<string>;
  /** sites whose update this round already accepted */
  delivered: ReadonlySet<string>;
  nonces: NonceLog;
  /** the adapter the sites trained from: the delta must have exactly its names and shapes */
  layout: NamedTensors;
  maxUploadBytes: number;
  /** the round's bound on the delta's L2 norm (update-bounds.ts) */
  maxDeltaNorm: number;
  /** over the bound: 'clip' scales the delta down to it, 'reject' refuses the update (DELTA_INVALID) */
  deltaNormPolicy: DeltaNormPolicy;
  /** cap on the FedAvg weight: the example count the site declared when ready (0 = unknown, no cap) */
  declaredExamples: number;
}

export interface OpenedUpload {
  result: ClientResult;
  encoding: TensorEncoding;
  /** sealed size, for the bandwidth record */
  bytes: number;
  /** L2 norm of result.delta (after clipping) */
  norm: number;
  /** the norm as sent, when the delta was clipped to the bound; null when it was within */
  clippedFrom: number | null;
  /** of the examples, those the site had not trained on before (continual re-training); null: not reported */
  newExamples: number | null;
}

export function l2Norm(t: NamedTensors): number {
  let s = 0;
  for (const v of Object.values(t)) for (let i = 0; i < v.data.length; i++) s += v.data[i] * v.data[i];
  return Math.sqrt(s);
}

export function openUpload(req: UploadRequest, c: UploadCheck): OpenedUpload {
  if (req.roundId !== c.roundId) throw new FedloraError('WRONG_ROUND', 'upload is for another round');
  if (!c.sampled.has(c.siteId))
    throw new FedloraError('NOT_SAMPLED', 'this site was not sampled for this round');
  const bytes = req.envelope.ciphertext.byteLength;
  if (bytes > c.maxUploadBytes)
    throw new FedloraError(
      'FRAME_TOO_LARGE',
      `upload is ${bytes} bytes, over the round's limit of ${c.maxUploadBytes}`,
    );
  // signature first (BAD_SIGNATURE), then decryption (DECRYPT_FAILED); the envelope's round id is signed
  const payload = openAndVerify(req.envelope, {
    expectedSigningPublicKey: c.siteSigningKey,
    recipientSecretKey: c.roundSecretKey,
    expectedRoundId: c.roundId,
  });
  // schema, sizes and finite values (NON_FINITE); the payload must name this round and this site
  const u = decodeUpdate(payload, {
    maxBytes: c.maxUploadBytes,
    expect: { roundId: c.roundId, siteId: c.siteId },
  });
  if (!c.nonces.add(u.nonce)) throw new FedloraError('REPLAY', 'this update was already received');
  if (c.delivered.has(c.siteId))
    throw new FedloraError('REPLAY', 'this site already delivered its update for this round');
  assertSameLayout(u.delta, c.layout, 'update', 'DELTA_INVALID');
  for (const [k, v] of Object.entries(u.delta))
    for (let i = 0; i < v.data.length; i++)
      if (!Number.isFinite(v.data[i]))
        throw new FedloraError('NON_FINITE', `tensor ${k} has a non-finite value`);
  const norm = l2Norm(u.delta);
  const over = !(norm <= c.maxDeltaNorm);
  if (over && c.deltaNormPolicy === 'reject')
    throw new FedloraError(
      'DELTA_INVALID',
      `update norm ${norm.toPrecision(4)} exceeds the bound ${c.maxDeltaNorm.toPrecision(4)}`,
    );
  const delta = over ? scaleDelta(u.delta, c.maxDeltaNorm / norm) : u.delta;
  const numExamples = c.declaredExamples > 0 ? Math.min(u.numExamples, c.declaredExamples) : u.numExamples;
  return {
    result: { siteId: c.siteId, numExamples, delta, metrics: { ...u.metrics } },
    encoding: u.encoding,
    bytes,
    norm: over ? c.maxDeltaNorm : norm,
    clippedFrom: over ? norm : null,
    newExamples: u.newExamples === undefined ? null : Math.min(u.newExamples, numExamples),
  };
}
