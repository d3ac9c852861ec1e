// The model's own WebGPU programs (model/webgpu-gelu.ts, model/webgpu-layer-norm.ts) on webgpu (SwiftShader where no
// GPU driver is configured): each equals the tfjs ops it replaces, values and gradients, and each direction is one
// GPU program where the ops were several.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from './backend';
import { useWebGPU } from './testing/webgpu';
import { gelu, setGeluPath } from '../model/gelu';
import { frozenLayerNorm, setLayerNormPath } from '../model/layer-norm';
import { seededRandom } from '../random';
import { AdamW } from '../training/optimizer';
import { attentionOnWebGPU, type AttentionShape } from '../model/webgpu-attention';
import { loraUpOnWebGPU, MAX_FUSED_RANK } from '../lora/webgpu-lora-up';
import { LoraLinear } from '../lora/layer';

after(async () => {
  await initNodeBackend({ force: 'wasm', log: () => {} }); // leave the process on the fast backend
});

const EPS = 1e-12;
const maxDiff = async (a: tf.Tensor, b: tf.Tensor) => (await tf.max(tf.abs(tf.sub(a, b))).data())[0];

/** Runs f with GELU and LayerNorm as tfjs ops, then puts the settings back. */
function withOps<T>(f: () => T): T {
  const [g, l] = [setGeluPath('ops'), setLayerNormPath('ops')];
  try {
    return f();
  } finally {
    setGeluPath(g);
    setLayerNormPath(l);
  }
}

/** GPU programs dispatched while f runs (webgpu's runWebGPUProgram, counted as step-profile.ts counts them). */
function programsDuring(f: () => void): number {
  const backend = tf.backend() as unknown as { runWebGPUProgram: (...a: unknown[]) => unknown };
  const original = backend.runWebGPUProgram;
  let n = 0;
  backend.runWebGPUProgram = (...a: unknown[]) => {
    n++;
    return original.apply(backend, a);
  };
  try {
    tf.tidy(f);
  } finally {
    backend.runWebGPUProgram = original;
  }
  return n;
}

/** value and input gradient of sum(f(x)·dy) */
const valueAndGrad = (f: (t: tf.Tensor) => tf.Tensor, x: tf.Tensor, dy: tf.Tensor) =>
  tf.tidy(() => {
    const { value, grad } = tf.valueAndGrad((t: tf.Tensor) => tf.sum(tf.mul(f(t), dy)))(x);
    return [f(x), grad, value];
  });

test('webgpu: when GELU and its gradient run as our two programs at 4,099 points in [-8, 8], then both equal the tfjs ops to 1e-6, and forward + backward dispatch 2 programs for GELU (the ops: 16)', async (t) => {
  const skip = await useWebGPU();
  if (skip !== null) return t.skip(skip);
  const rand = seededRandom(7);
  const xs = [0, 1e-3, -1e-3, ...Array.from({ length: 4096 }, () => (rand() - 0.5) * 16)];
  const x = tf.tensor1d(xs);
  const dy = tf.tensor1d(xs.map(() => rand() * 2 - 1));
  const [mineY, mineG] = valueAndGrad(gelu, x, dy);
  const [theirY, theirG] = withOps(() => valueAndGrad(gelu, x, dy));
  assert.ok((await maxDiff(mineY, theirY)) <= 1e-6, `value max diff ${await maxDiff(mineY, theirY)}`);
  const g = await maxDiff(mineG, theirG);
  assert.ok(g <= 1e-6, `gradient max diff ${g}`);
  assert.ok((await tf.max(tf.abs(mineG)).data())[0] > 0.5, 'the gradient is not trivially zero');
  // programs of GELU alone: the sum and the product with dy around it are the same on both paths
  const around = programsDuring(() => tf.grad((v: tf.Tensor) => tf.sum(tf.mul(v, dy)))(x));
  const fused = programsDuring(() => tf.grad((v: tf.Tensor) => tf.sum(tf.mul(gelu(v), dy)))(x)) - around;
  const ops = withOps(() => programsDuring(() => tf.grad((v: tf.Tensor) => tf.sum(tf.mul(gelu(v), dy)))(x))) - around;
  t.diagnostic(`GELU forward + backward: ${fused} programs fused, ${ops} as tfjs ops`);
  assert.equal(fused, 2);
  assert.ok(ops > fused, `ops ${ops}`);
  tf.dispose([x, dy, mineY, mineG, theirY, theirG]);
});

