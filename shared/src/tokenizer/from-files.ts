// Builds the tokenizer of a Hugging Face model from its files' text: tokenizer.json when the model has one (WordPiece
// or byte-level BPE: tokenizer-json.ts), else vocab.txt (WordPiece), with tokenizer_config.json and config.json.
// Isomorphic: the Node loader (load.ts) reads them from a directory, the browser from its model cache.

import { FedloraError } from '../errors';
import type { Tokenizer } from './tokenizer';
import { tokenizerFromJson } from './tokenizer-json';
import { WordPieceTokenizer, type TokenizerOptions } from './wordpiece';

const DEFAULT_MAX_LENGTH = 512;
// HF writes model_max_length = int(1e30) (VERY_LARGE_INTEGER) for a tokenizer without a limit: read it as unset.
const UNSET_MAX_LENGTH_ABOVE = 1_000_000;

export type Json = Record<string, unknown>;

/** Parses an optional JSON object file (null when absent); `path` only names it in errors. */
export function parseJsonObject(text: string | null, path: string): Json | null {
  if (text === null) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
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
const isNonNegativeInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;
// model_max_length may be the 1e30 sentinel, which is not a safe integer.
const isPositiveNumber = (v: unknown): v is number => typeof v === 'number' && v > 0;

export interface TokenizerFiles {
  /** tokenizer.json's text; when present it is the tokenizer, and vocab.txt is not read */
  tokenizerJson?: string | null;
  /** vocab.txt's text, or null when the model has only tokenizer.json */
  vocab: string | null;
  /** tokenizer_config.json's text, or null when the model has none */
  tokenizerConfig: string | null;
  /** config.json's text, or null */
  config: string | null;
}

/**
 * tokenizer.json when given, else vocab.txt with the casing rules of tokenizer_config.json (default uncased, accents
 * stripped). maxLength = model_max_length, capped by the positions config.json's table holds for tokens (RoBERTa's
 * first padding_idx + 1 rows are not), else 512. `dir` only names the files in errors.
 */
export function tokenizerFromFiles(files: TokenizerFiles, dir = 'model'): Tokenizer {
  const tokPath = `${dir}/tokenizer_config.json`;
  const tokConfig = parseJsonObject(files.tokenizerConfig, tokPath);
  const cfgPath = `${dir}/config.json`;
  const modelConfig = parseJsonObject(files.config, cfgPath);
  const vocabPath = `${dir}/vocab.txt`;

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
  const padTokenId = optionalField(modelConfig, cfgPath, 'pad_token_id', isNonNegativeInt, 'a non-negative integer');
  // RoBERTa numbers positions from padding_idx + 1 (modeling_roberta create_position_ids_from_input_ids)
  const positionOffset = modelConfig?.model_type === 'roberta' ? (padTokenId ?? 1) + 1 : 0;

  const limits: number[] = [];
  if (modelMax !== undefined && modelMax <= UNSET_MAX_LENGTH_ABOVE) limits.push(Math.floor(modelMax));
  if (positions !== undefined && positions > positionOffset) limits.push(positions - positionOffset);
  const maxLength = limits.length > 0 ? Math.min(...limits) : DEFAULT_MAX_LENGTH;

  if (files.tokenizerJson !== undefined && files.tokenizerJson !== null)
    return tokenizerFromJson(files.tokenizerJson, { tokenizerConfig: tokConfig, padTokenId, maxLength, path: `${dir}/tokenizer.json` });
  if (files.vocab === null)
    throw new FedloraError('MODEL_INVALID', `${dir} has neither tokenizer.json nor vocab.txt: the model needs one of them`);

  const doLowerCase = optionalField(tokConfig, tokPath, 'do_lower_case', isBool, 'a boolean') ?? true;
  const stripAccents =
    optionalField(tokConfig, tokPath, 'strip_accents', isBoolOrNull, 'a boolean or null') ?? null;
  const tokenizeChineseChars =
    optionalField(tokConfig, tokPath, 'tokenize_chinese_chars', isBool, 'a boolean') ?? true;
  const opts: TokenizerOptions = { doLowerCase, stripAccents, maxLength, tokenizeChineseChars };
  try {
    return WordPieceTokenizer.fromVocabText(files.vocab, opts);
  } catch (err) {
    if (err instanceof FedloraError)
      throw new FedloraError(err.code, `${vocabPath}: ${err.message}`, { cause: err });
    throw err;
  }
}
