// The federation's base model as bytes, isomorphic (the browser site; the Node agent streams to disk instead, in
// client-node/src/agent/model-check.ts): fetch a manifest file chunk by chunk over the authenticated socket
// ('model:chunk') and check size and SHA-256 against the manifest. model/local-model.ts builds the classifier from them.

import { FedloraError } from '../errors';
import { sha256Hex } from '../crypto/hash';
import type { Manifest } from '../protocol/manifest';

export type ManifestFile = Manifest['baseModel']['files'][number];

/** Where model bytes come from: the coordinator, over the site's authenticated connection. */
export interface ModelChunkSource {
  /** up to `length` bytes of `path` from `offset`; fewer only at the end of the file */
  fetchChunk(path: string, offset: number, length: number): Promise<Uint8Array>;
}

export const MODEL_CHUNK_BYTES = 1024 * 1024;

/** HASH_MISMATCH unless `bytes` is exactly the manifest file (size, then SHA-256). */
export async function verifyFileBytes(f: ManifestFile, bytes: Uint8Array): Promise<void> {
  if (bytes.length !== f.bytes)
    throw new FedloraError('HASH_MISMATCH', `${f.path}: ${bytes.length} bytes, manifest says ${f.bytes}`);
  const sha = await sha256Hex(bytes);
  if (sha !== f.sha256) throw new FedloraError('HASH_MISMATCH', `${f.path}: sha256 ${sha.slice(0, 12)}… ≠ manifest ${f.sha256.slice(0, 12)}…`);
}

/** Downloads one manifest file into memory and verifies it; a half or tampered download is never returned. */
export async function fetchModelFile(
  source: ModelChunkSource,
  f: ManifestFile,
  onProgress: (done: number, total: number) => void = () => {},
): Promise<Uint8Array> {
  const out = new Uint8Array(f.bytes);
  let done = 0;
  while (done < f.bytes) {
    const chunk = await source.fetchChunk(f.path, done, Math.min(MODEL_CHUNK_BYTES, f.bytes - done));
    if (chunk.length === 0 || done + chunk.length > f.bytes)
      throw new FedloraError('HASH_MISMATCH', `${f.path}: the coordinator sent ${chunk.length} bytes at offset ${done} of ${f.bytes}`);
    out.set(chunk, done);
    done += chunk.length;
    onProgress(done, f.bytes);
  }
  await verifyFileBytes(f, out);
  return out;
}
