// The socket.io contract between coordinator and sites: one table per direction (event name → payload and
// reply schemas), the typed event maps derived from it, and the Ack envelope every reply uses.
// Listener parameters are typed for convenience only: handlers must still parse their input with
// parseClientRequest / parseServerMessage, because a peer can send anything under any event name.

import { z } from 'zod';
import { FedloraError, isFedloraError, type FedloraErrorCode } from '../errors';
import {
  AdapterChunkReplySchema,
  AdapterChunkRequestSchema,
  AdapterFetchReplySchema,
  AdapterFetchRequestSchema,
  ChallengeReplySchema,
  ChallengeRequestSchema,
  ConfigureMessageSchema,
  ConfigureReplySchema,
  EnrollReplySchema,
  EnrollRequestSchema,
  EvaluateMessageSchema,
  EvaluateReplySchema,
  FailRequestSchema,
  HelloReplySchema,
  HelloRequestSchema,
  ModelChunkReplySchema,
  ModelChunkRequestSchema,
  NoData,
  ProveReplySchema,
  ProveRequestSchema,
  ReadyRequestSchema,
  RoundClosedMessageSchema,
  SecAggSetupMessageSchema,
  SiteDataRequestSchema,
  SecAggUploadRequestSchema,
  TrainMessageSchema,
  TrainReplySchema,
  UploadRequestSchema,
  VersionPublishedMessageSchema,
} from './messages';
import { LIMITS } from './limits';
import { parseWith } from './schemas';
import { FramePartReplySchema, FramePartSchema } from './frame-parts';
import { PackedSchema } from './packed';

/** Site → coordinator. Every event carries an ack callback answered with Ack<reply>. */
export const CLIENT_EVENTS = {
  /** connect, first: the coordinator signs the site's nonce with its long-term key, which the site has pinned */
  'coordinator:hello': { request: HelloRequestSchema, reply: HelloReplySchema },
  /** connect: register a new site's public keys with a one-time enrollment token */
  'site:enroll': { request: EnrollRequestSchema, reply: EnrollReplySchema },
  /** connect: ask for a fresh random challenge to sign */
  'auth:challenge': { request: ChallengeRequestSchema, reply: ChallengeReplySchema },
  /** connect: return the signed challenge; success authenticates the socket and returns the manifest */
  'auth:prove': { request: ProveRequestSchema, reply: ProveReplySchema },
  /** sample: declare availability (and example count) for the coordinator's sampling */
  'site:ready': { request: ReadyRequestSchema, reply: NoData },
  /** sample: a ready site's example counts changed (data grew, or a round trained on the new examples) */
  'site:data': { request: SiteDataRequestSchema, reply: NoData },
  /** collect: upload the sealed, signed update of the current round */
  'update:upload': { request: UploadRequestSchema, reply: NoData },
  /** collect, secure rounds: upload the masked update (the coordinator only ever sees the sum) */
  'secagg:upload': { request: SecAggUploadRequestSchema, reply: NoData },
  /** collect: report that this site cannot finish the round (counted as a failure, not waited for) */
  'round:fail': { request: FailRequestSchema, reply: NoData },
  /** any stage: download a published adapter version (late joiners, inference) */
  'adapter:fetch': { request: AdapterFetchRequestSchema, reply: AdapterFetchReplySchema },
  /** any stage: one chunk of a version's adapter (one over LIMITS.adapterInlineBytes travels only this way) */
  'adapter:chunk': { request: AdapterChunkRequestSchema, reply: AdapterChunkReplySchema },
  /** connect (authenticated): one chunk of a base-model file listed in the manifest, for sites without it */
  'model:chunk': { request: ModelChunkRequestSchema, reply: ModelChunkReplySchema },
  /**
   * authenticated: one part of a request too large for one frame (protocol/frame-parts.ts); every part but the
   * last is answered {received}, the last with the reply of the event the parts carry
   */
  'frame:part': { request: FramePartSchema, reply: FramePartReplySchema },
} as const;

/** Coordinator → site. `reply: null` marks a broadcast without ack. */
export const SERVER_EVENTS = {
  /** configure: a sampled site gets the round's hyper-parameters and round key; it acks accept/decline */
  'round:configure': { message: ConfigureMessageSchema, reply: ConfigureReplySchema },
  /** train: the global adapter to train from; the site acks, trains, then emits update:upload */
  'round:train': { message: TrainMessageSchema, reply: TrainReplySchema },
  // secure rounds; packed bodies (packed.ts) are validated after unpacking with messages.ts's SecAgg*Schema
  /** setup: the site answers with two fresh signed public keys (SecAggSetupReplySchema, packed) */
  'secagg:setup': { message: SecAggSetupMessageSchema, reply: PackedSchema },
  /** share keys: the site's neighbours (SecAggShareKeysMessageSchema); it answers with its shares, sealed to each */
  'secagg:share-keys': { message: PackedSchema, reply: PackedSchema },
  /** unmask: the site signs the survivor list (SecAggSurvivorsMessageSchema → SecAggSurvivorsReplySchema) */
  'secagg:survivors': { message: PackedSchema, reply: PackedSchema },
  /** unmask: the site reveals the shares that remove the survivors' masks, never more (SecAggUnmask*Schema) */
  'secagg:unmask': { message: PackedSchema, reply: PackedSchema },
  /** aggregate: collection is over (deadline or quorum) and the outcome is known */
  'round:closed': { message: RoundClosedMessageSchema, reply: null },
  /** evaluate: optional federated evaluation of a candidate adapter on the site's held-out data */
  'round:evaluate': { message: EvaluateMessageSchema, reply: EvaluateReplySchema },
  /** version: a new global adapter version was stored and is the current one */
  'version:published': { message: VersionPublishedMessageSchema, reply: null },
} as const;

