// `npm run bench`: performance figures, each against a reference measured in the same run.
//   step        training step at the PyTorch yardstick's shape (4 layers, H 256, seq 64, batch 16, LoRA r8 q,v) in
//               tfjs-wasm (1 thread, and main + worker threads) and WebGPU when it starts, with kernels, GPU dispatches
//               and syncs per step (scripts/step-bench.ts), vs ../shared/reference/train_step_torch.py (the faster of
//               torch threads 2 and 1, both on all cores)
//   target      time to a held-out accuracy target on the default data (and Banking77 when ../shared has it), with
//               dynamic padding, vs the same number of fixed-length (64) steps at the reference's measured step time
//   aggregate   FedAvg of N ∈ {10, 100, 1000} deltas of the default adapter size: ms and MB/s
//   bytes       bytes per site per round (fp32 / fp16 / int8 sealed update) vs full-model bytes
//   memory      peak tensor bytes of one training pass (wasm, tf.profile) vs training-shape.ts's estimate, which must
//               stay above it (scripts/pass-memory-bench.ts)
//   load        concurrent authenticated site sockets one coordinator holds healthy (1k, 5k, 10k), and 1,000 uploads of
//               the default adapter opened and aggregated vs a plain Float32Array sum (scripts/load-bench.ts)

import { statSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend, type BackendInfo } from '@fedlora/shared/node/backend.ts';
import { loadLocalModel } from '@fedlora/shared/node/model/local-model.ts';
import { DEFAULT_MODEL_DIR } from '@fedlora/shared/node/default-model.ts';
import { DEFAULT_RECIPE } from '@fedlora/shared/training/recipe.ts';
import { trainClassifier, evaluateClassifier, DEFAULT_LOSS_EVERY } from '@fedlora/shared/training/trainer.ts';
import { WorkerGradientPool } from '@fedlora/shared/node/training/parallel.ts';
import { encodeDataset } from '@fedlora/shared/training/encode.ts';
import { classificationReport } from '@fedlora/shared/training/metrics.ts';
import { loadSpamAssassin, spamAssassinEvalSubset } from '@fedlora/shared/node/data/spam-assassin.ts';
import { loadBanking77, sharedDataDir } from '@fedlora/shared/node/data/public-datasets.ts';
import type { LabeledDataset } from '@fedlora/shared/data/dataset.ts';
import { createStrategy } from '@fedlora/shared/aggregation/index.ts';
import { encodeUpdate, newMessageNonce } from '@fedlora/shared/protocol/codec.ts';
import { sealAndSign } from '@fedlora/shared/crypto/envelope.ts';
import { generateSiteKeys, generateBoxKeyPair } from '@fedlora/shared/crypto/keys.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { encode as msgpack } from 'msgpackr';
import { exitWithUsageError, parseCommandLineOrExit } from '@fedlora/shared/node/command-line.ts';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { measureStep, stepExamples, stepModel, STEP_LABELS, type StepMeasurement } from './step-bench.ts';
import { torchReference } from './torch-reference.ts';

const SECTIONS = ['step', 'target', 'aggregate', 'bytes', 'load', 'memory'];
const DEFAULT_SECTIONS = ['step', 'aggregate', 'bytes'];
const HELP = `npm run bench [-- section…]
  Performance figures, each against a reference measured in the same run (markdown tables on stdout).
  sections: step target aggregate bytes load memory   (default: step aggregate bytes; \`target\` and \`load\` take minutes)
    step        one training step at the PyTorch yardstick's shape, 1 thread and main + worker threads, and webgpu
                when it starts (SwiftShader: set VK_ICD_FILENAMES; counted at 2 × 16); kernels and syncs per step
    target      time to a held-out accuracy target (SpamAssassin; Banking77 when ../shared has it)
    aggregate   FedAvg of 10, 100, 1000 deltas of the default adapter size
    bytes       bytes per site per round (fp32 / fp16 / int8 sealed update) vs the full model
    load        concurrent site sockets one coordinator holds healthy (1k, 5k, 10k); 1,000 uploads opened and aggregated
    memory      peak tensor bytes of one training pass at 4 shapes (wasm) vs the estimate that sizes micro-batches`;

const { positionals: sections } = parseCommandLineOrExit('npm run bench', HELP, process.argv.slice(2), {}, { positionals: true });
const unknown = sections.filter((s) => !SECTIONS.includes(s));
if (unknown.length)
  exitWithUsageError('npm run bench', new FedloraError('CONFIG_INVALID', `unknown section(s) ${unknown.map((s) => `"${s}"`).join(', ')}`), HELP);
