// Issue 24 must-show 2: `fedlora-site merge` of a random non-zero LoRA (every linear layer) plus an MLM head transform
// into the tiny reference BERT (tests/fixtures/bert-reference, given a random MLM head) gives a base whose classifier
// and MLM logits equal those of base + adapter with LoRA active to 1e-4; the merged directory loads in `inspect` and,
// when Debian's python3-torch is installed, in the PyTorch reference (scripts/bert_reference.py); a PEFT adapter
// merges to the same bytes as the native one; an adapter made for another base, one that does not fit, and a
// non-empty --out are refused with a clear message and leave --out as it was.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { initNodeBackend } from '@fedlora/shared/node/backend.ts';
import { loadBertCheckpoint } from '@fedlora/shared/node/model/load.ts';
import { saveBertCheckpoint } from '@fedlora/shared/node/model/save.ts';
import { modelDirSha256 } from '@fedlora/shared/node/model/model-hash.ts';
import { LINEAGE_FILE, type Lineage } from '@fedlora/shared/node/model/merge-base.ts';
import { loadTokenizer } from '@fedlora/shared/node/tokenizer/load.ts';
import { BertModel, type BertBatch } from '@fedlora/shared/model/bert.ts';
import { MlmHead, MLM_HEAD_NAMES } from '@fedlora/shared/model/mlm.ts';
import { assembleLocalModel } from '@fedlora/shared/model/local-model.ts';
import type { BertCheckpoint } from '@fedlora/shared/model/checkpoint.ts';
import { LoraAdapter } from '@fedlora/shared/lora/adapter.ts';
import { LORA_TARGETS, type LoraConfig } from '@fedlora/shared/lora/config.ts';
import { exportPeft } from '@fedlora/shared/lora/peft.ts';
import { encodeAdapter } from '@fedlora/shared/protocol/codec.ts';
import { sha256Hex } from '@fedlora/shared/crypto/hash.ts';
import { padBatch } from '@fedlora/shared/tokenizer/tokenizer.ts';
import { seededRandom } from '@fedlora/shared/random.ts';
import type { HostTensor, NamedTensors } from '@fedlora/shared/tensor.ts';
import { main } from '../cli';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const FIXTURE = join(ROOT, 'tests/fixtures/bert-reference');
const scratch = mkdtempSync(join(tmpdir(), 'fedlora-merge-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const TOLERANCE = 1e-4;
const TEXTS = ['the quick brown fox jumps over the lazy dog', 'hello world, this is a merged model'];
/** LoRA on every linear layer of both encoder layers, as the MLM rounds train by default */
const LORA: LoraConfig = { r: 4, alpha: 8, dropout: 0, targetModules: [...LORA_TARGETS], layers: null };

const rand = seededRandom(24);
const uniform = (shape: number[], scale: number): HostTensor => ({
  shape,
  data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (rand() * 2 - 1) * scale),
});

let baseDir: string;
let baseSha: string;
let loraState: NamedTensors;
let headTransform: NamedTensors;
let nativeDir: string;

interface CliRun {
  code: number;
  out: string[];
  err: string;
}

/** Runs `fedlora-site ...args` in this process, collecting what it prints (progress goes to process.stderr). */
async function cli(...args: string[]): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  const write = process.stderr.write.bind(process.stderr);
  console.log = (...a: unknown[]) => void out.push(a.join(' '));
  console.error = (...a: unknown[]) => void err.push(a.join(' '));
  process.stderr.write = ((chunk: string) => (err.push(String(chunk).trimEnd()), true)) as typeof process.stderr.write;
  try {
    return { code: await main(args), out, err: err.join('\n') };
  } finally {
    console.log = log;
    console.error = error;
    process.stderr.write = write;
  }
}

function writeNativeAdapter(dir: string, state: NamedTensors, meta: Record<string, unknown>): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const bytes = encodeAdapter({ versionId: 'mlm-v3', round: 3, adapter: state });
  writeFileSync(join(dir, 'adapter.fedlora'), bytes);
  return sha256Hex(bytes).then((sha256) =>
    writeFileSync(
      join(dir, 'fedlora-adapter.json'),
      JSON.stringify({ format: 'fedlora-adapter', v: 1, versionId: 'mlm-v3', round: 3, sha256, lora: LORA, labels: [], pooling: 'mean', maxSeqLength: 128, baseModel: 'bert-reference', ...meta }),
    ),
  );
}

