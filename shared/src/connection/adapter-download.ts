// An adapter over LIMITS.adapterInlineBytes crosses the socket in 'adapter:chunk's, the same way for the round's
// global adapter (round:train names the version and size instead of carrying it) and for a site fetching a version
// to serve or predict with. Each chunk carries its own SHA-256, checked as it arrives (a damaged one is fetched again,
// up to ADAPTER_CHUNK_ATTEMPTS times); the assembled bytes are then checked against the whole adapter's SHA-256 by
// the caller (round/participant.ts openAdapter). Shared by the Node agent and the browser site.

import { FedloraError, isFedloraError } from '../errors';
import { sha256Hex } from '../crypto/hash';
import { LIMITS } from '../protocol/limits';
import type { AdapterChunkReply, AdapterChunkRequest } from '../protocol/messages';

export const ADAPTER_CHUNK_ATTEMPTS = 3;

export type AdapterChunkAsk = (req: AdapterChunkRequest) => Promise<AdapterChunkReply>;

export interface DownloadedAdapter {
  versionId: string;
  bytes: Uint8Array;
  /** the whole adapter's SHA-256 as the coordinator announced it (to check the assembled bytes against) */
  adapterSha256: string;
  /** the coordinator's signature over (versionId, adapterSha256), from the first reply (protocol/signed-messages.ts) */
  versionSignature?: Uint8Array;
}

async function verifiedChunk(ask: AdapterChunkAsk, req: AdapterChunkRequest, attempts: number): Promise<AdapterChunkReply> {
  for (let attempt = 1; ; attempt++) {
    const reply = await ask(req);
    if (reply.offset !== req.offset || (req.versionId !== 'latest' && reply.versionId !== req.versionId))
      throw new FedloraError('BAD_MESSAGE', `adapter:chunk: asked for ${req.versionId}@${req.offset}, got ${reply.versionId}@${reply.offset}`);
    const sha = await sha256Hex(reply.data);
    if (sha === reply.sha256) return reply;
    if (attempt >= attempts)
      throw new FedloraError(
        'HASH_MISMATCH',
        `adapter:chunk ${reply.versionId}@${req.offset}: ${reply.data.length} bytes hash to ${sha.slice(0, 12)}…, the coordinator sent ${reply.sha256.slice(0, 12)}… (${attempt} attempts; refusing a corrupt adapter)`,
      );
  }
}

/**
 * Downloads `versionId` ('latest': the current version, pinned by the first reply) chunk by chunk. `expect`, when
 * known (round:train), is the size and whole-adapter SHA-256 the coordinator announced: every chunk must agree.
 */
export async function downloadAdapter(
  ask: AdapterChunkAsk,
  versionId: string,
  expect?: { totalBytes: number; adapterSha256: string },
  o: { chunkBytes?: number; attempts?: number } = {},
): Promise<DownloadedAdapter> {
  const chunkBytes = o.chunkBytes ?? LIMITS.adapterInlineBytes;
  const attempts = o.attempts ?? ADAPTER_CHUNK_ATTEMPTS;
  let id = versionId;
  let total = expect?.totalBytes ?? -1;
  let whole = expect?.adapterSha256 ?? '';
  let bytes: Uint8Array | null = null;
  let versionSignature: Uint8Array | undefined;
  for (let offset = 0; total < 0 || offset < total; ) {
    const reply = await verifiedChunk(ask, { versionId: id, offset, length: chunkBytes }, attempts).catch((err: unknown) => {
      if (isFedloraError(err, 'NOT_FOUND')) throw new FedloraError('NOT_FOUND', `the coordinator has no adapter version ${id}`, { cause: err });
      throw err;
    });
    if (total < 0) {
      total = reply.totalBytes;
      whole = reply.adapterSha256;
      id = reply.versionId;
      versionSignature = reply.versionSignature;
    }
    if (reply.totalBytes !== total || reply.adapterSha256 !== whole)
      throw new FedloraError('BAD_MESSAGE', `adapter:chunk ${id}@${offset}: the adapter's size or hash changed between chunks`);
    if (reply.data.length === 0 || offset + reply.data.length > total)
      throw new FedloraError('BAD_MESSAGE', `adapter:chunk ${id}@${offset}: ${reply.data.length} bytes do not fit an adapter of ${total}`);
    bytes ??= new Uint8Array(total);
    bytes.set(reply.data, offset);
    offset += reply.data.length;
  }
  return { versionId: id, bytes: bytes ?? new Uint8Array(0), adapterSha256: whole, ...(versionSignature ? { versionSignature } : {}) };
}
