// Node-only: reads a Hugging Face BERT, DistilBERT or RoBERTa directory from disk (config.json + model.safetensors, or
// model.safetensors.index.json + its shards), with errors that say what is wrong and how to fix it.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FedloraError } from '../../errors';
import { checkpointFromTensors, type BertCheckpoint } from '../../model/checkpoint';
import type { NamedTensors } from '../../tensor';
import { parseSafetensors } from '../../model/safetensors';
import { parseSafetensorsIndex, SAFETENSORS_INDEX, tensorsFromShards } from '../../model/safetensors-index';

const bytesOf = (path: string): Uint8Array => {
  const b = readFileSync(path);
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
};

export function loadBertCheckpoint(dir: string): BertCheckpoint {
  const f = readCheckpointFiles(dir);
  return checkpointFromTensors(f.configJson, f.tensors, dir, f.weightsName);
}

/** A checkpoint directory as stored: config.json's JSON and every tensor under its file name (prefix and all). */
export interface StoredCheckpoint {
  configJson: unknown;
  tensors: NamedTensors;
  /** the weights file(s), for messages: model.safetensors or {shard,…} */
  weightsName: string;
}

/** Reads config.json and the safetensors (one file or shards) without interpreting the tensors' names. */
export function readCheckpointFiles(dir: string): StoredCheckpoint {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new FedloraError('FILE_NOT_FOUND', `model directory ${dir} does not exist`);
  const configPath = join(dir, 'config.json');
  const weightsPath = join(dir, 'model.safetensors');
  const indexPath = join(dir, SAFETENSORS_INDEX);
  if (!existsSync(configPath)) throw new FedloraError('MODEL_INVALID', `${dir} has no config.json`);
  let configJson: unknown;
  try {
    configJson = JSON.parse(readFileSync(configPath, 'utf8'));
  } catch (err) {
    throw new FedloraError('MODEL_INVALID', `${configPath} is not valid JSON`, { cause: err });
  }
  if (existsSync(weightsPath))
    return { configJson, tensors: parseSafetensors(bytesOf(weightsPath), `${dir}/model.safetensors`).tensors, weightsName: 'model.safetensors' };
  if (existsSync(indexPath)) {
    const index = parseSafetensorsIndex(readFileSync(indexPath, 'utf8'), indexPath);
    const shards: Record<string, Uint8Array> = {};
    for (const shard of index.shards) {
      const path = join(dir, shard);
      if (!existsSync(path)) throw new FedloraError('MODEL_INVALID', `${dir}: ${SAFETENSORS_INDEX} names ${shard}, which is missing`);
      shards[shard] = bytesOf(path);
    }
    return { configJson, tensors: tensorsFromShards(index, shards, dir), weightsName: `{${index.shards.join(',')}}` };
  }
  const hint =
    existsSync(join(dir, 'pytorch_model.bin')) || existsSync(join(dir, 'pytorch_model.bin.index.json'))
      ? ' It has pytorch_model.bin, a pickle fedlora does not read; convert it once with Python: ' +
        '`from transformers import AutoModel; AutoModel.from_pretrained(DIR).save_pretrained(DIR, safe_serialization=True)`.'
      : ` (A sharded checkpoint needs ${SAFETENSORS_INDEX} beside its shards.)`;
  throw new FedloraError('MODEL_INVALID', `${dir} has no model.safetensors.${hint}`);
}
