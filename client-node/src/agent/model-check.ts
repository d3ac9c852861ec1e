// Base-model verification against the coordinator's manifest: every listed file must exist with the listed size
// and SHA-256, or the site refuses to train (HASH_MISMATCH). Training on other weights than the federation's
// would produce deltas for a different model, which FedAvg would silently average into garbage.
// Also the optional download of the base model in chunks, each file hash-checked before it is moved into place.

import { closeSync, createReadStream, existsSync, mkdirSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { FedloraError } from '@fedlora/shared/errors.ts';
import type { Manifest } from '@fedlora/shared/protocol/manifest.ts';
import { MODEL_CHUNK_BYTES, type ModelChunkSource } from '@fedlora/shared/connection/model-download.ts';

export type { ManifestFile } from '@fedlora/shared/connection/model-download.ts';
type ManifestFile = Manifest['baseModel']['files'][number];

export interface FileProblem {
  path: string;
  problem: 'missing' | 'size' | 'sha256';
  expected: string;
  actual?: string;
}

/** Streaming SHA-256 of a file (model weights can be hundreds of MB: never read them whole). */
export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => h.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

/** Checks each manifest file under modelDir; returns the problems (empty = the model matches). */
export async function checkModelFiles(modelDir: string, files: readonly ManifestFile[]): Promise<FileProblem[]> {
  const problems: FileProblem[] = [];
  for (const f of files) {
    const p = join(modelDir, f.path);
    if (!existsSync(p)) {
      problems.push({ path: f.path, problem: 'missing', expected: f.sha256 });
      continue;
    }
    const size = statSync(p).size;
    // the size check first: it is free and catches truncated downloads without hashing
    if (size !== f.bytes) {
      problems.push({ path: f.path, problem: 'size', expected: String(f.bytes), actual: String(size) });
      continue;
    }
    const sha = await sha256File(p);
    if (sha !== f.sha256) problems.push({ path: f.path, problem: 'sha256', expected: f.sha256, actual: sha });
  }
  return problems;
}

export function describeProblems(problems: readonly FileProblem[]): string {
  return problems
    .map((p) =>
      p.problem === 'missing'
        ? `${p.path}: missing`
        : p.problem === 'size'
          ? `${p.path}: ${p.actual} bytes, manifest says ${p.expected}`
          : `${p.path}: sha256 ${p.actual?.slice(0, 12)}…, manifest says ${p.expected.slice(0, 12)}…`,
    )
    .join('; ');
}

/** Throws HASH_MISMATCH naming each bad file unless modelDir holds exactly the manifest's base model. */
export async function verifyBaseModel(modelDir: string, baseModel: Manifest['baseModel']): Promise<void> {
  const problems = await checkModelFiles(modelDir, baseModel.files);
  if (problems.length)
    throw new FedloraError(
      'HASH_MISMATCH',
      `the base model in ${modelDir} is not the federation's ${baseModel.id}: ${describeProblems(problems)}`,
    );
}

export { MODEL_CHUNK_BYTES, type ModelChunkSource } from '@fedlora/shared/connection/model-download.ts';

/**
 * Downloads every manifest file that is missing or wrong in `targetDir`, chunk by chunk into a temp file, then
 * checks size and SHA-256 before the rename: a half or tampered download never looks like a valid model.
 */
export async function downloadBaseModel(
  targetDir: string,
  baseModel: Manifest['baseModel'],
  source: ModelChunkSource,
  onProgress: (path: string, done: number, total: number) => void = () => {},
): Promise<void> {
  const todo = new Set((await checkModelFiles(targetDir, baseModel.files)).map((p) => p.path));
  for (const f of baseModel.files) {
    if (!todo.has(f.path)) continue;
    const dest = join(targetDir, f.path);
    mkdirSync(dirname(dest), { recursive: true });
    const tmp = `${dest}.part`;
    const fd = openSync(tmp, 'w');
    const hash = createHash('sha256');
    let done = 0;
    try {
      while (done < f.bytes) {
        const chunk = await source.fetchChunk(f.path, done, Math.min(MODEL_CHUNK_BYTES, f.bytes - done));
        if (chunk.length === 0 || done + chunk.length > f.bytes)
          throw new FedloraError('HASH_MISMATCH', `${f.path}: the coordinator sent ${chunk.length} bytes at offset ${done} of ${f.bytes}`);
        writeSync(fd, chunk);
        hash.update(chunk);
        done += chunk.length;
        onProgress(f.path, done, f.bytes);
      }
    } finally {
      closeSync(fd);
    }
    const sha = hash.digest('hex');
    if (sha !== f.sha256) {
      rmSync(tmp, { force: true });
      throw new FedloraError('HASH_MISMATCH', `${f.path}: downloaded sha256 ${sha.slice(0, 12)}… ≠ manifest ${f.sha256.slice(0, 12)}…`);
    }
    renameSync(tmp, dest);
  }
}