for (const [label, shape] of [
  ['[3, 37, 256] (one row constant)', [3, 37, 256]],
  ['[5, 100] (a row length no multiple of the 64 threads)', [5, 100]],
  ['[65537, 2] (more rows than one dispatch dimension allows: tfjs-webgpu folds the dispatch)', [65537, 2]],
] as const) {
  test(`webgpu: when the LayerNorm program and its gradient program run on ${label}, then both equal the tfjs ops to 1e-5 (gradient relative to 1 + |value|)`, async (t) => {
    const skip = await useWebGPU();
    if (skip !== null) return t.skip(skip);
    const H = shape[shape.length - 1];
    const x = tf.tidy(() => {
      const r = tf.randomNormal([...shape], 0.5, 3, 'float32', 11);
      if (shape.length !== 3) return r;
      return tf.concat([tf.fill([shape[0], 1, H], 0.25), tf.slice(r, [0, 1, 0], [shape[0], shape[1] - 1, H])], 1);
    });
    const gamma = tf.randomNormal([H], 1, 0.2, 'float32', 12);
    const beta = tf.randomNormal([H], 0, 0.2, 'float32', 13);
    const dy = tf.randomNormal([...shape], 0, 1, 'float32', 14);
    const ln = (v: tf.Tensor) => frozenLayerNorm(v, gamma, beta, EPS);
    const [mineY, mineG] = valueAndGrad(ln, x, dy);
    const [theirY, theirG] = withOps(() => valueAndGrad(ln, x, dy));
    const v = await maxDiff(mineY, theirY);
    assert.ok(v <= 1e-5, `value max diff ${v}`);
    const d = (await tf.max(tf.div(tf.abs(tf.sub(mineG, theirG)), tf.add(1, tf.abs(theirG)))).data())[0];
    assert.ok(d <= 1e-5, `gradient max diff ${d}`);
    assert.ok((await tf.max(tf.abs(mineG)).data())[0] > 0.1, 'the gradient is not trivially zero');
    assert.ok((await mineG.data()).every(Number.isFinite), 'finite everywhere');
    tf.dispose([x, gamma, beta, dy, mineY, mineG, theirY, theirG]);
  });
}

test('webgpu: when a frozen LayerNorm is taken forward and backward, then it dispatches 2 programs (the ops: 18)', async (t) => {
  const skip = await useWebGPU();
  if (skip !== null) return t.skip(skip);
  const x = tf.randomNormal([4, 8, 32], 0, 1, 'float32', 1);
  const gamma = tf.ones([32]);
  const beta = tf.zeros([32]);
  const dy = tf.randomNormal([4, 8, 32], 0, 1, 'float32', 2);
  const around = programsDuring(() => tf.grad((v: tf.Tensor) => tf.sum(tf.mul(v, dy)))(x));
  const count = () => programsDuring(() => tf.grad((v: tf.Tensor) => tf.sum(tf.mul(frozenLayerNorm(v, gamma, beta, EPS), dy)))(x)) - around;
  const fused = count();
  const ops = withOps(count);
  t.diagnostic(`LayerNorm forward + backward: ${fused} programs fused, ${ops} as tfjs ops`);
  assert.equal(fused, 2);
  assert.ok(ops >= 10, `ops ${ops}`);
  tf.dispose([x, gamma, beta, dy]);
});