const want = (s: string) => (sections.length ? sections : DEFAULT_SECTIONS).includes(s);
const out = (line: string) => console.log(line);

async function benchStep(): Promise<void> {
  out('\n## Training step at the reference shape (batch 16 × seq 64, LoRA r8 on query/value, 4 layers, H 256)');
  const lora = DEFAULT_RECIPE.lora;
  const [batch, seq] = [16, 64];
  const steps = 12;
  // the yardstick first, so that every row can show its ratio as it is printed
  const ref = torchReference();
  const ratio = (ms: number) => (typeof ref === 'string' ? 'n/a' : (ms / ref.msPerStep).toFixed(2) + 'x');
  out(`loss read every ${DEFAULT_LOSS_EVERY} steps (and at step 1 and the last); kernels: tfjs kernels per step (tf.profile, steady state); ` +
    'GPU programs: WebGPU dispatches per step; syncs: tensor reads (data/dataSync) per step over the timed steps, ' +
    "main thread; backend reads: those plus the kernels' own reads");
  out(`| implementation | shape | ms/step | samples/s | kernels/step | GPU programs/step | syncs/step | backend reads/step | ratio to PyTorch (time) |`);
  out(`|---|---|---|---|---|---|---|---|---|`);
  const row = (name: string, r: StepMeasurement, withRatio = true) =>
    out(`| ${name} | ${r.batch} × ${r.seq}, ${r.steps} steps | ${r.msPerStep.toFixed(0)} | ${r.samplesPerSecond.toFixed(1)} | ${r.kernelsPerStep.toFixed(0)} | ` +
      `${r.gpuProgramsPerStep === null ? '–' : r.gpuProgramsPerStep.toFixed(0)} | ${r.syncsPerStep.toFixed(2)} | ${r.backendReadsPerStep.toFixed(2)} | ` +
      `${withRatio ? ratio(r.msPerStep) : 'n/a (other shape)'} |`);

  const wasm = await initNodeBackend({ force: 'wasm', log: () => {} });
  const m = stepModel(DEFAULT_MODEL_DIR, lora);
  const examples = stepExamples(batch, seq, m.classifier.bert.config.vocabSize);
  row(`fedlora tfjs-${wasm.name}, 1 thread`, await measureStep(m.classifier, examples, { batch, seq, steps }));
  const helpers = WorkerGradientPool.defaultHelpers();
  if (helpers) {
    const pool = await WorkerGradientPool.start(helpers, { backend: wasm.name, modelDir: DEFAULT_MODEL_DIR, lora, labels: STEP_LABELS, pooling: 'cls', examples, padId: 0 });
    try {
      row(`fedlora tfjs-${wasm.name}, ${helpers + 1} threads (worker_threads; counts: main thread)`, await measureStep(m.classifier, examples, { batch, seq, steps, pool }));
    } finally {
      await pool.close();
    }
  }
  m.dispose();
  if (typeof ref === 'string') out(`| PyTorch reference | ${batch} × ${seq} | ${ref} | | | | | | |`);
  else
    out(`| PyTorch + OpenBLAS on all cores, torch threads ${ref.threads} (reference, loss read every step; ${ref.other}) | ${batch} × ${seq} | ${ref.msPerStep} | ${ref.samplesPerSecond} | | | 1 | | 1.00x |`);

  // WebGPU when it starts: a hardware adapter at the reference shape; a software one (SwiftShader, about a minute per
  // step at 16 × 64) at 2 × 16 for one step, which still counts the kernels, dispatches and syncs (shape-independent)
  let gpu: BackendInfo;
  try {
    gpu = await initNodeBackend({ force: 'webgpu', log: () => {} });
  } catch (err) {
    out(`webgpu not measured: ${err instanceof Error ? err.message : String(err)}`);
    return;
  }
  const g = stepModel(DEFAULT_MODEL_DIR, lora);
  const [gb, gs] = gpu.hardware ? [batch, seq] : [2, 16];
  const r = await measureStep(g.classifier, stepExamples(gb, gs, g.classifier.bert.config.vocabSize, 4), {
    batch: gb, seq: gs, steps: gpu.hardware ? steps : 1, warmup: gpu.hardware ? 2 : 1, profileDelta: gpu.hardware ? 2 : 1,
  });
  row(`fedlora tfjs-webgpu [${gpu.detail}]${gpu.hardware ? '' : ' (software GPU: counts only)'}`, r, gpu.hardware);
  g.dispose();
  await initNodeBackend({ force: 'wasm', log: () => {} });
}

