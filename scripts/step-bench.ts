// The training-step benchmark (issue 19): ms/step, samples/s, and what a step costs beyond its math — tfjs kernels
// dispatched and host↔device syncs (tensor reads) per step — for one backend at one shape. `npm run bench -- step`
// calls measureStep for each backend; run alone it prints one JSON line per shape, which is what scripts/gpu-bench.sh
// runs (bundled with esbuild, next to Dawn's .node file and the tfjs-wasm binaries, on a bare GPU machine):
//
//   tsx scripts/step-bench.ts [--backend wasm|webgpu|cpu] [--shapes 16x64,32x128] [--steps N] [--warmup N]
//                             [--loss-every N] [--model-dir DIR]
//
// The model is the default model's architecture; when DIR has no model.safetensors (the bundle carries config.json
// only, to stay small), its weights are random with the same shapes: the step's cost depends on the shapes only.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend, type BackendInfo, type BackendName } from '@fedlora/shared/node/backend.ts';
import { loadBertCheckpoint } from '@fedlora/shared/node/model/load.ts';
import {
  checkpointFromTensors,
  expectedBertShapes,
  parseBertConfig,
} from '@fedlora/shared/model/checkpoint.ts';
import { BertModel } from '@fedlora/shared/model/bert.ts';
import { SequenceClassifier } from '@fedlora/shared/model/classifier.ts';
import { LoraAdapter } from '@fedlora/shared/lora/adapter.ts';
import type { LoraConfig } from '@fedlora/shared/lora/config.ts';
import { DEFAULT_RECIPE } from '@fedlora/shared/training/recipe.ts';
import { trainClassifier, DEFAULT_LOSS_EVERY, type GradientPool } from '@fedlora/shared/training/trainer.ts';
import { countReads, profileSteps } from '@fedlora/shared/training/step-profile.ts';
import type { EncodedExample } from '@fedlora/shared/training/batches.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';

export const STEP_LABELS = ['a', 'b', 'c', 'd'];

export interface StepModel {
  classifier: SequenceClassifier;
  /** true when the weights are random (no model.safetensors in the directory) */
  randomWeights: boolean;
  dispose(): void;
}

/** The benchmark's classifier: the model in `modelDir` (its weights, or random ones of its shapes), LoRA as the recipe. */
export function stepModel(modelDir: string, lora: LoraConfig = DEFAULT_RECIPE.lora): StepModel {
  const hasWeights = existsSync(join(modelDir, 'model.safetensors'));
  let ckpt;
  if (hasWeights) ckpt = loadBertCheckpoint(modelDir);
  else {
    const raw: unknown = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8'));
    const shapes = expectedBertShapes(parseBertConfig(raw), false);
    let s = 12345;
    const tensors: NamedTensors = {};
    for (const [name, shape] of Object.entries(shapes)) {
      const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
      if (/LayerNorm\.weight$/.test(name)) data.fill(1);
      else if (!/bias$/.test(name))
        for (let i = 0; i < data.length; i++)
          data[i] = ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 0.04;
      tensors[name] = { shape, data };
    }
    ckpt = checkpointFromTensors(raw, tensors, modelDir);
  }
  const bert = new BertModel(ckpt);
  const classifier = new SequenceClassifier(
    bert,
    new LoraAdapter(lora, bert.config, 0),
    STEP_LABELS,
    'cls',
    0,
  );
  return {
    classifier,
    randomWeights: !hasWeights,
    dispose() {
      classifier.dispose();
      bert.dispose();
    },
  };
}

/** Fixed-length pseudo-random token ids (the PyTorch reference pads to a fixed length, so padding plays no part). */
export function stepExamples(batch: number, seq: number, vocab: number, batches = 12): EncodedExample[] {
  return Array.from({ length: batch * batches }, (_, i) => ({
    inputIds: Array.from({ length: seq }, (_, j) => 5 + ((i * 7919 + j * 104729) % (vocab - 10))),
    tokenTypeIds: new Array<number>(seq).fill(0),
    label: i % STEP_LABELS.length,
  }));
}

