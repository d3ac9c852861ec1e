// Tests for local training on the tiny fixture BERT (wasm backend): the base stays frozen bit for bit, only LoRA and
// head train, a toy task is learned, runLocalRound's delta, FedProx's pull to the anchor, the worker-thread gradient
// pool and the frozen-layer cache give the same numbers as the plain path.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../node/backend';
import { loadBertCheckpoint } from '../node/model/load';
import { expectedBertShapes } from '../model/checkpoint';
import { BertModel } from '../model/bert';
import { SequenceClassifier } from '../model/classifier';
import { LoraAdapter } from '../lora/adapter';
import { importPeft } from '../lora/peft';
import type { LoraConfig } from '../lora/config';
import { cloneNamed, type NamedTensors } from '../tensor';
import { evaluateClassifier, trainClassifier, type TrainOptions } from './trainer';
import { runLocalRound } from './local-round';
import type { EncodedExample } from './batches';
import { seededRandom } from '../random';
import { WorkerGradientPool } from '../node/training/parallel';
import { countReads } from './step-profile';
import { FedloraError } from '../errors';

const FIXTURE = fileURLToPath(new URL('../../../tests/fixtures/bert-reference/', import.meta.url));
const ckpt = loadBertCheckpoint(FIXTURE);
const LABELS = ['absent', 'present'];
const PAD = 0;
const CLS = 101; // fixture vocab: [CLS]=101, [SEP]=102
const SEP = 102;
const SIGNAL = 200;
// the fixture adapter's shape: r=4, alpha=8 on query/value of both layers
const LORA: LoraConfig = { r: 4, alpha: 8, dropout: 0, targetModules: ['query', 'value'], layers: null };

/** Toy task: label 1 iff token SIGNAL occurs. Lengths 4–10 content tokens, so batches need padding. */
function toyExamples(n: number, seed: number): EncodedExample[] {
  const rand = seededRandom(seed);
  return Array.from({ length: n }, (_, i) => {
    const len = 4 + Math.floor(rand() * 7);
    const ids = Array.from({ length: len }, () => {
      const id = 105 + Math.floor(rand() * 895);
      return id === SIGNAL ? SIGNAL + 1 : id;
    });
    const label = i % 2;
    if (label) ids[Math.floor(rand() * len)] = SIGNAL;
    const inputIds = [CLS, ...ids, SEP];
    return { inputIds, tokenTypeIds: inputIds.map(() => 0), label };
  });
}

function classifier(lora: LoraConfig = LORA, seed = 0): SequenceClassifier {
  const bert = new BertModel(ckpt);
  return new SequenceClassifier(bert, new LoraAdapter(lora, bert.config, seed), LABELS, 'mean', seed);
}

function disposeAll(clf: SequenceClassifier): void {
  clf.dispose();
  clf.bert.dispose();
}

/** Every frozen base tensor of the model, read back to the host. */
async function baseWeights(bert: BertModel): Promise<Record<string, Float32Array>> {
  const out: Record<string, Float32Array> = {};
  for (const name of Object.keys(expectedBertShapes(bert.config, bert.hasPooler)))
    out[name] = new Float32Array((await bert.weight(name).data()) as Float32Array);
  return out;
}

function maxAbsDiff(a: NamedTensors, b: NamedTensors): number {
  assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort());
  let m = 0;
  for (const k of Object.keys(a)) for (let i = 0; i < a[k].data.length; i++) m = Math.max(m, Math.abs(a[k].data[i] - b[k].data[i]));
  return m;
}

function l2Distance(a: NamedTensors, b: NamedTensors): number {
  let s = 0;
  for (const k of Object.keys(a)) for (let i = 0; i < a[k].data.length; i++) s += (a[k].data[i] - b[k].data[i]) ** 2;
  return Math.sqrt(s);
}

/** A start state with a non-zero B (the fixture adapter) so every LoRA tensor gets a gradient from step 1. */
function startState(clf: SequenceClassifier): NamedTensors {
  const peft = importPeft({
    adapterConfig: JSON.parse(readFileSync(join(FIXTURE, 'adapter_config.json'), 'utf8')),
    weights: new Uint8Array(readFileSync(join(FIXTURE, 'lora.safetensors'))),
  });
  const head = clf.getTrainableState();
  return cloneNamed({ ...peft.state, 'classifier.weight': head['classifier.weight'], 'classifier.bias': head['classifier.bias'] });
}

const train = toyExamples(24, 1);
const OPTS: TrainOptions = { epochs: 2, batchSize: 8, learningRate: 1e-2, warmupSteps: 0, seed: 3 };

before(async () => {
  await initNodeBackend({ force: 'wasm', log: () => {} });
});