async function timeToTarget(name: string, train: LabeledDataset, heldout: LabeledDataset, target: number, maxLength: number, epochs: number): Promise<void> {
  const backend = await initNodeBackend({ log: () => {} });
  const lora = DEFAULT_RECIPE.lora;
  const m = loadLocalModel({ modelDir: DEFAULT_MODEL_DIR, lora, labels: train.labels, pooling: 'mean' });
  const tok = m.tokenizer;
  const trainEx = encodeDataset(tok, train, train.labels, maxLength);
  const heldEx = encodeDataset(tok, heldout, train.labels, maxLength);
  const helpers = WorkerGradientPool.defaultHelpers();
  const pool = helpers ? await WorkerGradientPool.start(helpers, { backend: backend.name, modelDir: DEFAULT_MODEL_DIR, lora, labels: train.labels, pooling: 'mean', examples: trainEx, padId: tok.special.pad }) : undefined;
  const evalEvery = Math.max(10, Math.floor(trainEx.length / DEFAULT_RECIPE.batchSize / 4));
  let evalSeconds = 0;
  // set inside onStep, so its type is asserted (a plain `= null` would narrow it to null for the code after the run)
  let reached = null as { steps: number; seconds: number; accuracy: number } | null;
  let best = 0;
  const meanLen = trainEx.reduce((a, e) => a + e.inputIds.length, 0) / trainEx.length;
  // one run of the recipe (one optimizer, warm-up once), evaluated every evalEvery steps from onStep; the evaluations'
  // time is measured and left out of the training time
  const tStart = performance.now();
  await trainClassifier(m.classifier, trainEx, tok.special.pad, {
    epochs, batchSize: DEFAULT_RECIPE.batchSize, learningRate: DEFAULT_RECIPE.learningRate, warmupSteps: 20,
    seed: 0, pool, constantRate: true,
    shouldStop: () => reached !== null,
    onStep: async (p) => {
      if (p.step % evalEvery !== 0 && p.step !== p.totalSteps) return;
      const trainSeconds = (performance.now() - tStart) / 1000 - evalSeconds;
      const t0 = performance.now();
      const ev = await evaluateClassifier(m.classifier, heldEx, tok.special.pad);
      evalSeconds += (performance.now() - t0) / 1000;
      const acc = classificationReport(heldEx.map((e) => e.label), ev.predictions, train.labels).accuracy;
      best = Math.max(best, acc);
      process.stderr.write(`${name}: ${p.step} steps, ${trainSeconds.toFixed(0)} s training, held-out accuracy ${acc.toFixed(4)}\n`);
      if (acc >= target) reached = { steps: p.step, seconds: trainSeconds, accuracy: acc };
    },
  });
  await pool?.close();
  m.dispose();
  const ref = torchReference();
  const refSeconds = typeof ref === 'string' || !reached ? null : (reached.steps * ref.msPerStep * (DEFAULT_RECIPE.batchSize / 16) * (maxLength / 64)) / 1000;
  out(`| ${name} | ${target} | ${reached ? `${reached.steps} steps, ${reached.seconds.toFixed(0)} s (acc ${reached.accuracy.toFixed(3)})` : `not reached (best ${best.toFixed(3)})`} | ${meanLen.toFixed(1)} | ${refSeconds === null ? 'n/a' : refSeconds.toFixed(0) + ' s'} | ${refSeconds && reached ? (reached.seconds / refSeconds).toFixed(2) + 'x' : 'n/a'} |`);
}

function fakeDelta(shapes: Record<string, number[]>, seed: number): NamedTensors {
  const d: NamedTensors = {};
  let s = seed;
  for (const [k, shape] of Object.entries(shapes)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32 - 0.5) * 1e-2;
    d[k] = { shape, data };
  }
  return d;
}