export interface StepMeasurement {
  batch: number;
  seq: number;
  msPerStep: number;
  samplesPerSecond: number;
  /** timed steps (after the warm-up steps) */
  steps: number;
  warmup: number;
  lossEvery: number;
  /** tfjs kernels per step at steady state (profiled runs of 1 + d and 1 steps, the difference over d; d = 2 by default) */
  kernelsPerStep: number;
  /** webgpu only: GPU programs dispatched per step (steady state, as kernelsPerStep) */
  gpuProgramsPerStep: number | null;
  /** tensor reads (host↔device syncs the loop asks for) per step over the timed run, main thread */
  syncsPerStep: number;
  /** all backend reads per step over the timed run, kernels' own included */
  backendReadsPerStep: number;
  topKernels: Array<[string, number]>;
}

/**
 * Warm-up, a timed run (reads counted), then two short profiled runs for the kernel count (which does not depend on
 * the shape: a slow software GPU can count at a small one). `trainer` swaps in another implementation (before/after).
 */
export async function measureStep(
  clf: SequenceClassifier,
  examples: EncodedExample[],
  o: {
    batch: number;
    seq: number;
    steps: number;
    warmup?: number;
    profileDelta?: number;
    lossEvery?: number;
    pool?: GradientPool;
    trainer?: typeof trainClassifier;
  },
): Promise<StepMeasurement> {
  const train = o.trainer ?? trainClassifier;
  const lossEvery = o.lossEvery ?? DEFAULT_LOSS_EVERY;
  const run = (steps: number) =>
    train(clf, examples, 0, {
      epochs: 1,
      steps,
      batchSize: o.batch,
      learningRate: 1e-3,
      pool: o.pool,
      groupByLength: false,
      lossEvery,
    });
  const warmup = o.warmup ?? 2;
  const d = o.profileDelta ?? 2;
  if (warmup > 0) await run(warmup); // wasm/XNNPACK set-up, WebGPU shader compilation
  const timed = await countReads(() => run(o.steps));
  const r = timed.result;
  const one = await profileSteps(1, () => run(1));
  const three = await profileSteps(1 + d, () => run(1 + d));
  const perStep = (a: number, b: number) => (a * (1 + d) - b) / d;
  const names = new Map(three.topKernels);
  return {
    batch: o.batch,
    seq: o.seq,
    msPerStep: (r.seconds * 1000) / r.steps,
    samplesPerSecond: r.samplesPerSecond,
    steps: r.steps,
    warmup,
    lossEvery,
    kernelsPerStep: perStep(three.kernelsPerStep, one.kernelsPerStep),
    gpuProgramsPerStep:
      three.gpuProgramsPerStep === null || one.gpuProgramsPerStep === null
        ? null
        : perStep(three.gpuProgramsPerStep, one.gpuProgramsPerStep),
    syncsPerStep: timed.reads / r.steps,
    backendReadsPerStep: timed.backendReads / r.steps,
    topKernels: [...names.entries()].slice(0, 6).map(([n, k]) => [n, Math.round(k * 10) / 10]),
  };
}

/** "16x64,32x128" → [[16, 64], [32, 128]] */
export function parseShapes(text: string): Array<[number, number]> {
  return text.split(',').map((s) => {
    const m = /^\s*(\d+)\s*[x×]\s*(\d+)\s*$/.exec(s);
    if (!m) throw new Error(`shape '${s}' is not BATCHxSEQ (e.g. 16x64)`);
    return [Number(m[1]), Number(m[2])];
  });
}

