// Tests for the robust recipe's pieces on the tiny fixture BERT (wasm backend): early stopping restores the state of
// the validation peak, the step budget runs several epochs on small data, gradient clipping bounds every step, and
// class weights scale each example's loss.

import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '../node/backend';
import { loadBertCheckpoint } from '../node/model/load';
import { BertModel } from '../model/bert';
import { SequenceClassifier } from '../model/classifier';
import { LoraAdapter } from '../lora/adapter';
import type { LoraConfig } from '../lora/config';
import { cloneNamed, type NamedTensors } from '../tensor';
import { clipToNorm, summedCrossEntropy, trainClassifier } from './trainer';
import { fitClassifier, macroF1Validator, type Validator } from './fit';
import { balancedClassWeights, plannedSteps, validationSize, DEFAULT_RECIPE } from './recipe';
import type { EncodedExample } from './batches';
import { seededRandom } from '../random';

const FIXTURE = fileURLToPath(new URL('../../../tests/fixtures/bert-reference/', import.meta.url));
const ckpt = loadBertCheckpoint(FIXTURE);
const LABELS = ['absent', 'present'];
const LORA: LoraConfig = { r: 4, alpha: 8, dropout: 0, targetModules: ['query', 'value'], layers: null };
const SIGNAL = 200;

/** label 1 iff token SIGNAL occurs (as in trainer.test.ts) */
function toyExamples(n: number, seed: number): EncodedExample[] {
  const rand = seededRandom(seed);
  return Array.from({ length: n }, (_, i) => {
    const ids = Array.from({ length: 4 + Math.floor(rand() * 7) }, () => 105 + Math.floor(rand() * 94));
    const label = i % 2;
    if (label) ids[Math.floor(rand() * ids.length)] = SIGNAL;
    const inputIds = [101, ...ids, 102];
    return { inputIds, tokenTypeIds: inputIds.map(() => 0), label };
  });
}

function classifier(seed = 0): SequenceClassifier {
  const bert = new BertModel(ckpt);
  return new SequenceClassifier(bert, new LoraAdapter(LORA, bert.config, seed), LABELS, 'mean', seed);
}

function dispose(clf: SequenceClassifier): void {
  clf.dispose();
  clf.bert.dispose();
}

/** Runs `body` on a fresh classifier and disposes it even when an assertion fails (variable names are global). */
async function withClassifier<T>(body: (clf: SequenceClassifier) => Promise<T>): Promise<T> {
  const clf = classifier();
  try {
    return await body(clf);
  } finally {
    dispose(clf);
  }
}

function maxAbsDiff(a: NamedTensors, b: NamedTensors): number {
  let m = 0;
  for (const k of Object.keys(a)) for (let i = 0; i < a[k].data.length; i++) m = Math.max(m, Math.abs(a[k].data[i] - b[k].data[i]));
  return m;
}

const train = toyExamples(24, 1);

before(async () => {
  await initNodeBackend({ force: 'wasm', log: () => {} });
});

test('when validation F1 falls after a peak, then the run stops after `patience` evaluations and the restored weights are the peak\'s', async () => {
  const clf = classifier();
  // a scripted score sequence (peak at the 2nd evaluation), and the state seen at each evaluation
  const scores = [0.5, 0.8, 0.6, 0.4, 0.3, 0.2];
  const seen: NamedTensors[] = [];
  const validator: Validator = {
    async score(c) {
      seen.push(cloneNamed(await c.readTrainableState()));
      return { score: scores[seen.length - 1] };
    },
  };
  const r = await fitClassifier(clf, train, 0, {
    epochs: 10, batchSize: 8, learningRate: 1e-2, warmupSteps: 0, seed: 3, validator, evalEvery: 2, patience: 2,
  });
  assert.deepEqual(r.history.map((h) => h.step), [2, 4, 6, 8]);
  assert.equal(r.steps, 8, 'stops after the 2nd evaluation without improvement');
  assert.equal(r.stoppedEarly, true);
  assert.equal(r.stopped, false, 'an early stop is not an outside stop');
  assert.deepEqual({ step: r.best.step, score: r.best.score }, { step: 4, score: 0.8 });
  const final = await clf.readTrainableState();
  assert.ok(maxAbsDiff(seen[3], seen[1]) > 1e-3, 'training moved on after the peak, so the comparison proves something');
  assert.equal(maxAbsDiff(final, seen[1]), 0, 'the final weights are exactly the peak\'s');
  dispose(clf);
});

test('when the score ties, then a lower validation loss counts as better and a higher one does not', async () => {
  await withClassifier(async (clf) => {
    const points = [{ score: 1, loss: 0.5 }, { score: 1, loss: 0.3 }, { score: 1, loss: 0.4 }, { score: 1, loss: 0.35 }];
    let i = 0;
    const r = await fitClassifier(clf, train, 0, {
      epochs: 10, batchSize: 8, learningRate: 1e-2, warmupSteps: 0, seed: 3, evalEvery: 1, patience: 2,
      validator: { score: async () => points[i++] },
    });
    assert.deepEqual(r.history.map((h) => h.loss), [0.5, 0.3, 0.4, 0.35]);
    assert.equal(r.best.step, 2);
    assert.equal(r.stoppedEarly, true);
  });
});