function writePeftAdapter(dir: string, state: NamedTensors, baseModelSha256?: string): void {
  mkdirSync(dir, { recursive: true });
  const files = exportPeft(LORA, state, { baseModel: 'bert-reference', baseModelSha256 });
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(files.adapterConfig));
  writeFileSync(join(dir, 'adapter_model.safetensors'), files.weights);
}

function batchOf(dir: string, texts: string[]): BertBatch {
  const tok = loadTokenizer(dir);
  return padBatch(texts.map((t) => tok.encode(t)), tok.special.pad);
}

const maxAbsDiff = (a: Float32Array | number[], b: Float32Array | number[]) => {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

/** Classifier logits [B, 3] on `ckpt` with the given LoRA state active and a fixed head; tf variables released after. */
async function classifierLogits(ckpt: BertCheckpoint, lora: NamedTensors | 'none', b: BertBatch, head: NamedTensors): Promise<Float32Array> {
  const tok = loadTokenizer(FIXTURE);
  const m = assembleLocalModel(ckpt, tok, { lora: LORA, labels: ['a', 'b', 'c'], pooling: 'mean', seed: 1 });
  try {
    // 'none': the fresh adapter, whose B is zero, so the model is the checkpoint itself
    m.classifier.setTrainableState({ ...(lora === 'none' ? m.classifier.adapter.getState() : lora), ...head });
    const logits = tf.tidy(() => m.classifier.logits(b, false));
    const data = (await logits.data()) as Float32Array;
    logits.dispose();
    return data;
  } finally {
    m.dispose();
  }
}

/** MLM logits [B·T, V] and last-layer [CLS] rows of `ckpt`, with `lora` active (or none) and head tensors overriding ckpt's. */
async function mlmForward(ckpt: BertCheckpoint, lora: NamedTensors | null, b: BertBatch, headOverride: NamedTensors = {}) {
  const bert = new BertModel(ckpt);
  const adapter = lora ? new LoraAdapter(LORA, bert.config) : null;
  const head = new MlmHead(bert, { ...(ckpt.mlmHead as NamedTensors), ...headOverride });
  try {
    if (adapter && lora) adapter.setState(lora);
    const hidden = tf.tidy(() => bert.encode(bert.embed(b), bert.maskBias(b), { hook: adapter?.hook(false) }));
    const logits = tf.tidy(() => head.logits(tf.reshape(hidden, [b.batch * b.seqLen, -1]) as tf.Tensor2D));
    const out = { logits: (await logits.data()) as Float32Array, hidden: (await hidden.data()) as Float32Array };
    tf.dispose([hidden, logits]);
    return out;
  } finally {
    head.dispose();
    adapter?.dispose();
    bert.dispose();
  }
}

before(async () => {
  await initNodeBackend({ force: 'cpu', log: () => {} });
  // the base: the reference BERT with a random MLM head (the fixture is a BertModel export, without one)
  const ckpt = loadBertCheckpoint(FIXTURE);
  const H = ckpt.config.hiddenSize;
  const V = ckpt.config.vocabSize;
  const mlmHead: NamedTensors = {
    [MLM_HEAD_NAMES.denseW]: uniform([H, H], 0.1),
    [MLM_HEAD_NAMES.denseB]: uniform([H], 0.1),
    [MLM_HEAD_NAMES.lnW]: { shape: [H], data: new Float32Array(H).fill(1) },
    [MLM_HEAD_NAMES.lnB]: uniform([H], 0.1),
    [MLM_HEAD_NAMES.bias]: uniform([V], 0.1),
  };
  baseDir = join(scratch, 'base');
  saveBertCheckpoint(baseDir, { sourceDir: FIXTURE, weights: ckpt.weights, mlmHead });
  baseSha = await modelDirSha256(baseDir);
  // a random non-zero adapter (B is not zero, unlike a fresh one) and a trained-looking head transform
  loraState = {};
  const shapes = new LoraAdapter(LORA, ckpt.config).stateShapes();
  for (const [name, shape] of Object.entries(shapes)) loraState[name] = uniform(shape, 0.1);
  tf.disposeVariables();
  headTransform = {
    [MLM_HEAD_NAMES.denseW]: uniform([H, H], 0.1),
    [MLM_HEAD_NAMES.denseB]: uniform([H], 0.1),
    [MLM_HEAD_NAMES.lnW]: uniform([H], 1),
    [MLM_HEAD_NAMES.lnB]: uniform([H], 0.1),
  };
  nativeDir = join(scratch, 'adapter-native');
  await writeNativeAdapter(nativeDir, { ...loraState, ...headTransform }, { baseModelSha256: baseSha });
});

test('when a native MLM adapter is merged, then classifier and MLM logits equal base + adapter to 1e-4, and the lineage names both parents', async () => {
  const out = join(scratch, 'merged');
  const r = await cli('merge', '--base', baseDir, '--adapter', nativeDir, '--out', out, '--json');
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /merged 12 linear weights \(W \+ 2·B·A\); the adapter's MLM head replaced 4 cls\.predictions tensors/);
  const lineage = JSON.parse(r.out.at(-1) as string) as Lineage;
  assert.deepEqual(JSON.parse(readFileSync(join(out, LINEAGE_FILE), 'utf8')), lineage);
  assert.equal(lineage.parentBaseSha256, baseSha);
  assert.equal(lineage.sha256, await modelDirSha256(out));
  assert.notEqual(lineage.sha256, baseSha);
  assert.equal(lineage.adapter.versionId, 'mlm-v3');
  assert.equal(lineage.adapter.sha256, await sha256Hex(new Uint8Array(readFileSync(join(nativeDir, 'adapter.fedlora')))));
  assert.deepEqual(lineage.adapter.headTensors, Object.keys(headTransform).sort());
  assert.match(lineage.tool, /^fedlora-site \d+\.\d+\.\d+$/);
  assert.ok(Number.isFinite(Date.parse(lineage.createdAt)));
  assert.match(r.out[0], new RegExp(`base-model sha256 ${lineage.sha256} \\(parent ${baseSha}\\)`));
  for (const f of ['config.json', 'vocab.txt', 'model.safetensors', LINEAGE_FILE]) assert.ok(existsSync(join(out, f)), f);

  const base = loadBertCheckpoint(baseDir);
  const merged = loadBertCheckpoint(out);
  const b = batchOf(baseDir, TEXTS);
  // classification: same head on both; the adapter active on the base, nothing on the merged base
  const head = { 'classifier.weight': uniform([3, base.config.hiddenSize], 0.5), 'classifier.bias': uniform([3], 0.5) };
  const withAdapter = await classifierLogits(base, loraState, b, head);
  const plainBase = await classifierLogits(base, 'none', b, head);
  const mergedLogits = await classifierLogits(merged, 'none', b, head);
  const clsDiff = maxAbsDiff(withAdapter, mergedLogits);
  assert.ok(maxAbsDiff(withAdapter, plainBase) > 1e-2, 'the adapter must change the logits, or the comparison proves nothing');
  assert.ok(clsDiff <= TOLERANCE, `classifier logits differ by ${clsDiff}`);
  // masked LM: the base's head with the adapter's transform, vs the merged checkpoint's own head
  const ref = await mlmForward(base, loraState, b, headTransform);
  const before = await mlmForward(base, null, b);
  const after = await mlmForward(merged, null, b);
  const mlmDiff = maxAbsDiff(ref.logits, after.logits);
  assert.ok(maxAbsDiff(ref.logits, before.logits) > 1e-2, 'adapter and head must change the MLM logits');
  assert.ok(mlmDiff <= TOLERANCE, `MLM logits differ by ${mlmDiff}`);
  console.log(`merge parity: classifier logits max |diff| ${clsDiff.toExponential(2)}, MLM logits ${mlmDiff.toExponential(2)} (tolerance ${TOLERANCE})`);
});

test('when the merged directory is inspected, then inspect loads it and its [CLS] vector is base + adapter\'s; so is the PyTorch reference\'s', async (t) => {
  const out = join(scratch, 'merged');
  const text = TEXTS[0];
  const ref = await mlmForward(loadBertCheckpoint(baseDir), loraState, batchOf(baseDir, [text]));
  const H = 64;
  const expected = ref.hidden.slice(0, H); // row 0, token 0: [CLS]
  const r = await cli('inspect', '--model', out, '--text', text, '--json');
  assert.equal(r.code, 0, r.err);
  const inspected = JSON.parse(r.out.at(-1) as string) as { cls: number[]; inputIds: number[] };
  assert.ok(maxAbsDiff(inspected.cls, expected) <= TOLERANCE, `inspect [CLS] differs by ${maxAbsDiff(inspected.cls, expected)}`);

  const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) {
    t.skip(`PyTorch reference skipped: ${python} cannot import torch (apt-get install python3-torch)`);
    return;
  }
  const py = spawnSync(python, [join(ROOT, 'scripts/bert_reference.py'), '--model', out, '--text', text], { encoding: 'utf8' });
  assert.equal(py.status, 0, py.stderr);
  const torchRef = JSON.parse(py.stdout) as { inputIds: number[]; cls: number[] };
  assert.deepEqual(torchRef.inputIds, inspected.inputIds);
  const diff = maxAbsDiff(torchRef.cls, expected);
  assert.ok(diff <= TOLERANCE, `PyTorch [CLS] of the merged model differs from base + adapter by ${diff}`);
  console.log(`merge parity: PyTorch reference [CLS] max |diff| ${diff.toExponential(2)}`);
});

