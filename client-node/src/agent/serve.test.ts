// Serving at the site (issue 20, must-show 4) on a tiny random BERT (2 layers, hidden 32, the shipped vocabulary)
// with adapters written here: `predict --adapter --file` (batched, offline) and the served POST /predict give the same
// labels for 1,000 texts in requests of 32; native and PEFT adapter directories predict alike; a version swap while
// requests are in flight fails none of them (each is answered wholly by the version it started on), swapped directly
// and through the poll of a fake coordinator whose current version changes; the bounds: 413 for an oversized body,
// 400 for malformed JSON or a wrong shape, 401 without the token, 503 when the queue is full.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Server } from 'socket.io';
import { initNodeBackend } from '@fedlora/shared/node/backend.ts';
import { DEFAULT_MODEL_DIR } from '@fedlora/shared/node/default-model.ts';
import { expectedBertShapes, parseBertConfig } from '@fedlora/shared/model/checkpoint.ts';
import { serializeSafetensors } from '@fedlora/shared/model/safetensors.ts';
import { exportPeft } from '@fedlora/shared/lora/peft.ts';
import type { LoraConfig } from '@fedlora/shared/lora/config.ts';
import type { NamedTensors } from '@fedlora/shared/tensor.ts';
import { ackError, ackOk, parseClientRequest } from '@fedlora/shared/protocol/events.ts';
import { encodeAdapter } from '@fedlora/shared/protocol/codec.ts';
import { sha256Hex } from '@fedlora/shared/crypto/hash.ts';
import { createChallenge } from '@fedlora/shared/crypto/envelope.ts';
import { generateSiteKeys } from '@fedlora/shared/crypto/keys.ts';
import { FedloraError } from '@fedlora/shared/errors.ts';
import { loadLocalModel } from '@fedlora/shared/node/model/local-model.ts';
import { main } from '../cli';
import { lengthBatches, Predictor, readAdapterDir, writeNativeAdapterDir, type LabelPrediction } from './inference';
import { createServeApp, listen, ServingModel, type ServablePredictor } from './serve';
import { startServe, type ServeCommandOptions } from '../commands/serve';
import { saveKeys, saveSiteConfig } from './state';
import { testCoordinatorKey } from './testing-coordinator-key';

const LABELS = ['billing', 'clinical', 'other'];
const LORA: LoraConfig = { r: 4, alpha: 8, dropout: 0, targetModules: ['query', 'value'], layers: null };
const dir = mkdtempSync(join(tmpdir(), 'fedlora-serve-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Deterministic uniform(-1, 1) numbers (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  };
}

/** A loadable random BERT directory: 2 layers, hidden 32, the shipped model's vocabulary and tokenizer settings. */
function writeTinyBert(parent: string): string {
  const out = join(parent, 'tiny-bert');
  mkdirSync(out, { recursive: true });
  const config = {
    model_type: 'bert', vocab_size: 16000, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64,
    hidden_act: 'gelu', max_position_embeddings: 128, type_vocab_size: 2, layer_norm_eps: 1e-12, pad_token_id: 0,
  };
  writeFileSync(join(out, 'config.json'), JSON.stringify(config));
  for (const f of ['vocab.txt', 'tokenizer_config.json']) copyFileSync(join(DEFAULT_MODEL_DIR, f), join(out, f));
  const rand = rng(1);
  const tensors: NamedTensors = {};
  for (const [name, shape] of Object.entries(expectedBertShapes(parseBertConfig(config), false))) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (name.endsWith('LayerNorm.weight')) data.fill(1);
    else if (!name.endsWith('bias') && !name.endsWith('LayerNorm.bias')) for (let i = 0; i < n; i++) data[i] = rand() * 0.1;
    tensors[name] = { shape, data };
  }
  writeFileSync(join(out, 'model.safetensors'), serializeSafetensors(tensors));
  return out;
}

/**
 * An adapter with non-zero lora_B and a strong head, so versions disagree; the head's bias is set so that each class's
 * mean logit over TEXTS is the same (a random BERT's pooled vectors share a large common part, which alone would give
 * every text one label).
 */
