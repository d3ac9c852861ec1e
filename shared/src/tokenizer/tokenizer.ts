// What every tokenizer of fedlora is (WordPiece from vocab.txt or tokenizer.json, byte-level BPE from tokenizer.json),
// and the steps they share: splitting out added tokens (Hugging Face tokenizers' added_vocabulary.rs), the special-token
// template with 'longest_first' truncation (HF's post-processors), and padding a batch. Isomorphic.

import { FedloraError } from '../errors';

/** Ids of the tokens with a role: padding, unknown, sequence start/separator (HF's cls/sep, RoBERTa's <s>/</s>), mask. */
export interface SpecialTokenIds {
  pad: number;
  unk: number;
  cls: number;
  sep: number;
  mask: number;
}

export interface Encoding {
  tokens: string[];
  inputIds: number[];
  tokenTypeIds: number[];
  attentionMask: number[];
}

export interface Tokenizer {
  readonly vocabSize: number;
  readonly special: SpecialTokenIds;
  /** default length for `encode` truncation, specials included */
  readonly maxLength: number;
  /** the model's pieces of `text`, without the template's specials; added tokens in the text stay whole */
  tokenize(text: string): string[];
  /** the template around `text` (and `pair`), truncated 'longest_first' to maxLength; never padded */
  encode(text: string, pair?: string, opts?: { maxLength?: number }): Encoding;
  tokenToId(token: string): number;
  idToToken(id: number): string;
}

// ---- added tokens ---------------------------------------------------------------------------------------------------

/** A token kept whole wherever it appears in the raw text (HF tokenizer.json "added_tokens"). */
export interface AddedToken {
  content: string;
  /** the match swallows the whitespace on its left (RoBERTa's <mask>) */
  lstrip?: boolean;
  /** ... and on its right */
  rstrip?: boolean;
}

// Unicode White_Space: what Rust's char::is_whitespace (and Oniguruma's \s) mean; JS \s differs (has U+FEFF, lacks U+0085).
export const WHITE_SPACE_CLASS = '\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const IS_WHITE_SPACE = new RegExp(`^[${WHITE_SPACE_CLASS}]$`, 'u');

/** One piece of text: either an added token (kept whole) or a stretch the model tokenizes. */
export interface TextSegment {
  text: string;
  added: boolean;
}

/**
 * Splits `text` at added tokens: leftmost match first, the longest at a position; lstrip/rstrip make the match take
 * the whitespace beside it (as HF's AddedVocabulary). Segments between matches are never empty.
 */
export function splitAddedTokens(text: string, added: readonly AddedToken[]): TextSegment[] {
  if (added.length === 0) return text ? [{ text, added: false }] : [];
  const longestFirst = [...added].sort((a, b) => b.content.length - a.content.length);
  const out: TextSegment[] = [];
  let start = 0;
  for (let i = 0; i < text.length; ) {
    const hit = longestFirst.find((a) => text.startsWith(a.content, i));
    if (!hit) {
      i++;
      continue;
    }
    let left = i;
    let right = i + hit.content.length;
    if (hit.lstrip) while (left > start && IS_WHITE_SPACE.test(text[left - 1])) left--;
    if (hit.rstrip) while (right < text.length && IS_WHITE_SPACE.test(text[right])) right++;
    if (left > start) out.push({ text: text.slice(start, left), added: false });
    out.push({ text: hit.content, added: true });
    i = start = right;
  }
  if (start < text.length) out.push({ text: text.slice(start), added: false });
  return out;
}

// ---- the special-token template --------------------------------------------------------------------------------

/** One item of a post-processor template: a special token, or the first (A) or second (B) sequence. */
export type TemplatePiece = { special: string; typeId: number } | { sequence: 'A' | 'B'; typeId: number };

/** Where the specials go for one text and for a pair (HF TemplateProcessing / BertProcessing / RobertaProcessing). */
export interface SpecialsTemplate {
  single: TemplatePiece[];
  pair: TemplatePiece[];
}

/** [CLS] A [SEP] and [CLS] A [SEP] B [SEP], the pair's part with token type 1 (BERT). */
export function bertTemplate(cls: string, sep: string): SpecialsTemplate {
  return {
    single: [{ special: cls, typeId: 0 }, { sequence: 'A', typeId: 0 }, { special: sep, typeId: 0 }],
    pair: [
      { special: cls, typeId: 0 },
      { sequence: 'A', typeId: 0 },
      { special: sep, typeId: 0 },
      { sequence: 'B', typeId: 1 },
      { special: sep, typeId: 1 },
    ],
  };
}

