// Parity of the plain-products path (matmul-path.ts: attention split per (example, head), LoRA with explicit
// transposes; the wasm fast path) with tf.matMul's batched and transposed products, on the wasm and cpu backends: the
// attention products and their gradients, and a whole LoRA classifier's loss and LoRA gradients on the tiny fixture
// BERT (tests/fixtures/bert-reference, in the repository, so this test always runs). Last, issue 19's parity: the whole
// fused wasm path against the unfused tfjs model on cpu.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend, type BackendName } from '../node/backend';
import { loadBertCheckpoint } from '../node/model/load';
import { BertModel, type BertBatch } from './bert';
import { SequenceClassifier } from './classifier';
import { LoraAdapter } from '../lora/adapter';
import { attentionMatMul } from './attention-matmul';
import { setMatMulPath, type MatMulPath } from './matmul-path';
import { setGeluPath, type GeluPath } from './gelu';
import { wasmGeluAvailable } from './wasm-gelu';
import { sliceMatMulOnWasm } from './wasm-slice-matmul';
import { seededRandom } from '../random';
import type { NamedTensors } from '../tensor';

const FIXTURE = fileURLToPath(new URL('../../../tests/fixtures/bert-reference/', import.meta.url));
const ATOL = 1e-4;
const BACKENDS: BackendName[] = ['wasm', 'cpu'];

after(() => setMatMulPath('auto'));

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'length');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Runs f with a thread-wide setting (setMatMulPath, setGeluPath) changed, then puts the previous one back. */
function withSetting<S, T>(set: (value: S) => S, value: S, f: () => T): T {
  const previous = set(value);
  try {
    return f();
  } finally {
    set(previous);
  }
}
const withPath = <T>(path: MatMulPath, f: () => T): T => withSetting(setMatMulPath, path, f);
const withGeluPath = <T>(path: GeluPath, f: () => T): T => withSetting(setGeluPath, path, f);

test("wasm: when the slice-matmul kernel multiplies [G, M, K]·[G, K, N], then it equals tf.matMul's batched product", async () => {
  await initNodeBackend({ force: 'wasm', log: () => undefined });
  // odd shapes, and fresh operands every time: XNNPACK operators cached on one call's views must not be reused
  for (let seed = 0; seed < 3; seed++) {
    const a = tf.randomNormal([3, 5, 7], 0, 1, 'float32', seed) as tf.Tensor3D;
    const b = tf.randomNormal([3, 7, 2], 0, 1, 'float32', seed + 10) as tf.Tensor3D;
    const ours = sliceMatMulOnWasm(a, b);
    const theirs = tf.matMul(a, b);
    assert.deepEqual(ours.shape, [3, 5, 2]);
    const d = maxAbsDiff(ours.dataSync(), theirs.dataSync());
    assert.ok(d < 1e-5, `seed ${seed}: max diff ${d}`);
    tf.dispose([a, b, ours, theirs]);
  }
});

/**
 * The fixture BERT with a LoRA adapter whose B is non-zero (a fresh B = 0 zeroes A's gradient) and a 3-label head, on
 * the given backend; run() gives the loss and every trainable gradient of a two-example batch (the second padded).
 */
async function fixtureClassifier(backend: BackendName) {
  await initNodeBackend({ force: backend, log: () => undefined });
  const bert = new BertModel(loadBertCheckpoint(FIXTURE));
  const adapter = new LoraAdapter(
    { r: 4, alpha: 8, dropout: 0, targetModules: ['query', 'value'], layers: null },
    bert.config,
    1,
  );
  // a fresh adapter has B = 0, which zeroes A's gradient: give B values so both gradients are tested
  const rand = seededRandom(9);
  const state: NamedTensors = adapter.getState();
  for (const t of Object.values(state))
    for (let i = 0; i < t.data.length; i++) t.data[i] = (rand() - 0.5) * 0.2;
  adapter.setState(state);
  const clf = new SequenceClassifier(bert, adapter, ['a', 'b', 'c'], 'mean', 1);
  // two examples, the second padded: the mask bias enters the scores
  const T = 9;
  const ids = [101, 7, 300, 45, 12, 800, 66, 5, 102, 101, 20, 30, 102, 0, 0, 0, 0, 0];
  const b: BertBatch = {
    inputIds: Int32Array.from(ids),
    attentionMask: Int32Array.from(ids.map((id) => (id === 0 ? 0 : 1))),
    tokenTypeIds: new Int32Array(2 * T),
    batch: 2,
    seqLen: T,
  };
  const labels = tf.oneHot(tf.tensor1d([2, 0], 'int32'), 3);
  const vars = clf.trainableVariables(); // LoRA A and B of every adapted layer, then the head
  const run = (path: MatMulPath, gelu: GeluPath = 'auto') =>
    withPath(path, () =>
      withGeluPath(gelu, () =>
        tf.tidy(() => {
          const { value, grads } = tf.variableGrads(
            () => tf.losses.softmaxCrossEntropy(labels, clf.logits(b, true)) as tf.Scalar,
            vars,
          );
          return {
            loss: value.dataSync()[0],
            grads: vars.map((v) => grads[v.name].dataSync() as Float32Array),
          };
        }),
      ),
    );
  const dispose = () => {
    labels.dispose();
    clf.dispose();
    bert.dispose();
  };
  return { vars, run, dispose };
}

