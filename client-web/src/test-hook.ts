// A test hook on window.__fedlora: runs the shared round core (runLocalRound) in this tab on given model files, data,
// seed and adapter state, so tests/web-node-delta.e2e.test.ts can compare the browser's delta with the Node agent's.
// It reads model files from a URL the test serves (never the site's data) and only returns numbers.

import { makeDataset, type LabeledExample } from '@fedlora/shared/data/dataset.ts';
import type { LoraConfig } from '@fedlora/shared/lora/config.ts';
import type { Pooling } from '@fedlora/shared/model/classifier.ts';
import { localModelFromFiles, type ModelFiles } from '@fedlora/shared/model/local-model.ts';
import { encodeDataset } from '@fedlora/shared/training/encode.ts';
import { runLocalRound, type LocalTrainConfig } from '@fedlora/shared/training/local-round.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import type { WebBackendInfo } from './backend';

/** JSON-safe tensors (Float32Array does not survive Playwright's evaluate). */
export type PlainTensors = Record<string, { shape: number[]; data: number[] }>;

export interface ComputeDeltaInput {
  /** base URL holding config.json, vocab.txt, model.safetensors (tokenizer_config.json optional) */
  modelUrl: string;
  lora: LoraConfig;
  labels: string[];
  pooling: Pooling;
  examples: LabeledExample[];
  maxLength: number;
  global: PlainTensors;
  config: LocalTrainConfig;
  seed: number;
}

export interface ComputeDeltaOutput {
  backend: string;
  delta: PlainTensors;
  loss: number;
  numExamples: number;
}

async function fetchFiles(base: string): Promise<ModelFiles> {
  const files: ModelFiles = {};
  for (const name of ['config.json', 'vocab.txt', 'model.safetensors', 'tokenizer_config.json']) {
    const r = await fetch(new URL(name, base));
    if (r.ok) files[name] = new Uint8Array(await r.arrayBuffer());
  }
  return files;
}

export async function computeDelta(i: ComputeDeltaInput, backend: WebBackendInfo): Promise<ComputeDeltaOutput> {
  const model = localModelFromFiles(await fetchFiles(i.modelUrl), { lora: i.lora, labels: i.labels, pooling: i.pooling, seed: 0 });
  try {
    const examples = encodeDataset(model.tokenizer, makeDataset('test', i.examples, i.labels), i.labels, i.maxLength);
    const global: NamedTensors = {};
    for (const [k, t] of Object.entries(i.global)) global[k] = { shape: t.shape, data: Float32Array.from(t.data) };
    const r = await runLocalRound(model.classifier, examples, model.tokenizer.special.pad, global, i.config, { seed: i.seed });
    const delta: PlainTensors = {};
    for (const [k, t] of Object.entries(r.delta)) delta[k] = { shape: t.shape, data: Array.from(t.data) };
    return { backend: backend.name, delta, loss: r.metrics.loss, numExamples: r.numExamples };
  } finally {
    model.dispose();
  }
}
