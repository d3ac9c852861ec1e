// The messages of one SecAgg+ round attempt (Bonawitz et al. 2017 Fig. 4, restricted to graph neighbours as in
// Bell et al. 2020), as plain data with binary fields, each with its zod schema: parse what a peer sent with
// parseSecAggMessage before a site or the server sees it. Keys, signatures and shares are Uint8Array; a masked vector
// travels as the bytes of little-endian uint32 words (wordsToBytes / bytesToWords).

import { z } from 'zod';
import { bytesSchema, IdSchema, parseWith } from '../protocol/schemas';
import { LIMITS } from '../protocol/limits';
import { FedloraError } from '../errors';
import { SHARE_BYTES } from './shamir';

const KEY = bytesSchema({ length: 32 });
const SIGNATURE = bytesSchema({ length: 64 });
/** a neighbour list never exceeds the Shamir library's 255 shares */
const MAX_NEIGHBOURS = 255;
const MAX_SITES = 100_000;

/** site → server, stage 1: two fresh X25519 public keys, Ed25519-signed by the site's identity key. */
export const SetupKeysSchema = z
  .object({
    runId: IdSchema,
    roundId: IdSchema,
    attempt: z.number().int().min(0),
    siteId: IdSchema,
    /** c_pk: neighbours seal their shares to it */
    encryptionPublicKey: KEY,
    /** s_pk: pairwise mask agreement */
    maskPublicKey: KEY,
    signature: SIGNATURE,
  })
  .strict();
export type SetupKeys = z.output<typeof SetupKeysSchema>;

/** server → site, stage 2: the site's neighbours (their signed keys) and the threshold. */
export const ShareKeysRequestSchema = z
  .object({ threshold: z.number().int().min(2), neighbours: z.array(SetupKeysSchema).min(2).max(MAX_NEIGHBOURS) })
  .strict();
export type ShareKeysRequest = z.output<typeof ShareKeysRequestSchema>;

/** A pair of shares (of b and of s_sk) sealed by `from` to `to` with nacl.box on their c keys. */
export const SealedSharesSchema = z
  .object({ from: IdSchema, to: IdSchema, nonce: bytesSchema({ length: 24 }), ciphertext: bytesSchema({ max: 1024 }) })
  .strict();
export type SealedShares = z.output<typeof SealedSharesSchema>;

/** site → server, stage 2: one sealed pair per neighbour (the server sees only ciphertext). */
export const SharesUploadSchema = z
  .object({ siteId: IdSchema, shares: z.array(SealedSharesSchema).max(MAX_NEIGHBOURS) })
  .strict();
export type SharesUpload = z.output<typeof SharesUploadSchema>;

/** server → site, stage 3: the sealed pairs addressed to the site, from neighbours that finished stage 2. */
export const MaskedUploadRequestSchema = z.object({ shares: z.array(SealedSharesSchema).max(MAX_NEIGHBOURS) }).strict();
export type MaskedUploadRequest = z.output<typeof MaskedUploadRequestSchema>;

/** site → server, stage 3: the masked, quantized weighted delta (coordinates then the weight word). */
export const MaskedUploadSchema = z
  .object({
    siteId: IdSchema,
    masked: bytesSchema({ max: LIMITS.maxFrameBytes }).refine((b) => b.length % 4 === 0 && b.length > 0, 'must be whole uint32 words'),
  })
  .strict();
export type MaskedUpload = z.output<typeof MaskedUploadSchema>;

/** server → site, stage 4a (consistency check): the sites whose masked uploads are in the sum. */
export const SurvivorListRequestSchema = z.object({ survivors: z.array(IdSchema).min(1).max(MAX_SITES) }).strict();
export type SurvivorListRequest = z.output<typeof SurvivorListRequestSchema>;

/** site → server, stage 4a: the site's Ed25519 signature on that list (bound to the attempt). */
export const SurvivorSignatureSchema = z.object({ siteId: IdSchema, signature: SIGNATURE }).strict();
export type SurvivorSignature = z.output<typeof SurvivorSignatureSchema>;

/** server → site, stage 4b: which shares to reveal, with the list and the neighbours' signatures on it. */
export const UnmaskRequestSchema = z
  .object({
    survivors: z.array(IdSchema).min(1).max(MAX_SITES),
    signatures: z.array(SurvivorSignatureSchema).max(MAX_NEIGHBOURS),
    /** owners whose self-mask (b) share is asked for: live neighbours */
    selfMaskOf: z.array(IdSchema).max(MAX_NEIGHBOURS),
    /** owners whose mask-key (s_sk) share is asked for: dead neighbours */
    maskKeyOf: z.array(IdSchema).max(MAX_NEIGHBOURS),
  })
  .strict();
export type UnmaskRequest = z.output<typeof UnmaskRequestSchema>;

const OwnedShareSchema = z.object({ owner: IdSchema, share: bytesSchema({ length: SHARE_BYTES }) }).strict();
export type OwnedShare = z.output<typeof OwnedShareSchema>;

/** site → server, stage 4b. */
export const UnmaskResponseSchema = z
  .object({
    siteId: IdSchema,
    selfMaskShares: z.array(OwnedShareSchema).max(MAX_NEIGHBOURS),
    maskKeyShares: z.array(OwnedShareSchema).max(MAX_NEIGHBOURS),
  })
  .strict();
export type UnmaskResponse = z.output<typeof UnmaskResponseSchema>;

const SCHEMAS = {
  'setup-keys': SetupKeysSchema,
  'share-keys-request': ShareKeysRequestSchema,
  'shares-upload': SharesUploadSchema,
  'masked-upload-request': MaskedUploadRequestSchema,
  'masked-upload': MaskedUploadSchema,
  'survivor-list-request': SurvivorListRequestSchema,
  'survivor-signature': SurvivorSignatureSchema,
  'unmask-request': UnmaskRequestSchema,
  'unmask-response': UnmaskResponseSchema,
} as const;
export type SecAggMessageKind = keyof typeof SCHEMAS;

/** Validates an untrusted message at the edge (BAD_MESSAGE naming the failing field). */
export function parseSecAggMessage<K extends SecAggMessageKind>(kind: K, input: unknown): z.output<(typeof SCHEMAS)[K]> {
  return parseWith(SCHEMAS[kind], input, `secure aggregation ${kind}`) as z.output<(typeof SCHEMAS)[K]>;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** The wire form of a masked vector: little-endian uint32 words. */
export function wordsToBytes(words: Uint32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
  const out = new Uint8Array(words.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < words.length; i++) view.setUint32(i * 4, words[i], true);
  return out;
}

export function bytesToWords(bytes: Uint8Array): Uint32Array {
  if (bytes.length % 4 !== 0) throw new FedloraError('BAD_MESSAGE', 'secure aggregation: a masked vector must be whole uint32 words');
  if (LITTLE_ENDIAN && bytes.byteOffset % 4 === 0) return new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  const out = new Uint32Array(bytes.length / 4);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = view.getUint32(i * 4, true);
  return out;
}
