// Sharded safetensors checkpoints: model.safetensors.index.json ({"metadata": ..., "weight_map": {tensor: file}}, what
// transformers' save_pretrained writes past max_shard_size) and the shard files it names. Isomorphic: the Node loader
// reads the files from a directory, the browser from its model cache.

import { FedloraError } from '../errors';
import type { NamedTensors } from '../tensor';
import { parseSafetensors, serializeSafetensors } from './safetensors';

export const SAFETENSORS_INDEX = 'model.safetensors.index.json';

export interface SafetensorsIndex {
  /** tensor name → shard file name */
  weightMap: Record<string, string>;
  /** the shard files, in the order the index first names them */
  shards: string[];
}

/** A shard is a plain file name beside the index: no folders, so an index cannot point outside the model directory. */
const SHARD_NAME = /^[\w.-]+\.safetensors$/;

export function parseSafetensorsIndex(text: string, source = SAFETENSORS_INDEX): SafetensorsIndex {
  const bad = (why: string) => new FedloraError('MODEL_INVALID', `${source}: ${why}`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new FedloraError('MODEL_INVALID', `${source} is not valid JSON`, { cause: err });
  }
  const map = (raw as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw bad('no "weight_map" object');
  const weightMap: Record<string, string> = {};
  const shards: string[] = [];
  for (const [tensor, file] of Object.entries(map)) {
    if (typeof file !== 'string' || !SHARD_NAME.test(file) || file.startsWith('.'))
      throw bad(`tensor ${tensor} maps to ${JSON.stringify(file)}, not a .safetensors file name beside the index`);
    weightMap[tensor] = file;
    if (!shards.includes(file)) shards.push(file);
  }
  if (shards.length === 0) throw bad('weight_map is empty');
  return { weightMap, shards };
}

/**
 * Every tensor of the checkpoint, read from its shards: each tensor must be in the shard the index names (a shard may
 * hold nothing else the index does not list).
 */
export function tensorsFromShards(index: SafetensorsIndex, shardBytes: Readonly<Record<string, Uint8Array>>, source = 'model'): NamedTensors {
  const out: NamedTensors = {};
  for (const shard of index.shards) {
    const bytes = shardBytes[shard];
    if (!bytes) throw new FedloraError('MODEL_INVALID', `${source}: ${SAFETENSORS_INDEX} names ${shard}, which is missing`);
    for (const [name, t] of Object.entries(parseSafetensors(bytes, `${source}/${shard}`).tensors)) {
      if (index.weightMap[name] !== shard)
        throw new FedloraError(
          'MODEL_INVALID',
          `${source}/${shard} holds ${name}, which ${SAFETENSORS_INDEX} ${name in index.weightMap ? `puts in ${index.weightMap[name]}` : 'does not list'}`,
        );
      out[name] = t;
    }
  }
  const absent = Object.keys(index.weightMap).filter((name) => !(name in out));
  if (absent.length)
    throw new FedloraError('MODEL_INVALID', `${source}: ${absent.length} tensor(s) of ${SAFETENSORS_INDEX} are not in their shards: ${absent.slice(0, 3).join(', ')}`);
  return out;
}

/**
 * The inverse: `tensors` split into `count` shards named as transformers names them (model-00001-of-00003.safetensors),
 * in order, about the same number of tensors each, with the index's text.
 */
export function shardSafetensors(tensors: NamedTensors, count: number): { indexJson: string; shards: Record<string, Uint8Array> } {
  const names = Object.keys(tensors);
  if (!Number.isInteger(count) || count < 1 || count > names.length)
    throw new FedloraError('CONFIG_INVALID', `cannot split ${names.length} tensors into ${count} shards`);
  const pad = (n: number) => String(n).padStart(5, '0');
  const weightMap: Record<string, string> = {};
  const shards: Record<string, Uint8Array> = {};
  let totalSize = 0;
  for (let i = 0; i < count; i++) {
    const file = `model-${pad(i + 1)}-of-${pad(count)}.safetensors`;
    const part: NamedTensors = {};
    for (const name of names.slice(Math.floor((i * names.length) / count), Math.floor(((i + 1) * names.length) / count))) {
      part[name] = tensors[name];
      weightMap[name] = file;
      totalSize += tensors[name].data.length * 4;
    }
    shards[file] = serializeSafetensors(part);
  }
  return { indexJson: JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2), shards };
}
