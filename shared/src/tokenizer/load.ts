// Node-only: builds the WordPiece tokenizer of a Hugging Face BERT model directory
// (vocab.txt, tokenizer_config.json, config.json).

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FedloraError } from '../errors';
import { WordPieceTokenizer, type TokenizerOptions } from './wordpiece';

const DEFAULT_MAX_LENGTH = 512;
// HF writes model_max_length = int(1e30) (VERY_LARGE_INTEGER) for a tokenizer without a limit: read it as unset.
const UNSET_MAX_LENGTH_ABOVE = 1_000_000;

type Json = Record<string, unknown>;

function readJsonIfPresent(path: string): Json | null {
  if (!existsSync(path)) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new FedloraError('MODEL_INVALID', `${path} is not valid JSON`, { cause: err });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new FedloraError('MODEL_INVALID', `${path} must hold a JSON object`);
  }
  return parsed as Json;
}

function optionalField<T>(
  json: Json | null,
  path: string,
  key: string,
  check: (v: unknown) => v is T,
  want: string,
): T | undefined {
  const v = json?.[key];
  if (v === undefined) return undefined;
  if (!check(v))
    throw new FedloraError('MODEL_INVALID', `${path}: ${key} must be ${want}, got ${JSON.stringify(v)}`);
  return v;
}

const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isBoolOrNull = (v: unknown): v is boolean | null => v === null || typeof v === 'boolean';
const isPositiveInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;
// model_max_length may be the 1e30 sentinel, which is not a safe integer.
const isPositiveNumber = (v: unknown): v is number => typeof v === 'number' && v > 0;

/**
 * Loads `<modelDir>/vocab.txt` (required) with the casing rules of `tokenizer_config.json` (optional; default
 * uncased, accents stripped). maxLength = model_max_length, capped by config.json's max_position_embeddings
 * (the position table cannot hold more), else 512.
 */
export function loadTokenizer(modelDir: string): WordPieceTokenizer {
  const vocabPath = join(modelDir, 'vocab.txt');
  if (!existsSync(vocabPath)) {
    throw new FedloraError(
      'MODEL_INVALID',
      `no vocab.txt at ${vocabPath}: a BERT model directory needs its WordPiece vocab`,
    );
  }
  const vocabText = readFileSync(vocabPath, 'utf8');

  const tokPath = join(modelDir, 'tokenizer_config.json');
  const tokConfig = readJsonIfPresent(tokPath);
  const cfgPath = join(modelDir, 'config.json');
  const modelConfig = readJsonIfPresent(cfgPath);

  const doLowerCase = optionalField(tokConfig, tokPath, 'do_lower_case', isBool, 'a boolean') ?? true;
  const stripAccents =
    optionalField(tokConfig, tokPath, 'strip_accents', isBoolOrNull, 'a boolean or null') ?? null;
  const tokenizeChineseChars =
    optionalField(tokConfig, tokPath, 'tokenize_chinese_chars', isBool, 'a boolean') ?? true;
  const modelMax = optionalField(
    tokConfig,
    tokPath,
    'model_max_length',
    isPositiveNumber,
    'a positive number',
  );
  const positions = optionalField(
    modelConfig,
    cfgPath,
    'max_position_embeddings',
    isPositiveInt,
    'a positive integer',
  );

  const limits: number[] = [];
  if (modelMax !== undefined && modelMax <= UNSET_MAX_LENGTH_ABOVE) limits.push(Math.floor(modelMax));
  if (positions !== undefined) limits.push(positions);
  const maxLength = limits.length > 0 ? Math.min(...limits) : DEFAULT_MAX_LENGTH;

  const opts: TokenizerOptions = { doLowerCase, stripAccents, maxLength, tokenizeChineseChars };
  try {
    return WordPieceTokenizer.fromVocabText(vocabText, opts);
  } catch (err) {
    if (err instanceof FedloraError)
      throw new FedloraError(err.code, `${vocabPath}: ${err.message}`, { cause: err });
    throw err;
  }
}
