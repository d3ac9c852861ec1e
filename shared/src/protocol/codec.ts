// Binary codec (MessagePack via msgpackr) for the two tensor payloads of a round: a site's model update
// (its adapter delta, trained − received) and the global adapter the coordinator sends out.
// Tensor data travels as raw little-endian bytes (bin fields), never as JSON number arrays.
// Decoding is the trust boundary: size check, msgpack parse, schema, then per-tensor length/finite checks.

import { Packr, Unpackr } from 'msgpackr';
import { z } from 'zod';
import { FedloraError } from '../errors';
import { numel, type NamedTensors } from '../tensor';
import { toBase64 } from '../crypto/bytes';
import nacl from 'tweetnacl';
import { LIMITS } from './limits';
import {
  BYTES_PER_ELEMENT,
  decodeElements,
  encodeElements,
  ENCODINGS,
  type TensorEncoding,
} from './quantize';
import { bytesSchema, FiniteNumberSchema, IdSchema, NameSchema, parseWith } from './schemas';

export { ENCODINGS, type TensorEncoding } from './quantize';

// Plain maps only: msgpackr "records" are a msgpackr-only extension, and other peers must be able to decode.
const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

// ---- schemas (the wire format is declared here once; the types below derive from it) ----

const WireTensorSchema = z
  .object({
    shape: z.array(z.number().int().positive().max(LIMITS.maxTensorElements)).min(1).max(LIMITS.maxRank),
    data: bytesSchema({ max: LIMITS.maxFrameBytes }),
    scale: FiniteNumberSchema.min(0).optional(),
  })
  .strict();

const WireTensorsSchema = z
  .record(NameSchema, WireTensorSchema)
  .refine((t) => Object.keys(t).length >= 1, 'must hold at least one tensor')
  .refine(
    (t) => Object.keys(t).length <= LIMITS.maxTensors,
    `must hold at most ${LIMITS.maxTensors} tensors`,
  );

/** Training metrics a site reports; `loss` is required, the rest are free-named finite numbers. */
export const MetricsSchema = z
  .object({ loss: FiniteNumberSchema })
  .catchall(FiniteNumberSchema)
  .superRefine((m, ctx) => {
    const keys = Object.keys(m);
    if (keys.length > LIMITS.maxMetrics)
      ctx.addIssue({ code: 'custom', message: `at most ${LIMITS.maxMetrics} metrics` });
    for (const k of keys)
      if (!NameSchema.safeParse(k).success)
        ctx.addIssue({ code: 'custom', message: 'has a badly named metric' });
  });
export type UpdateMetrics = z.output<typeof MetricsSchema>;

/** Per-message random nonce (base64 of 16 bytes); the coordinator rejects a nonce it has seen (REPLAY). */
export const MessageNonceSchema = z
  .string()
  .min(16)
  .max(64)
  .regex(/^[A-Za-z0-9+/=_-]+$/, 'must be base64');

const WireUpdateSchema = z
  .object({
    v: z.literal(1),
    kind: z.literal('update'), // so an adapter frame can never be taken for an update, nor the reverse
    roundId: IdSchema,
    siteId: IdSchema,
    nonce: MessageNonceSchema,
    /** FedAvg weight; inflating it is a known attack, so the coordinator may cap it per site */
    numExamples: z.number().int().positive().max(1e9),
    /** of numExamples, those the site had not trained on in an earlier round (continual re-training; absent: unknown) */
    newExamples: z.number().int().min(0).max(1e9).optional(),
    metrics: MetricsSchema,
    encoding: z.enum(ENCODINGS),
    tensors: WireTensorsSchema,
  })
  .strict()
  .refine((u) => (u.newExamples ?? 0) <= u.numExamples, { message: 'newExamples must not exceed numExamples' });
type WireUpdate = z.output<typeof WireUpdateSchema>;

const WireAdapterSchema = z
  .object({
    v: z.literal(1),
    kind: z.literal('adapter'),
    versionId: IdSchema,
    /** the round that produced it (0 = initial adapter) */
    round: z.number().int().min(0),
    encoding: z.literal('fp32'), // the global model is never quantized: rounding error would compound
    tensors: WireTensorsSchema,
  })
  .strict();
type WireAdapter = z.output<typeof WireAdapterSchema>;

/** A site's update as the rest of the code sees it. */
export type ModelUpdate = Omit<WireUpdate, 'v' | 'kind' | 'encoding' | 'tensors'> & { delta: NamedTensors };
export type DecodedUpdate = ModelUpdate & { encoding: TensorEncoding };
/** The global adapter as sent to sites. */
export type GlobalAdapter = Omit<WireAdapter, 'v' | 'kind' | 'encoding' | 'tensors'> & {
  adapter: NamedTensors;
};

export function newMessageNonce(): string {
  return toBase64(nacl.randomBytes(16));
}

// ---- encode ----

function encodeTensors(t: NamedTensors, encoding: TensorEncoding): WireUpdate['tensors'] {
  const out: WireUpdate['tensors'] = {};
  for (const name of Object.keys(t).sort()) {
    const { shape, data } = t[name];
    if (numel(shape) !== data.length)
      throw new FedloraError(
        'SHAPE_MISMATCH',
        `tensor ${name}: shape [${shape}] does not hold ${data.length} values`,
      );
    out[name] = { shape: [...shape], ...encodeElements(data, encoding, name) };
  }
  return out;
}

