// Issue 20 (serving): texts per second of the site's Predictor (client-node/src/agent/inference.ts) on the shipped
// model with a LoRA adapter merged (r 8, query/value; untrained: the weights do not change the cost), by batch size
// (texts per forward pass, grouped by length as predict --file does), on varied texts of 10-59 words, then through
// `fedlora-site serve`'s HTTP endpoint (requests of 32 texts, 4 in flight). One JSON line per setting.
//
//   tsx scripts/serve-bench.ts [--backend NAME] [--texts 512] [--batches 1,8,32,64]

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { initNodeBackend, type BackendName } from '@fedlora/shared/node/backend.ts';
import { DEFAULT_MODEL_DIR } from '@fedlora/shared/node/default-model.ts';
import { loadLocalModel } from '@fedlora/shared/node/model/local-model.ts';
import { DEFAULT_RECIPE } from '@fedlora/shared/training/recipe.ts';
import { Predictor, readAdapterDir, writeNativeAdapterDir } from '../client-node/src/agent/inference.ts';
import { startServe } from '../client-node/src/commands/serve.ts';

const { values } = parseArgs({ options: { backend: { type: 'string' }, texts: { type: 'string' }, batches: { type: 'string' } } });
const backend = await initNodeBackend({ force: values.backend as BackendName | undefined, log: () => {} });
const n = Number(values.texts ?? 512);
const sizes = (values.batches ?? '1,8,32,64').split(',').map(Number);
const dir = mkdtempSync(join(tmpdir(), 'fedlora-serve-bench-'));
try {
  const labels = ['ham', 'spam'];
  const m = loadLocalModel({ modelDir: DEFAULT_MODEL_DIR, lora: DEFAULT_RECIPE.lora, labels, pooling: 'mean', seed: 0 });
  const state = m.classifier.getTrainableState();
  m.dispose();
  const adapter = join(dir, 'adapter');
  await writeNativeAdapterDir(adapter, { versionId: 'bench', round: 0, state, lora: DEFAULT_RECIPE.lora, labels, pooling: 'mean', maxSeqLength: 128, baseModel: 'fedlora-bert-mini' });
  const words = 'the meeting invoice free prize click now patient dose lunch server reboot tonight account claim today budget'.split(' ');
  const texts = Array.from({ length: n }, (_, i) => Array.from({ length: 10 + ((i * 7) % 50) }, (_, j) => words[(i * 31 + j * 17) % words.length]).join(' '));
  const p = Predictor.load(DEFAULT_MODEL_DIR, await readAdapterDir(adapter));
  await p.predict(texts.slice(0, 32)); // warm-up
  for (const bs of sizes) {
    const count = bs === 1 ? Math.min(n, 128) : n;
    const t0 = performance.now();
    // the file path (predict --file): grouped by token count; batch 1 is one text per pass
    await p.predictAll(texts.slice(0, count), bs);
    const s = (performance.now() - t0) / 1000;
    console.log(JSON.stringify({ path: 'predictor', backend: backend.name, batchSize: bs, texts: count, textsPerSecond: +(count / s).toFixed(1) }));
  }
  {
    // what the server computes for requests of 32 consecutive texts: one pass each, no grouping across requests
    const t0 = performance.now();
    for (let i = 0; i < n; i += 32) await p.predict(texts.slice(i, i + 32));
    const s = (performance.now() - t0) / 1000;
    console.log(JSON.stringify({ path: 'predictor, in order', backend: backend.name, batchSize: 32, texts: n, textsPerSecond: +(n / s).toFixed(1) }));
  }
  p.dispose();
  const serving = await startServe({
    port: 0, host: '127.0.0.1', adapter, pollSeconds: 0, stateDir: dir, batchSize: 32, maxTexts: 256, maxBodyBytes: 1 << 20,
    concurrency: 1, queueLimit: 64, json: false, quiet: true,
  });
  try {
    const post = (t: string[]) => fetch(`${serving.server.url}/predict`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ texts: t }) }).then((r) => r.json());
    await post(texts.slice(0, 32));
    const t0 = performance.now();
    for (let i = 0; i < n; i += 128) await Promise.all([0, 32, 64, 96].filter((o) => i + o < n).map((o) => post(texts.slice(i + o, i + o + 32))));
    const s = (performance.now() - t0) / 1000;
    console.log(JSON.stringify({ path: 'http', backend: backend.name, batchSize: 32, texts: n, textsPerSecond: +(n / s).toFixed(1) }));
  } finally {
    await serving.stop();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
