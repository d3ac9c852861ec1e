// Tests for the Node backend selection: forced wasm, absent tfjs-node, FEDLORA_BACKEND, and WebGPU (SwiftShader) parity.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { backendFromEnv, currentBackend, initNodeBackend, type BackendInfo } from './backend';
import { isFedloraError } from '../errors';

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const NODE_TS = new URL('./backend.ts', import.meta.url).href;
const ATOL = 1e-4;

// The Vulkan loader reads this when Dawn first creates its instance (the first webgpu probe), so set it up front; only
// when unset, so a machine configured for a real GPU keeps it. Children inherit it. The env must not force a backend.
if (process.env.VK_ICD_FILENAMES === undefined && existsSync(SWIFTSHADER_ICD))
  process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
delete process.env.FEDLORA_BACKEND;

function tfjsNodeInstalled(): boolean {
  const require = createRequire(import.meta.url);
  return ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu'].some((pkg) => {
    try {
      require.resolve(pkg);
      return true;
    } catch {
      return false;
    }
  });
}

/** Runs `body` (ESM JS, with `initNodeBackend` and `tf` in scope) in a fresh Node process; it prints one JSON line. */
function runChild(
  body: string,
  env: Record<string, string> = {},
): { status: number | null; signal: string | null; out: string; err: string } {
  const script =
    `const { initNodeBackend } = await import(${JSON.stringify(NODE_TS)});\n` +
    `const tf = await import('@tensorflow/tfjs');\n${body}`;
  // The timeout only bounds a hang: a child that finishes its work but never exits is exactly what this catches.
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
}

test('when nothing is forced and tfjs-node is absent, then selection never picks a software GPU and logs why', (t) => {
  if (tfjsNodeInstalled()) return t.skip('tfjs-node is installed here, so it would win');
  const child = runChild(
    `const lines = []; const info = await initNodeBackend({ log: (l) => lines.push(l) });\n` +
      `console.log(JSON.stringify({ info, lines, active: tf.getBackend() }));`,
  );
  assert.equal(child.status, 0, child.err);
  const { info, lines, active } = JSON.parse(child.out.trim().split('\n').at(-1)!) as {
    info: BackendInfo;
    lines: string[];
    active: string;
  };
  assert.equal(active, info.name);
  assert.equal(lines.length, 1);
  assert.match(lines[0], /^fedlora backend: /);
  assert.match(lines[0], /skipped tensorflow: .*not installed/);
  if (info.name === 'webgpu') {
    assert.equal(info.hardware, true, 'webgpu may only be chosen automatically on a hardware adapter');
  } else {
    assert.equal(info.name, 'wasm');
    if (process.env.VK_ICD_FILENAMES === SWIFTSHADER_ICD && /webgpu: adapter/.test(lines[0])) {
      assert.match(lines[0], /webgpu: adapter 'SwiftShader[^']*' is a software GPU/);
    }
  }
});

test('when wasm is forced, then it initializes, tf.getBackend() is wasm and a matMul is exact', async () => {
  const lines: string[] = [];
  const info = await initNodeBackend({ force: 'wasm', log: (l) => lines.push(l) });
  assert.deepEqual(info, { name: 'wasm', detail: info.detail, hardware: false });
  assert.equal(tf.getBackend(), 'wasm');
  assert.deepEqual(currentBackend(), info);
  assert.deepEqual(lines, [`fedlora backend: wasm [${info.detail}] (forced by opts.force)`]);
  // [[1,2],[3,4]]·[[5,6],[7,8]] = [[1*5+2*7, 1*6+2*8], [3*5+4*7, 3*6+4*8]]
  const product = tf.matMul(
    tf.tensor2d([
      [1, 2],
      [3, 4],
    ]),
    tf.tensor2d([
      [5, 6],
      [7, 8],
    ]),
  );
  assert.deepEqual(Array.from(await product.data()), [19, 22, 43, 50]);
  product.dispose();
});

test('when init runs again with the same or no force, then it returns the active backend without re-logging', async () => {
  const first = await initNodeBackend({ force: 'wasm', log: () => undefined });
  const lines: string[] = [];
  const [a, b] = await Promise.all([
    initNodeBackend({ log: (l) => lines.push(l) }),
    initNodeBackend({ force: 'wasm', log: (l) => lines.push(l) }),
  ]);
  assert.equal(a, first);
  assert.equal(b, first);
  assert.deepEqual(lines, []);
});