test('webgpu: when LayerNorm takes the residual sum into its programs on [3, 37, 96], then value and both input gradients equal add-then-LayerNorm as tfjs ops to 1e-5, in 2 programs (the ops: add + 18)', async (t) => {
  const skip = await useWebGPU();
  if (skip !== null) return t.skip(skip);
  const shape = [3, 37, 96];
  const x = tf.randomNormal(shape, 0.5, 3, 'float32', 21);
  const residual = tf.randomNormal(shape, -0.2, 2, 'float32', 22);
  const gamma = tf.randomNormal([96], 1, 0.2, 'float32', 23);
  const beta = tf.randomNormal([96], 0, 0.2, 'float32', 24);
  const dy = tf.randomNormal(shape, 0, 1, 'float32', 25);
  const run = () =>
    tf.tidy(() => {
      const f = (a: tf.Tensor, r: tf.Tensor) => frozenLayerNorm(a, gamma, beta, EPS, r);
      const { value, grads } = tf.valueAndGrads((a: tf.Tensor, r: tf.Tensor) => tf.sum(tf.mul(f(a, r), dy)))([x, residual]);
      return [f(x, residual), ...grads, value];
    });
  const mine = run();
  const theirs = withOps(run);
  for (const [i, what] of ['value', 'd x', 'd residual'].entries()) {
    const d = (await tf.max(tf.div(tf.abs(tf.sub(mine[i], theirs[i])), tf.add(1, tf.abs(theirs[i])))).data())[0];
    assert.ok(d <= 1e-5, `${what}: max diff ${d}`);
  }
  assert.ok((await tf.max(tf.abs(mine[1])).data())[0] > 0.1, 'the gradient is not trivially zero');
  const around = programsDuring(() => tf.grads((a: tf.Tensor, r: tf.Tensor) => tf.sum(tf.mul(tf.add(a, r), dy)))([x, residual]));
  const count = () =>
    programsDuring(() => tf.grads((a: tf.Tensor, r: tf.Tensor) => tf.sum(tf.mul(frozenLayerNorm(a, gamma, beta, EPS, r), dy)))([x, residual])) - around;
  const fused = count();
  const ops = withOps(count);
  t.diagnostic(`residual + LayerNorm forward + backward: ${fused + 1} programs fused, ${ops + 1} as tfjs ops (the add included)`);
  assert.equal(fused, 1); // the add the reference pays for is inside the LayerNorm: 2 programs where the ops need add + 18
  assert.ok(ops >= 10, `ops ${ops}`);
  tf.dispose([x, residual, gamma, beta, dy, ...mine, ...theirs]);
});

for (const [label, rows, outCols, rank] of [
  ['N 130, out 100, r 8 (no multiple of the 64 threads)', 130, 100, 8],
  ['N 2048, out 256, r 32 (the largest fused rank)', 2048, 256, 32],
  ['N 3, out 5, r 1', 3, 5, 1],
] as const) {
  test(`webgpu: when a LoRA up-projection y + s·low·Bᵀ runs as our programs at ${label}, then value and the gradients to y, low and B equal the tfjs ops to 1e-5 (relative to 1 + the largest |value|: dB sums N products), in 1 program forward + 2 backward`, async (t) => {
    const skip = await useWebGPU();
    if (skip !== null) return t.skip(skip);
    const scale = 16 / rank;
    const base = tf.randomNormal([rows, outCols], 0, 1, 'float32', 31);
    const low = tf.randomNormal([rows, rank], 0, 1, 'float32', 32);
    const up = tf.randomNormal([outCols, rank], 0, 0.3, 'float32', 33);
    const dy = tf.randomNormal([rows, outCols], 0, 1, 'float32', 34);
    type F = (b: tf.Tensor, l: tf.Tensor, u: tf.Tensor) => tf.Tensor;
    const fused: F = (b, l, u) => loraUpOnWebGPU(b as tf.Tensor2D, l as tf.Tensor2D, u as tf.Tensor2D, scale);
    const ops: F = (b, l, u) => tf.add(b, tf.mul(tf.matMul(l, u, false, true), scale));
    const run = (f: F) =>
      tf.tidy(() => {
        const { grads } = tf.valueAndGrads((b: tf.Tensor, l: tf.Tensor, u: tf.Tensor) => tf.sum(tf.mul(f(b, l, u), dy)))([base, low, up]);
        return [f(base, low, up), ...grads];
      });
    const mine = run(fused);
    const theirs = run(ops);
    for (const [i, what] of ['value', 'd y', 'd low', 'd B'].entries()) {
      assert.deepEqual(mine[i].shape, theirs[i].shape, what);
      const largest = (await tf.max(tf.abs(theirs[i])).data())[0];
      const d = (await maxDiff(mine[i], theirs[i])) / (1 + largest);
      assert.ok(d <= 1e-5, `${what}: max diff ${d} relative to 1 + ${largest}`);
      assert.ok(largest > 0.1, `${what} is not trivially zero`);
    }
    const forward = programsDuring(() => fused(base, low, up));
    const around = programsDuring(() => tf.grads((b: tf.Tensor) => tf.sum(tf.mul(b, dy)))([base]));
    const both = programsDuring(() => tf.grads((b: tf.Tensor, l: tf.Tensor, u: tf.Tensor) => tf.sum(tf.mul(fused(b, l, u), dy)))([base, low, up])) - around;
    const asOps = programsDuring(() => tf.grads((b: tf.Tensor, l: tf.Tensor, u: tf.Tensor) => tf.sum(tf.mul(ops(b, l, u), dy)))([base, low, up])) - around;
    t.diagnostic(`LoRA up forward + backward: ${both} programs fused (forward ${forward}), ${asOps} as tfjs ops`);
    assert.equal(forward, 1);
    assert.equal(both, 3);
    assert.ok(asOps > both, `ops ${asOps}`);
    tf.dispose([base, low, up, dy, ...mine, ...theirs]);
  });
}

