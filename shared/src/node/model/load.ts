// Node-only: reads a Hugging Face BERT directory from disk, with errors that say what is wrong and how to fix it.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FedloraError } from '../../errors';
import { bertCheckpointFromFiles, type BertCheckpoint } from '../../model/checkpoint';

export function loadBertCheckpoint(dir: string): BertCheckpoint {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new FedloraError('FILE_NOT_FOUND', `model directory ${dir} does not exist`);
  const configPath = join(dir, 'config.json');
  const weightsPath = join(dir, 'model.safetensors');
  if (!existsSync(configPath)) throw new FedloraError('MODEL_INVALID', `${dir} has no config.json`);
  if (!existsSync(weightsPath)) {
    const hint = existsSync(join(dir, 'pytorch_model.bin'))
      ? ' It has pytorch_model.bin, a pickle fedlora does not read; convert it once with Python: ' +
        '`from transformers import AutoModel; AutoModel.from_pretrained(DIR).save_pretrained(DIR, safe_serialization=True)`.'
      : existsSync(join(dir, 'model.safetensors.index.json'))
        ? ' Sharded checkpoints are not supported; re-save it with max_shard_size large enough for one file.'
        : '';
    throw new FedloraError('MODEL_INVALID', `${dir} has no model.safetensors.${hint}`);
  }
  let configJson: unknown;
  try {
    configJson = JSON.parse(readFileSync(configPath, 'utf8'));
  } catch (err) {
    throw new FedloraError('MODEL_INVALID', `${configPath} is not valid JSON`, { cause: err });
  }
  const bytes = readFileSync(weightsPath);
  return bertCheckpointFromFiles(configJson, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), dir);
}
