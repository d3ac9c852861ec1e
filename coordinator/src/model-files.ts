// The base-model files a site must hold, with their SHA-256 (streamed: model.safetensors is tens of MB), as listed
// in the manifest and served chunk by chunk over 'model:chunk'.

import { createHash } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FedloraError } from '@fedlora/shared/errors.ts';
import type { ModelFile } from './socket/site-handlers';

export const REQUIRED_MODEL_FILES = ['config.json', 'vocab.txt', 'model.safetensors'] as const;
export const OPTIONAL_MODEL_FILES = ['tokenizer_config.json'] as const;

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export async function hashModelFiles(modelDir: string): Promise<ModelFile[]> {
  const out: ModelFile[] = [];
  for (const path of [...REQUIRED_MODEL_FILES, ...OPTIONAL_MODEL_FILES]) {
    const absPath = join(modelDir, path);
    if (!existsSync(absPath)) {
      if ((REQUIRED_MODEL_FILES as readonly string[]).includes(path))
        throw new FedloraError('FILE_NOT_FOUND', `model directory ${modelDir} lacks ${path}`);
      continue;
    }
    out.push({ path, absPath, sha256: await sha256File(absPath), bytes: statSync(absPath).size });
  }
  return out;
}