test('when a classifier trains for a few steps, then every base weight is bit-identical and adapter and head changed', async () => {
  const clf = classifier();
  const baseBefore = await baseWeights(clf.bert);
  const stateBefore = cloneNamed(clf.getTrainableState());
  const r = await trainClassifier(clf, train, PAD, OPTS);
  assert.equal(r.steps, 6); // 24 examples / 8 per batch × 2 epochs
  const baseAfter = await baseWeights(clf.bert);
  assert.equal(Object.keys(baseAfter).length, 5 + 16 * 2 + 2);
  for (const [name, data] of Object.entries(baseBefore)) assert.deepEqual(baseAfter[name], data, `base weight ${name} changed`);
  const stateAfter = clf.getTrainableState();
  for (const [name, t] of Object.entries(stateBefore)) {
    const moved = t.data.some((x, i) => x !== stateAfter[name].data[i]);
    assert.ok(moved, `trainable tensor ${name} did not change`);
  }
  disposeAll(clf);
});

test('when a classifier is built, then its trainable variables are exactly lora_A/lora_B of each adapted linear and the head', async () => {
  const clf = classifier();
  const expected = [
    ...[0, 1].flatMap((l) =>
      ['query', 'value'].flatMap((m) => [`encoder.layer.${l}.attention.self.${m}.lora_A`, `encoder.layer.${l}.attention.self.${m}.lora_B`]),
    ),
    'classifier.weight',
    'classifier.bias',
  ].sort();
  assert.deepEqual(clf.trainableVariables().map((v) => v.name).sort(), expected);
  assert.equal(clf.trainableParamCount(), 4 * (4 * 64 + 64 * 4) + 2 * 64 + 2);
  // and nothing else in the tfjs engine is a trainable variable, also after training (AdamW moments are not)
  await trainClassifier(clf, train, PAD, { ...OPTS, epochs: 1 });
  const trainable = Object.values(tf.engine().registeredVariables).filter((v) => v.trainable).map((v) => v.name).sort();
  assert.deepEqual(trainable, expected);
  disposeAll(clf);
});

test('when trained ~30 steps on "does token 200 occur", then the loss falls well below its start', async (t) => {
  const clf = classifier();
  const before = await evaluateClassifier(clf, train, PAD);
  const losses: number[] = [];
  await trainClassifier(clf, train, PAD, { ...OPTS, epochs: 10, onStep: (p) => losses.push(p.loss) });
  assert.equal(losses.length, 30);
  const after = await evaluateClassifier(clf, train, PAD);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  assert.ok(mean(losses.slice(-3)) < 0.5 * mean(losses.slice(0, 3)), `step losses ${losses.map((l) => l.toFixed(3)).join(' ')}`);
  assert.ok(after.loss < 0.5 * before.loss, `train loss ${before.loss} → ${after.loss}`);
  t.diagnostic(`train loss ${before.loss.toFixed(4)} → ${after.loss.toFixed(4)}; steps ${losses.map((l) => l.toFixed(3)).join(' ')}`);
  const acc = after.predictions.filter((p, i) => p === train[i].label).length / train.length;
  assert.ok(acc >= 0.9, `training accuracy ${acc}`);
  disposeAll(clf);
});

test('when a local round runs, then delta is exactly trained − received and the count is the samples seen', async () => {
  const clf = classifier();
  const global = startState(clf);
  const r = await runLocalRound(clf, train, PAD, global, { localEpochs: 1, batchSize: 8, learningRate: 1e-2, proximalMu: 0, maxSteps: 2 }, { seed: 5 });
  const trained = clf.getTrainableState();
  assert.deepEqual(Object.keys(r.delta).sort(), Object.keys(global).sort());
  for (const k of Object.keys(global))
    for (let i = 0; i < global[k].data.length; i++)
      assert.equal(r.delta[k].data[i], Math.fround(trained[k].data[i] - global[k].data[i]), `${k}[${i}]`);
  assert.ok(l2Distance(trained, global) > 0, 'training moved nothing');
  assert.equal(r.metrics.steps, 2);
  assert.equal(r.numExamples, 16);
  assert.ok(Number.isFinite(r.metrics.loss));
  disposeAll(clf);
});

test('when FedProx has mu > 0, then the trained state ends closer to the received one than with mu = 0', async (t) => {
  const distances: number[] = [];
  for (const mu of [0, 1]) {
    const clf = classifier();
    const global = startState(clf);
    const r = await runLocalRound(clf, train, PAD, global, { localEpochs: 3, batchSize: 8, learningRate: 1e-2, proximalMu: mu }, { seed: 5 });
    distances.push(l2Distance(r.delta, Object.fromEntries(Object.entries(r.delta).map(([k, t]) => [k, { shape: t.shape, data: new Float32Array(t.data.length) }]))));
    disposeAll(clf);
  }
  const [plain, prox] = distances;
  t.diagnostic(`‖delta‖ mu=0: ${plain}, mu=1: ${prox}`);
  assert.ok(prox < 0.9 * plain, `‖delta‖ with mu=1: ${prox}, with mu=0: ${plain}`);
});

