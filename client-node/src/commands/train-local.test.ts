// In-process tests of the site CLI's local commands through cli.ts main(): a small real train-local run on the
// embedded SpamAssassin data, bad inputs (exit code + one clear line, no stack), and inspect against the tokenizer and
// the PyTorch parity fixture (tests/fixtures/bert-reference).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTokenizer } from '@fedlora/shared/node/tokenizer/load.ts';
import { DEFAULT_MODEL_DIR } from '@fedlora/shared/node/default-model.ts';
import { importPeft } from '@fedlora/shared/lora/peft.ts';
import { main } from '../cli';

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
// read when Dawn first probes (the webgpu inspect case below); only when unset, so a real GPU's driver is kept
if (process.env.VK_ICD_FILENAMES === undefined && existsSync(SWIFTSHADER_ICD)) process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
delete process.env.FEDLORA_BACKEND;

const FIXTURE = fileURLToPath(new URL('../../../tests/fixtures/bert-reference/', import.meta.url));
const fixtures = JSON.parse(readFileSync(join(FIXTURE, 'fixtures.json'), 'utf8'));
const scratch = mkdtempSync(join(tmpdir(), 'fedlora-cli-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

interface CliRun {
  code: number;
  out: string[];
  err: string;
}

/** Runs `fedlora-site ...args` in this process, collecting what it prints. */
async function cli(...args: string[]): Promise<CliRun> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => void out.push(a.join(' '));
  console.error = (...a: unknown[]) => void err.push(a.join(' '));
  try {
    return { code: await main(args), out, err: err.join('\n') };
  } finally {
    console.log = log;
    console.error = error;
  }
}

function file(name: string, content: string): string {
  const path = join(scratch, name);
  writeFileSync(path, content);
  return path;
}

/** A failed command: the given exit code, nothing on stdout, one clear message and no stack trace. */
function assertFails(r: CliRun, code: number, message: RegExp): void {
  assert.equal(r.code, code, `exit code (stderr: ${r.err})`);
  assert.deepEqual(r.out, []);
  assert.match(r.err, message);
  assert.doesNotMatch(r.err, /\n\s+at /, 'a stack trace means an unexpected (non-Fedlora) error');
}

// ---- train-local: a real run --------------------------------------------------------------------------------

test('when train-local runs on a small slice of the default data, then held-out accuracy rises far above the untrained baseline', async (t) => {
  const save = join(scratch, 'adapter');
  const started = performance.now();
  // 192 examples, 19 of them held back for validation: 173 × 2 epochs / 8 = 44 steps; ~35 s of CPU
  const r = await cli('train-local', '--limit', '192', '--heldout-limit', '120', '--epochs', '2', '--batch-size', '8', '--max-length', '48', '--backend', 'wasm', '--save', save, '--json', '--quiet');
  const seconds = (performance.now() - started) / 1000;
  assert.equal(r.code, 0, r.err);
  const summary = JSON.parse(r.out.at(-1) as string) as Record<string, unknown>;
  t.diagnostic(`train-local took ${seconds.toFixed(1)} s: ${r.out.at(-1)}`);
  for (const key of ['backend', 'baselineAccuracy', 'accuracy', 'macroF1', 'samplesPerSecond', 'trainableParams', 'adapterBytes'])
    assert.ok(key in summary, `summary lacks ${key}`);
  const s = summary as { backend: string; baselineAccuracy: number; accuracy: number; macroF1: number; samplesPerSecond: number; trainableParams: number; adapterBytes: number; trainExamples: number; heldoutExamples: number; validationExamples: number; plannedSteps: number; steps: number; bestStep: number; validationMacroF1: number };
  assert.equal(s.backend, 'wasm');
  assert.equal(s.trainExamples, 173);
  assert.equal(s.validationExamples, 19, 'a stratified tenth of the training data picks the best point');
  assert.equal(s.plannedSteps, 44, 'explicit --epochs: exactly 2 epochs, no step-budget clamp');
  assert.ok(s.bestStep > 0 && s.bestStep <= s.steps && s.validationMacroF1 > 0.5, `best step ${s.bestStep}, F1 ${s.validationMacroF1}`);
  assert.equal(s.heldoutExamples, 120);
  // r=8 on query and value of 4 layers: 8 × (8·256 + 256·8) = 32768, plus the head 2·256 + 2
  assert.equal(s.trainableParams, 32768 + 514);
  // the F32 safetensors of those parameters: 4 bytes each, plus 8 length bytes and a JSON header of under 4 KiB
  assert.ok(s.adapterBytes > 33282 * 4 + 8 && s.adapterBytes < 33282 * 4 + 4096, `adapterBytes ${s.adapterBytes}`);
  assert.ok(s.samplesPerSecond > 0);
  // ~69% of the held-out messages are ham, so 0.78 is well above what a constant answer gets; macro-F1 of that is ~0.41
  // measured with version 2: baseline 0.692 → 0.883 (macro-F1 0.851), best validation point at step 35 of 44
  assert.ok(s.accuracy >= 0.85 && s.accuracy >= s.baselineAccuracy + 0.15, `accuracy ${s.baselineAccuracy} → ${s.accuracy}`);
  assert.ok(s.accuracy >= 0.78, `accuracy ${s.accuracy}`);
  assert.ok(s.macroF1 >= 0.7, `macro-F1 ${s.macroF1}`);
  assert.match(r.out.join('\n'), /held-out accuracy 0\.\d{4} → 0\.\d{4} \(macro-F1/);
  // --save wrote a PEFT adapter that imports back with the run's shapes and labels
  const peft = importPeft({
    adapterConfig: JSON.parse(readFileSync(join(save, 'adapter_config.json'), 'utf8')),
    weights: new Uint8Array(readFileSync(join(save, 'adapter_model.safetensors'))),
  });
  assert.deepEqual(peft.config, { r: 8, alpha: 16, dropout: 0, targetModules: ['query', 'value'], layers: null });
  assert.deepEqual(peft.labels, ['ham', 'spam']);
  assert.equal(Object.keys(peft.state).length, 8 * 2 + 2);
  assert.ok(seconds < 180, `train-local took ${seconds} s`);
  // the saved folder classifies offline with fedlora-site predict --adapter (no coordinator), pooling as trained
  assert.equal(JSON.parse(readFileSync(join(save, 'adapter_config.json'), 'utf8')).fedlora.pooling, 'mean');
  const p = await cli('predict', '--adapter', save, '--text', 'WIN a FREE cruise, click now to claim your prize', '--backend', 'wasm', '--json', '--quiet');
  assert.equal(p.code, 0, p.err);
  assert.deepEqual(Object.keys(JSON.parse(p.out[0] as string).probabilities), ['ham', 'spam']);
});

// ---- train-local: bad inputs -----------------------------------------------------------------------------------

test('when --data names a missing file, then train-local exits 1 naming it', async () => {
  const missing = join(scratch, 'nope.csv');
  assertFails(await cli('train-local', '--data', missing, '--backend', 'wasm', '--quiet'), 1, new RegExp(`FILE_NOT_FOUND: data file not found: ${missing}`));
});

test('when the CSV has neither a text nor a label column, then train-local exits 1 listing the columns it has', async () => {
  const csv = file('wrong-columns.csv', 'foo,bar\nhello there,1\ngood bye,0\n');
  assertFails(await cli('train-local', '--data', csv, '--backend', 'wasm', '--quiet'), 1, /DATA_INVALID: .*wrong-columns\.csv: no text column \(looked for .*\); columns are: "foo", "bar"/);
});

test('when the CSV is empty, then train-local exits 1 saying so', async () => {
  assertFails(await cli('train-local', '--data', file('empty.csv', ''), '--backend', 'wasm', '--quiet'), 1, /DATA_INVALID: .*empty\.csv is empty/);
  assertFails(await cli('train-local', '--data', file('header-only.csv', 'text,label\n'), '--backend', 'wasm', '--quiet'), 1, /header-only\.csv has a header but no data rows/);
});

test('when --heldout has labels the training data lacks, then train-local exits 1 naming them', async () => {
  const train = file('train.csv', 'text,label\ngood card,pos\nbad card,neg\ngreat refund,pos\nawful refund,neg\n');
  const heldout = file('heldout.csv', 'text,label\ngood,pos\nmeh,neutral\n');
  assertFails(
    await cli('train-local', '--data', train, '--heldout', heldout, '--model', FIXTURE, '--backend', 'wasm', '--quiet'),
    1,
    /DATA_INVALID: .*1 label\(s\) not in the model's label set: neutral \(known: neg, pos\)/,
  );
});

test('when --validation-data is given, then its rows pick the best point and none are carved from --data', async () => {
  const rows = ['good card,pos', 'bad card,neg', 'great refund,pos', 'awful refund,neg', 'nice app,pos', 'slow app,neg'];
  // 54 rows: enough that, without the flag, a tenth would be carved for validation
  const train = file('train-v.csv', 'text,label\n' + Array.from({ length: 9 }, () => rows.join('\n')).join('\n') + '\n');
  const validation = file('validation.csv', 'text,label\nfine card,pos\npoor refund,neg\nok app,pos\n');
  const base = ['--data', train, '--heldout', train, '--model', FIXTURE, '--backend', 'wasm', '--steps', '4', '--batch-size', '4', '--quiet', '--json'];
  const r = await cli('train-local', ...base, '--validation-data', validation);
  assert.equal(r.code, 0, r.err);
  const s = JSON.parse(r.out.at(-1) as string) as { trainExamples: number; validationExamples: number; steps: number; bestStep: number };
  assert.deepEqual([s.trainExamples, s.validationExamples, s.steps], [54, 3, 4]);
  assert.ok(s.bestStep >= 1 && s.bestStep <= 4, `best step ${s.bestStep}`);
  const unknown = file('validation-bad.csv', 'text,label\nfine card,pos\nso-so,neutral\n');
  assertFails(await cli('train-local', ...base, '--validation-data', unknown), 1, /DATA_INVALID: .*not in the model's label set: neutral/);
});

test('when the model dir lacks model.safetensors, then train-local exits 1 saying which file is missing', async () => {
  const dir = join(scratch, 'no-weights');
  mkdirSync(dir);
  for (const f of ['config.json', 'vocab.txt']) copyFileSync(join(FIXTURE, f), join(dir, f));
  const train = file('train2.csv', 'text,label\ngood card,pos\nbad card,neg\ngreat refund,pos\nawful refund,neg\n');
  assertFails(await cli('train-local', '--data', train, '--heldout', train, '--model', dir, '--backend', 'wasm', '--quiet'), 1, /MODEL_INVALID: .*no-weights has no model\.safetensors/);
});

test('when --max-length is more than the model has positions for, then train-local refuses it naming the limit', async () => {
  const train = file('train3.csv', 'text,label\ngood card,pos\nbad card,neg\ngreat refund,pos\nawful refund,neg\n');
  const r = await cli('train-local', '--data', train, '--heldout', train, '--model', FIXTURE, '--max-length', '100000', '--backend', 'wasm', '--quiet');
  assert.notEqual(r.code, 0);
  assert.match(r.err, /CONFIG_INVALID: --max-length 100000 is more than .* can take: \d+ tokens \(max_position_embeddings \d+/);
  assert.doesNotMatch(r.err, /\n\s+at /);
});

test('when a flag has a bad value or is unknown, then train-local exits 2 naming the flag', async () => {
  assertFails(await cli('train-local', '--epochs', 'abc'), 2, /CONFIG_INVALID: --epochs must be an integer ≥ 1, got "abc"/);
  assertFails(await cli('train-local', '--batch-size', '0'), 2, /--batch-size must be an integer ≥ 1, got "0"/);
  assertFails(await cli('train-local', '--bogus'), 2, /CONFIG_INVALID: Unknown option '--bogus'/);
  assertFails(await cli('train-local', '--pooling', 'max'), 2, /--pooling must be one of mean, cls, pooler/);
  assertFails(await cli('train-local', '--class-weights', 'inverse'), 2, /--class-weights must be one of none, auto/);
  assertFails(await cli('train-local', '--validation', '1'), 2, /--validation must be a share below 1/);
  assertFails(await cli('train-local', '--steps', '50', '--epochs', '2'), 2, /--steps sets the run length exactly/);
  assertFails(await cli('train-local', '--heldout', 'x.csv'), 2, /--heldout needs --data/);
  assertFails(await cli('no-such-command'), 2, /unknown command "no-such-command"/);
});

// ---- inspect ------------------------------------------------------------------------------------------------------

interface InspectJson {
  tokens: string[];
  inputIds: number[];
  tokenTypeIds: number[];
  cls: number[];
  meanPooled: number[];
}

async function inspect(...args: string[]): Promise<InspectJson> {
  const r = await cli('inspect', '--json', ...args);
  assert.equal(r.code, 0, r.err);
  return JSON.parse(r.out.at(-1) as string) as InspectJson;
}

function assertClose(actual: number[], expected: number[], atol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  actual.forEach((a, i) => assert.ok(Math.abs(a - expected[i]) <= atol, `${what}[${i}]: ${a} vs ${expected[i]}`));
}

test('when inspect runs on the shipped model, then tokens and ids are the tokenizer\'s and both vectors have 256 finite numbers', async () => {
  const text = 'Your account has been SUSPENDED — click here to verify!';
  const r = await inspect('--text', text);
  const enc = loadTokenizer(DEFAULT_MODEL_DIR).encode(text);
  assert.deepEqual(r.tokens, enc.tokens);
  assert.deepEqual(r.inputIds, enc.inputIds);
  assert.equal(r.inputIds[0], 2); // [CLS] in this vocab
  for (const v of [r.cls, r.meanPooled]) {
    assert.equal(v.length, 256);
    assert.ok(v.every(Number.isFinite));
  }
  assert.ok(r.cls.some((x, i) => x !== r.meanPooled[i]), 'the [CLS] vector is not the mean');
});

test('when inspect runs on the fixture model, then [CLS] and the mean match the PyTorch reference for the same ids', async () => {
  // fixtures.cases[0] row 0 is tokenizer case 0 ("I am still waiting on my card?": 11 tokens) plus one pad
  const text = fixtures.tokenizer_cases[0].text as string;
  const hidden = fixtures.cases[0].last_hidden_state[0] as number[][]; // [12][64]
  const r = await inspect('--model', FIXTURE, '--text', text);
  assert.deepEqual(r.inputIds, fixtures.tokenizer_cases[0].input_ids);
  assert.deepEqual(r.inputIds, (fixtures.cases[0].input_ids[0] as number[]).slice(0, 11));
  assertClose(r.cls, hidden[0], 1e-4, 'cls');
  const mean = hidden[0].map((_, h) => hidden.slice(0, 11).reduce((s, row) => s + row[h], 0) / 11);
  assertClose(r.meanPooled, mean, 1e-4, 'meanPooled');
});

test('when inspect gets a sentence pair, then token types and [CLS] match the reference pair case', async () => {
  // fixtures.cases[1]: [CLS] card arrived [SEP] refund please [SEP], token types 0 0 0 0 1 1 1
  const r = await inspect('--model', FIXTURE, '--text', 'Card arrived', '--pair', 'refund please');
  assert.deepEqual(r.tokens, ['[CLS]', 'card', 'arrived', '[SEP]', 'refund', 'please', '[SEP]']);
  assert.deepEqual(r.inputIds, (fixtures.cases[1].input_ids[0] as number[]).slice(0, 7));
  assert.deepEqual(r.tokenTypeIds, [0, 0, 0, 0, 1, 1, 1]);
  assertClose(r.cls, fixtures.cases[1].last_hidden_state[0][0], 1e-4, 'cls');
});

test('when inspect runs on webgpu, then it prints the same [CLS] vector as on cpu within 1e-4', async (t) => {
  if (!existsSync(process.env.VK_ICD_FILENAMES ?? SWIFTSHADER_ICD)) return t.skip(`${SWIFTSHADER_ICD} is absent (Debian package chromium)`);
  const text = fixtures.tokenizer_cases[0].text as string;
  const onCpu = await inspect('--model', FIXTURE, '--text', text);
  const r = await cli('inspect', '--json', '--model', FIXTURE, '--text', text, '--backend', 'webgpu');
  if (r.code !== 0 && /BACKEND_UNAVAILABLE/.test(r.err)) return t.skip(`no WebGPU adapter: ${r.err}`);
  assert.equal(r.code, 0, r.err);
  const onGpu = JSON.parse(r.out.at(-1) as string) as InspectJson;
  assertClose(onGpu.cls, onCpu.cls, 1e-4, 'webgpu cls');
  assertClose(onGpu.meanPooled, onCpu.meanPooled, 1e-4, 'webgpu meanPooled');
});

test('when inspect gets no --text, then it exits 2 saying --text is required', async () => {
  assertFails(await cli('inspect'), 2, /--text is required/);
});