test('when the same adapter comes as a PEFT directory, then the merged model.safetensors is byte-identical to the native merge', async () => {
  const peftDir = join(scratch, 'adapter-peft');
  writePeftAdapter(peftDir, { ...loraState, ...headTransform }, baseSha);
  const out = join(scratch, 'merged-peft');
  const r = await cli('merge', '--base', baseDir, '--adapter', peftDir, '--out', out, '--quiet');
  assert.equal(r.code, 0, r.err);
  assert.equal(r.err, '', '--quiet prints no progress');
  assert.deepEqual(readFileSync(join(out, 'model.safetensors')), readFileSync(join(scratch, 'merged', 'model.safetensors')));
  const lineage = JSON.parse(readFileSync(join(out, LINEAGE_FILE), 'utf8')) as Lineage;
  assert.equal(lineage.adapter.format, 'peft');
  assert.equal(lineage.adapter.versionId, null);
  assert.equal(lineage.adapter.sha256, await sha256Hex(new Uint8Array(readFileSync(join(peftDir, 'adapter_model.safetensors')))));
  assert.equal(lineage.sha256, (JSON.parse(readFileSync(join(scratch, 'merged', LINEAGE_FILE), 'utf8')) as Lineage).sha256);
});

test('when the adapter was made for another base, does not fit, or --out is not empty, then merge refuses with one clear line and writes nothing', async () => {
  const refuse = async (args: string[], code: number, message: RegExp) => {
    const out = args[args.indexOf('--out') + 1];
    const before = existsSync(out) ? readdirSync(out).sort() : null;
    const r = await cli('merge', ...args);
    assert.equal(r.code, code, r.err);
    assert.deepEqual(r.out, []);
    assert.match(r.err, message);
    assert.doesNotMatch(r.err, /\n\s+at /, 'no stack trace');
    assert.deepEqual(existsSync(out) ? readdirSync(out).sort() : null, before, '--out untouched');
  };
  const otherBase = join(scratch, 'adapter-other-base');
  await writeNativeAdapter(otherBase, loraState, { baseModelSha256: 'a'.repeat(64) });
  await refuse(['--base', baseDir, '--adapter', otherBase, '--out', join(scratch, 'no-1')], 1, /HASH_MISMATCH: the adapter was trained on base model aaaaaaaaaaaaaaaa…, but .* is [0-9a-f]{16}…/);
  // the reference fixture's own PEFT adapter (r 4 on query/value of hidden 64) onto the shipped model (hidden 256)
  const fixturePeft = join(scratch, 'adapter-fixture');
  mkdirSync(fixturePeft);
  copyFileSync(join(FIXTURE, 'adapter_config.json'), join(fixturePeft, 'adapter_config.json'));
  copyFileSync(join(FIXTURE, 'lora.safetensors'), join(fixturePeft, 'adapter_model.safetensors'));
  await refuse(['--base', join(ROOT, 'models/fedlora-bert-mini'), '--adapter', fixturePeft, '--out', join(scratch, 'no-2')], 1, /SHAPE_MISMATCH: adapter tensor encoder\.layer\.0\.attention\.self\.query\.lora_A has shape \[4,64\], but .* needs \[4,256\]/);
  const full = join(scratch, 'full');
  mkdirSync(full);
  writeFileSync(join(full, 'keep.txt'), 'mine');
  await refuse(['--base', baseDir, '--adapter', nativeDir, '--out', full], 2, /is not empty; choose another directory or pass --force/);
  await refuse(['--base', baseDir, '--adapter', join(scratch, 'missing'), '--out', join(scratch, 'no-3')], 1, /FILE_NOT_FOUND: adapter directory not found/);
  const r = await cli('merge', '--base', baseDir, '--out', join(scratch, 'no-4'));
  assert.equal(r.code, 2);
  assert.match(r.err, /--adapter DIR is required/);
});

test('when a PEFT adapter records no base hash, then merge warns and checks shapes only', async () => {
  const dir = join(scratch, 'adapter-unpinned');
  writePeftAdapter(dir, loraState);
  const r = await cli('merge', '--base', baseDir, '--adapter', dir, '--out', join(scratch, 'merged-unpinned'));
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /warning: the adapter does not record its base model's hash/);
});
