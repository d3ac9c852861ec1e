// Payload schemas of every socket.io message, grouped by round stage. Declared once here; events.ts builds
// the typed event maps from them and both ends validate what they receive with the same schema.
// Binary fields are Uint8Array on the sending side; receivers accept Buffer or ArrayBuffer (bytesSchema).

import { z } from 'zod';
import type { FedloraErrorCode } from '../errors';
import { EnvelopeSchema } from '../crypto/envelope';
import { MetricsSchema } from './codec';
import { LIMITS } from './limits';
import { ManifestSchema, ModelFilePathSchema } from './manifest';
import { ENCODINGS } from './quantize';
import { bytesSchema, FiniteNumberSchema, IdSchema, NameSchema, Sha256HexSchema } from './schemas';
import { PackedSchema } from './packed';
import {
  MaskedUploadRequestSchema,
  MaskedUploadSchema,
  SetupKeysSchema,
  ShareKeysRequestSchema,
  SharesUploadSchema,
  SurvivorListRequestSchema,
  SurvivorSignatureSchema,
  UnmaskRequestSchema,
  UnmaskResponseSchema,
} from '../secagg/messages';

/** The stages of one federated round, in order (stages.ts). Each stage has its own messages below. */
export { ROUND_STAGES, SECURE_ROUND_STAGES, type RoundStage } from './stages';

const PublicKeyB64Schema = z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'must be a base64 32-byte key');

/** Hyper-parameters for local training, chosen by the strategy (e.g. FedProx sets proximalMu). */
export const RoundConfigSchema = z
  .object({
    localEpochs: z.number().int().min(1).max(1000),
    batchSize: z.number().int().min(1).max(65536),
    learningRate: FiniteNumberSchema.positive(),
    /** weight of FedProx's proximal term (mu/2)·||w − w_global||²; 0 = plain local SGD */
    proximalMu: FiniteNumberSchema.min(0),
  })
  .catchall(z.union([FiniteNumberSchema, z.string().max(LIMITS.maxNameLength), z.boolean()]));
export type RoundConfig = z.output<typeof RoundConfigSchema>;

/** Codes a site may report for a failed round; a closed subset so a site cannot send free text as a code. */
export const SITE_FAILURE_CODES = [
  'NON_FINITE',
  'BACKEND_UNAVAILABLE',
  'DATA_INVALID',
  'HASH_MISMATCH',
  'ADAPTER_INVALID',
  'DELTA_INVALID',
  'FRAME_TOO_LARGE',
  'INTERNAL',
] as const satisfies readonly FedloraErrorCode[];

const NoData = z.object({}).strict();

// ---- connect: enrollment and authentication ----

export const EnrollRequestSchema = z
  .object({
    /** one-time enrollment token handed to the site out of band (TOKEN_USED on reuse) */
    token: z.string().min(16).max(256),
    siteId: IdSchema,
    signingPublicKey: PublicKeyB64Schema,
    boxPublicKey: PublicKeyB64Schema,
  })
  .strict();
export const EnrollReplySchema = z.object({ siteId: IdSchema }).strict();

export const ChallengeRequestSchema = z.object({ siteId: IdSchema }).strict();
export const ChallengeReplySchema = z
  .object({ challenge: bytesSchema({ length: 32 }), coordinatorId: IdSchema })
  .strict();

export const ProveRequestSchema = z
  .object({ siteId: IdSchema, signature: bytesSchema({ length: 64 }) })
  .strict();
/** manifestSignature: the coordinator's signature over the manifest (crypto/coordinator-trust.ts, context 'manifest') */
export const ProveReplySchema = z
  .object({ manifest: ManifestSchema, manifestSignature: bytesSchema({ length: 64 }).optional() })
  .strict();

/** connect, before enrolling or authenticating: the coordinator proves it holds the signing key the site pinned */
export const HelloRequestSchema = z.object({ nonce: bytesSchema({ length: 32 }) }).strict();
export const HelloReplySchema = z
  .object({
    coordinatorId: IdSchema,
    signingPublicKey: bytesSchema({ length: 32 }),
    /** over the site's nonce and the coordinator id (crypto/coordinator-trust.ts signHello) */
    signature: bytesSchema({ length: 64 }),
  })
  .strict();

// ---- sample: sites announce availability; the coordinator samples among them ----