test('webgpu: when a LoRA up-projection gets shapes that do not fit, then it throws a RangeError naming them', async (t) => {
  const skip = await useWebGPU();
  if (skip !== null) return t.skip(skip);
  const [b, l, u] = [tf.zeros([2, 3]), tf.zeros([2, 4]), tf.zeros([3, 2])];
  assert.throws(() => loraUpOnWebGPU(b as tf.Tensor2D, l as tf.Tensor2D, u as tf.Tensor2D, 1), /base 2,3, low 2,4, up 3,2 do not fit/);
  tf.dispose([b, l, u]);
});

for (const rank of [8, MAX_FUSED_RANK + 8]) {
  test(`webgpu: when a LoRA layer of rank ${rank} adds its branch to a frozen output (${rank > MAX_FUSED_RANK ? 'over the fused programs\' largest rank: as tfjs ops' : 'as our programs'}), then value and gradients to A and B equal y + apply(x) to 1e-5`, async (t) => {
    const skip = await useWebGPU();
    if (skip !== null) return t.skip(skip);
    const lora = new LoraLinear(`kernels-test-r${rank}`, 24, 40, rank, 2, 0, 5);
    lora.B.assign(tf.randomNormal([40, rank], 0, 0.5, 'float32', 41));
    const x = tf.randomNormal([70, 24], 0, 1, 'float32', 42) as tf.Tensor2D;
    const y = tf.randomNormal([70, 40], 0, 1, 'float32', 43) as tf.Tensor2D;
    const dy = tf.randomNormal([70, 40], 0, 1, 'float32', 44);
    const run = (f: () => tf.Tensor) =>
      tf.tidy(() => {
        const { grads } = tf.variableGrads(() => tf.sum(tf.mul(f(), dy)) as tf.Scalar, [lora.A, lora.B]);
        return [f(), grads[lora.A.name], grads[lora.B.name]];
      });
    const programs = programsDuring(() => lora.addTo(y, x, true));
    const mine = run(() => lora.addTo(y, x, true));
    const theirs = run(() => tf.add(y, lora.apply(x, true)));
    for (const [i, what] of ['value', 'd A', 'd B'].entries()) {
      const largest = (await tf.max(tf.abs(theirs[i])).data())[0];
      const d = (await maxDiff(mine[i], theirs[i])) / (1 + largest);
      assert.ok(d <= 1e-5, `${what}: max diff ${d}`);
      assert.ok(largest > 0.1, `${what} is not trivially zero`);
    }
    t.diagnostic(`forward: ${programs} programs`);
    assert.equal(programs, rank > MAX_FUSED_RANK ? 4 : 2); // down + up-and-sum, or down, up, scale, add
    tf.dispose([x, y, dy, lora.A, lora.B, ...mine, ...theirs]);
  });
}

/**
 * AdamW's 6 steps (warm-up, decay; weight decay on matrices only) over a matrix, a vector and a [2, 3, 5] tensor, the
 * vector halved from outside before step 4;
 * with `clip`, each step also measures the gradients' norm and clips them to clip.maxNorm (gradients whose scale
 * grows with the step, so the later steps clip and the first do not).
 */
