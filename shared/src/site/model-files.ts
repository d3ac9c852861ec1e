// The federation's base model as bytes, isomorphic (the browser site; the Node agent streams to disk instead, in
// client-node/src/agent/model-check.ts): fetch a manifest file chunk by chunk over the authenticated socket
// ('model:chunk'), check size and SHA-256 against the manifest, and build the trainable classifier from the files.

import { FedloraError } from '../errors';
import { sha256Hex } from '../crypto/hash';
import type { Manifest } from '../protocol/manifest';
import { BertModel } from '../model/bert';
import { bertCheckpointFromFiles, type BertCheckpoint } from '../model/checkpoint';
import { SequenceClassifier, type Pooling } from '../model/classifier';
import { LoraAdapter } from '../lora/adapter';
import type { LoraConfig } from '../lora/config';
import { tokenizerFromFiles } from '../tokenizer/from-files';
import type { WordPieceTokenizer } from '../tokenizer/wordpiece';

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

/** The trainable model of a site (the Node agent builds it with node/model/local-model.ts, the browser with localModelFromFiles). */
export interface LocalModel {
  bert: BertModel;
  tokenizer: WordPieceTokenizer;
  classifier: SequenceClassifier;
  dispose(): void;
}

/** A base model's files by manifest path (config.json, vocab.txt, model.safetensors, tokenizer_config.json?). */
export type ModelFiles = Record<string, Uint8Array>;

const utf8 = new TextDecoder();

/** Tokenizer + BERT + LoRA classifier from the files' bytes (the Node twin: node/model/local-model.ts reads a directory). */
export function localModelFromFiles(
  files: ModelFiles,
  o: { lora: LoraConfig; labels: string[]; pooling: Pooling; seed?: number; source?: string },
): LocalModel {
  const source = o.source ?? 'model';
  for (const need of ['config.json', 'vocab.txt', 'model.safetensors'])
    if (!files[need]) throw new FedloraError('MODEL_INVALID', `${source} has no ${need}`);
  const configText = utf8.decode(files['config.json']);
  const tokenizer = tokenizerFromFiles(
    { vocab: utf8.decode(files['vocab.txt']), tokenizerConfig: files['tokenizer_config.json'] ? utf8.decode(files['tokenizer_config.json']) : null, config: configText },
    source,
  );
  let configJson: unknown;
  try {
    configJson = JSON.parse(configText);
  } catch (err) {
    throw new FedloraError('MODEL_INVALID', `${source}/config.json is not valid JSON`, { cause: err });
  }
  return assembleLocalModel(bertCheckpointFromFiles(configJson, files['model.safetensors'], source), tokenizer, o);
}

/** Frozen BERT + fresh LoRA adapter + head on a loaded checkpoint: the one place a site's classifier is put together. */
export function assembleLocalModel(
  ckpt: BertCheckpoint,
  tokenizer: WordPieceTokenizer,
  o: { lora: LoraConfig; labels: string[]; pooling: Pooling; seed?: number },
): LocalModel {
  const bert = new BertModel(ckpt);
  const adapter = new LoraAdapter(o.lora, bert.config, o.seed ?? 0);
  const classifier = new SequenceClassifier(bert, adapter, o.labels, o.pooling, o.seed ?? 0);
  return {
    bert,
    tokenizer,
    classifier,
    dispose() {
      classifier.dispose();
      bert.dispose();
    },
  };
}
