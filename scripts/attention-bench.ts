// Issue 19 (CPU): the training step before and after one of the wasm kernel changes, in one process, interleaved,
// best of N trials, at the reference shape (default model, LoRA r8 on query/value, Adam, batch 16 × 64). Prints one
// JSON line per trial, then a summary. With --profile it also profiles one step per path: the share of kernel time in
// BatchMatMul and the top kernels.
//
//   tsx scripts/attention-bench.ts [--compare matmul|gelu] [--backend wasm] [--batch 16] [--seq 64] [--steps 4]
//                                  [--trials 3] [--helpers 0|1] [--profile] [--torch] [--model-dir DIR]
//
// --compare matmul (default): attention's products batched (tf.matMul, tfjs-wasm's scalar loop) against split into
// plain 2-D products (model/attention-matmul.ts, XNNPACK); GELU fused in both. --compare gelu: GELU as tfjs ops
// (Erf, Exp, …) against the fused SIMD kernels (model/wasm-gelu.ts); plain products in both.
// --helpers N adds N worker threads (node/training/parallel.ts); their path is set through FEDLORA_MATMUL_PATH or
// FEDLORA_GELU_PATH, which a worker copies from the environment when it starts, so each path gets its own pool.
// --torch also runs the PyTorch yardstick (../shared/reference/train_step_torch.py, as `npm run bench -- step` does: the
// faster of torch threads 2 and 1) after the trials and prints each path's ratio to it.

import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend, type BackendName } from '@fedlora/shared/node/backend.ts';
import { loadLocalModel } from '@fedlora/shared/node/model/local-model.ts';
import { DEFAULT_MODEL_DIR } from '@fedlora/shared/node/default-model.ts';
import { WorkerGradientPool } from '@fedlora/shared/node/training/parallel.ts';
import { DEFAULT_RECIPE } from '@fedlora/shared/training/recipe.ts';
import { trainClassifier, type GradientPool } from '@fedlora/shared/training/trainer.ts';
import type { EncodedExample } from '@fedlora/shared/training/batches.ts';
import type { SequenceClassifier } from '@fedlora/shared/model/classifier.ts';
import { MATMUL_PATH_ENV, setMatMulPath } from '@fedlora/shared/model/matmul-path.ts';
import { GELU_PATH_ENV, setGeluPath } from '@fedlora/shared/model/gelu.ts';
import { torchReference } from './torch-reference.ts';

const LABELS = ['a', 'b', 'c', 'd'];

/** The two settings compared: [before, after]; each sets this thread and names the env its workers read. */
interface Setting {
  path: string;
  apply(): void;
  env: Record<string, string>;
}
const COMPARISONS: Record<string, [Setting, Setting]> = {
  matmul: [
    { path: 'batched', apply: () => setMatMulPath('batched'), env: { [MATMUL_PATH_ENV]: 'batched' } },
    { path: 'plain', apply: () => setMatMulPath('plain'), env: { [MATMUL_PATH_ENV]: 'plain' } },
  ],
  gelu: [
    {
      path: 'gelu-ops',
      apply: () => (setMatMulPath('plain'), setGeluPath('ops')),
      env: { [MATMUL_PATH_ENV]: 'plain', [GELU_PATH_ENV]: 'ops' },
    },
    {
      path: 'gelu-fused',
      apply: () => (setMatMulPath('plain'), setGeluPath('auto')),
      env: { [MATMUL_PATH_ENV]: 'plain', [GELU_PATH_ENV]: 'auto' },
    },
  ],
};

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'wasm' },
    batch: { type: 'string', default: '16' },
    seq: { type: 'string', default: '64' },
    steps: { type: 'string', default: '4' },
    trials: { type: 'string', default: '3' },
    helpers: { type: 'string', default: '0' },
    profile: { type: 'boolean', default: false },
    torch: { type: 'boolean', default: false },
    'model-dir': { type: 'string', default: DEFAULT_MODEL_DIR },
    compare: { type: 'string', default: 'matmul' },
  },
  strict: true,
});
const batch = Number(values.batch);
const seq = Number(values.seq);
const steps = Number(values.steps);
const trials = Number(values.trials);
const helpers = Number(values.helpers);
const backend = values.backend as BackendName;
const modelDir = values['model-dir'];
const SETTINGS = COMPARISONS[values.compare];
if (!SETTINGS) throw new Error(`--compare must be one of ${Object.keys(COMPARISONS).join(', ')}`);
const PATHS = SETTINGS.map((s) => s.path);
const applyPath = (path: string) => SETTINGS.find((s) => s.path === path)?.apply();

/** Fixed-length token ids (the PyTorch yardstick pads to a fixed length, so padding plays no part). */
function examples(vocab: number): EncodedExample[] {
  return Array.from({ length: batch * (steps + 1) }, (_, i) => {
    const inputIds = Array.from({ length: seq }, (_, j) => 5 + ((i * 7919 + j * 104729) % (vocab - 10)));
    return { inputIds, tokenTypeIds: new Array<number>(seq).fill(0), label: i % LABELS.length };
  });
}

/** ms per step over steps 2..steps+1 (the first step of a run carries its set-up). */
async function timeRun(
  clf: SequenceClassifier,
  data: EncodedExample[],
  pool?: GradientPool,
): Promise<number> {
  const marks: number[] = [];
  await trainClassifier(clf, data, 0, {
    epochs: 1,
    steps: steps + 1,
    batchSize: batch,
    learningRate: 1e-3,
    groupByLength: false,
    pool,
    onStep: () => void marks.push(performance.now()),
  });
  return (marks[marks.length - 1] - marks[0]) / (marks.length - 1);
}