async function adamwSixSteps(clip?: { maxNorm: number }): Promise<{ weights: Float32Array[]; programsPerStep: number[]; norms: number[] }> {
  const shapes = [[8, 5], [7], [2, 3, 5]];
  const vars = shapes.map((sh, i) => tf.variable(tf.randomNormal(sh, 0, 1, 'float32', i + 1), true, `adamw-webgpu-${i}`));
  const opt = new AdamW({ learningRate: 0.05, warmupSteps: 2, totalSteps: 6, weightDecay: 0.1 });
  const programsPerStep: number[] = [];
  const norms: number[] = [];
  const backend = tf.getBackend();
  for (let k = 0; k < 6; k++) {
    // weights set from outside between steps (as a new round's global adapter is): the next step must start from them
    if (k === 3) vars[1].assign(tf.tidy(() => tf.mul(vars[1], 0.5)));
    const grads = Object.fromEntries(vars.map((v, i) => [v.name, tf.randomNormal(v.shape, 0, 0.5 + k, 'float32', 100 * k + i + 1)])); // seed 0 would mean unseeded
    let normSq: tf.Scalar | null = null;
    const step = () => {
      normSq = opt.applyGradients(vars, grads, clip);
      if (normSq) tf.keep(normSq); // programsDuring runs a tidy
    };
    if (tf.getBackend() === 'webgpu') programsPerStep.push(programsDuring(step));
    else step();
    const measured = normSq as tf.Scalar | null;
    if (measured) norms.push(Math.sqrt((await measured.data())[0]));
    measured?.dispose();
    tf.dispose(Object.values(grads));
  }
  const weights = await Promise.all(vars.map(async (v) => (await v.data()) as Float32Array));
  opt.dispose();
  tf.dispose(vars);
  assert.equal(tf.getBackend(), backend);
  return { weights, programsPerStep, norms };
}

test('webgpu: when AdamW takes 6 steps as one program per step, then the weights equal the flat-moment ops on wasm (bit-identical to the per-variable loop, optimizer.test.ts) to 1e-6, with 1 + 3 slices + the concatenations per step', async (t) => {
  await initNodeBackend({ force: 'wasm', log: () => {} });
  const onWasm = await adamwSixSteps();
  const skip = await useWebGPU();
  if (skip !== null) return t.skip(skip);
  const onWebgpu = await adamwSixSteps();
  let worst = 0;
  onWasm.weights.forEach((w, i) => {
    for (let j = 0; j < w.length; j++) worst = Math.max(worst, Math.abs(onWebgpu.weights[i][j] - w[j]) / (1 + Math.abs(w[j])));
  });
  t.diagnostic(`max relative |webgpu − wasm| ${worst.toExponential(2)}; GPU programs per step ${onWebgpu.programsPerStep.join(', ')}`);
  assert.ok(worst <= 1e-6, `max relative diff ${worst}`);
  // the update (1), m and s (2 slices), one slice per variable (3), the gradient and weight concatenations (2 each at
  // most); the first step also builds the decay mask
  for (const n of onWebgpu.programsPerStep.slice(1)) assert.ok(n <= 10, `${n} programs in a step`);
});

for (const maxNorm of [12, 0]) {
  test(`webgpu: when AdamW ${maxNorm ? `clips the gradients to norm ${maxNorm}` : 'measures the gradients\' norm (clip 0)'} inside its program over 6 steps, then the norms and weights equal clipOnDevice + AdamW on wasm to 1e-6, adding 2 programs to a step where clipOnDevice adds ~4 per variable`, async (t) => {
    const clip = { maxNorm };
    await initNodeBackend({ force: 'wasm', log: () => {} }); // the reference runs on wasm: an earlier test may have left webgpu
  const onWasm = await adamwSixSteps(clip);
    const skip = await useWebGPU();
    if (skip !== null) return t.skip(skip);
    const onWebgpu = await adamwSixSteps(clip);
    const unclipped = await adamwSixSteps();
    let worst = 0;
    onWasm.weights.forEach((w, i) => {
      for (let j = 0; j < w.length; j++) worst = Math.max(worst, Math.abs(onWebgpu.weights[i][j] - w[j]) / (1 + Math.abs(w[j])));
    });
    const normDiff = Math.max(...onWasm.norms.map((n, i) => Math.abs(onWebgpu.norms[i] - n) / n));
    t.diagnostic(`norms ${onWasm.norms.map((n) => n.toFixed(2)).join(', ')}; max relative |webgpu − wasm|: weights ${worst.toExponential(2)}, norms ${normDiff.toExponential(2)}; GPU programs per step ${onWebgpu.programsPerStep.join(', ')} (without the norm ${unclipped.programsPerStep.join(', ')})`);
    assert.ok(worst <= 1e-6, `max relative weight diff ${worst}`);
    assert.ok(normDiff <= 1e-6, `max relative norm diff ${normDiff}`);
    if (maxNorm) {
      assert.ok(onWasm.norms[0] < maxNorm && onWasm.norms[5] > maxNorm, 'the steps cover both sides of the clip');
      const moved = onWebgpu.weights.some((w, i) => w.some((x, j) => Math.abs(x - unclipped.weights[i][j]) > 1e-3));
      assert.ok(moved, 'clipping changes the weights');
    } else assert.deepEqual(onWebgpu.weights, unclipped.weights, 'clip 0 leaves the gradients as they are');
    onWebgpu.programsPerStep.slice(1).forEach((n, i) => assert.equal(n, unclipped.programsPerStep[i + 1] + 2, `step ${i + 2}`));
  });
}

