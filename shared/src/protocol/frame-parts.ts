// Requests larger than one transport frame cross the socket as numbered parts ('frame:part'). Why: the
// coordinator keeps socket.io's frame limit small (LIMITS.maxSocketFrameBytes) because the transport parses a
// frame before the peer is authenticated; only authenticated sites may send parts, only for PARTED_EVENTS, and
// the coordinator bounds what it holds (coordinator/src/socket/frame-assembly.ts). The request is packed with
// msgpack (binary fields stay binary), split, and on the last part unpacked and answered like the event itself.
// Each part carries the SHA-256 of its own bytes and of the whole packed request: the coordinator refuses a damaged
// part at once (HASH_MISMATCH) and drops the partial request, and checks the joined bytes before it parses them.

import { Packr, Unpackr } from 'msgpackr';
import { z } from 'zod';
import { FedloraError } from '../errors';
import { LIMITS } from './limits';
import { sha256Hex } from '../crypto/hash';
import { bytesSchema, Sha256HexSchema } from './schemas';

/** Events whose request may be sent in parts: the ones that carry an update (sealed, or masked under SecAgg). */
export const PARTED_EVENTS = ['update:upload', 'secagg:upload'] as const;
export type PartedEvent = (typeof PARTED_EVENTS)[number];

export function isPartedEvent(event: string): event is PartedEvent {
  return (PARTED_EVENTS as readonly string[]).includes(event);
}

/** the packed request: the largest update plus room for its envelope and ids */
export const MAX_PARTED_BYTES = LIMITS.maxFrameBytes + 64 * 1024;

export const FramePartSchema = z
  .object({
    /** random id of the whole request; a part with a new id abandons an unfinished earlier request */
    id: z.string().regex(/^[A-Za-z0-9_-]{8,64}$/, 'must be 8-64 characters of A-Z a-z 0-9 _ -'),
    event: z.enum(PARTED_EVENTS),
    index: z.number().int().min(0),
    count: z.number().int().min(1).max(LIMITS.maxFrameParts),
    totalBytes: z.number().int().min(1).max(MAX_PARTED_BYTES),
    data: bytesSchema({ max: LIMITS.framePartBytes }),
    /** SHA-256 (hex) of this part's `data` */
    sha256: Sha256HexSchema,
    /**
     * SHA-256 (hex) of the whole packed request, the same in every part. In every part rather than the first only:
     * the schema stays one shape for all parts (no field that is required at index 0 and absent after), each part
     * is checked against the first like count and size, and 64 characters per ≤ 512 KiB part cost nothing.
     */
    requestSha256: Sha256HexSchema,
  })
  .strict()
  .refine((p) => p.index < p.count, { message: 'index must be below count', path: ['index'] })
  .refine((p) => p.data.length >= 1, { message: 'must carry at least one byte', path: ['data'] });
export type FramePart = z.output<typeof FramePartSchema>;

/** The ack of every part but the last; the last part is answered with the reply of the event it carries. */
export const FramePartReplySchema = z.object({ received: z.number().int().min(0) }).strict();

// plain maps only, as in codec.ts: records are a msgpackr-only extension
const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

function randomId(): string {
  const b = new Uint8Array(12);
  globalThis.crypto.getRandomValues(b);
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * The request packed and cut into parts of at most `partBytes` (default LIMITS.framePartBytes), each with its hash
 * and the whole request's. One part means the request fits a frame: the caller then sends the event itself.
 * Async because SHA-256 comes from WebCrypto (crypto/hash.ts), which the browser site needs.
 */
export async function splitRequest(
  event: PartedEvent,
  payload: unknown,
  partBytes: number = LIMITS.framePartBytes,
): Promise<FramePart[]> {
  if (!Number.isInteger(partBytes) || partBytes < 1 || partBytes > LIMITS.framePartBytes)
    throw new FedloraError('CONFIG_INVALID', `part size must be an integer in [1, ${LIMITS.framePartBytes}]`);
  const bytes = new Uint8Array(packr.pack(payload)); // copy: msgpackr returns a view into its reused buffer
  if (bytes.length > MAX_PARTED_BYTES)
    throw new FedloraError('FRAME_TOO_LARGE', `${event} is ${bytes.length} bytes, over ${MAX_PARTED_BYTES}`);
  const count = Math.ceil(bytes.length / partBytes);
  if (count > LIMITS.maxFrameParts)
    throw new FedloraError(
      'CONFIG_INVALID',
      `${event} would need ${count} parts of ${partBytes} bytes, over ${LIMITS.maxFrameParts}: use larger parts`,
    );
  const id = randomId();
  const requestSha256 = await sha256Hex(bytes);
  const parts: FramePart[] = [];
  for (let index = 0; index < count; index++) {
    const data = bytes.subarray(index * partBytes, Math.min(bytes.length, (index + 1) * partBytes));
    parts.push({ id, event, index, count, totalBytes: bytes.length, data, sha256: await sha256Hex(data), requestSha256 });
  }
  return parts;
}

/** The parts' bytes in order, exactly `totalBytes` of them (else BAD_MESSAGE); unpackRequest reads them. */
export function joinParts(parts: readonly Uint8Array[], totalBytes: number): Uint8Array {
  const bytes = new Uint8Array(totalBytes);
  let at = 0;
  for (const p of parts) {
    if (at + p.length > totalBytes) throw new FedloraError('BAD_MESSAGE', 'parts hold more bytes than announced');
    bytes.set(p, at);
    at += p.length;
  }
  if (at !== totalBytes)
    throw new FedloraError('BAD_MESSAGE', `parts hold ${at} bytes, ${totalBytes} were announced`);
  return bytes;
}

/** The request the joined parts carried (unvalidated: the caller parses it with the event's schema). */
export function unpackRequest(bytes: Uint8Array): unknown {
  try {
    return unpackr.unpack(bytes);
  } catch (err) {
    throw new FedloraError('BAD_MESSAGE', 'the parted request is not valid msgpack', { cause: err });
  }
}
