// Must-show 3 of issue 5: the browser site and the Node agent compute the same round delta from the same data, seed
// and adapter state, because both run the shared round core (shared/src/round/participant.ts → runLocalRound). The
// browser side is the built page (client-web/dist) in headless Chromium on WebGPU (SwiftShader), called through its
// test hook window.__fedlora.computeDelta; the Node side is loadLocalModel + runLocalRound on the agent's backend.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initNodeBackend } from '@fedlora/shared/node/backend.ts';
import { importPeft } from '@fedlora/shared/lora/peft.ts';
import { makeDataset, type LabeledExample } from '@fedlora/shared/data/dataset.ts';
import { loadLocalModel } from '@fedlora/shared/node/model/local-model.ts';
import { encodeDataset } from '@fedlora/shared/training/encode.ts';
import { runLocalRound, type LocalTrainConfig } from '@fedlora/shared/training/local-round.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import type { ComputeDeltaInput, ComputeDeltaOutput, PlainTensors } from '../client-web/src/test-hook';
import { browserUnavailable, ensureSiteBuild, openBrowser, serveStatic } from './browser';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const FIXTURE = join(ROOT, 'tests/fixtures/bert-reference');
// float32 on two backends (SwiftShader WebGPU vs the Node backend) after two AdamW steps (measured: 3e-7 apart).
// Adam's first steps move each weight by about lr·sign(g), so a different seed, batch or state moves whole
// tensors by ~lr (1e-2) and fails the tolerance.
const LR = 1e-2;
const ATOL = 5e-5;

const LABELS = ['a', 'b', 'c'];
const TEXTS = [
  'I am still waiting on my card?',
  'Cardiac patients: blood-pressure results (new study)!',
  'Résumé naïve café — unknownword xyzzy',
  'my card is still waiting',
  'new study results for patients',
  'blood pressure of cardiac patients',
];
const EXAMPLES: LabeledExample[] = TEXTS.map((text, i) => ({ text, label: LABELS[i % 3] }));
// clipNorm absent = the recipe's 1.0, as in a real round; these gradients' norms are ~3, so both steps clip
const CONFIG: LocalTrainConfig = {
  localEpochs: 1,
  batchSize: 3,
  learningRate: LR,
  proximalMu: 0,
  maxSteps: 2,
};
const MAX_LENGTH = 16;
const SEED = 7;

function initialState(): { lora: ReturnType<typeof importPeft>['config']; state: NamedTensors } {
  const peft = importPeft({
    adapterConfig: JSON.parse(readFileSync(join(FIXTURE, 'adapter_config.json'), 'utf8')),
    weights: new Uint8Array(readFileSync(join(FIXTURE, 'lora.safetensors'))),
  });
  // fixture adapter (non-zero B: every LoRA tensor gets a gradient) plus a fixed, hand-made head
  const state: NamedTensors = {
    ...peft.state,
    'classifier.weight': {
      shape: [3, 64],
      data: Float32Array.from({ length: 192 }, (_, i) => 0.1 * Math.sin(i)),
    },
    'classifier.bias': { shape: [3], data: new Float32Array([0.05, -0.02, 0.01]) },
  };
  return { lora: peft.config, state };
}

const plain = (t: NamedTensors): PlainTensors =>
  Object.fromEntries(Object.entries(t).map(([k, v]) => [k, { shape: v.shape, data: Array.from(v.data) }]));

async function nodeDelta(
  lora: ComputeDeltaInput['lora'],
  state: NamedTensors,
): Promise<{ delta: NamedTensors; loss: number; backend: string }> {
  const backend = await initNodeBackend({ log: () => {} });
  const model = loadLocalModel({ modelDir: FIXTURE, lora, labels: LABELS, pooling: 'mean', seed: 0 });
  try {
    const examples = encodeDataset(
      model.tokenizer,
      makeDataset('test', EXAMPLES, LABELS),
      LABELS,
      MAX_LENGTH,
    );
    const r = await runLocalRound(model.classifier, examples, model.tokenizer.special.pad, state, CONFIG, {
      seed: SEED,
    });
    return { delta: r.delta, loss: r.metrics.loss, backend: backend.name };
  } finally {
    model.dispose();
  }
}

// webgpu: the page's GPU path (tfjs ops) against Node's wasm path (fused kernels: model/wasm-*.ts); wasm: the page on
// tfjs-wasm in Chromium, where the fused SIMD GELU and row-gather kernels run inside a browser too
for (const pageBackend of ['webgpu', 'wasm'] as const)
  test(
    `when the browser page (${pageBackend}) and the Node agent train the same round, then their deltas agree within 5e-5`,
    { skip: browserUnavailable() ?? false },
    async (t) => {
      // Arrange
      const dist = ensureSiteBuild();
      const server = await serveStatic({ '/site/': dist, '/fixture/': FIXTURE });
      const browser = await openBrowser('web-node-delta');
      t.after(async () => {
        await browser.close();
        await server.close();
      });
      const { lora, state } = initialState();
      const input: ComputeDeltaInput = {
        modelUrl: `${server.url}/fixture/`,
        lora,
        labels: LABELS,
        pooling: 'mean',
        examples: EXAMPLES,
        maxLength: MAX_LENGTH,
        global: plain(state),
        config: CONFIG,
        seed: SEED,
      };

      // Act
      const { page } = browser;
      await page.goto(`${server.url}/site/${pageBackend === 'wasm' ? '?backend=wasm' : ''}`);
      const web = (await page.evaluate((i) => window.__fedlora.computeDelta(i), input)) as ComputeDeltaOutput;
      const node = await nodeDelta(lora, state);

      // Assert
      assert.deepEqual(
        browser.log.filter((l) => l.includes('[pageerror]')),
        [],
      );
      assert.equal(web.backend, pageBackend, `the page must train on ${pageBackend}`);
      assert.equal(
        await page
          .locator('#backend')
          .textContent()
          .then((s) => s?.split(' ')[0]),
        pageBackend,
      );
      assert.deepEqual(Object.keys(web.delta).sort(), Object.keys(node.delta).sort());
      let worst = 0;
      let norm = 0;
      for (const [k, n] of Object.entries(node.delta)) {
        const w = web.delta[k];
        assert.deepEqual(w.shape, n.shape, k);
        for (let i = 0; i < n.data.length; i++) {
          worst = Math.max(worst, Math.abs(w.data[i] - n.data[i]));
          norm = Math.max(norm, Math.abs(n.data[i]));
        }
      }
      t.diagnostic(
        `node backend ${node.backend}; max |delta| ${norm.toExponential(2)}; max |web − node| ${worst.toExponential(2)}; loss web ${web.loss.toFixed(6)} node ${node.loss.toFixed(6)}`,
      );
      assert.ok(norm > LR / 2, `the round must move the weights (max |delta| ${norm})`);
      assert.ok(worst <= ATOL, `max |web − node| = ${worst} > ${ATOL}`);
      assert.ok(Math.abs(web.loss - node.loss) <= 1e-4, `loss web ${web.loss} vs node ${node.loss}`);
    },
  );