async function benchAggregateAndBytes(): Promise<void> {
  const m = loadLocalModel({ modelDir: DEFAULT_MODEL_DIR, lora: DEFAULT_RECIPE.lora, labels: ['ham', 'spam'], pooling: 'mean' });
  const shapes = m.classifier.trainableShapes();
  const global = m.classifier.getTrainableState();
  m.dispose();
  const params = Object.values(shapes).reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0);
  if (want('aggregate')) {
    out(`\n## FedAvg aggregation of N deltas (${params} parameters each = ${((params * 4) / 1e6).toFixed(3)} MB fp32)`);
    out('| N | ms | MB/s | reference: naive mean over materialized arrays, ms |');
    out('|---|---|---|---|');
    const deltas = Array.from({ length: 16 }, (_, i) => fakeDelta(shapes, i + 1));
    for (const n of [10, 100, 1000]) {
      const t0 = performance.now();
      const agg = createStrategy('fedavg', {}).createAggregator(1, global);
      for (let i = 0; i < n; i++) agg.accumulate({ siteId: `s${i}`, numExamples: 10 + (i % 7), delta: deltas[i % 16], metrics: { loss: 1 } });
      agg.finish([]);
      const ms = performance.now() - t0;
      // reference in the same run: the textbook weighted mean that keeps all N deltas alive
      const t1 = performance.now();
      const keys = Object.keys(shapes);
      const all = Array.from({ length: n }, (_, i) => deltas[i % 16]);
      const w = all.map((_, i) => 10 + (i % 7));
      const total = w.reduce((a, b) => a + b, 0);
      for (const k of keys) {
        const acc = new Float64Array(all[0][k].data.length);
        all.forEach((d, i) => d[k].data.forEach((v, j) => (acc[j] += (w[i] * v) / total)));
      }
      const refMs = performance.now() - t1;
      out(`| ${n} | ${ms.toFixed(1)} | ${((n * params * 4) / 1e6 / (ms / 1000)).toFixed(0)} | ${refMs.toFixed(1)} |`);
    }
  }
  if (want('bytes')) {
    const modelBytes = statSync(join(DEFAULT_MODEL_DIR, 'model.safetensors')).size;
    out(`\n## Bytes uploaded per site per round (sealed + signed update frame) vs the full model`);
    out('| encoding | bytes | vs full model (' + modelBytes + ' bytes) |');
    out('|---|---|---|');
    const keys = generateSiteKeys();
    const box = generateBoxKeyPair();
    for (const enc of ['fp32', 'fp16', 'int8'] as const) {
      const payload = encodeUpdate({ roundId: 'r1', siteId: 'site-a', nonce: newMessageNonce(), numExamples: 100, metrics: { loss: 0.5 }, delta: fakeDelta(shapes, 3) }, enc);
      const env = sealAndSign(payload, { roundId: 'r1', recipientBoxPublicKey: box.publicKey, signing: keys.signing });
      const frame = msgpack({ roundId: 'r1', envelope: env }).byteLength;
      out(`| ${enc} | ${frame} | ${((100 * frame) / modelBytes).toFixed(2)}% (${(modelBytes / frame).toFixed(0)}x smaller) |`);
    }
  }
}

out(`# fedlora benchmarks (${new Date().toISOString()}, ${process.platform} ${process.arch}, node ${process.version})`);
if (want('step')) await benchStep();
if (want('target')) {
  out('\n## Time to target held-out accuracy (main + worker threads, dynamic padding, batch 32, lr 2e-3)');
  out('| data | target | fedlora: steps, training seconds | mean tokens/example | PyTorch reference at fixed length 64 for the same steps (derived from its measured step time) | ratio |');
  out('|---|---|---|---|---|---|');
  const train = await loadSpamAssassin('train');
  const held = spamAssassinEvalSubset(await loadSpamAssassin('heldout'), 300, 7);
  // 0.93: reachable at length 64 (the length-64 two-epoch local run reached 0.9395, docs/BENCHMARKS.md); 0.95 needs 128 tokens
  await timeToTarget('SpamAssassin (default), max length 64', train, held, 0.93, 64, 3);
  const dir = sharedDataDir();
  if (dir) await timeToTarget('Banking77', loadBanking77(dir, 'train'), loadBanking77(dir, 'test'), 0.7, 64, 3);
  else out('Banking77 skipped: ../shared/assets/data not found');
}
if (want('aggregate') || want('bytes')) await benchAggregateAndBytes();
if (want('load')) await (await import('./load-bench.ts')).runLoadBench(out);
if (want('memory')) await (await import('./pass-memory-bench.ts')).runPassMemoryBench(out);
tf.disposeVariables();
process.exit(0);