test('when the score keeps improving, then the run uses its whole budget and keeps the last state', async () => {
  const clf = classifier();
  let calls = 0;
  const r = await fitClassifier(clf, train, 0, {
    epochs: 1, steps: 7, batchSize: 8, learningRate: 1e-2, warmupSteps: 0, seed: 3, evalEvery: 3, patience: 1,
    validator: { score: async () => ({ score: ++calls }) },
  });
  assert.deepEqual(r.history.map((h) => h.step), [3, 6, 7], 'every evalEvery steps and after the last');
  assert.equal(r.steps, 7);
  assert.equal(r.stoppedEarly, false);
  assert.equal(r.best.step, 7);
  dispose(clf);
});

test('when the real macro-F1 validator scores a toy task, then training raises it', async () => {
  await withClassifier(async (clf) => {
    const v = macroF1Validator(toyExamples(40, 9), 0, LABELS);
    const r = await fitClassifier(clf, toyExamples(64, 2), 0, {
      epochs: 1, steps: 80, batchSize: 8, learningRate: 1e-2, warmupSteps: 0, seed: 3, evalEvery: 10, patience: 3, validator: v,
    });
    const history = r.history.map((h) => h.score.toFixed(2)).join(' ');
    assert.ok(r.best.score >= 0.85 && r.best.score > r.history[0].score + 0.2, `validation macro-F1 ${history}`);
    assert.ok(Math.abs((await v.score(clf)).score - r.best.score) < 1e-12, 'the restored state scores the best score');
  });
});

test('when a step budget exceeds one epoch, then the trainer runs as many epochs as it takes', async () => {
  const clf = classifier();
  const epochs = new Set<number>();
  const r = await trainClassifier(clf, train, 0, { epochs: 1, steps: 10, batchSize: 8, learningRate: 1e-2, onStep: (p) => void epochs.add(p.epoch) });
  assert.equal(r.steps, 10);
  assert.deepEqual([...epochs], [0, 1, 2, 3], '3 batches per epoch');
  dispose(clf);
});

test('plannedSteps: small sets get the minimum, large sets the cap, the rest epochs × batches', () => {
  const r = { epochs: 3, batchSize: 32, minSteps: 300, maxSteps: 2000 };
  assert.equal(plannedSteps(2126, r), 300); // 67 × 3 = 201 → raised
  assert.equal(plannedSteps(10003, r), 939); // 313 × 3
  assert.equal(plannedSteps(100_000, r), 2000);
  assert.throws(() => plannedSteps(10, { ...r, minSteps: 0 }), /min steps/);
  assert.equal(validationSize(40, DEFAULT_RECIPE), 0, 'too small to spare any');
  assert.equal(validationSize(2126, DEFAULT_RECIPE), 213);
  assert.equal(validationSize(100_000, DEFAULT_RECIPE), 1000);
});

test('clipToNorm scales a gradient above the bound to it and leaves one below alone', async () => {
  const g = { a: tf.tensor1d([3, 0]), b: tf.tensor2d([[0, 4]]) };
  assert.equal(await clipToNorm(g, 10), 5);
  assert.deepEqual(Array.from(g.a.dataSync()), [3, 0]);
  assert.equal(await clipToNorm(g, 1), 5);
  const after = [...g.a.dataSync(), ...g.b.dataSync()];
  [0.6, 0, 0, 0.8].forEach((x, i) => assert.ok(Math.abs(after[i] - x) < 1e-6, `${after}`));
  tf.dispose(Object.values(g));
});

test('when training clips to a tiny norm, then the weights barely move, and every step reports its unclipped norm', async () => {
  const moved: number[] = [];
  for (const clipNorm of [0, 1e-12]) {
    const clf = classifier();
    const before = cloneNamed(await clf.readTrainableState());
    const norms: number[] = [];
    await trainClassifier(clf, train, 0, { epochs: 1, batchSize: 8, learningRate: 1e-2, warmupSteps: 0, clipNorm, onStep: (p) => void norms.push(p.gradNorm) });
    assert.ok(norms.every((n) => n > 1e-6), `norms ${norms}`);
    moved.push(maxAbsDiff(await clf.readTrainableState(), before));
    dispose(clf);
  }
  // Adam divides by the gradient's scale, so a 1e-12 clip shrinks each update to ~1e-12 / (1e-12 + eps) ≈ 1e-4 of it
  assert.ok(moved[1] < moved[0] * 1e-2, `moved ${moved[0]} unclipped vs ${moved[1]} clipped`);
});

test('balanced class weights average 1 per example; a weight scales its example\'s loss', () => {
  const w = balancedClassWeights([0, 0, 0, 1], 3);
  assert.deepEqual(w.map((x) => +x.toFixed(4)), [0.6667, 2, 0]);
  const logits = tf.tensor2d([[2, 0], [0, 1]]);
  const labels = tf.tensor1d([0, 0], 'int32');
  const plain = summedCrossEntropy(logits, labels, 2).dataSync()[0];
  const weighted = summedCrossEntropy(logits, labels, 2, [1, 3]).dataSync()[0];
  const l0 = Math.log(1 + Math.exp(-2));
  const l1 = Math.log(1 + Math.exp(1));
  assert.ok(Math.abs(plain - (l0 + l1)) < 1e-5);
  assert.ok(Math.abs(weighted - (l0 + 3 * l1)) < 1e-5, `${weighted}`);
  tf.dispose([logits, labels]);
});