async function randomAdapterState(modelDir: string, seed: number): Promise<NamedTensors> {
  const state = rawAdapterState(modelDir, seed);
  const p = Predictor.load(modelDir, { versionId: 'centering', state, lora: LORA, labels: LABELS, pooling: 'mean', maxLength: 64, source: 'test' });
  try {
    const preds = await p.predict(TEXTS);
    // log p = logit − logsumexp(text): the per-class mean of log p is the mean logit up to one shared constant
    const bias = LABELS.map((l) => -preds.reduce((sum, x) => sum + Math.log(x.probabilities[l]), 0) / preds.length);
    return { ...state, 'classifier.bias': { shape: [LABELS.length], data: Float32Array.from(bias) } };
  } finally {
    p.dispose();
  }
}

function rawAdapterState(modelDir: string, seed: number): NamedTensors {
  const model = loadLocalModel({ modelDir, lora: LORA, labels: LABELS, pooling: 'mean', seed });
  try {
    const state = model.classifier.getTrainableState();
    const rand = rng(seed + 100);
    for (const [name, t] of Object.entries(state)) {
      // no head bias: the label then depends on the text, not on one dominant class
      const scale = name === 'classifier.bias' ? 0 : name === 'classifier.weight' ? 8 : 0.3;
      state[name] = { shape: t.shape, data: Float32Array.from(t.data, () => rand() * scale) };
    }
    return state;
  } finally {
    model.dispose();
  }
}

const WORDS = ('invoice payment refund charge patient dose symptom clinic meeting lunch printer network ' +
  'account balance overdue fever tablet scan weather holiday ticket password upgrade').split(' ');
/** 1,000 varied texts, 3-40 words each (so batches are padded), quoted for CSV. */
const TEXTS = Array.from({ length: 1000 }, (_, i) => {
  const rand = rng(1000 + i);
  const n = 3 + Math.floor(((rand() + 1) / 2) * 38);
  return Array.from({ length: n }, () => WORDS[Math.floor(((rand() + 1) / 2) * WORDS.length) % WORDS.length]).join(' ') + (i % 7 === 0 ? ', again.' : '');
});

let modelDir: string;
let v1Dir: string;
let v2Dir: string;
let peftDir: string;
const states: Record<string, NamedTensors> = {};

before(async () => {
  await initNodeBackend({ log: () => {} });
  modelDir = writeTinyBert(dir);
  const meta = { lora: LORA, labels: LABELS, pooling: 'mean' as const, maxSeqLength: 64, baseModel: 'tiny-bert' };
  const s1 = await randomAdapterState(modelDir, 1);
  states.v1 = s1;
  v1Dir = join(dir, 'v1');
  v2Dir = join(dir, 'v2');
  await writeNativeAdapterDir(v1Dir, { versionId: 'v1', round: 1, state: s1, ...meta });
  states.v2 = await randomAdapterState(modelDir, 2);
  await writeNativeAdapterDir(v2Dir, { versionId: 'v2', round: 2, state: states.v2, ...meta });
  peftDir = join(dir, 'peft');
  mkdirSync(peftDir);
  const peft = exportPeft(LORA, s1, { baseModel: 'tiny-bert', labels: LABELS, pooling: 'mean' });
  writeFileSync(join(peftDir, 'adapter_config.json'), JSON.stringify(peft.adapterConfig));
  writeFileSync(join(peftDir, 'adapter_model.safetensors'), peft.weights);
});

function serveOptions(over: Partial<ServeCommandOptions> = {}): ServeCommandOptions {
  return {
    port: 0, host: '127.0.0.1', adapter: v1Dir, pollSeconds: 0, stateDir: join(dir, 'no-state'), modelDir, batchSize: 32,
    maxTexts: 256, maxBodyBytes: 1024 * 1024, concurrency: 1, queueLimit: 64, json: false, quiet: true, ...over,
  };
}

/** A /predict answer or error, as the tests read it. */
interface Answer {
  versionId: string;
  predictions: LabelPrediction[];
  error: { code: string; message: string };
}

async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: Answer }> {
  const r = await fetch(`${url}/predict`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: r.status, json: (await r.json()) as Answer };
}

