// Test support (imported by tests only): a masked-LM base made from the parity fixture (tests/fixtures/bert-reference,
// a random tiny BERT), which has no MLM head of its own, and documents of words its vocabulary knows. Masked-LM
// training, merging and the federated masked-LM round are tested on it in shared/, client-node/ and coordinator/.

import { fileURLToPath } from 'node:url';
import { MLM_HEAD_NAMES } from '../../model/mlm';
import { loadBertCheckpoint } from '../model/load';
import { saveBertCheckpoint } from '../model/save';

/** the parity fixture's directory */
export const BERT_REFERENCE_FIXTURE = fileURLToPath(new URL('../../../../tests/fixtures/bert-reference/', import.meta.url));

/** words in the fixture's vocabulary */
export const FIXTURE_WORDS =
  'the and for with are was card you this that what how why when can does not still waiting arrived account money transfer payment bank'.split(' ');

/**
 * Saves the fixture into `dir` with a masked-LM head drawn from `rand` (uniform in ±0.1; LayerNorm weight 1), as a
 * BertForMaskedLM base has one. `rand` is consumed in a fixed order, so a seed gives the same head every time.
 */
export function saveFixtureWithMlmHead(dir: string, rand: () => number): void {
  const fixture = loadBertCheckpoint(BERT_REFERENCE_FIXTURE);
  const H = fixture.config.hiddenSize;
  const u = (n: number, scale: number) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
  saveBertCheckpoint(dir, {
    sourceDir: BERT_REFERENCE_FIXTURE,
    weights: fixture.weights,
    mlmHead: {
      [MLM_HEAD_NAMES.denseW]: { shape: [H, H], data: u(H * H, 0.1) },
      [MLM_HEAD_NAMES.denseB]: { shape: [H], data: u(H, 0.1) },
      [MLM_HEAD_NAMES.lnW]: { shape: [H], data: new Float32Array(H).fill(1) },
      [MLM_HEAD_NAMES.lnB]: { shape: [H], data: u(H, 0.1) },
      [MLM_HEAD_NAMES.bias]: { shape: [fixture.config.vocabSize], data: u(fixture.config.vocabSize, 0.1) },
    },
  });
}

/** `count` documents of `minWords` to `minWords + spread - 1` words each, drawn from `words` with `rand`. */
export function randomDocuments(rand: () => number, count: number, minWords: number, spread: number, words: readonly string[] = FIXTURE_WORDS): string[] {
  return Array.from({ length: count }, () =>
    Array.from({ length: minWords + Math.floor(rand() * spread) }, () => words[Math.floor(rand() * words.length)]).join(' '),
  );
}
