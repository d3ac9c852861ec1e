// Secure-aggregation messages cross the socket as one msgpack blob each. Why: socket.io's parser refuses a packet
// with more than 10 binary attachments (socket.io-parser's maxAttachments, a guard against memory blow-ups before a
// peer is known), and a SecAgg message carries one key, signature or share per neighbour (k = 2⌈log2 n⌉+1 of them).
// Packed, a message is one attachment whatever k is; unpacked, it is validated with its own schema like any other.

import { Packr, Unpackr } from 'msgpackr';
import { z } from 'zod';
import { FedloraError } from '../errors';
import { bytesSchema, parseWith } from './schemas';

/** a share-keys message for k = 255 neighbours is about 60 KB; the socket frame limit is 1 MiB */
export const MAX_PACKED_BYTES = 512 * 1024;

const packedSchema = (max: number) => z.object({ packed: bytesSchema({ max }) }).strict();
export const PackedSchema = packedSchema(MAX_PACKED_BYTES);
export type Packed = z.output<typeof PackedSchema>;

// plain maps only, as in codec.ts: records are a msgpackr-only extension
const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** `body` as one binary field, of at most `max` bytes (a coordinator forwarding a whole upload allows more). */
export function pack(body: unknown, max = MAX_PACKED_BYTES): Packed {
  const packed = new Uint8Array(packr.pack(body)); // copy: msgpackr returns a view into its reused buffer
  if (packed.length > max)
    throw new FedloraError('FRAME_TOO_LARGE', `a packed message of ${packed.length} bytes is over ${max}`);
  return { packed };
}

/** The body of a packed message from a peer, validated with `schema` (BAD_MESSAGE naming `what` otherwise). */
export function unpack<S extends z.ZodType>(schema: S, raw: unknown, what: string, max = MAX_PACKED_BYTES): z.output<S> {
  const { packed } = parseWith(max === MAX_PACKED_BYTES ? PackedSchema : packedSchema(max), raw, what);
  let body: unknown;
  try {
    body = unpackr.unpack(packed);
  } catch (err) {
    throw new FedloraError('BAD_MESSAGE', `${what}: not valid msgpack`, { cause: err });
  }
  return parseWith(schema, body, what);
}
