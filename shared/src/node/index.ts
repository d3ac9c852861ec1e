// Public API of @fedlora/shared/node: the Node-only half of the library (files, worker threads, native and Dawn
// backends, the command line). Only this folder may import Node modules; the isomorphic API is the package root.
// training/grad-worker.ts is not exported: it is a worker thread's entry, started by training/parallel.ts.

// tfjs backend selection for Node (tfjs-node, Dawn's WebGPU, wasm, cpu)
export * from './backend';

// OpenSSL's Ed25519 in place of tweetnacl's (crypto/ed25519.ts)
export * from './native-ed25519';

// strict command-line parsing shared by every CLI
export * from './command-line';

// the shipped base model
export * from './default-model';

// models and tokenizers read from / written to a Hugging Face directory
export { loadBertCheckpoint } from './model/load';
export * from './model/save';
export { loadLocalModel } from './model/local-model';
export * from './tokenizer/load';

// datasets read from files: CSV/TSV/JSONL, the SpamAssassin corpus, the public benchmark sets
export * from './data/tabular';
export * from './data/spam-assassin';
export * from './data/public-datasets';

// data-parallel training over worker threads
export * from './training/parallel';