test('when a batch is shared with one worker thread, with class weights and clipping, then losses and the trained state equal the single-thread run within 1e-5', async (t) => {
  const losses: number[][] = [[], []];
  const states: NamedTensors[] = [];
  let start: NamedTensors | null = null;
  let helperExamples = 0;
  for (const usePool of [false, true]) {
    const clf = classifier();
    start ??= startState(clf);
    clf.setTrainableState(start);
    const pool = usePool
      ? await WorkerGradientPool.start(1, { backend: 'wasm', modelDir: FIXTURE, lora: LORA, labels: LABELS, pooling: 'mean', examples: train, padId: PAD })
      : undefined;
    if (pool) {
      // count the helper's shares: equal results would prove nothing if the pool were never asked
      const compute = pool.compute.bind(pool);
      pool.compute = (h, st, idx, o) => {
        helperExamples += idx.length;
        return compute(h, st, idx, o);
      };
    }
    try {
      // the weights reach the helper with its share of the batch: unweighted helpers would change every loss
      const opts = { ...OPTS, classWeights: [0.4, 1.6], clipNorm: 0.5 };
      await trainClassifier(clf, train, PAD, { ...opts, pool, onStep: (p) => losses[usePool ? 1 : 0].push(p.loss) });
    } finally {
      await pool?.close();
    }
    states.push(cloneNamed(clf.getTrainableState()));
    disposeAll(clf);
  }
  assert.equal(losses[1].length, 6);
  assert.equal(helperExamples, 24, 'the helper computes half of each 8-example batch: 4 × 6 steps');
  losses[0].forEach((l, i) => assert.ok(Math.abs(l - losses[1][i]) <= 1e-5, `step ${i + 1}: ${l} vs ${losses[1][i]}`));
  t.diagnostic(`pool vs single thread: max state diff ${maxAbsDiff(states[0], states[1])}`);
  assert.ok(maxAbsDiff(states[0], states[1]) <= 1e-5, `state max diff ${maxAbsDiff(states[0], states[1])}`);
  assert.ok(l2Distance(states[0], start as NamedTensors) > 0.01, 'training did nothing, so the comparison proves nothing');
});

test('when each 8-example batch runs as micro-batches (3 + 3 + 2 on one thread; 2 + 2 on each of two threads), with class weights and clipping, then losses and the trained state equal one pass per batch within 1e-5', async (t) => {
  const runs = [
    { name: 'one pass', microBatch: undefined, helpers: 0 },
    { name: 'micro 3', microBatch: 3, helpers: 0 },
    { name: 'micro 2 on main + 1 worker', microBatch: 2, helpers: 1 },
  ];
  const losses: number[][] = [];
  const states: NamedTensors[] = [];
  const passes: number[] = [];
  let start: NamedTensors | null = null;
  for (const run of runs) {
    const clf = classifier();
    start ??= startState(clf);
    clf.setTrainableState(start);
    // count forward passes on this thread: equal results would prove nothing if the batch were never cut
    const logits = clf.logits.bind(clf);
    let calls = 0;
    clf.logits = (...args: Parameters<typeof logits>) => {
      calls++;
      return logits(...args);
    };
    const pool = run.helpers
      ? await WorkerGradientPool.start(run.helpers, { backend: 'wasm', modelDir: FIXTURE, lora: LORA, labels: LABELS, pooling: 'mean', examples: train, padId: PAD })
      : undefined;
    const seen: number[] = [];
    try {
      const opts = { ...OPTS, classWeights: [0.4, 1.6], clipNorm: 0.5, microBatch: run.microBatch, pool };
      await trainClassifier(clf, train, PAD, { ...opts, onStep: (p) => seen.push(p.loss) });
    } finally {
      await pool?.close();
    }
    losses.push(seen);
    passes.push(calls);
    states.push(cloneNamed(clf.getTrainableState()));
    disposeAll(clf);
  }
  assert.deepEqual(passes, [6, 18, 12], 'passes on the main thread: 1, 3 (3 + 3 + 2) and 2 (2 + 2 of its 4) per step, 6 steps');
  for (let r = 1; r < runs.length; r++) {
    t.diagnostic(`${runs[r].name} vs one pass: max state diff ${maxAbsDiff(states[0], states[r])}`);
    losses[0].forEach((l, i) => assert.ok(Math.abs(l - losses[r][i]) <= 1e-5, `${runs[r].name}, step ${i + 1}: ${l} vs ${losses[r][i]}`));
    assert.ok(maxAbsDiff(states[0], states[r]) <= 1e-5, `${runs[r].name}: state max diff ${maxAbsDiff(states[0], states[r])}`);
  }
  assert.ok(l2Distance(states[0], start as NamedTensors) > 0.01, 'training did nothing, so the comparison proves nothing');
});