function pack(wire: unknown, what: string): Uint8Array {
  const bytes = new Uint8Array(packr.pack(wire)); // copy: msgpackr returns a view into its reused buffer
  if (bytes.length > LIMITS.maxFrameBytes)
    throw new FedloraError(
      'FRAME_TOO_LARGE',
      `${what} is ${bytes.length} bytes, over ${LIMITS.maxFrameBytes}`,
    );
  return bytes;
}

/**
 * Encodes an update. Fields are copied one by one, so nothing but the declared fields (ids, numbers,
 * tensor bytes) can reach the wire, whatever else the caller's object carries.
 */
export function encodeUpdate(u: ModelUpdate, encoding: TensorEncoding): Uint8Array {
  const wire: WireUpdate = {
    v: 1,
    kind: 'update',
    roundId: u.roundId,
    siteId: u.siteId,
    nonce: u.nonce,
    numExamples: u.numExamples,
    ...(u.newExamples !== undefined ? { newExamples: u.newExamples } : {}),
    metrics: { ...u.metrics },
    encoding,
    tensors: encodeTensors(u.delta, encoding),
  };
  // validate our own output too: a site should learn about a bad update before it is sent, not from a NACK
  parseWith(WireUpdateSchema, wire, 'update', 'DELTA_INVALID');
  return pack(wire, 'update');
}

export function encodeAdapter(a: GlobalAdapter): Uint8Array {
  const wire: WireAdapter = {
    v: 1,
    kind: 'adapter',
    versionId: a.versionId,
    round: a.round,
    encoding: 'fp32',
    tensors: encodeTensors(a.adapter, 'fp32'),
  };
  parseWith(WireAdapterSchema, wire, 'adapter', 'ADAPTER_INVALID');
  return pack(wire, 'adapter');
}

// ---- decode ----

export interface DecodeOptions {
  /** frame size limit (default LIMITS.maxFrameBytes) */
  maxBytes?: number;
}

function unpack(bytes: Uint8Array, what: string, maxBytes: number): unknown {
  if (!(bytes instanceof Uint8Array)) throw new FedloraError('BAD_MESSAGE', `${what} must be binary`);
  if (bytes.length > maxBytes)
    throw new FedloraError('FRAME_TOO_LARGE', `${what} is ${bytes.length} bytes, over ${maxBytes}`);
  try {
    return unpackr.unpack(bytes);
  } catch (err) {
    // msgpackr's messages may quote the input: keep them as the cause only
    throw new FedloraError('BAD_MESSAGE', `${what} is not valid MessagePack`, { cause: err });
  }
}

function decodeTensors(t: WireUpdate['tensors'], encoding: TensorEncoding): NamedTensors {
  const out: NamedTensors = {};
  for (const name of Object.keys(t).sort()) {
    const { shape, data, scale } = t[name];
    const count = numel(shape);
    if (count > LIMITS.maxTensorElements)
      throw new FedloraError(
        'BAD_MESSAGE',
        `tensor ${name} has ${count} elements, over ${LIMITS.maxTensorElements}`,
      );
    if (data.length !== count * BYTES_PER_ELEMENT[encoding])
      throw new FedloraError(
        'BAD_MESSAGE',
        `tensor ${name}: ${data.length} bytes do not match shape [${shape}] in ${encoding}`,
      );
    if ((encoding === 'int8') !== (scale !== undefined))
      throw new FedloraError('BAD_MESSAGE', `tensor ${name}: scale must be given exactly for int8`);
    out[name] = { shape: [...shape], data: decodeElements(data, count, encoding, scale, name) };
  }
  return out;
}

export interface DecodeUpdateOptions extends DecodeOptions {
  /** when given, an update for another round is WRONG_ROUND, and one naming another site UNAUTHORIZED */
  expect?: { roundId?: string; siteId?: string };
}

export function decodeUpdate(bytes: Uint8Array, opts: DecodeUpdateOptions = {}): DecodedUpdate {
  const raw = unpack(bytes, 'update', opts.maxBytes ?? LIMITS.maxFrameBytes);
  const w = parseWith(WireUpdateSchema, raw, 'update');
  if (opts.expect?.roundId !== undefined && w.roundId !== opts.expect.roundId)
    throw new FedloraError('WRONG_ROUND', 'update is for another round');
  // binds the ciphertext to its author: a site replaying another site's sealed update is caught here
  if (opts.expect?.siteId !== undefined && w.siteId !== opts.expect.siteId)
    throw new FedloraError('UNAUTHORIZED', 'update names another site');
  return {
    roundId: w.roundId,
    siteId: w.siteId,
    nonce: w.nonce,
    numExamples: w.numExamples,
    ...(w.newExamples !== undefined ? { newExamples: w.newExamples } : {}),
    metrics: w.metrics,
    encoding: w.encoding,
    delta: decodeTensors(w.tensors, w.encoding),
  };
}

export function decodeAdapter(bytes: Uint8Array, opts: DecodeOptions = {}): GlobalAdapter {
  const raw = unpack(bytes, 'adapter', opts.maxBytes ?? LIMITS.maxFrameBytes);
  const w = parseWith(WireAdapterSchema, raw, 'adapter');
  return { versionId: w.versionId, round: w.round, adapter: decodeTensors(w.tensors, 'fp32') };
}