test('when tensorflow is forced but tfjs-node is not installed, then BACKEND_UNAVAILABLE names both packages', async (t) => {
  if (tfjsNodeInstalled()) return t.skip('tfjs-node is installed here');
  await initNodeBackend({ force: 'wasm', log: () => undefined });
  await assert.rejects(initNodeBackend({ force: 'tensorflow', log: () => undefined }), (err: unknown) => {
    assert.ok(isFedloraError(err, 'BACKEND_UNAVAILABLE'), String(err));
    assert.match(err.message, /^backend 'tensorflow' was forced \(opts\.force\) but is unavailable: /);
    assert.match(err.message, /@tensorflow\/tfjs-node-gpu and @tensorflow\/tfjs-node are not installed/);
    return true;
  });
  assert.equal(tf.getBackend(), 'wasm', 'a failed forced init leaves the previous backend active');
});

test('when FEDLORA_BACKEND is set, then it forces that backend, and an unknown value is CONFIG_INVALID', async () => {
  assert.equal(backendFromEnv({}), undefined);
  assert.equal(backendFromEnv({ FEDLORA_BACKEND: 'auto' }), undefined);
  assert.equal(backendFromEnv({ FEDLORA_BACKEND: ' WASM ' }), 'wasm');
  assert.throws(
    () => backendFromEnv({ FEDLORA_BACKEND: 'gpu' }),
    (err: unknown) => {
      assert.ok(isFedloraError(err, 'CONFIG_INVALID'));
      assert.match(
        err.message,
        /FEDLORA_BACKEND='gpu' is not a backend; use one of auto, tensorflow, webgpu, wasm, cpu/,
      );
      return true;
    },
  );

  process.env.FEDLORA_BACKEND = 'cpu';
  try {
    const lines: string[] = [];
    const info = await initNodeBackend({ log: (l) => lines.push(l) });
    assert.equal(info.name, 'cpu');
    assert.equal(tf.getBackend(), 'cpu');
    assert.match(lines[0], /\(forced by FEDLORA_BACKEND\)$/);
    // opts.force wins over the env var.
    assert.equal((await initNodeBackend({ force: 'wasm', log: () => undefined })).name, 'wasm');
  } finally {
    delete process.env.FEDLORA_BACKEND;
  }
});

test('when tf.setBackend switches away behind its back, then currentBackend() is null', async () => {
  await initNodeBackend({ force: 'wasm', log: () => undefined });
  assert.ok(await tf.setBackend('cpu'));
  assert.equal(currentBackend(), null);
});

// ---- WebGPU on whatever adapter Dawn finds (SwiftShader in CI). Tiny shapes: SwiftShader runs ~0.5 GFLOP/s. ------

let webgpuSkip: string | null | undefined;

/** Forces webgpu; returns a skip reason when this machine has no adapter (no ICD file, no libvulkan1, ...). */
async function useWebgpu(): Promise<string | null> {
  if (webgpuSkip === undefined) {
    if (process.env.VK_ICD_FILENAMES === SWIFTSHADER_ICD && !existsSync(SWIFTSHADER_ICD)) {
      webgpuSkip = `${SWIFTSHADER_ICD} is absent (Debian package chromium)`;
    }
  }
  if (typeof webgpuSkip === 'string') return webgpuSkip;
  try {
    await initNodeBackend({ force: 'webgpu', log: () => undefined });
    webgpuSkip = null;
  } catch (err) {
    if (!isFedloraError(err, 'BACKEND_UNAVAILABLE')) throw err;
    webgpuSkip = `no WebGPU adapter: ${err.message}`;
  }
  return webgpuSkip;
}

async function useWasm(): Promise<void> {
  await initNodeBackend({ force: 'wasm', log: () => undefined });
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    assert.ok(
      Math.abs(actual[i] - expected[i]) <= ATOL,
      `${what}[${i}]: ${actual[i]} vs ${expected[i]} (atol ${ATOL})`,
    );
  }
}

test('when webgpu is forced, then a tiny matMul matches wasm and the hand-computed product', async (t) => {
  const a = { shape: [2, 3] as [number, number], data: [0.5, -1, 2, 1.5, 0.25, -0.75] };
  const b = { shape: [3, 2] as [number, number], data: [1, 2, -0.5, 0.5, 0.25, -1] };
  // Row i of a · columns of b, by hand: [0.5+0.5+0.5, 1-0.5-2] and [1.5-0.125-0.1875, 3+0.125+0.75]
  const expected = [1.5, -1.5, 1.1875, 3.875];
  // Each backend gets its own tensors from host data: tfjs tensors belong to the backend that made them.
  const run = async (): Promise<Float32Array> => {
    const out = tf.matMul(tf.tensor2d(a.data, a.shape), tf.tensor2d(b.data, b.shape));
    const data = (await out.data()) as Float32Array; // async read: dataSync needs OffscreenCanvas on webgpu
    tf.dispose(out);
    return data;
  };
  await useWasm();
  const onWasm = await run();
  const skip = await useWebgpu();
  if (skip !== null) return t.skip(skip);
  assert.equal(tf.getBackend(), 'webgpu');
  const onWebgpu = await run();
  assertClose(onWasm, expected, 'wasm');
  assertClose(onWebgpu, onWasm, 'webgpu vs wasm');
});