export const ReadyRequestSchema = z
  .object({
    /** local training examples (a site may report 0 while it loads data) */
    numExamples: z.number().int().min(0).max(1e9),
    /** update encodings this site can produce */
    encodings: z.array(z.enum(ENCODINGS)).min(1),
    /** tfjs backend in use, for the coordinator's logs (e.g. "webgpu", "tensorflow") */
    backend: z.string().max(64),
    /** of numExamples, those this site has not trained on in a round yet (continual re-training's data trigger) */
    newExamples: z.number().int().min(0).max(1e9).optional(),
  })
  .strict();

/**
 * A ready site's data changed (its file grew, or a round trained on what was new): how many examples it holds now
 * and how many of them it has not trained on yet. Counts only, never data.
 */
export const SiteDataRequestSchema = z
  .object({
    numExamples: z.number().int().min(0).max(1e9),
    newExamples: z.number().int().min(0).max(1e9),
  })
  .strict()
  .refine((m) => m.newExamples <= m.numExamples, { message: 'newExamples must not exceed numExamples' });

// ---- configure ----

/**
 * A secure-aggregation round (shared/src/secagg, docs/SECAGG.md): what binds the site's keys and masks to this
 * attempt, and how it quantizes its update. The site L2-clips its delta to normBound itself, since the coordinator
 * cannot clip an update it never sees.
 */
export const SecureRoundSchema = z
  .object({
    runId: IdSchema,
    attempt: z.number().int().min(0),
    /** per-coordinate clip c of the quantization */
    clip: FiniteNumberSchema.positive(),
    /** levels Q: n·Q < 2^32 for n = sampledSites */
    levels: z.number().int().min(2),
    /** the largest weight (example count) a site's update carries; 1 = equal weights (always under DP) */
    maxWeight: z.number().int().min(1),
    sampledSites: z.number().int().min(1),
    normBound: FiniteNumberSchema.positive(),
  })
  .strict();

export const ConfigureMessageSchema = z
  .object({
    roundId: IdSchema,
    round: z.number().int().min(1),
    config: RoundConfigSchema,
    /** the adapter version the site must train from */
    adapterVersionId: IdSchema,
    /** X25519 key of this round: uploads are sealed to it, and it is discarded after the round */
    coordinatorBoxPublicKey: bytesSchema({ length: 32 }),
    encoding: z.enum(ENCODINGS),
    /** epoch milliseconds by which the update must be uploaded */
    deadline: z.number().int().positive(),
    /** present: the round runs under secure aggregation, and the site uploads a masked update ('secagg:upload') */
    secureAggregation: SecureRoundSchema.optional(),
  })
  .strict();
export const ConfigureReplySchema = z.object({ accepted: z.boolean() }).strict();

// ---- train ----

export const TrainMessageSchema = z
  .object({
    roundId: IdSchema,
    /** encodeAdapter() bytes of the global adapter, when at most LIMITS.adapterInlineBytes */
    adapter: bytesSchema({ max: LIMITS.adapterInlineBytes }).optional(),
    /** a larger adapter: the version to fetch in 'adapter:chunk's, and its size */
    versionId: IdSchema.optional(),
    adapterBytes: z.number().int().min(1).max(LIMITS.maxFrameBytes).optional(),
    adapterSha256: Sha256HexSchema,
    /** a secure round: the sealed shares the site's neighbours sent it, packed (SecAggSharesBodySchema) */
    secagg: PackedSchema.optional(),
  })
  .strict()
  .refine((m) => (m.adapter !== undefined) !== (m.versionId !== undefined && m.adapterBytes !== undefined), {
    message: 'round:train carries either the adapter or the version id and size to fetch it in chunks',
  });
export const TrainReplySchema = z.object({ started: z.literal(true) }).strict();

// ---- collect ----

export const UploadRequestSchema = z
  .object({
    roundId: IdSchema,
    /** sealed encodeUpdate() bytes (see crypto/envelope.ts) */
    envelope: EnvelopeSchema,
  })
  .strict();

export const FailRequestSchema = z
  .object({
    roundId: IdSchema,
    code: z.enum(SITE_FAILURE_CODES),
    /** short reason for the coordinator's log; sites must not put data in it */
    message: z.string().max(256),
  })
  .strict();

// ---- secure aggregation (SecAgg+) ----
// Each exchange is a message to one site answered in its ack. Bodies with one binary field per neighbour travel packed
// (packed.ts: socket.io allows 10 binary attachments per packet); these are the schemas of the unpacked bodies, and
// each names its round. The inner message types are shared/src/secagg/messages.ts.

