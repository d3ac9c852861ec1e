// Public API of @fedlora/shared for every runtime, Node and the browser alike: nothing here, nor anything it imports,
// may use a Node module (eslint.config.js enforces it). Node-only loaders live under node/ ('@fedlora/shared/node').
// Deep imports ('@fedlora/shared/protocol/events.ts') keep working; this file groups the same modules by concept.

// errors, host tensors, seeded randomness
export * from './errors';
export * from './tensor';
export * from './random';

// zod at config and admin edges: one-sentence parse errors, option fields described from a schema
export * from './schema-fields';

// crypto: site keys, sealed + signed envelopes, SHA-256
export * from './crypto/index';

// wire protocol: limits, schemas, tensor codec, manifest, messages, typed socket.io events, parted frames
export * from './protocol/index';
export * from './protocol/frame-parts';

// aggregation: the Strategy contract and the strategies
export * from './aggregation/index';

// model: BERT and its families (DistilBERT, RoBERTa), checkpoints, safetensors (sharded too), classification and MLM heads, a site's trainable model
export * from './model/bert';
export * from './model/checkpoint';
export * from './model/safetensors';
export * from './model/safetensors-index';
export * from './model/families';
export * from './model/classifier';
export * from './model/mlm';
export * from './model/local-model';

// LoRA: config, layer, adapter, PEFT interchange
export * from './lora/config';
export * from './lora/layer';
export * from './lora/adapter';
export * from './lora/peft';

// tokenizer: WordPiece and byte-level BPE, built from a model's files as text (tokenizer.json or vocab.txt)
export * from './tokenizer/tokenizer';
export { WordPieceTokenizer, type TokenizerOptions } from './tokenizer/wordpiece';
export { ByteLevelBpeTokenizer, type ByteLevelBpeOptions } from './tokenizer/byte-level-bpe';
export * from './tokenizer/tokenizer-json';
export * from './tokenizer/from-files';

// data: labelled datasets, splits and partitions, CSV/TSV/JSONL parsing, a site's data against the federation
export * from './data/dataset';
export * from './data/split';
export * from './data/tabular-text';
export * from './data/site-data';

// training: batches, encoding, optimizer, trainer, local round, metrics, MLM pretraining, default recipe
export * from './training/batches';
export * from './training/encode';
export * from './training/optimizer';
export * from './training/trainer';
export * from './training/local-round';
export * from './training/metrics';
export * from './training/pretrain';
export * from './training/recipe';

// a site's connection to the coordinator: session (request/ack, enroll, authenticate), reconnect backoff, model download
export * from './connection/session';
export * from './connection/backoff';
export * from './connection/model-download';
export * from './connection/model-chunk';

// a site's round protocol: its steps and the round handler
// (participant's assertFinite, a check inside buildUpload, stays a deep import: the root's is aggregation's)
export {
  acceptTrainMessage,
  buildUpload,
  checkAdapterShapes,
  failureFor,
  localRoundSeed,
  localTrainConfig,
  openAdapter,
  roundMaxLength,
  type ConfiguredRound,
  type SiteFailureCode,
  type Upload,
  type UploadInput,
} from './round/participant';
export * from './round/round-handler';