/** <s> A </s> and <s> A </s></s> B </s>, every token type 0 (RoBERTa has no token types: processors/roberta.rs). */
export function robertaTemplate(cls: string, sep: string): SpecialsTemplate {
  const s = (special: string): TemplatePiece => ({ special, typeId: 0 });
  return {
    single: [s(cls), { sequence: 'A', typeId: 0 }, s(sep)],
    pair: [s(cls), { sequence: 'A', typeId: 0 }, s(sep), s(sep), { sequence: 'B', typeId: 0 }, s(sep)],
  };
}

export function checkMaxLength(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 1)
    throw new FedloraError('CONFIG_INVALID', `${what} must be a positive integer, got ${n}`);
}

/**
 * Lays `a` (and `b`) into the template, first truncating 'longest_first' as HF's slow tokenizers do: one token at a
 * time from the end of the longer sequence, from the pair on a tie, until the specials fit in maxLength.
 */
export function applyTemplate(
  a: string[],
  b: string[] | null,
  template: SpecialsTemplate,
  maxLength: number,
  tokenToId: (t: string) => number,
): Encoding {
  checkMaxLength(maxLength, 'encode maxLength');
  const pieces = b === null ? template.single : template.pair;
  const numSpecial = pieces.filter((p) => 'special' in p).length;
  if (maxLength < numSpecial)
    throw new FedloraError('CONFIG_INVALID', `maxLength ${maxLength} cannot hold the ${numSpecial} special tokens`);
  a = [...a];
  b = b === null ? null : [...b];
  for (let toRemove = a.length + (b?.length ?? 0) + numSpecial - maxLength; toRemove > 0; toRemove--) {
    if (b === null || a.length > b.length) a.pop();
    else b.pop();
  }
  const tokens: string[] = [];
  const tokenTypeIds: number[] = [];
  for (const p of pieces) {
    const part = 'special' in p ? [p.special] : p.sequence === 'A' ? a : (b ?? []);
    for (const t of part) {
      tokens.push(t);
      tokenTypeIds.push(p.typeId);
    }
  }
  return { tokens, inputIds: tokens.map(tokenToId), tokenTypeIds, attentionMask: tokens.map(() => 1) };
}

// ---- batches --------------------------------------------------------------------------------------------------------

/** Pads encodings to the longest in the batch (dynamic padding), or to padTo if given. Row-major Int32Arrays. */
export function padBatch(
  // attentionMask may be left out: it is then 1 over each row's tokens (what the trainer's examples carry)
  encs: readonly (Pick<Encoding, 'inputIds' | 'tokenTypeIds'> & { attentionMask?: readonly number[] })[],
  padId: number,
  padTo?: number,
): {
  inputIds: Int32Array;
  attentionMask: Int32Array;
  tokenTypeIds: Int32Array;
  batch: number;
  seqLen: number;
} {
  const longest = encs.reduce((m, e) => Math.max(m, e.inputIds.length), 0);
  if (padTo !== undefined && (!Number.isInteger(padTo) || padTo < longest)) {
    throw new FedloraError(
      'CONFIG_INVALID',
      `padTo ${padTo} is shorter than the longest encoding (${longest} tokens)`,
    );
  }
  const seqLen = padTo ?? longest;
  const batch = encs.length;
  const inputIds = new Int32Array(batch * seqLen).fill(padId);
  const attentionMask = new Int32Array(batch * seqLen); // 0 = padding
  const tokenTypeIds = new Int32Array(batch * seqLen); // HF pads token types with 0
  encs.forEach((e, row) => {
    const n = e.inputIds.length;
    if ((e.attentionMask && e.attentionMask.length !== n) || e.tokenTypeIds.length !== n) {
      throw new FedloraError(
        'SHAPE_MISMATCH',
        `encoding ${row}: inputIds ${n}, attentionMask ${e.attentionMask?.length}, ` +
          `tokenTypeIds ${e.tokenTypeIds.length}`,
      );
    }
    inputIds.set(e.inputIds, row * seqLen);
    if (e.attentionMask) attentionMask.set(e.attentionMask, row * seqLen);
    else attentionMask.fill(1, row * seqLen, row * seqLen + n);
    tokenTypeIds.set(e.tokenTypeIds, row * seqLen);
  });
  return { inputIds, attentionMask, tokenTypeIds, batch, seqLen };
}