/** Runs `fedlora-site ...args` in this process; stdout lines and the exit code. */
async function cli(...args: string[]): Promise<{ code: number; out: string[] }> {
  const out: string[] = [];
  const { log } = console;
  console.log = (...a: unknown[]) => void out.push(a.join(' '));
  try {
    return { code: await main(args), out };
  } finally {
    console.log = log;
  }
}

function closeTo(a: Record<string, number>, b: Record<string, number>, tol = 1e-5): boolean {
  return Object.keys(a).every((k) => Math.abs(a[k] - b[k]) <= tol);
}

test('1,000 texts served in requests of 32 get the labels of `predict --adapter --file` (batched, offline), which match one-at-a-time', async () => {
  const csv = join(dir, 'texts.csv');
  writeFileSync(csv, 'id,text\n' + TEXTS.map((t, i) => `${i},"${t.replaceAll('"', '""')}"`).join('\n') + '\n');
  const outFile = join(dir, 'predictions.jsonl');
  const r = await cli('predict', '--adapter', v1Dir, '--model', modelDir, '--file', csv, '--out', outFile, '--quiet');
  assert.equal(r.code, 0);
  const offline = readFileSync(outFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as LabelPrediction & { index: number });
  assert.equal(offline.length, 1000);
  assert.deepEqual(offline.map((p) => p.index), TEXTS.map((_, i) => i));
  const labelsSeen = new Set(offline.map((p) => p.label));
  assert.ok(labelsSeen.size >= 2, `a test where every label is the same proves little (${[...labelsSeen]})`);

  // a few texts one per forward pass (no padding) agree with the batched file run
  const single = await Predictor.load(modelDir, await readAdapterDir(v1Dir));
  try {
    for (let i = 0; i < 40; i++) {
      const [p] = await single.predict([TEXTS[i]]);
      assert.equal(p.label, offline[i].label, `text ${i}`);
      assert.ok(closeTo(p.probabilities, offline[i].probabilities, 1e-4), `text ${i} probabilities`);
    }
  } finally {
    single.dispose();
  }

  const serving = await startServe(serveOptions());
  try {
    const served: LabelPrediction[] = [];
    // four requests in flight at a time
    for (let i = 0; i < TEXTS.length; i += 128) {
      const rs = await Promise.all([0, 32, 64, 96].filter((o) => i + o < TEXTS.length).map((o) => post(serving.server.url, { texts: TEXTS.slice(i + o, i + o + 32) })));
      for (const x of rs) {
        assert.equal(x.status, 200, JSON.stringify(x.json));
        assert.equal(x.json.versionId, 'v1');
        served.push(...x.json.predictions);
      }
    }
    assert.equal(served.length, 1000);
    const mismatches = served.filter((p, i) => p.label !== offline[i].label).length;
    assert.equal(mismatches, 0);
    assert.ok(served.every((p, i) => closeTo(p.probabilities, offline[i].probabilities)), 'probabilities as offline');
    const version = await (await fetch(`${serving.server.url}/version`)).json();
    assert.equal(version.versionId, 'v1');
    assert.deepEqual(version.labels, LABELS);
    const health = await fetch(`${serving.server.url}/healthz`);
    assert.equal(health.status, 200);
  } finally {
    await serving.stop();
  }
});

test('a PEFT adapter directory (as train-local --save writes) predicts as the native one with the same weights', async () => {
  const native = Predictor.load(modelDir, await readAdapterDir(v1Dir));
  const peft = Predictor.load(modelDir, await readAdapterDir(peftDir));
  try {
    const texts = TEXTS.slice(0, 64);
    const [a, b] = [await native.predict(texts), await peft.predict(texts)];
    assert.deepEqual(b.map((p) => p.label), a.map((p) => p.label));
    assert.ok(b.every((p, i) => closeTo(p.probabilities, a[i].probabilities, 1e-6)));
    assert.match(peft.versionId, /^peft-[0-9a-f]{12}$/);
  } finally {
    native.dispose();
    peft.dispose();
  }
  // the text path of the command, offline
  const r = await cli('predict', '--adapter', peftDir, '--model', modelDir, '--text', TEXTS[3], '--json', '--quiet');
  assert.equal(r.code, 0);
  assert.deepEqual(Object.keys(JSON.parse(r.out[0]).probabilities), LABELS);
});

