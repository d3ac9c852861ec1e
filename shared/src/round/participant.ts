// The steps of one round from the site's side, without the socket, that the round handler (round-handler.ts) runs
// for the Node agent and the browser site: check the received global adapter, read the round's training config and
// seed, turn the delta into the sealed, signed 'update:upload' request, or a failure into 'round:fail'. Only the
// delta, the example count and training metrics are encoded: encodeUpdate copies declared fields one by one, so
// neither text nor token ids can reach the frame.

import { FedloraError, isFedloraError } from '../errors';
import { sha256Hex } from '../crypto/hash';
import { sealAndSign } from '../crypto/envelope';
import type { KeyPair } from '../crypto/keys';
import { decodeAdapter, encodeUpdate, newMessageNonce, type GlobalAdapter } from '../protocol/codec';
import type { TensorEncoding } from '../protocol/quantize';
import { SecAggSharesBodySchema, SITE_FAILURE_CODES, type RoundConfig } from '../protocol/messages';
import { parseServerMessage, type ClientRequest, type ServerMessage } from '../protocol/events';
import type { NamedTensors } from '../tensor';
import type { LocalTrainConfig } from '../training/local-round';
import { dpClipNormOf } from '../privacy/dp-fedavg';
import type { MaskedUploadRequest } from '../secagg/messages';
import { unpack } from '../protocol/packed';
import { downloadAdapter, type AdapterChunkAsk } from '../connection/adapter-download';

/** What the site keeps between 'round:configure' and the upload. */
export type ConfiguredRound = ServerMessage<'round:configure'>;

/** The round's local-training config; maxSteps, clipNorm, maxLength and dpClipNorm ride in RoundConfig's catch-all. */
export function localTrainConfig(c: RoundConfig): LocalTrainConfig {
  const maxSteps =
    typeof c.maxSteps === 'number' && Number.isInteger(c.maxSteps) && c.maxSteps > 0 ? c.maxSteps : undefined;
  // absent (an older coordinator) or malformed: the recipe's clip, never none by accident
  const clipNorm = typeof c.clipNorm === 'number' && Number.isFinite(c.clipNorm) && c.clipNorm >= 0 ? c.clipNorm : undefined;
  const dpClipNorm = dpClipNormOf(c) ?? undefined;
  return {
    clipNorm,
    localEpochs: c.localEpochs,
    batchSize: c.batchSize,
    learningRate: c.learningRate,
    proximalMu: c.proximalMu,
    maxSteps,
    ...(dpClipNorm === undefined ? {} : { dpClipNorm }),
  };
}

/** Tokens per example for this round: the round config may lower the manifest's maxSeqLength, never raise it. */
export function roundMaxLength(c: RoundConfig, manifestMax: number, modelMax: number): number {
  const fromRound =
    typeof c.maxLength === 'number' && Number.isInteger(c.maxLength) && c.maxLength >= 8
      ? c.maxLength
      : manifestMax;
  return Math.min(fromRound, manifestMax, modelMax);
}

/**
 * Checks and decodes the adapter of 'round:train' (or 'adapter:fetch'): its SHA-256 must match the one sent
 * with it, and when `expectedVersion` is given it must be the version the round was configured with.
 */
