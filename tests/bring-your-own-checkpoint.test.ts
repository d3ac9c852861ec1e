// The checkpoints users bring (issue 22 part 3), through `fedlora-site` as a user starts it (real processes): inspect
// and train-local on the small random DistilBERT and RoBERTa fixtures and on a directory holding only tokenizer.json
// + config.json + sharded safetensors; inspect's ids and [CLS] vector equal the PyTorch reference's; train-local saves
// an adapter in the family's own PEFT names; an unknown model_type is refused naming the supported ones.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseSafetensors } from '@fedlora/shared/model/safetensors.ts';
import { SAFETENSORS_INDEX, shardSafetensors } from '@fedlora/shared/model/safetensors-index.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const FIXTURES = join(ROOT, 'tests/fixtures');
const scratch = mkdtempSync(join(tmpdir(), 'fedlora-byoc-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** `npx fedlora-site ...args`: exit status, stdout lines, stderr. */
function site(...args: string[]): { status: number | null; out: string[]; err: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'client-node/bin/fedlora-site.js'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, FEDLORA_BACKEND: '' },
  });
  return { status: r.status, out: r.stdout.split('\n').filter(Boolean), err: r.stderr };
}

// 40 short labelled texts, with accents and punctuation: enough for one epoch of a few steps
const CSV = join(scratch, 'reviews.csv');
writeFileSync(
  CSV,
  'text,label\n' +
    Array.from({ length: 40 }, (_, i) =>
      i % 2 === 0 ? `"great card service, refund arrived — café ${i}",pos` : `"card declined again; still waiting (${i})",neg`,
    ).join('\n') +
    '\n',
);

/** The RoBERTa fixture as a user might download it: tokenizer.json, config.json, and the weights in 3 shards. */
function shardedRoberta(): string {
  const src = join(FIXTURES, 'roberta-reference');
  const dir = join(scratch, 'roberta-sharded');
  mkdirSync(dir);
  for (const f of ['tokenizer.json', 'config.json']) copyFileSync(join(src, f), join(dir, f));
  const { indexJson, shards } = shardSafetensors(parseSafetensors(new Uint8Array(readFileSync(join(src, 'model.safetensors')))).tensors, 3);
  writeFileSync(join(dir, SAFETENSORS_INDEX), indexJson);
  for (const [name, bytes] of Object.entries(shards)) writeFileSync(join(dir, name), bytes);
  return dir;
}

const MODELS = [
  { name: 'the DistilBERT fixture', family: 'distilbert', dir: join(FIXTURES, 'distilbert-reference'), loraName: 'base_model.model.distilbert.transformer.layer.0.attention.q_lin.lora_A.weight' },
  { name: 'the RoBERTa fixture', family: 'roberta', dir: join(FIXTURES, 'roberta-reference'), loraName: 'base_model.model.roberta.encoder.layer.0.attention.self.query.lora_A.weight' },
  { name: 'a tokenizer.json + config.json + 3-shard directory', family: 'roberta', dir: shardedRoberta(), loraName: 'base_model.model.roberta.encoder.layer.0.attention.self.query.lora_A.weight' },
];

test('when the sharded copy is listed, then it holds only tokenizer.json, config.json, the index and its shards', () => {
  assert.deepEqual(readdirSync(MODELS[2].dir).sort(), [
    'config.json',
    'model-00001-of-00003.safetensors',
    'model-00002-of-00003.safetensors',
    'model-00003-of-00003.safetensors',
    SAFETENSORS_INDEX,
    'tokenizer.json',
  ]);
});

for (const m of MODELS) {
  test(`when inspect runs on ${m.name}, then ids and the [CLS] vector equal the PyTorch reference`, () => {
    const fixtures = JSON.parse(readFileSync(join(FIXTURES, `${m.family}-reference/fixtures.json`), 'utf8'));
    const text = fixtures.tokenizer_cases[0].text as string; // the first row of the padded batch case
    const r = site('inspect', '--model', m.dir, '--text', text, '--json', '--backend', 'cpu');
    assert.equal(r.status, 0, r.err);
    const got = JSON.parse(r.out.at(-1) as string) as { tokens: string[]; inputIds: number[]; cls: number[] };
    assert.deepEqual(got.inputIds, fixtures.tokenizer_cases[0].input_ids);
    const cls = fixtures.cases[0].last_hidden_state[0][0] as number[];
    const diff = Math.max(...got.cls.map((x, i) => Math.abs(x - cls[i])));
    assert.ok(diff < 1e-4, `max |CLS diff| ${diff}`);
  });

  test(`when train-local runs on ${m.name}, then it trains, reports, and saves an adapter in the family's PEFT names`, () => {
    const save = join(scratch, `adapter-${MODELS.indexOf(m)}`);
    const r = site('train-local', '--model', m.dir, '--data', CSV, '--limit', '32', '--epochs', '1', '--batch-size', '8', '--workers', '0', '--backend', 'cpu', '--save', save, '--json', '--quiet');
    assert.equal(r.status, 0, r.err);
    const s = JSON.parse(r.out.at(-1) as string) as { trainExamples: number; heldoutExamples: number; steps: number; accuracy: number; trainableParams: number };
    assert.ok(s.trainExamples > 0 && s.steps >= 1, JSON.stringify(s));
    assert.ok(s.accuracy >= 0 && s.accuracy <= 1);
    // r 8 on query and value of 2 layers of width 32: 2 × 2 × (8·32 + 32·8), plus the 2-label head 2·32 + 2
    assert.equal(s.trainableParams, 2 * 2 * 512 + 66);
    const config = JSON.parse(readFileSync(join(save, 'adapter_config.json'), 'utf8'));
    const names = Object.keys(parseSafetensors(new Uint8Array(readFileSync(join(save, 'adapter_model.safetensors')))).tensors);
    assert.ok(names.includes(m.loraName), `${m.loraName} not in ${names.slice(0, 4).join(', ')}`);
    assert.deepEqual(config.target_modules, m.family === 'distilbert' ? ['q_lin', 'v_lin'] : ['query', 'value']);
  });
}

test('when config.json names a model_type fedlora does not run, then inspect exits 1 naming the supported ones', () => {
  const dir = join(scratch, 'xlnet');
  mkdirSync(dir);
  for (const f of ['tokenizer.json', 'model.safetensors']) copyFileSync(join(FIXTURES, 'roberta-reference', f), join(dir, f));
  const config = JSON.parse(readFileSync(join(FIXTURES, 'roberta-reference/config.json'), 'utf8'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, model_type: 'xlnet' }));
  const r = site('inspect', '--model', dir, '--text', 'hello', '--backend', 'cpu');
  assert.equal(r.status, 1);
  assert.match(r.err, /MODEL_UNSUPPORTED: .*model_type "xlnet" is not supported \(supported: bert, distilbert, roberta\)/);
  assert.doesNotMatch(r.err, /\n\s+at /, 'one clear line, no stack trace');
});
