// One 'model:chunk' reply checked as it arrives, the same way by the Node agent (client-node agent/base-model.ts)
// and the browser site (client-web site-client.ts): it must be the chunk asked for, and its bytes must hash to the
// sha256 the coordinator computed when it read them. Why per chunk when the manifest already hashes the whole file:
// a corrupted chunk is caught and fetched again at once instead of costing a whole re-download of a file of tens of
// MB, and a bad file is never assembled at all. The whole-file check (model-download.ts) stays as the final word.
// SHA-256 through WebCrypto (crypto/hash.ts), the manifest's hash family, so the browser needs no node:crypto.

import { FedloraError, isFedloraError } from '../errors';
import { sha256Hex } from '../crypto/hash';
import type { ModelChunkReply, ModelChunkRequest } from '../protocol/messages';
import type { ModelChunkSource } from './model-download';

/** Fetches of one chunk before a download gives up on it: a flipped bit in transit is rare, a persistent one is not */
export const MODEL_CHUNK_ATTEMPTS = 3;

/**
 * The chunk's bytes when the reply is the chunk asked for (else BAD_MESSAGE) and its data hashes to its sha256
 * (else HASH_MISMATCH naming the file and offset). The reply was already validated by its schema.
 */
export async function verifyModelChunk(asked: ModelChunkRequest, reply: ModelChunkReply): Promise<Uint8Array> {
  if (reply.path !== asked.path || reply.offset !== asked.offset)
    throw new FedloraError('BAD_MESSAGE', `model:chunk: asked for ${asked.path}@${asked.offset}, got ${reply.path}@${reply.offset}`);
  const sha = await sha256Hex(reply.data);
  if (sha !== reply.sha256)
    throw new FedloraError(
      'HASH_MISMATCH',
      `model:chunk ${asked.path}@${asked.offset}: ${reply.data.length} bytes hash to ${sha.slice(0, 12)}…, the coordinator sent ${reply.sha256.slice(0, 12)}…`,
    );
  return reply.data;
}

/**
 * A ModelChunkSource over `ask` (one 'model:chunk' request on the site's socket) whose every chunk is verified; a
 * chunk failing its hash is fetched again, up to `attempts` times, then the download fails with HASH_MISMATCH.
 * Other errors (transport, NOT_FOUND, a reply for another chunk) are not retried here: they are no transient flip.
 */
export function verifiedChunkSource(
  ask: (req: ModelChunkRequest) => Promise<ModelChunkReply>,
  attempts: number = MODEL_CHUNK_ATTEMPTS,
): ModelChunkSource {
  return {
    async fetchChunk(path, offset, length) {
      const req = { path, offset, length };
      for (let attempt = 1; ; attempt++) {
        try {
          return await verifyModelChunk(req, await ask(req));
        } catch (err) {
          if (!isFedloraError(err, 'HASH_MISMATCH') || attempt >= attempts) {
            if (isFedloraError(err, 'HASH_MISMATCH'))
              throw new FedloraError('HASH_MISMATCH', `${err.message} (${attempt} attempts; refusing a corrupt model)`, { cause: err });
            throw err;
          }
        }
      }
    },
  };
}