/** setup: the site answers with its two fresh, signed X25519 public keys (packed) */
export const SecAggSetupMessageSchema = z.object({ roundId: IdSchema }).strict();
export const SecAggSetupReplySchema = SetupKeysSchema;

/** train (packed in TrainMessage.secagg): the shares sealed to the site by its neighbours */
export const SecAggSharesBodySchema = MaskedUploadRequestSchema;

/** An enrolled site's Ed25519 identity key, as the coordinator registered it. */
const SiteIdentitySchema = z.object({ siteId: IdSchema, signingPublicKey: bytesSchema({ length: 32 }) }).strict();

/** share keys: the site's neighbours, their signed keys and identity keys; it answers with its sealed shares */
export const SecAggShareKeysMessageSchema = ShareKeysRequestSchema.extend({
  roundId: IdSchema,
  identities: z.array(SiteIdentitySchema).min(2).max(256),
}).strict();
export const SecAggShareKeysReplySchema = SharesUploadSchema;

/** collect: the masked, quantized update */
export const SecAggUploadRequestSchema = z.object({ roundId: IdSchema, upload: MaskedUploadSchema }).strict();

/** unmask, first half: the site signs the list of sites whose masked updates are in the sum */
export const SecAggSurvivorsMessageSchema = SurvivorListRequestSchema.extend({ roundId: IdSchema }).strict();
export const SecAggSurvivorsReplySchema = SurvivorSignatureSchema;

/** unmask: the shares the coordinator needs to remove the masks (the site refuses a request that would reveal a
 * survivor's update) */
export const SecAggUnmaskMessageSchema = UnmaskRequestSchema.extend({ roundId: IdSchema }).strict();
export const SecAggUnmaskReplySchema = UnmaskResponseSchema;

// ---- aggregate (coordinator-internal), then closed ----

export const RoundClosedMessageSchema = z
  .object({
    roundId: IdSchema,
    round: z.number().int().min(1),
    /** aggregated = a new adapter was made; kept = the old one stays; cancelled = stopped before aggregating */
    outcome: z.enum(['aggregated', 'kept', 'cancelled']),
    updates: z.number().int().min(0),
    failures: z.number().int().min(0),
  })
  .strict();

// ---- evaluate (optional federated evaluation on the sites' own held-out data) ----

/**
 * A candidate adapter for the site to score on its held-out split. Like round:train, an adapter over
 * LIMITS.adapterInlineBytes is named (versionId, adapterBytes) instead of carried, and the site fetches it in
 * 'adapter:chunk's; a round's candidate is not a registry version yet, so its id is '<roundId>.candidate'.
 */
export const EvaluateMessageSchema = z
  .object({
    roundId: IdSchema,
    versionId: IdSchema,
    adapter: bytesSchema({ max: LIMITS.adapterInlineBytes }).optional(),
    adapterBytes: z.number().int().min(1).max(LIMITS.maxFrameBytes).optional(),
    adapterSha256: Sha256HexSchema,
    /** tokens per example (the round's maxLength; the site caps it at its manifest's and model's limits) */
    maxLength: z.number().int().min(8).max(1_000_000),
  })
  .strict()
  .refine((m) => (m.adapter !== undefined) !== (m.adapterBytes !== undefined), {
    message: 'round:evaluate carries either the adapter or its size to fetch it in chunks',
  });

/**
 * A site's evaluation: aggregates only (evaluation/federated-evaluation.ts), never an example. The coordinator checks
 * the shape against its label count and the counts against numExamples (checkSiteEvaluation).
 */
export const SiteEvaluationReplySchema = z
  .object({
    numExamples: z.number().int().min(1).max(1e9),
    /** the sum of the examples' cross-entropy losses */
    lossSum: FiniteNumberSchema.min(0),
    /** rows: true classes, columns: predicted classes, in the manifest's label order */
    confusion: z.array(z.array(z.number().int().min(0).max(1e9)).max(LIMITS.maxLabels)).max(LIMITS.maxLabels),
  })
  .strict();