type ClientTable = typeof CLIENT_EVENTS;
type ServerTable = typeof SERVER_EVENTS;
export type ClientEventName = keyof ClientTable;
export type ServerEventName = keyof ServerTable;
export type ClientRequest<E extends ClientEventName> = z.output<ClientTable[E]['request']>;
export type ClientReply<E extends ClientEventName> = z.output<ClientTable[E]['reply']>;
export type ServerMessage<E extends ServerEventName> = z.output<ServerTable[E]['message']>;
export type ServerReply<E extends ServerEventName> = ServerTable[E]['reply'] extends z.ZodType
  ? z.output<ServerTable[E]['reply']>
  : never;

export type ClientToServerEvents = {
  [E in ClientEventName]: (req: ClientRequest<E>, ack: (res: Ack<ClientReply<E>>) => void) => void;
};
export type ServerToClientEvents = {
  [E in ServerEventName]: ServerTable[E]['reply'] extends null
    ? (msg: ServerMessage<E>) => void
    : (msg: ServerMessage<E>, ack: (res: Ack<ServerReply<E>>) => void) => void;
};

// ---- acks ----

/** Codes a peer may be told. Anything else (file paths, config problems) is reported as INTERNAL. */
export const PEER_VISIBLE_CODES = [
  'BAD_MESSAGE',
  'FRAME_TOO_LARGE',
  'UNAUTHORIZED',
  'UNKNOWN_SITE',
  'TOKEN_USED',
  'BAD_SIGNATURE',
  'DECRYPT_FAILED',
  'REPLAY',
  'WRONG_ROUND',
  'ROUND_CLOSED',
  'NOT_SAMPLED',
  'DELTA_INVALID',
  'NON_FINITE',
  'HASH_MISMATCH',
  'NOT_FOUND',
  'BUSY',
  'ROUND_ABORTED',
  // a site refusing a round message the coordinator's key did not sign: a genuine coordinator's log then says why
  'UNTRUSTED_COORDINATOR',
  'INTERNAL',
] as const satisfies readonly FedloraErrorCode[];
export type PeerVisibleCode = (typeof PEER_VISIBLE_CODES)[number];

export type Ack<T> = { ok: true; data: T } | { ok: false; code: PeerVisibleCode; message: string };

export function ackOk<T>(data: T): Ack<T> {
  return { ok: true, data };
}

/** The reply for a failed request: peer-visible codes keep their message, everything else becomes INTERNAL. */
export function ackError(err: unknown): { ok: false; code: PeerVisibleCode; message: string } {
  if (isFedloraError(err) && (PEER_VISIBLE_CODES as readonly string[]).includes(err.code))
    return {
      ok: false,
      code: err.code as PeerVisibleCode,
      message: err.message.slice(0, LIMITS.maxMessageLength),
    };
  return { ok: false, code: 'INTERNAL', message: 'internal error' };
}

const AckSchema = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), data: z.unknown() }).strict(),
  z
    .object({
      ok: z.literal(false),
      code: z.enum(PEER_VISIBLE_CODES),
      message: z.string().max(LIMITS.maxMessageLength),
    })
    .strict(),
]);

/** Validates an ack from the peer and returns its data, or throws the peer's error as a FedloraError. */
function unwrap<S extends z.ZodType>(schema: S, raw: unknown, what: string): z.output<S> {
  const res = parseWith(AckSchema, raw, what);
  if (!res.ok) throw new FedloraError(res.code, res.message);
  return parseWith(schema, res.data, what);
}

// ---- parsing at the edge ----

export function parseClientRequest<E extends ClientEventName>(event: E, raw: unknown): ClientRequest<E> {
  return parseWith(CLIENT_EVENTS[event].request, raw, event) as ClientRequest<E>;
}

/** Site side: the coordinator's ack for `event`. */
export function parseClientReply<E extends ClientEventName>(event: E, raw: unknown): ClientReply<E> {
  return unwrap(CLIENT_EVENTS[event].reply, raw, `${event} reply`) as ClientReply<E>;
}

/** The field that carries the coordinator's signature on a round message (protocol/signed-messages.ts). */
export const SIGNATURE_FIELD = 'coordinatorSignature';

/** A server message without its signature field: the schemas describe the signed body. */
export function withoutSignature(raw: unknown): unknown {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || !Object.hasOwn(raw, SIGNATURE_FIELD)) return raw;
  const { [SIGNATURE_FIELD]: _signature, ...body } = raw as Record<string, unknown>;
  return body;
}

/** A coordinator message's body, validated; a signature it carries is checked apart (signed-messages.ts). */
export function parseServerMessage<E extends ServerEventName>(event: E, raw: unknown): ServerMessage<E> {
  return parseWith(SERVER_EVENTS[event].message, withoutSignature(raw), event) as ServerMessage<E>;
}

/** Coordinator side: a site's ack for `event` (only for events that have one). */
export function parseServerReply<E extends ServerEventName>(event: E, raw: unknown): ServerReply<E> {
  const schema = SERVER_EVENTS[event].reply;
  if (schema === null) throw new FedloraError('BAD_MESSAGE', `${event} has no reply`);
  return unwrap(schema, raw, `${event} reply`) as ServerReply<E>;
}