test('a version swap while requests are in flight fails none: each request is answered wholly by the version it started on', async () => {
  const expected: Record<string, LabelPrediction[]> = {};
  for (const [id, d] of [['v1', v1Dir], ['v2', v2Dir]]) {
    const p = Predictor.load(modelDir, await readAdapterDir(d));
    expected[id] = await p.predict(TEXTS.slice(0, 32));
    p.dispose();
  }
  assert.notDeepEqual(expected.v1.map((p) => p.label), expected.v2.map((p) => p.label), 'the two versions must be told apart');

  const serving = await startServe(serveOptions({ batchSize: 8, queueLimit: 1000 }));
  try {
    const send = () => post(serving.server.url, { texts: TEXTS.slice(0, 32) });
    const first = Array.from({ length: 12 }, send);
    // swap as soon as the first answer is back: the rest of the first wave is queued or computing on v1
    await Promise.race(first);
    serving.model.swap(Predictor.load(modelDir, await readAdapterDir(v2Dir)), 'test');
    const second = Array.from({ length: 12 }, send);
    const all = await Promise.all([...first, ...second]);
    for (const r of all) {
      assert.equal(r.status, 200, JSON.stringify(r.json));
      const want = expected[r.json.versionId];
      assert.ok(want, `unknown version ${r.json.versionId}`);
      assert.deepEqual(r.json.predictions.map((p: LabelPrediction) => p.label), want.map((p) => p.label));
    }
    const versions = all.map((r) => r.json.versionId);
    assert.ok(versions.includes('v1') && versions.includes('v2'), `both versions answered (${versions.join(',')})`);
    assert.ok(versions.slice(12).every((v) => v === 'v2'), 'requests after the swap are answered by v2');
    assert.equal((await (await fetch(`${serving.server.url}/version`)).json()).versionId, 'v2');
  } finally {
    await serving.stop();
  }
});

/** A predictor that answers after `ms` (for queue and swap bookkeeping without a model). */
function fakePredictor(versionId: string, ms = 0): ServablePredictor & { disposed: boolean } {
  const p = {
    versionId,
    labels: ['a', 'b'],
    disposed: false,
    async predict(texts: string[]) {
      if (p.disposed) throw new Error('predict after dispose');
      await new Promise((r) => setTimeout(r, ms));
      return texts.map(() => ({ label: 'a', probabilities: { a: 0.75, b: 0.25 } }));
    },
    dispose() {
      p.disposed = true;
    },
  };
  return p;
}

test('the old predictor is disposed when its last request is done, not before', async () => {
  const old = fakePredictor('v1');
  const model = new ServingModel(old);
  const lease = model.lease();
  model.swap(fakePredictor('v2'));
  assert.equal(old.disposed, false);
  assert.equal(model.current.versionId, 'v2');
  lease.release();
  lease.release(); // twice is once
  assert.equal(old.disposed, true);
  const idle = fakePredictor('v3');
  const current = model.current.versionId;
  model.swap(idle);
  assert.equal(current, 'v2');
});