async function main(argv: string[]): Promise<void> {
  const { parseArgs } = await import('node:util');
  const { values } = parseArgs({
    args: argv,
    options: {
      backend: { type: 'string', default: 'wasm' },
      shapes: { type: 'string', default: '16x64,32x128,128x128' },
      steps: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '2' },
      'loss-every': { type: 'string' },
      'model-dir': { type: 'string' },
      'tf-flags': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      'step-bench [--backend wasm|webgpu|cpu] [--shapes 16x64,32x128,128x128] [--steps 5] [--warmup 2] [--loss-every 10] [--model-dir DIR]\n' +
        '           [--tf-flags NAME=VALUE,...]   tfjs flags set after the backend starts, e.g. WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE=64\n',
    );
    return;
  }
  const modelDir = values['model-dir'] ?? new URL('../models/fedlora-bert-mini/', import.meta.url).pathname;
  let info: BackendInfo;
  try {
    info = await initNodeBackend({
      force: values.backend as BackendName,
      log: (l) => process.stderr.write(l + '\n'),
    });
  } catch (err) {
    console.log(
      JSON.stringify({ backend: values.backend, error: err instanceof Error ? err.message : String(err) }),
    );
    process.exitCode = 1;
    return;
  }
  let tfFlags: Record<string, number | boolean>;
  try {
    tfFlags = setTfFlags(values['tf-flags'] ?? '');
  } catch (err) {
    console.log(JSON.stringify({ backend: info.name, error: err instanceof Error ? err.message : String(err) }));
    process.exitCode = 1;
    return;
  }
  const m = stepModel(modelDir);
  const vocab = m.classifier.bert.config.vocabSize;
  for (const [batch, seq] of parseShapes(values.shapes)) {
    const line: Record<string, unknown> = {
      backend: info.name,
      adapter: info.detail,
      hardware: info.hardware,
      ...(Object.keys(tfFlags).length ? { tfFlags } : {}),
      batch,
      seq,
    };
    try {
      const r = await measureStep(m.classifier, stepExamples(batch, seq, vocab, 4), {
        batch,
        seq,
        steps: Number(values.steps),
        warmup: Number(values.warmup),
        profileDelta: Number(values.steps) <= 2 ? 1 : 2,
        lossEvery: values['loss-every'] === undefined ? undefined : Number(values['loss-every']),
      });
      const round = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;
      Object.assign(line, {
        ...r,
        msPerStep: round(r.msPerStep, 1),
        samplesPerSecond: round(r.samplesPerSecond, 1),
        syncsPerStep: round(r.syncsPerStep, 3),
        backendReadsPerStep: round(r.backendReadsPerStep, 3),
      });
    } catch (err) {
      line.error = err instanceof Error ? err.message.split('\n')[0] : String(err);
      process.exitCode = 1;
    }
    line.randomWeights = m.randomWeights;
    line.date = new Date().toISOString();
    console.log(JSON.stringify(line));
  }
  m.dispose();
  tf.disposeVariables();
}

/**
 * Sets tfjs flags from "NAME=VALUE,NAME=VALUE" (numbers and true/false); returns them. tfjs throws for a flag the
 * active backend has not registered, which names it.
 */
export function setTfFlags(spec: string): Record<string, number | boolean> {
  const flags: Record<string, number | boolean> = {};
  for (const item of spec.split(',').filter((x) => x.trim() !== '')) {
    const m = /^\s*([A-Z0-9_]+)\s*=\s*(\S+)\s*$/.exec(item);
    const raw = m?.[2];
    const value = raw === 'true' ? true : raw === 'false' ? false : Number(raw);
    if (!m || (typeof value === 'number' && !Number.isFinite(value)))
      throw new Error(`--tf-flags: "${item}" is not NAME=number or NAME=true|false`);
    tf.env().set(m[1], value);
    flags[m[1]] = value;
  }
  return flags;
}

// run as a script (tsx scripts/step-bench.ts, or the esbuild bundle), not when bench.ts imports it
const entry = process.argv[1] ?? '';
if (/step-bench\.(ts|mjs|js)$/.test(entry)) {
  await main(process.argv.slice(2));
  process.exit(process.exitCode ?? 0);
}
