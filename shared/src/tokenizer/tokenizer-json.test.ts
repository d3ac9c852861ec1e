// tokenizer.json: ids equal to the independent reference (scripts/hf_tokenizer_reference.py) for the DistilBERT
// (WordPiece) and RoBERTa (byte-level BPE) fixtures; on the shipped model, the tokenizer.json path equals vocab.txt's;
// unsupported layouts are refused by name.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isFedloraError } from '../errors';
import { loadTokenizer } from '../node/tokenizer/load';
import { tokenizerFromFiles } from './from-files';
import { ByteLevelBpeTokenizer } from './byte-level-bpe';
import { WordPieceTokenizer } from './wordpiece';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const FIXTURES = join(ROOT, 'tests/fixtures');
const MINI_DIR = join(ROOT, 'models/fedlora-bert-mini');

interface ReferenceCase {
  text: string;
  pair?: string;
  tokens: string[];
  input_ids: number[];
  token_type_ids: number[];
}

const casesOf = (family: string): ReferenceCase[] =>
  JSON.parse(readFileSync(join(FIXTURES, `${family}-reference/fixtures.json`), 'utf8')).tokenizer_cases;

for (const family of ['distilbert', 'roberta']) {
  const tok = loadTokenizer(join(FIXTURES, `${family}-reference`));
  for (const c of casesOf(family)) {
    test(`when the ${family} fixture encodes ${JSON.stringify(c.text).slice(0, 50)}${c.pair ? ' (pair)' : ''}, then tokens, ids and types equal the reference`, () => {
      const enc = tok.encode(c.text, c.pair);
      assert.deepEqual(enc.tokens, c.tokens);
      assert.deepEqual(enc.inputIds, c.input_ids);
      assert.deepEqual(enc.tokenTypeIds, c.token_type_ids);
    });
  }
}

test('when the fixtures load, then each family gets its tokenizer kind, roles and position-bound length', () => {
  const distil = loadTokenizer(join(FIXTURES, 'distilbert-reference'));
  const roberta = loadTokenizer(join(FIXTURES, 'roberta-reference'));
  assert.ok(distil instanceof WordPieceTokenizer, 'a BertNormalizer + BertPreTokenizer WordPiece is the fast WordPiece');
  assert.ok(roberta instanceof ByteLevelBpeTokenizer);
  assert.deepEqual(distil.special, { pad: 0, unk: 1, cls: 2, sep: 3, mask: 4 });
  assert.deepEqual(roberta.special, { pad: 1, unk: 3, cls: 0, sep: 2, mask: 520 });
  assert.equal(distil.maxLength, 128);
  // 130 position rows, the first padding_idx + 1 = 2 of them never used by a token
  assert.equal(roberta.maxLength, 128);
  assert.equal(casesOf('distilbert').length, 12);
});

test('when a RoBERTa pair is truncated, then longest_first keeps the four specials and cuts the longer side', () => {
  const roberta = loadTokenizer(join(FIXTURES, 'roberta-reference'));
  // a = t he Ġp atient Ġaccount Ġcard Ġre f und (9), b = b ank (2): 7 cuts, all from the longer a until 2 = 2, none left
  const enc = roberta.encode('the patient account card refund', 'bank', { maxLength: 8 });
  assert.deepEqual(enc.tokens, ['<s>', 't', 'he', '</s>', '</s>', 'b', 'ank', '</s>']);
  assert.ok(enc.tokenTypeIds.every((t) => t === 0));
});

// ---- the shipped model: tokenizer.json (as HF's BertTokenizerFast saves it) against vocab.txt ----------------------