for (const backend of BACKENDS) {
  test(`${backend}: when attention's products are split per (example, head), then values and gradients equal tf.matMul's to 1e-4`, async () => {
    await initNodeBackend({ force: backend, log: () => undefined });
    const q = tf.randomNormal([2, 3, 5, 4], 0, 1, 'float32', 1) as tf.Tensor4D;
    const k = tf.randomNormal([2, 3, 5, 4], 0, 1, 'float32', 2) as tf.Tensor4D;
    const v = tf.randomNormal([2, 3, 5, 4], 0, 1, 'float32', 4) as tf.Tensor4D;
    const w = tf.randomNormal([2, 3, 5, 4], 0, 1, 'float32', 5); // weights the output so every gradient entry matters
    const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => {
      const p = tf.softmax(attentionMatMul(a as tf.Tensor4D, b as tf.Tensor4D, true)) as tf.Tensor4D;
      return tf.sum(tf.mul(attentionMatMul(p, c as tf.Tensor4D), w));
    };
    const run = (path: MatMulPath) =>
      withPath(path, () => {
        const { value, grads } = tf.valueAndGrads(f)([q, k, v]);
        return [value, ...grads].map((t) => t.dataSync() as Float32Array);
      });
    const batched = run('batched');
    const split = run('plain');
    for (let i = 0; i < batched.length; i++)
      assert.ok(
        maxAbsDiff(split[i], batched[i]) < ATOL,
        `output ${i}: max diff ${maxAbsDiff(split[i], batched[i])}`,
      );
    tf.dispose([q, k, v, w]);
  });

  test(`${backend}: when a LoRA classifier runs on plain products, then its loss and LoRA and head gradients equal the batched path's to 1e-4`, async () => {
    const { vars, run, dispose } = await fixtureClassifier(backend);
    const batched = run('batched');
    const split = run('plain');
    assert.ok(Math.abs(split.loss - batched.loss) < ATOL, `loss ${split.loss} vs ${batched.loss}`);
    vars.forEach((v, i) => {
      const d = maxAbsDiff(split.grads[i], batched.grads[i]);
      assert.ok(d < ATOL, `${v.name}: max diff ${d}`);
    });
    assert.ok(
      batched.grads.some((g) => g.some((x) => Math.abs(x) > 1e-6)),
      'gradients are not all zero (the test can fail)',
    );
    dispose();
  });
}

test('issue 19 must-show 2: when the LoRA classifier runs on wasm with every fused kernel (plain products, the slice-matmul attention, SIMD GELU, row-copy gather) and on cpu as the unfused tfjs model (batched tf.matMul, GELU as tfjs ops, tf.gather), then loss and LoRA and head gradients agree to 1e-4', async () => {
  const fused = await fixtureClassifier('wasm');
  assert.ok(wasmGeluAvailable(), 'the SIMD GELU kernel runs here, so the comparison is with the fused path');
  const mine = fused.run('auto');
  fused.dispose();
  const reference = await fixtureClassifier('cpu');
  const theirs = reference.run('batched', 'ops');
  assert.ok(Math.abs(mine.loss - theirs.loss) < ATOL, `loss ${mine.loss} vs ${theirs.loss}`);
  reference.vars.forEach((v, i) => {
    const d = maxAbsDiff(mine.grads[i], theirs.grads[i]);
    assert.ok(d < ATOL, `${v.name}: max diff ${d}`);
  });
  assert.ok(
    theirs.grads.some((g) => g.some((x) => Math.abs(x) > 1e-6)),
    'gradients are not all zero',
  );
  reference.dispose();
});