/** a site that keeps no held-out split (it was started without --holdout) declines */
export const EvaluateDeclinedSchema = z.object({ declined: z.literal('NO_HOLDOUT') }).strict();
export const EvaluateReplySchema = z.union([SiteEvaluationReplySchema, EvaluateDeclinedSchema]);
export type SiteEvaluationReply = z.output<typeof SiteEvaluationReplySchema>;
export type EvaluateReply = z.output<typeof EvaluateReplySchema>;

// ---- version ----

export const VersionPublishedMessageSchema = z
  .object({
    versionId: IdSchema,
    round: z.number().int().min(0),
    /** coordinator-side held-out metrics of this version */
    metrics: z.record(NameSchema, FiniteNumberSchema),
    adapterSha256: Sha256HexSchema,
  })
  .strict();

export const AdapterFetchRequestSchema = z
  .object({ versionId: z.union([IdSchema, z.literal('latest')]) })
  .strict();
export const AdapterFetchReplySchema = z
  .object({
    versionId: IdSchema,
    adapter: bytesSchema({ max: LIMITS.adapterInlineBytes }),
    adapterSha256: Sha256HexSchema,
    /** the coordinator's signature over {versionId, adapterSha256} (context 'adapter:version') */
    versionSignature: bytesSchema({ length: 64 }).optional(),
  })
  .strict();

/** one chunk of a version's adapter bytes (any size; adapters over LIMITS.adapterInlineBytes travel only this way) */
export const AdapterChunkRequestSchema = z
  .object({
    /** 'latest' = the current version; the reply names it, and later chunks ask for that id */
    versionId: z.union([IdSchema, z.literal('latest')]),
    offset: z.number().int().min(0),
    length: z.number().int().min(1).max(LIMITS.adapterInlineBytes),
  })
  .strict();
export const AdapterChunkReplySchema = z
  .object({
    versionId: IdSchema,
    offset: z.number().int().min(0),
    /** the whole adapter's size */
    totalBytes: z.number().int().min(1).max(LIMITS.maxFrameBytes),
    data: bytesSchema({ max: LIMITS.adapterInlineBytes }),
    /** SHA-256 (hex) of `data`, checked as it arrives */
    sha256: Sha256HexSchema,
    /** SHA-256 (hex) of the whole adapter, checked once it is assembled */
    adapterSha256: Sha256HexSchema,
    /** the coordinator's signature over {versionId, adapterSha256} (context 'adapter:version') */
    versionSignature: bytesSchema({ length: 64 }).optional(),
  })
  .strict();
export type AdapterChunkRequest = z.output<typeof AdapterChunkRequestSchema>;
export type AdapterChunkReply = z.output<typeof AdapterChunkReplySchema>;

// ---- connect: base-model download (a site that lacks the manifest's files fetches them chunk by chunk) ----

export const ModelChunkRequestSchema = z
  .object({
    /** a path listed in the manifest's baseModel.files */
    path: ModelFilePathSchema,
    offset: z.number().int().min(0),
    length: z.number().int().min(1).max(LIMITS.maxModelChunkBytes),
  })
  .strict();
export const ModelChunkReplySchema = z
  .object({
    path: ModelFilePathSchema,
    offset: z.number().int().min(0),
    /** the whole file's size; the site stops when offset + data.length reaches it, then checks the sha256 */
    totalBytes: z.number().int().min(0),
    data: bytesSchema({ max: LIMITS.maxModelChunkBytes }),
    /** SHA-256 (hex) of `data`, computed by the coordinator as it read them: the site checks every chunk as it
     * arrives (connection/model-chunk.ts) and fetches a bad one again, before the manifest's whole-file check */
    sha256: Sha256HexSchema,
  })
  .strict();
export type ModelChunkRequest = z.output<typeof ModelChunkRequestSchema>;
export type ModelChunkReply = z.output<typeof ModelChunkReplySchema>;

export { MetricsSchema, NoData };

export type SecAggSetupReply = z.output<typeof SecAggSetupReplySchema>;
export type SecAggShareKeysMessage = z.output<typeof SecAggShareKeysMessageSchema>;
export type SecAggShareKeysReply = z.output<typeof SecAggShareKeysReplySchema>;
export type SecAggSurvivorsMessage = z.output<typeof SecAggSurvivorsMessageSchema>;
export type SecAggSurvivorsReply = z.output<typeof SecAggSurvivorsReplySchema>;
export type SecAggUnmaskMessage = z.output<typeof SecAggUnmaskMessageSchema>;
export type SecAggUnmaskReply = z.output<typeof SecAggUnmaskReplySchema>;