test('bounds: 413 oversized body, 400 malformed JSON or wrong shape or too many texts, 401 without the token, 503 when the queue is full', async () => {
  const model = new ServingModel(fakePredictor('v1', 150));
  const { app } = createServeApp(model, {
    batchSize: 4, maxTexts: 16, maxBodyBytes: 16 * 1024, maxTextChars: 1000, concurrency: 1, queueLimit: 2, token: 'sekret-token', log: () => {},
  });
  const server = await listen(app, 0, '127.0.0.1');
  const auth = { authorization: 'Bearer sekret-token' };
  try {
    const big = await post(server.url, { texts: ['x'.repeat(20 * 1024)] }, auth);
    assert.equal(big.status, 413);
    assert.equal(big.json.error.code, 'BODY_TOO_LARGE');
    const malformed = await post(server.url, '{"texts": ["a",', auth);
    assert.equal(malformed.status, 400);
    assert.equal(malformed.json.error.code, 'BAD_JSON');
    for (const body of [[], { texts: 'one text' }, { texts: [] }, { texts: ['ok', 3] }, { texts: ['ok', '  '] }, { text: ['a'] }, 'null'])
      assert.equal((await post(server.url, body, auth)).status, 400, JSON.stringify(body));
    const tooMany = await post(server.url, { texts: Array(17).fill('a') }, auth);
    assert.equal(tooMany.status, 400);
    assert.equal(tooMany.json.error.code, 'TOO_MANY_TEXTS');
    assert.equal((await post(server.url, { texts: ['a'] })).status, 401);
    assert.equal((await post(server.url, { texts: ['a'] }, { authorization: 'Bearer wrong' })).status, 401);
    assert.equal((await fetch(`${server.url}/version`)).status, 401);
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200, '/healthz needs no token');
    const ok = await post(server.url, { texts: ['a', 'b'] }, auth);
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.json, { versionId: 'v1', predictions: [{ label: 'a', probabilities: { a: 0.75, b: 0.25 } }, { label: 'a', probabilities: { a: 0.75, b: 0.25 } }] });
    // 1 computing + 2 waiting: a request of 3 batches fills the queue; the next is refused at once, then served later
    const filling = post(server.url, { texts: Array(12).fill('a') }, auth);
    await new Promise((r) => setTimeout(r, 50));
    const refused = await post(server.url, { texts: ['a'] }, auth);
    assert.equal(refused.status, 503);
    assert.equal(refused.json.error.code, 'BUSY');
    assert.equal((await filling).status, 200);
    assert.equal((await post(server.url, { texts: ['a'] }, auth)).status, 200);
  } finally {
    await server.close();
    model.dispose();
  }
});

/**
 * A coordinator that answers what serve asks (auth, manifest with the current version, 'adapter:fetch'), with the
 * tiny model's files in its manifest; `current` is what a promotion changes. It signs as a coordinator does
 * (testing-coordinator-key.ts); the site's signatures are not checked here.
 */