/** Attention as the model computes it, from [B·T, H] projections to the merged context, via ours or the tfjs ops. */
function attentionBoth(s: AttentionShape, seed: number) {
  const { batch: B, seqLen: T, heads: nh, headSize: hd } = s;
  const H = nh * hd;
  const [q, k, v] = [1, 2, 3].map((i) => tf.randomNormal([B * T, H], 0, 1, 'float32', seed + i) as tf.Tensor2D);
  const dy = tf.randomNormal([B * T, H], 0, 1, 'float32', seed + 4);
  // the last example padded after its first 2 tokens, as bert.ts's mask bias
  const mask = Float32Array.from({ length: B * T }, (_, n) => (Math.floor(n / T) === B - 1 && n % T >= 2 ? -3.4028234663852886e38 : 0));
  const bias = tf.tensor2d(mask, [B, T]);
  const ops = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => {
    const heads = (t: tf.Tensor) => tf.transpose(tf.reshape(t, [B, T, nh, hd]), [0, 2, 1, 3]);
    const scores = tf.add(tf.mul(tf.matMul(heads(a), heads(b), false, true), 1 / Math.sqrt(hd)), tf.reshape(bias, [B, 1, 1, T]));
    return tf.reshape(tf.transpose(tf.matMul(tf.softmax(scores), heads(c)), [0, 2, 1, 3]), [B * T, H]);
  };
  const ours = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => attentionOnWebGPU(a as tf.Tensor2D, b as tf.Tensor2D, c as tf.Tensor2D, bias, s);
  const run = (f: typeof ops) =>
    tf.tidy(() => {
      const { value, grads } = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(f(a, b, c), dy)))([q, k, v]);
      return [f(q, k, v), ...grads, value];
    });
  return { ours: () => run(ours), ops: () => run(ops), dispose: () => tf.dispose([q, k, v, dy, bias]) };
}

for (const s of [
  { batch: 2, seqLen: 9, heads: 2, headSize: 8 },
  { batch: 1, seqLen: 130, heads: 4, headSize: 16 }, // rows longer than the 64 threads, no multiple of them
] as AttentionShape[]) {
  test(`webgpu: when attention (B ${s.batch}, T ${s.seqLen}, ${s.heads} heads of ${s.headSize}, one example padded) runs as our programs, then the context and dQ, dK, dV equal the tfjs ops to 1e-5, in 2 programs forward + 4 backward`, async (t) => {
    const skip = await useWebGPU();
    if (skip !== null) return t.skip(skip);
    const both = attentionBoth(s, 20);
    const mine = both.ours();
    const theirs = both.ops();
    const names = ['context', 'dQ', 'dK', 'dV', 'loss'];
    for (const [i, name] of names.entries()) {
      const d = (await tf.max(tf.div(tf.abs(tf.sub(mine[i], theirs[i])), tf.add(1, tf.abs(theirs[i])))).data())[0];
      assert.ok(d <= 1e-5, `${name}: max relative diff ${d}`);
      assert.ok((await tf.max(tf.abs(theirs[i])).data())[0] > 1e-2, `${name} is not trivially zero`);
    }
    const ours = programsDuring(() => both.ours());
    const ops = programsDuring(() => both.ops());
    t.diagnostic(`GPU programs for the value, the gradients and the loss: ${ours} ours, ${ops} as tfjs ops`);
    // ours: probabilities + context for the value, again inside valueAndGrads, 4 for the gradients, plus the loss's
    // product and sum and their gradients
    assert.ok(ours <= 12 && 2 * ours < ops, `${ours} vs ${ops} programs`);
    tf.dispose([...mine, ...theirs]);
    both.dispose();
  });
}
