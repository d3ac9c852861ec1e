// Node-only: builds the tokenizer of a Hugging Face model directory: tokenizer.json when present, else vocab.txt,
// with tokenizer_config.json and config.json; the parsing is isomorphic (from-files.ts).

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FedloraError } from '../../errors';
import { tokenizerFromFiles } from '../../tokenizer/from-files';
import type { Tokenizer } from '../../tokenizer/tokenizer';

function readIfPresent(path: string): string | null {
  return existsSync(path) ? readFileSync(path, 'utf8') : null;
}

/** Loads `<modelDir>/tokenizer.json` or `<modelDir>/vocab.txt` (one is required). */
export function loadTokenizer(modelDir: string): Tokenizer {
  const tokenizerJson = readIfPresent(join(modelDir, 'tokenizer.json'));
  const vocabPath = join(modelDir, 'vocab.txt');
  if (tokenizerJson === null && !existsSync(vocabPath)) {
    throw new FedloraError(
      'MODEL_INVALID',
      `${modelDir} has no tokenizer.json and no vocab.txt (${vocabPath}): a model directory needs its tokenizer`,
    );
  }
  const files = {
    tokenizerJson,
    vocab: tokenizerJson === null ? readFileSync(vocabPath, 'utf8') : null,
    tokenizerConfig: readIfPresent(join(modelDir, 'tokenizer_config.json')),
    config: readIfPresent(join(modelDir, 'config.json')),
  };
  return tokenizerFromFiles(files, modelDir.replace(/[\\/]+$/, ''));
}