async function fakeCoordinator(current: { versionId: string }) {
  const files = readdirSync(modelDir).map((path) => {
    const b = readFileSync(join(modelDir, path));
    return { path, bytes: b.length, sha256: createHash('sha256').update(b).digest('hex') };
  });
  const adapters: Record<string, { bytes: Uint8Array; sha: string }> = {};
  for (const [id, state] of Object.entries(states)) {
    const bytes = encodeAdapter({ versionId: id, round: Number(id.slice(1)), adapter: state });
    adapters[id] = { bytes, sha: await sha256Hex(bytes) };
  }
  const fetches: string[] = [];
  const coordKey = await testCoordinatorKey('coord-test');
  const http = createServer();
  const io = new Server(http, { maxHttpBufferSize: 16 * 1024 * 1024 });
  io.on('connection', (socket) => {
    const handle = (event: string, fn: (raw: unknown) => unknown) =>
      socket.on(event, async (raw: unknown, ack: (r: unknown) => void) => {
        try {
          ack(ackOk(await fn(raw)));
        } catch (err) {
          ack(ackError(err));
        }
      });
    handle('coordinator:hello', (raw) => coordKey.hello(raw));
    handle('auth:challenge', () => ({ challenge: createChallenge(), coordinatorId: 'coord-test' }));
    handle('auth:prove', (raw) => {
      parseClientRequest('auth:prove', raw);
      const manifest = { v: 1, baseModel: { id: 'tiny-bert', files }, lora: LORA, labels: LABELS, pooling: 'mean', maxSeqLength: 64, versionId: current.versionId };
      return { manifest, manifestSignature: coordKey.sign('manifest', manifest) };
    });
    handle('adapter:fetch', (raw) => {
      const r = parseClientRequest('adapter:fetch', raw);
      const id = r.versionId === 'latest' ? current.versionId : r.versionId;
      const a = adapters[id];
      if (!a) throw new FedloraError('NOT_FOUND', `no version ${id}`);
      fetches.push(id);
      return { versionId: id, adapter: a.bytes, adapterSha256: a.sha, versionSignature: coordKey.versionSignature(id, a.sha) };
    });
    // the chunked fetch (connection/adapter-download.ts), parsed by hand so this fake serves either protocol
    handle('adapter:chunk', (raw) => {
      const r = raw as { versionId: string; offset: number; length: number };
      const id = r.versionId === 'latest' ? current.versionId : r.versionId;
      const a = adapters[id];
      if (!a) throw new FedloraError('NOT_FOUND', `no version ${id}`);
      if (r.offset === 0) fetches.push(id);
      const data = a.bytes.subarray(r.offset, r.offset + r.length);
      return { versionId: id, offset: r.offset, totalBytes: a.bytes.length, data, sha256: createHash('sha256').update(data).digest('hex'), adapterSha256: a.sha, versionSignature: coordKey.versionSignature(id, a.sha) };
    });
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const port = (http.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, fetches, fingerprint: coordKey.fingerprint, close: () => new Promise<void>((r) => io.close(() => r())) };
}

test('serve follows the coordinator: a promotion while requests are in flight is picked up by the poll and swapped in with no failed request', async () => {
  const current = { versionId: 'v1' };
  const coordinator = await fakeCoordinator(current);
  const stateDir = join(dir, 'site-state');
  saveKeys(stateDir, generateSiteKeys());
  writeFileSync(join(dir, 'site.csv'), 'text,label\nhello,other\n');
  saveSiteConfig(stateDir, { v: 1, coordinator: coordinator.url, siteId: 'site-a', data: join(dir, 'site.csv'), enrolledAt: new Date().toISOString(), coordinatorFingerprint: coordinator.fingerprint });
  const serving = await startServe(serveOptions({ adapter: undefined, stateDir, batchSize: 8, queueLimit: 1000 }));
  try {
    assert.equal(serving.model.current.versionId, 'v1');
    assert.equal(await serving.checkForNewVersion(), false, 'no new version: nothing fetched');
    assert.deepEqual(coordinator.fetches, ['v1']);
    const expectedLabels = async (d: string) => {
      const p = Predictor.load(modelDir, await readAdapterDir(d));
      const labels = (await p.predict(TEXTS.slice(100, 132))).map((x) => x.label);
      p.dispose();
      return labels;
    };
    const [v1Labels, v2Labels] = [await expectedLabels(v1Dir), await expectedLabels(v2Dir)];
    const send = () => post(serving.server.url, { texts: TEXTS.slice(100, 132) });
    const wave = Array.from({ length: 10 }, send);
    // promote once the server is computing the wave (GET /version reports its queue)
    for (let i = 0; i < 200; i++) {
      const q = ((await (await fetch(`${serving.server.url}/version`)).json()) as { queue: { running: number; waiting: number } }).queue;
      if (q.running + q.waiting > 0) break;
      await new Promise((r) => setTimeout(r, 2));
    }
    current.versionId = 'v2'; // promoted in the console
    const swapped = serving.checkForNewVersion();
    const during = Array.from({ length: 10 }, send);
    assert.equal(await swapped, true);
    const after = Array.from({ length: 5 }, send);
    const all = await Promise.all([...wave, ...during, ...after]);
    assert.ok(all.every((r) => r.status === 200), all.map((r) => r.status).join(','));
    assert.ok(all.slice(20).every((r) => r.json.versionId === 'v2'), 'after the swap, v2 answers');
    assert.ok(all.slice(0, 10).some((r) => r.json.versionId === 'v1'), 'requests in flight at the promotion finish on v1');
    for (const r of all) assert.deepEqual(r.json.predictions.map((p) => p.label), r.json.versionId === 'v1' ? v1Labels : v2Labels);
    assert.deepEqual(coordinator.fetches, ['v1', 'v2']);
    assert.equal(serving.model.swaps, 1);
    // predict fetches the current version and --save-adapter keeps it for offline use; offline it answers the same
    const saved = join(dir, 'saved-v2');
    const online = await cli('predict', '--state-dir', stateDir, '--model', modelDir, '--text', TEXTS[7], '--save-adapter', saved, '--json', '--quiet');
    assert.equal(online.code, 0);
    assert.equal(JSON.parse(online.out[0]).versionId, 'v2');
    const offline = await cli('predict', '--adapter', saved, '--model', modelDir, '--text', TEXTS[7], '--json', '--quiet');
    assert.deepEqual(JSON.parse(offline.out[0]), JSON.parse(online.out[0]));
    // the coordinator goes away: the check fails quietly and v2 keeps serving
    await coordinator.close();
    assert.equal(await serving.checkForNewVersion(), false);
    assert.equal((await send()).json.versionId, 'v2');
  } finally {
    await serving.stop();
    await coordinator.close().catch(() => {});
  }
});

test('stopping answers the requests in flight first; SIGTERM stops the real command with exit status 0', async () => {
  const serving = await startServe(serveOptions({ batchSize: 4 }));
  const inFlight = post(serving.server.url, { texts: TEXTS.slice(0, 64) });
  for (let i = 0; i < 200; i++) {
    const q = ((await (await fetch(`${serving.server.url}/version`)).json()) as { queue: { running: number; waiting: number } }).queue;
    if (q.running + q.waiting > 0) break;
    await new Promise((r) => setTimeout(r, 2));
  }
  await serving.stop();
  const r = await inFlight;
  assert.equal(r.status, 200);
  assert.equal(r.json.predictions.length, 64);
  await assert.rejects(fetch(`${serving.server.url}/healthz`), 'no new connections after stop');

  const bin = fileURLToPath(new URL('../../bin/fedlora-site.js', import.meta.url));
  const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('FEDLORA_'))), FEDLORA_SERVE_TOKEN: 'sekret-token' };
  const child = spawn(process.execPath, [bin, 'serve', '--adapter', v1Dir, '--model', modelDir, '--port', '0', '--json', '--backend', 'cpu'], { env });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
      const m = /"event":"serve.listening"[^\n]*"url":"([^"]+)"/.exec(stdout);
      if (m) resolve(m[1]);
    });
    child.on('close', () => reject(new Error(`serve exited early: ${stderr}`)));
  });
  const ok = await post(url, { texts: ['Lunch on Thursday?'] }, { authorization: 'Bearer sekret-token' });
  assert.equal(ok.status, 200);
  child.kill('SIGTERM');
  assert.equal(await exited, 0, stderr);
  assert.match(stdout, /"event":"serve.stopped"/);
  assert.doesNotMatch(stdout + stderr, /sekret-token/, 'the token is never logged');
});