/**
 * One profiled step: ms in BatchMatMul against all kernel time and against the step's wall time. Kernel time leaves
 * out tf.customGrad's 'forward' entries, which wrap (and so would count twice) kernels the profile also lists.
 */
async function profileShare(clf: SequenceClassifier, data: EncodedExample[]) {
  const byKernel = new Map<string, number>();
  let count = 0;
  const t0 = performance.now();
  const info = await tf.profile(async () => {
    await trainClassifier(clf, data.slice(0, batch), 0, {
      epochs: 1,
      steps: 1,
      batchSize: batch,
      learningRate: 1e-3,
      groupByLength: false,
    });
    return [];
  });
  const wallMs = performance.now() - t0;
  const byShape = new Map<string, number>(); // BatchMatMul by operand shapes: attention's, LoRA's and the dense ones
  for (const k of info.kernels) {
    if (k.name === 'forward') continue;
    if (k.name === 'BatchMatMul') {
      const key = k.inputShapes.map((sh) => sh.join('x')).join(' · ');
      byShape.set(key, (byShape.get(key) ?? 0) + Number(k.kernelTimeMs));
    }
    byKernel.set(k.name, (byKernel.get(k.name) ?? 0) + Number(k.kernelTimeMs));
    count++;
  }
  const total = [...byKernel.values()].reduce((a, b) => a + b, 0);
  const bmm = byKernel.get('BatchMatMul') ?? 0;
  const top = [...byKernel.entries()].sort((a, b) => b[1] - a[1]).slice(0, 6);
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  return {
    kernels: count,
    wallMs: Math.round(wallMs),
    kernelMs: Math.round(total),
    batchMatMulMs: Math.round(bmm),
    batchMatMulShareOfKernels: r3(bmm / total),
    batchMatMulShareOfWall: r3(bmm / wallMs),
    top: top.map(([n, ms]) => [n, Math.round(ms)]),
    batchMatMulByShape: [...byShape.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 8)
      .map(([n, ms]) => [n, Math.round(ms)]),
  };
}

async function main(): Promise<void> {
  const info = await initNodeBackend({ force: backend, log: () => undefined });
  const m = loadLocalModel({ modelDir, lora: DEFAULT_RECIPE.lora, labels: LABELS, pooling: 'mean' });
  const clf = m.classifier;
  const data = examples(clf.bert.config.vocabSize);
  const pools = new Map<string, WorkerGradientPool>();
  for (const { path, env } of SETTINGS) {
    if (helpers === 0) break;
    Object.assign(process.env, env); // read by each worker's copies of matmul-path.ts and gelu.ts when it starts
    pools.set(
      path,
      await WorkerGradientPool.start(helpers, {
        backend,
        modelDir,
        lora: DEFAULT_RECIPE.lora,
        labels: LABELS,
        pooling: 'mean',
        examples: data,
        padId: 0,
      }),
    );
  }
  const header = {
    date: new Date().toISOString(),
    backend: info.name,
    detail: info.detail,
    shape: `${batch}x${seq}`,
    threads: 1 + helpers,
    steps,
    trials,
    load: loadavg().map((x) => Math.round(x * 100) / 100),
  };
  console.log(JSON.stringify(header));
  const best = new Map<string, number>(PATHS.map((p) => [p, Infinity]));
  const all = new Map<string, number[]>(PATHS.map((p) => [p, []]));
  for (const path of PATHS) {
    applyPath(path);
    await timeRun(clf, data, pools.get(path)); // warm-up: XNNPACK operators, wasm heap growth
  }
  for (let t = 0; t < trials; t++)
    for (const path of t % 2 === 0 ? PATHS : [...PATHS].reverse()) {
      applyPath(path);
      const ms = await timeRun(clf, data, pools.get(path));
      best.set(path, Math.min(best.get(path) ?? Infinity, ms));
      all.get(path)?.push(ms);
      console.log(JSON.stringify({ trial: t, path, msPerStep: Math.round(ms * 10) / 10 }));
    }
  const summary: Record<string, unknown> = {
    bestMsPerStep: Object.fromEntries([...best].map(([p, ms]) => [p, Math.round(ms * 10) / 10])),
    medianMsPerStep: Object.fromEntries(
      [...all].map(([p, v]) => [p, Math.round(v.sort((a, b) => a - b)[Math.floor(v.length / 2)] * 10) / 10]),
    ),
    speedup: Math.round(((best.get(PATHS[0]) ?? 0) / (best.get(PATHS[1]) ?? 1)) * 100) / 100,
  };
  if (values.profile)
    for (const path of PATHS) {
      applyPath(path);
      summary[`profile_${path}`] = await profileShare(clf, data);
    }
  if (values.torch) {
    const ref = torchReference();
    summary.torch = ref;
    const torch = typeof ref === 'string' ? null : ref.msPerStep;
    if (torch !== null)
      summary.ratioToTorch = Object.fromEntries(
        [...best].map(([p, ms]) => [p, Math.round((ms / torch) * 100) / 100]),
      );
  }
  summary.loadAfter = loadavg().map((x) => Math.round(x * 100) / 100);
  console.log(JSON.stringify(summary));
  setMatMulPath('auto');
  setGeluPath('auto');
  for (const p of pools.values()) await p.close();
  clf.dispose();
  clf.bert.dispose();
}

await main();