test('when webgpu is forced, then LoRA-style variableGrads of sum(tanh(x·(W + B·A))) match wasm and the analytic gradient', async (t) => {
  // x [2,3], W [3,2] frozen, B [3,1], A [1,2]: rank-1 LoRA update W + B·A.
  const x = [0.2, -0.4, 0.6, 0.1, 0.3, -0.5];
  const w = [0.1, -0.2, 0.3, 0.4, -0.5, 0.6];
  const bInit = [0.05, -0.1, 0.15];
  const aInit = [0.7, -0.3];
  const run = async (): Promise<{ A: Float32Array; B: Float32Array }> => {
    const A = tf.variable(tf.tensor2d(aInit, [1, 2]));
    const B = tf.variable(tf.tensor2d(bInit, [3, 1]));
    const X = tf.tensor2d(x, [2, 3]);
    const W = tf.tensor2d(w, [3, 2]);
    const { grads, value } = tf.variableGrads(
      () => tf.sum(tf.tanh(tf.matMul(X, tf.add(W, tf.matMul(B, A))))),
      [A, B],
    );
    const out = {
      A: (await grads[A.name].data()) as Float32Array,
      B: (await grads[B.name].data()) as Float32Array,
    };
    tf.dispose([A, B, X, W, value, ...Object.values(grads)]);
    return out;
  };
  const reference = loraGradReference(x, w, bInit, aInit);
  await useWasm();
  const onWasm = await run();
  assertClose(onWasm.A, reference.A, 'wasm dA');
  assertClose(onWasm.B, reference.B, 'wasm dB');
  const skip = await useWebgpu();
  if (skip !== null) return t.skip(skip);
  const onWebgpu = await run();
  assertClose(onWebgpu.A, onWasm.A, 'webgpu vs wasm dA');
  assertClose(onWebgpu.B, onWasm.B, 'webgpu vs wasm dB');
});

test('when a script has used the webgpu backend, then its process exits by itself (Dawn keeps nothing alive)', (t) => {
  if (!existsSync(process.env.VK_ICD_FILENAMES ?? SWIFTSHADER_ICD))
    return t.skip(`${SWIFTSHADER_ICD} is absent`);
  const child = runChild(
    `const info = await initNodeBackend({ force: 'webgpu', log: () => {} }).catch((e) => ({ skip: e.message }));\n` +
      `if (!info.skip) { const v = tf.variable(tf.ones([2, 2])); const g = tf.variableGrads(() => tf.sum(tf.square(v)), [v]);\n` +
      `  await g.grads[v.name].data(); }\n` +
      `console.log(JSON.stringify(info));`,
  );
  assert.equal(child.signal, null, `child was killed (${child.signal}): it did not exit by itself`);
  assert.equal(child.status, 0, child.err);
  const info = JSON.parse(child.out.trim().split('\n').at(-1)!) as BackendInfo | { skip: string };
  if ('skip' in info) return t.skip(`no WebGPU adapter: ${info.skip}`);
  assert.equal(info.name, 'webgpu');
});

/** Plain-JS float64 gradient of sum(tanh(x·(W + B·A))): G = xᵀ·(1 − tanh²(x·M)), dB = G·Aᵀ, dA = Bᵀ·G. */
function loraGradReference(x: number[], w: number[], b: number[], a: number[]): { A: number[]; B: number[] } {
  const m = w.map((wij, k) => wij + b[Math.floor(k / 2)] * a[k % 2]); // M = W + B·A, [3,2]
  const dz: number[] = []; // 1 − tanh²(x·M), [2,2]
  for (let i = 0; i < 2; i++) {
    for (let j = 0; j < 2; j++) {
      let z = 0;
      for (let k = 0; k < 3; k++) z += x[i * 3 + k] * m[k * 2 + j];
      dz.push(1 - Math.tanh(z) ** 2);
    }
  }
  const g: number[] = []; // xᵀ·dz, [3,2]
  for (let k = 0; k < 3; k++) for (let j = 0; j < 2; j++) g.push(x[k] * dz[j] + x[3 + k] * dz[2 + j]);
  return {
    A: [0, 1].map((j) => b.reduce((s, bk, k) => s + bk * g[k * 2 + j], 0)), // Bᵀ·G, [1,2]
    B: [0, 1, 2].map((k) => g[k * 2] * a[0] + g[k * 2 + 1] * a[1]), // G·Aᵀ, [3,1]
  };
}
