// Which directory holds the federation's base model for this site: the local copy (default: the shipped model),
// else an earlier download in the state dir, else a fresh download from the coordinator ('model:chunk').
// Nothing is trained or predicted on files whose SHA-256 differs from the manifest's (HASH_MISMATCH).

import { statSync } from 'node:fs';
import { join } from 'node:path';
import { FedloraError } from '@fedlora/shared/errors.ts';
import type { Manifest } from '@fedlora/shared/protocol/manifest.ts';
import { DEFAULT_MODEL_DIR } from '@fedlora/shared/node/default-model.ts';
import { verifiedChunkSource } from '@fedlora/shared/connection/model-chunk.ts';
import { progressBar, type Progress } from '../progress';
import { request, type SiteSocket } from './connection';
import { checkModelFiles, describeProblems, downloadBaseModel, type ModelChunkSource } from './model-check';

export interface BaseModelOptions {
  /** the site's own copy (default: the shipped model) */
  modelDir?: string;
  /** downloads go to <stateDir>/model */
  stateDir: string;
  /** where to download from; null = refuse on a mismatch */
  download: ModelChunkSource | null;
  quiet?: boolean;
  log: (line: string) => void;
  /** dir → stamp of a successful check, so a reconnect does not hash tens of MB again */
  verified?: Map<string, string>;
}

function mtimeOf(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

export async function resolveBaseModelDir(manifest: Manifest, o: BaseModelOptions): Promise<string> {
  const local = o.modelDir ?? DEFAULT_MODEL_DIR;
  const downloaded = join(o.stateDir, 'model');
  const files = manifest.baseModel.files;
  const problemsByDir: string[] = [];
  for (const dir of [local, downloaded]) {
    const stamp = `${JSON.stringify(files)}@${files.map((f) => mtimeOf(join(dir, f.path))).join(',')}`;
    if (o.verified?.get(dir) === stamp) return dir;
    const problems = await checkModelFiles(dir, files);
    if (problems.length === 0) {
      o.verified?.set(dir, stamp);
      o.log(`base model ${manifest.baseModel.id}: ${files.length} files verified (sha256) in ${dir}`);
      return dir;
    }
    problemsByDir.push(`${dir}: ${describeProblems(problems)}`);
  }
  if (!o.download)
    throw new FedloraError('HASH_MISMATCH', `refusing to train: no local copy of ${manifest.baseModel.id} matches the manifest (${problemsByDir[0]})`);
  o.log(`base model ${manifest.baseModel.id} does not match locally (${problemsByDir[0]}); downloading it from the coordinator`);
  let bar: Progress | null = null;
  let barFile = '';
  try {
    await downloadBaseModel(downloaded, manifest.baseModel, o.download, (path, done, total) => {
      if (path !== barFile) {
        bar?.stop();
        bar = progressBar(`download ${path}`, total, o.quiet);
        barFile = path;
      }
      bar?.update(done);
    });
  } finally {
    (bar as Progress | null)?.stop();
  }
  const problems = await checkModelFiles(downloaded, files);
  if (problems.length) throw new FedloraError('HASH_MISMATCH', `refusing to train: the downloaded model does not verify (${describeProblems(problems)})`);
  return downloaded;
}

/**
 * 'model:chunk' requests over the authenticated socket, each reply checked to be the chunk asked for and to match
 * its own sha256 (refetched when it does not), by the browser site's check (shared connection/model-chunk.ts).
 */
export function chunkSource(socket: SiteSocket, timeoutMs?: number): ModelChunkSource {
  return verifiedChunkSource((req) => request(socket, 'model:chunk', req, timeoutMs));
}