test('batches group texts of like length: longest first, at most batchSize, cut where a text is under 0.6 of its batch longest', () => {
  assert.deepEqual(lengthBatches([10, 50, 48, 12, 30, 49, 11], 2), [[1, 5], [2, 4], [3, 6], [0]]);
  assert.deepEqual(lengthBatches([10, 50, 48, 12, 30, 49, 11], 32), [[1, 5, 2, 4], [3, 6, 0]]);
  assert.deepEqual(lengthBatches([], 32), []);
  const lengths = Array.from({ length: 100 }, (_, i) => 1 + ((i * 37) % 60));
  const batches = lengthBatches(lengths, 8);
  assert.deepEqual(batches.flat().sort((a, b) => a - b), lengths.map((_, i) => i), 'every index once');
  assert.ok(batches.every((b) => b.length <= 8 && b.every((i) => lengths[i] >= 0.6 * lengths[b[0]])));
});

test('predict refuses bad command lines (exit 2) and a file without a text column (exit 1, naming the columns)', async () => {
  const quietErr = async (...args: string[]) => {
    const { error } = console;
    const err: string[] = [];
    console.error = (...a: unknown[]) => void err.push(a.join(' '));
    try {
      const r = await cli(...args);
      return { ...r, err: err.join('\n') };
    } finally {
      console.error = error;
    }
  };
  for (const args of [['--text', 'a', '--file', 'x.csv'], [], ['--adapter', v1Dir, '--version', 'v1', '--text', 'a'], ['--text', 'a', '--out', 'o.jsonl'], ['--file', 'x.csv', '--batch-size', '0']]) {
    const r = await quietErr('predict', ...args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.err}`);
  }
  const csv = join(dir, 'no-text.csv');
  writeFileSync(csv, 'id,body\n1,hello\n');
  const r = await quietErr('predict', '--adapter', v1Dir, '--model', modelDir, '--file', csv, '--quiet');
  assert.equal(r.code, 1);
  assert.match(r.err, /no text column .*"id", "body".*--text-column/);
  const ok = await quietErr('predict', '--adapter', v1Dir, '--model', modelDir, '--file', csv, '--text-column', 'body', '--quiet');
  assert.equal(ok.code, 0, ok.err);
  assert.deepEqual(Object.keys(JSON.parse(ok.out[0])), ['index', 'label', 'probabilities']);
});