/** The tokenizer.json transformers writes for an uncased BERT vocab (BertNormalizer, BertPreTokenizer, template). */
function bertTokenizerJson(vocabText: string): string {
  const vocab: Record<string, number> = {};
  vocabText.split('\n').forEach((t, i) => t && (vocab[t] = i));
  const specials = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
  const special = (id: string, typeId: number) => ({ SpecialToken: { id, type_id: typeId } });
  const sequence = (id: string, typeId: number) => ({ Sequence: { id, type_id: typeId } });
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((content) => ({ id: vocab[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [special('[CLS]', 0), sequence('A', 0), special('[SEP]', 0)],
      pair: [special('[CLS]', 0), sequence('A', 0), special('[SEP]', 0), sequence('B', 1), special('[SEP]', 1)],
      special_tokens: Object.fromEntries(['[CLS]', '[SEP]'].map((s) => [s, { id: s, ids: [vocab[s]], tokens: [s] }])),
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  });
}

const miniFiles = {
  vocab: readFileSync(join(MINI_DIR, 'vocab.txt'), 'utf8'),
  tokenizerConfig: readFileSync(join(MINI_DIR, 'tokenizer_config.json'), 'utf8'),
  config: readFileSync(join(MINI_DIR, 'config.json'), 'utf8'),
};
const miniFromVocab = tokenizerFromFiles(miniFiles, MINI_DIR);
const miniFromJson = tokenizerFromFiles({ ...miniFiles, vocab: null, tokenizerJson: bertTokenizerJson(miniFiles.vocab) }, MINI_DIR);

const PARITY_TEXTS = [
  ...JSON.parse(readFileSync(join(FIXTURES, 'bert-reference/fixtures.json'), 'utf8')).tokenizer_cases.map((c: ReferenceCase) => c.text),
  ...JSON.parse(readFileSync(join(MINI_DIR, 'tokenizer_cases.json'), 'utf8')).cases.map((c: ReferenceCase) => c.text),
  ...casesOf('distilbert').map((c) => c.text),
  'CAFÉ Crème brûlée, SEÑOR Müller; ÆON ŒUVRE',
  'card\u0000\u00a0pin\u2003blocked\u200b\ufffd!  my\u0007card  ',
  'a$b^c`d card\u2014pin card\u20acpin \u94f6\u884ccard \u3042card',
  'my[MASK]card [mask] [CLS][SEP] [PAD]',
  'IBAN DE89 3704 0044 0532 0130 00, ref #A-17/2024 (urgent!!!)',
  'Ⅻ ℃ ㎡ ＡＢＣ ｶﾀｶﾅ ﬃ',
  "Dr. O'Neil's résumé: 3½ years @ St. Mary's — ok?",
  'Tabs\tand\nnewlines\r\nand   runs of   spaces',
  'a'.repeat(100) + ' ' + 'b'.repeat(101),
  '',
];

test(`when the shipped model's vocab is read as tokenizer.json, then ${PARITY_TEXTS.length} texts encode exactly as from vocab.txt`, () => {
  assert.ok(PARITY_TEXTS.length >= 30);
  for (const text of PARITY_TEXTS) {
    assert.deepEqual(miniFromJson.encode(text), miniFromVocab.encode(text), JSON.stringify(text));
    assert.deepEqual(miniFromJson.encode(text, 'and a pair'), miniFromVocab.encode(text, 'and a pair'), JSON.stringify(text));
  }
  assert.deepEqual(miniFromJson.special, miniFromVocab.special);
  assert.equal(miniFromJson.maxLength, miniFromVocab.maxLength);
  assert.equal(miniFromJson.vocabSize, miniFromVocab.vocabSize);
});

test('when 200 kB of text is tokenized through tokenizer.json, then it takes well under a second for each family', () => {
  const text = 'Patient presented with acute myocardial infarction; I am still waiting on my card? '.repeat(2500);
  for (const tok of [miniFromJson, loadTokenizer(join(FIXTURES, 'roberta-reference'))]) {
    const t0 = performance.now();
    const pieces = tok.tokenize(text);
    const ms = performance.now() - t0;
    assert.ok(pieces.length > 30_000);
    assert.ok(ms < 1000, `took ${ms.toFixed(0)} ms`);
  }
});

// ---- directories and refusals -----------------------------------------------------------------------------------

function withDir(files: Record<string, string>, fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'fedlora-tokjson-'));
  try {
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('when a directory has both tokenizer.json and vocab.txt, then tokenizer.json is the tokenizer', () => {
  withDir({ 'vocab.txt': '[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n' }, (dir) => {
    copyFileSync(join(FIXTURES, 'distilbert-reference/tokenizer.json'), join(dir, 'tokenizer.json'));
    const tok = loadTokenizer(dir);
    assert.equal(tok.vocabSize, 266);
    assert.deepEqual(tok.encode('Café').tokens, ['[CLS]', 'Café', '[SEP]']); // cased, as the json says
  });
});

test('when tokenizer.json has a Unigram model, then MODEL_UNSUPPORTED names it and what is supported', () => {
  const unigram = JSON.stringify({ model: { type: 'Unigram', unk_id: 0, vocab: [['<unk>', 0]] }, normalizer: null, pre_tokenizer: null });
  withDir({ 'tokenizer.json': unigram }, (dir) => {
    assert.throws(
      () => loadTokenizer(dir),
      (err: unknown) =>
        isFedloraError(err, 'MODEL_UNSUPPORTED') &&
        /tokenizer\.json: model type "Unigram" is not supported; fedlora reads WordPiece .* or BPE/.test(err.message),
    );
  });
});

test('when a WordPiece tokenizer.json splits on plain whitespace, then MODEL_UNSUPPORTED names the pre-tokenizer', () => {
  const tj = JSON.parse(readFileSync(join(FIXTURES, 'distilbert-reference/tokenizer.json'), 'utf8'));
  tj.pre_tokenizer = { type: 'Whitespace' };
  withDir({ 'tokenizer.json': JSON.stringify(tj) }, (dir) => {
    assert.throws(
      () => loadTokenizer(dir),
      (err: unknown) => isFedloraError(err, 'MODEL_UNSUPPORTED') && err.message.includes('pre_tokenizer "Whitespace"'),
    );
  });
});

test('when tokenizer.json is not JSON or a directory has no tokenizer at all, then MODEL_INVALID says which', () => {
  withDir({ 'tokenizer.json': '{ nope' }, (dir) => {
    assert.throws(() => loadTokenizer(dir), (err: unknown) => isFedloraError(err, 'MODEL_INVALID') && err.message.includes('tokenizer.json is not valid JSON'));
  });
  withDir({ 'config.json': '{}' }, (dir) => {
    assert.throws(
      () => loadTokenizer(dir),
      (err: unknown) => isFedloraError(err, 'MODEL_INVALID') && /has no tokenizer\.json and no vocab\.txt/.test(err.message),
    );
  });
});
