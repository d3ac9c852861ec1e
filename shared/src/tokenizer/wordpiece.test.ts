// Tests of the WordPiece tokenizer against HF BertTokenizer reference outputs and hand-computed cases.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isFedloraError } from '../errors';
import { padBatch, WordPieceTokenizer, type Encoding } from './wordpiece';
import { loadTokenizer } from '../node/tokenizer/load';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const FIXTURE_DIR = join(ROOT, 'tests/fixtures/bert-reference');
const MINI_DIR = join(ROOT, 'models/fedlora-bert-mini');

interface TokenizerCase {
  text: string;
  tokens: string[];
  input_ids: number[];
}

const fixtureVocab = readFileSync(join(FIXTURE_DIR, 'vocab.txt'), 'utf8');
// The fixture vocab: [PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103, "!"=104 ... "~"=145, a..z = 146..171,
// words from 172 ("the"), "##" pieces from 260 ("##s", duplicated at 292, which wins as in HF's dict).
const fixture = (
  opts: Partial<{ doLowerCase: boolean; stripAccents: boolean | null; maxLength: number }> = {},
) => WordPieceTokenizer.fromVocabText(fixtureVocab, { doLowerCase: true, ...opts });

function withTempDir(files: Record<string, string>, fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'fedlora-tok-'));
  try {
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const fixtureCases: TokenizerCase[] = JSON.parse(
  readFileSync(join(FIXTURE_DIR, 'fixtures.json'), 'utf8'),
).tokenizer_cases;
for (const c of fixtureCases) {
  test(`when the fixture text ${JSON.stringify(c.text)} is encoded, then tokens and ids match HF BertTokenizer`, () => {
    const enc = fixture().encode(c.text);
    assert.deepEqual(enc.tokens, c.tokens);
    assert.deepEqual(enc.inputIds, c.input_ids);
    assert.deepEqual(
      enc.attentionMask,
      c.tokens.map(() => 1),
    );
    assert.deepEqual(
      enc.tokenTypeIds,
      c.tokens.map(() => 0),
    );
  });
}

const miniCases: TokenizerCase[] = JSON.parse(
  readFileSync(join(MINI_DIR, 'tokenizer_cases.json'), 'utf8'),
).cases;
const mini = loadTokenizer(MINI_DIR);
for (const c of miniCases) {
  test(`when the default model encodes ${JSON.stringify(c.text)}, then tokens and ids match its reference`, () => {
    const enc = mini.encode(c.text);
    assert.deepEqual(enc.tokens, c.tokens);
    assert.deepEqual(enc.inputIds, c.input_ids);
  });
}

test('when the reference case lists are read, then none is empty (the loops above ran)', () => {
  assert.equal(fixtureCases.length, 3);
  assert.equal(miniCases.length, 6);
});

test('when special ids are needed, then they come from the vocab, not from fixed numbers', () => {
  assert.deepEqual(fixture().special, { pad: 0, unk: 100, cls: 101, sep: 102, mask: 103 });
  assert.deepEqual(mini.special, { pad: 0, unk: 1, cls: 2, sep: 3, mask: 4 });
  assert.equal(mini.vocabSize, 16000);
  assert.equal(fixture().vocabSize, 1000);
});

test('when a vocab lacks [MASK], then MODEL_INVALID names the missing token', () => {
  const vocab = '[PAD]\n[UNK]\n[CLS]\n[SEP]\na\n';
  assert.throws(
    () => WordPieceTokenizer.fromVocabText(vocab, { doLowerCase: true }),
    (err: unknown) => isFedloraError(err, 'MODEL_INVALID') && err.message.includes('[MASK]'),
  );
});

test('when a sentence pair is encoded, then it is [CLS] a [SEP] b [SEP] with token types 0 then 1', () => {
  const enc = fixture().encode('my card', 'blood pressure');
  assert.deepEqual(enc.tokens, ['[CLS]', 'my', 'card', '[SEP]', 'blood', 'pressure', '[SEP]']);
  assert.deepEqual(enc.inputIds, [101, 189, 188, 102, 230, 231, 102]);
  assert.deepEqual(enc.tokenTypeIds, [0, 0, 0, 0, 1, 1, 1]);
  assert.deepEqual(enc.attentionMask, [1, 1, 1, 1, 1, 1, 1]);
});

test('when a single text exceeds maxLength, then its tail is cut and [SEP] kept', () => {
  const enc = fixture().encode('my card was declined', undefined, { maxLength: 4 });
  assert.deepEqual(enc.inputIds, [101, 189, 188, 102]);
});

test('when a pair exceeds maxLength, then longest_first cuts the longer side, the pair on ties', () => {
  // a = my card was declined (4), b = the new study (3), max 6 -> remove 4: a(4>3) b(tie 3) a(3>2) b(tie 2).
  const enc = fixture().encode('my card was declined', 'the new study', { maxLength: 6 });
  assert.deepEqual(enc.tokens, ['[CLS]', 'my', 'card', '[SEP]', 'the', '[SEP]']);
  assert.deepEqual(enc.tokenTypeIds, [0, 0, 0, 0, 1, 1]);
  // a (4) vs b (2), max 7 -> remove 2, both from a.
  assert.deepEqual(fixture().encode('my card was declined', 'blood pressure', { maxLength: 7 }).tokens, [
    '[CLS]',
    'my',
    'card',
    '[SEP]',
    'blood',
    'pressure',
    '[SEP]',
  ]);
});

test('when no maxLength is given, then the tokenizer default applies (512, or the model limit when loaded)', () => {
  assert.equal(fixture().maxLength, 512);
  assert.equal(mini.maxLength, 512); // the shipped model (version 2) has 512 positions
  const enc = fixture({ maxLength: 5 }).encode('the new study of blood');
  assert.deepEqual(enc.tokens, ['[CLS]', 'the', 'new', 'study', '[SEP]']);
});

test('when maxLength cannot hold the special tokens, then CONFIG_INVALID is thrown', () => {
  assert.throws(
    () => fixture().encode('a', 'b', { maxLength: 2 }),
    (err: unknown) => isFedloraError(err, 'CONFIG_INVALID'),
  );
  assert.throws(
    () => fixture({ maxLength: 0 }),
    (err: unknown) => isFedloraError(err, 'CONFIG_INVALID'),
  );
});

test('when text has control, NUL, U+FFFD and Unicode spaces, then controls vanish and spaces split words', () => {
  assert.deepEqual(fixture().tokenize('card\u0000\u00a0pin\u2003blocked\u200b\ufffd!'), [
    'card',
    'pin',
    'blocked',
    '!',
  ]);
  // Removing a control joins its neighbours, as in HF: "my\u0007card" is one word.
  assert.deepEqual(fixture().tokenize('my\u0007card'), ['my', '##c', '##a', '##r', '##d']);
});

test('when text has ASCII symbols or Unicode punctuation, then each is a token; other symbols are not split', () => {
  assert.deepEqual(fixture().tokenize('a$b^c`d'), ['a', '$', 'b', '^', 'c', '`', 'd']);
  assert.deepEqual(fixture().tokenize('card\u2014pin'), ['card', '[UNK]', 'pin']); // em dash is Pd
  assert.deepEqual(fixture().tokenize('card\u20acpin'), ['[UNK]']); // euro sign is Sc: one word, unmatched "##€"
});

test('when CJK ideographs touch latin text, then each ideograph becomes its own word', () => {
  assert.deepEqual(fixture().tokenize('\u94f6\u884ccard'), ['[UNK]', '[UNK]', 'card']);
  // Hiragana is not in HF's CJK ranges, so it stays attached.
  assert.deepEqual(fixture().tokenize('\u3042card'), ['[UNK]']);
});

test('when casing options change, then lowercase and accent stripping follow HF strip_accents rules', () => {
  assert.deepEqual(fixture({ doLowerCase: false }).tokenize('Card card'), ['[UNK]', 'card']);
  assert.deepEqual(fixture({ doLowerCase: false, stripAccents: true }).tokenize('caf\u00e9'), [
    'c',
    '##a',
    '##f',
    '##e',
  ]);
  assert.deepEqual(fixture({ doLowerCase: true, stripAccents: false }).tokenize('CAF\u00c9'), ['[UNK]']);
  // Decomposed input (e + combining acute) strips the same as the precomposed form.
  assert.deepEqual(fixture().tokenize('CAFE\u0301'), ['c', '##a', '##f', '##e']);
});

test('when a word is over 100 characters, then it is one [UNK]; at 100 it is split', () => {
  assert.deepEqual(fixture().tokenize('a'.repeat(101)), ['[UNK]']);
  const pieces = fixture().tokenize('a'.repeat(100));
  assert.equal(pieces.length, 100);
  assert.deepEqual(pieces.slice(0, 2), ['a', '##a']);
});

test('when special-token strings appear in text, then they stay whole (exact case only)', () => {
  assert.deepEqual(fixture().tokenize('my[MASK]card [mask]'), [
    'my',
    '[MASK]',
    'card',
    '[',
    'm',
    '##a',
    '##s',
    '##k',
    ']',
  ]);
  assert.deepEqual(fixture().encode('[MASK]').inputIds, [101, 103, 102]);
});

test('when ids and tokens are converted, then unknowns map to [UNK] and a duplicated token to its last line', () => {
  const tok = fixture();
  assert.equal(tok.tokenToId('##s'), 292);
  assert.equal(tok.idToToken(260), '##s');
  assert.equal(tok.tokenToId('zebra'), 100);
  assert.equal(tok.idToToken(5000), '[UNK]');
  assert.equal(tok.idToToken(172), 'the');
});

test('when encodings of different lengths are padded, then rows are row-major with pad id, mask 0, type 0', () => {
  const a: Encoding = { tokens: [], inputIds: [1, 2, 3], tokenTypeIds: [0, 0, 0], attentionMask: [1, 1, 1] };
  const b: Encoding = {
    tokens: [],
    inputIds: [1, 4, 5, 6, 7],
    tokenTypeIds: [0, 0, 1, 1, 1],
    attentionMask: [1, 1, 1, 1, 1],
  };
  const out = padBatch([a, b], 9);
  assert.equal(out.batch, 2);
  assert.equal(out.seqLen, 5);
  assert.deepEqual(Array.from(out.inputIds), [1, 2, 3, 9, 9, 1, 4, 5, 6, 7]);
  assert.deepEqual(Array.from(out.attentionMask), [1, 1, 1, 0, 0, 1, 1, 1, 1, 1]);
  assert.deepEqual(Array.from(out.tokenTypeIds), [0, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
  assert.ok(out.inputIds instanceof Int32Array);

  const fixed = padBatch([a], 0, 4);
  assert.equal(fixed.seqLen, 4);
  assert.deepEqual(Array.from(fixed.inputIds), [1, 2, 3, 0]);
  assert.throws(
    () => padBatch([b], 0, 4),
    (err: unknown) => isFedloraError(err, 'CONFIG_INVALID'),
  );
});

test('when a model directory has no vocab.txt, then MODEL_INVALID names the path', () => {
  withTempDir({ 'config.json': '{}' }, (dir) => {
    assert.throws(
      () => loadTokenizer(dir),
      (err: unknown) => isFedloraError(err, 'MODEL_INVALID') && err.message.includes(join(dir, 'vocab.txt')),
    );
  });
});

test('when a directory has only vocab.txt, then it is uncased with maxLength 512', () => {
  withTempDir({ 'vocab.txt': fixtureVocab }, (dir) => {
    const tok = loadTokenizer(dir);
    assert.equal(tok.maxLength, 512);
    assert.deepEqual(tok.tokenize('CARD'), ['card']);
  });
});

test('when tokenizer_config is cased with an unset (1e30) limit, then config.json positions cap maxLength', () => {
  const files = {
    'vocab.txt': fixtureVocab,
    'tokenizer_config.json': JSON.stringify({ do_lower_case: false, model_max_length: 1e30 }),
    'config.json': JSON.stringify({ max_position_embeddings: 64 }),
  };
  withTempDir(files, (dir) => {
    const tok = loadTokenizer(dir);
    assert.equal(tok.maxLength, 64);
    assert.deepEqual(tok.tokenize('Card'), ['[UNK]']);
  });
});

test('when tokenizer_config.json is malformed, then MODEL_INVALID names the file and field', () => {
  withTempDir({ 'vocab.txt': fixtureVocab, 'tokenizer_config.json': '{ nope' }, (dir) => {
    assert.throws(
      () => loadTokenizer(dir),
      (err: unknown) => isFedloraError(err, 'MODEL_INVALID') && err.message.includes('tokenizer_config.json'),
    );
  });
  withTempDir({ 'vocab.txt': fixtureVocab, 'tokenizer_config.json': '{"do_lower_case": "yes"}' }, (dir) => {
    assert.throws(
      () => loadTokenizer(dir),
      (err: unknown) => isFedloraError(err, 'MODEL_INVALID') && err.message.includes('do_lower_case'),
    );
  });
});

test('when 200 kB of text is tokenized with the 16k vocab, then it takes well under a second', () => {
  const text = 'Patient presented with acute myocardial infarction; I am still waiting on my card? '.repeat(
    2500,
  );
  const t0 = performance.now();
  const pieces = mini.tokenize(text);
  const ms = performance.now() - t0;
  assert.ok(pieces.length > 50_000);
  assert.ok(ms < 1000, `took ${ms.toFixed(0)} ms`);
});
