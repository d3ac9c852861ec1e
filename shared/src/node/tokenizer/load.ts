// Node-only: builds the WordPiece tokenizer of a Hugging Face BERT model directory
// (vocab.txt, tokenizer_config.json, config.json); the parsing is isomorphic (from-files.ts).

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FedloraError } from '../../errors';
import { tokenizerFromFiles } from '../../tokenizer/from-files';
import type { WordPieceTokenizer } from '../../tokenizer/wordpiece';

function readIfPresent(path: string): string | null {
  return existsSync(path) ? readFileSync(path, 'utf8') : null;
}

/** Loads `<modelDir>/vocab.txt` (required) with `tokenizer_config.json` and `config.json` (optional). */
export function loadTokenizer(modelDir: string): WordPieceTokenizer {
  const vocabPath = join(modelDir, 'vocab.txt');
  if (!existsSync(vocabPath)) {
    throw new FedloraError(
      'MODEL_INVALID',
      `no vocab.txt at ${vocabPath}: a BERT model directory needs its WordPiece vocab`,
    );
  }
  const files = {
    vocab: readFileSync(vocabPath, 'utf8'),
    tokenizerConfig: readIfPresent(join(modelDir, 'tokenizer_config.json')),
    config: readIfPresent(join(modelDir, 'config.json')),
  };
  return tokenizerFromFiles(files, modelDir.replace(/[\\/]+$/, ''));
}