export async function openAdapter(
  bytes: Uint8Array,
  sha256: string,
  expectedVersion?: string,
): Promise<GlobalAdapter> {
  const actual = await sha256Hex(bytes);
  if (actual !== sha256)
    throw new FedloraError(
      'HASH_MISMATCH',
      `global adapter sha256 ${actual.slice(0, 12)}… ≠ announced ${sha256.slice(0, 12)}…`,
    );
  let adapter: GlobalAdapter;
  try {
    adapter = decodeAdapter(bytes);
  } catch (err) {
    throw new FedloraError(
      'ADAPTER_INVALID',
      `global adapter does not decode: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
  if (expectedVersion !== undefined && adapter.versionId !== expectedVersion)
    throw new FedloraError(
      'ADAPTER_INVALID',
      `global adapter is version ${adapter.versionId}, the round was configured for ${expectedVersion}`,
    );
  return adapter;
}

/** Throws ADAPTER_INVALID unless `state` has exactly the local model's trainable tensors and shapes. */
export function checkAdapterShapes(state: NamedTensors, shapes: Record<string, number[]>): void {
  const want = Object.keys(shapes).sort();
  const got = Object.keys(state).sort();
  const missing = want.filter((k) => !(k in state));
  const extra = got.filter((k) => !(k in shapes));
  if (missing.length || extra.length)
    throw new FedloraError(
      'ADAPTER_INVALID',
      `global adapter tensors differ from the local model's: missing ${missing.slice(0, 3).join(', ') || 'none'}, extra ${extra.slice(0, 3).join(', ') || 'none'}`,
    );
  for (const k of want)
    if (state[k].shape.join('x') !== shapes[k].join('x'))
      throw new FedloraError(
        'ADAPTER_INVALID',
        `global adapter tensor ${k} is [${state[k].shape}], the local model has [${shapes[k]}]`,
      );
}

/**
 * The train stage's message, checked the same way by every client: it must name the round this site accepted, and
 * carry an adapter whose hash, version and tensor shapes match. Throws a FedloraError to send back in the ack.
 */
export async function acceptTrainMessage(
  raw: unknown,
  configured: ConfiguredRound | null,
  shapes: Record<string, number[]>,
  /** 'adapter:chunk' on the site's connection: an adapter over LIMITS.adapterInlineBytes is fetched with it */
  fetchChunk?: AdapterChunkAsk,
): Promise<{ round: ConfiguredRound; adapter: GlobalAdapter; secagg: MaskedUploadRequest | null }> {
  const msg = parseServerMessage('round:train', raw);
  if (!configured || configured.roundId !== msg.roundId)
    throw new FedloraError('WRONG_ROUND', `round ${msg.roundId} was not configured with this site`);
  // a secure round's train message carries the shares the site masks with; a plaintext one carries none
  if ((configured.secureAggregation !== undefined) !== (msg.secagg !== undefined))
    throw new FedloraError('BAD_MESSAGE', configured.secureAggregation ? 'a secure round\'s train message must carry the neighbours\' shares' : 'shares in the train message of a plaintext round');
  let bytes = msg.adapter;
  if (!bytes) {
    if (msg.versionId !== configured.adapterVersionId)
      throw new FedloraError('WRONG_ROUND', `round ${msg.roundId} was configured with version ${configured.adapterVersionId}, not ${msg.versionId}`);
    if (!fetchChunk) throw new FedloraError('BAD_MESSAGE', 'this site cannot fetch an adapter in chunks');
    bytes = (await downloadAdapter(fetchChunk, msg.versionId, { totalBytes: msg.adapterBytes as number, adapterSha256: msg.adapterSha256 })).bytes;
  }
  const adapter = await openAdapter(bytes, msg.adapterSha256, configured.adapterVersionId);
  checkAdapterShapes(adapter.adapter, shapes);
  const secagg = msg.secagg ? unpack(SecAggSharesBodySchema, msg.secagg, 'round:train secagg') : null;
  return { round: configured, adapter, secagg };
}

export function assertFinite(delta: NamedTensors): void {
  for (const [name, t] of Object.entries(delta))
    for (let i = 0; i < t.data.length; i++)
      if (!Number.isFinite(t.data[i]))
        throw new FedloraError('NON_FINITE', `delta ${name} has a non-finite value at ${i}`);
}

export interface UploadInput {
  roundId: string;
  siteId: string;
  delta: NamedTensors;
  numExamples: number;
  /** of numExamples, those new to this site's rounds (continual re-training); absent: not known */
  newExamples?: number;
  metrics: { loss: number } & Record<string, number>;
  encoding: TensorEncoding;
  /** the round's coordinator X25519 key from 'round:configure' */
  recipientBoxPublicKey: Uint8Array;
  /** the site's Ed25519 keypair */
  signing: KeyPair;
}

export interface Upload {
  /** the plaintext update frame (what the coordinator sees after opening the envelope) */
  payload: Uint8Array;
  /** what is emitted as 'update:upload' */
  request: ClientRequest<'update:upload'>;
}

/** encodeUpdate (with a fresh nonce against replays), then seal to the round key and sign. */
export function buildUpload(u: UploadInput): Upload {
  assertFinite(u.delta);
  const metrics: Record<string, number> & { loss: number } = { loss: u.metrics.loss };
  // only finite numbers: a NaN loss (no step taken) must not make the whole update invalid
  for (const [k, v] of Object.entries(u.metrics)) if (Number.isFinite(v)) metrics[k] = v;
  if (!Number.isFinite(metrics.loss))
    throw new FedloraError('NON_FINITE', `local training loss is ${u.metrics.loss}`);
  const payload = encodeUpdate(
    {
      roundId: u.roundId,
      siteId: u.siteId,
      nonce: newMessageNonce(),
      numExamples: u.numExamples,
      ...(u.newExamples !== undefined ? { newExamples: Math.min(u.newExamples, u.numExamples) } : {}),
      metrics,
      delta: u.delta,
    },
    u.encoding,
  );
  const envelope = sealAndSign(payload, {
    roundId: u.roundId,
    recipientBoxPublicKey: u.recipientBoxPublicKey,
    signing: u.signing,
  });
  return { payload, request: { roundId: u.roundId, envelope } };
}

export type SiteFailureCode = (typeof SITE_FAILURE_CODES)[number];

/** The 'round:fail' request for an error: a code from the closed list, and a message with no data in it. */
export function failureFor(roundId: string, err: unknown): ClientRequest<'round:fail'> {
  const code: SiteFailureCode =
    isFedloraError(err) && (SITE_FAILURE_CODES as readonly string[]).includes(err.code)
      ? (err.code as SiteFailureCode)
      : 'INTERNAL';
  // our own error messages name files and tensors, never examples; still, cap and keep the first line only
  const message = isFedloraError(err) ? err.message.split('\n')[0].slice(0, 256) : 'local training failed';
  return { roundId, code, message };
}

/**
 * Seed of a site's local shuffling in `round`: the round number alone, so that two clients (Node, browser, or the
 * simulator's virtual sites) with the same data and global adapter compute the same delta.
 */
export function localRoundSeed(round: number): number {
  return round;
}