test('when LoRA is only on layer 1, then training with the frozen-layer cache gives the same losses as without, within 1e-5', async (t) => {
  const lora: LoraConfig = { ...LORA, layers: [1] };
  const losses: number[][] = [];
  const states: NamedTensors[] = [];
  for (const cacheFrozen of [false, true]) {
    const clf = classifier(lora, 4);
    assert.equal(clf.adapter.lowestLayer, 1);
    // count frozen-prefix computations: the cache must actually be used for the comparison to mean anything
    const frozenPrefix = clf.frozenPrefix.bind(clf);
    let prefixRows = 0;
    clf.frozenPrefix = (b) => {
      prefixRows += b.batch;
      return frozenPrefix(b);
    };
    const run: number[] = [];
    await trainClassifier(clf, train, PAD, { ...OPTS, epochs: 3, cacheFrozen, onStep: (p) => run.push(p.loss) });
    losses.push(run);
    // with the cache each example's layer 0 runs once (24 rows over 3 epochs); without it, never through frozenPrefix
    assert.equal(prefixRows, cacheFrozen ? 24 : 0);
    states.push(cloneNamed(clf.getTrainableState()));
    disposeAll(clf);
  }
  assert.equal(losses[0].length, 9);
  t.diagnostic(`cache vs none: max state diff ${maxAbsDiff(states[0], states[1])}, max loss diff ${Math.max(...losses[0].map((l, i) => Math.abs(l - losses[1][i])))}`);
  losses[0].forEach((l, i) => assert.ok(Math.abs(l - losses[1][i]) <= 1e-5, `step ${i + 1}: ${l} vs ${losses[1][i]}`));
  assert.ok(maxAbsDiff(states[0], states[1]) <= 1e-5, `state max diff ${maxAbsDiff(states[0], states[1])}`);
});

test('when losses are read every 4 steps of 10, then the run syncs 4 times (steps 1, 4, 8, 10) and trains and reports as reading every step', async () => {
  const runs: Array<{ reads: number; meanLoss: number; state: NamedTensors; shown: Array<[number, number | undefined]> }> = [];
  for (const lossEvery of [1, 4]) {
    const clf = classifier();
    clf.setTrainableState(startState(clf));
    const shown: Array<[number, number | undefined]> = [];
    const c = await countReads(() => trainClassifier(clf, train, PAD, { ...OPTS, steps: 10, lossEvery, clipNorm: 0.5, onStep: (p) => void shown.push([p.loss, p.lossStep]) }));
    runs.push({ reads: c.reads, meanLoss: c.result.meanLoss, state: cloneNamed(clf.getTrainableState()), shown });
    disposeAll(clf);
  }
  const [every, fourth] = runs;
  assert.equal(every.reads, 10, 'one read per step: loss and gradient norm together');
  assert.equal(fourth.reads, 4);
  assert.deepEqual(fourth.shown.map(([, s]) => s), [1, 1, 1, 4, 4, 4, 4, 8, 8, 10]);
  assert.equal(maxAbsDiff(every.state, fourth.state), 0, 'the reads must not change the math');
  assert.ok(Math.abs(every.meanLoss - fourth.meanLoss) <= 1e-6, `meanLoss ${every.meanLoss} vs ${fourth.meanLoss}`);
  // what a read reports is the mean of the per-step losses since the previous read
  const perStep = every.shown.map(([l]) => l);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  assert.ok(Math.abs(fourth.shown[3][0] - mean(perStep.slice(1, 4))) <= 1e-6);
  assert.ok(Math.abs(fourth.shown[9][0] - mean(perStep.slice(8, 10))) <= 1e-6);
});

test('when step 3 diverges and losses are read every 5 steps, then the read at step 5 fails the run naming step 3', async () => {
  const clf = classifier();
  const logits = clf.logits.bind(clf);
  let calls = 0;
  clf.logits = (...args: Parameters<typeof logits>) => {
    const out = logits(...args);
    return ++calls === 3 ? tf.mul(out, NaN) : out;
  };
  const steps: number[] = [];
  const before = tf.memory().numTensors;
  await assert.rejects(
    trainClassifier(clf, train, PAD, { ...OPTS, steps: 10, lossEvery: 5, onStep: (p) => void steps.push(p.step) }),
    (err: unknown) => err instanceof FedloraError && err.code === 'NON_FINITE' && /became NaN at step 3 \(.*read at step 5\)/.test(err.message),
  );
  assert.deepEqual(steps, [1, 2, 3, 4], 'the run stops at the read after the diverged step');
  assert.equal(tf.memory().numTensors, before, 'a failed run leaves no tensor behind');
  disposeAll(clf);
});
