// BERT WordPiece tokenizer, rule for rule Hugging Face `BertTokenizer` (transformers tokenization_bert.py:
// BasicTokenizer + WordpieceTokenizer; specials split out first as PreTrainedTokenizer.tokenize does).
// Isomorphic: no node imports, so browsers use it too.

import { FedloraError } from '../errors';
import {
  applyTemplate,
  bertTemplate,
  checkMaxLength,
  splitAddedTokens,
  type AddedToken,
  type Encoding,
  type SpecialsTemplate,
  type SpecialTokenIds,
  type Tokenizer,
} from './tokenizer';

export interface TokenizerOptions {
  doLowerCase: boolean;
  /** null/undefined: strip accents exactly when lower-casing (HF's `strip_accents=None`). */
  stripAccents?: boolean | null;
  /** Default length for `encode` truncation, specials included. Default 512. */
  maxLength?: number;
  /** HF `tokenize_chinese_chars`; default true. */
  tokenizeChineseChars?: boolean;
  /**
   * NFC-compose the text first, as the slow BertTokenizer does (default true). tokenizer.json's BertNormalizer (the
   * Rust fast tokenizer) does not: a decomposed "e\u0301" then stays two characters in a cased vocab.
   */
  composeUnicode?: boolean;
  /** the token of each role; default BERT's [PAD] [UNK] [CLS] [SEP] [MASK] */
  specialTokens?: Record<keyof SpecialTokenIds, string>;
  /** tokens kept whole in the text; default the five special tokens */
  addedTokens?: readonly AddedToken[];
  /** default [CLS] A [SEP] (B [SEP]) */
  template?: SpecialsTemplate;
  /** HF WordPiece continuing_subword_prefix; default "##" */
  continuingSubwordPrefix?: string;
  /** HF max_input_chars_per_word: longer words become the unknown token unsplit; default 100 */
  maxInputCharsPerWord?: number;
}

// re-exported: they were declared here before tokenizer.ts held what every tokenizer shares
export { padBatch, type Encoding, type SpecialTokenIds } from './tokenizer';

const BERT_SPECIAL_TOKENS = { pad: '[PAD]', unk: '[UNK]', cls: '[CLS]', sep: '[SEP]', mask: '[MASK]' } as const;
const DEFAULT_MAX_LENGTH = 512;
const DEFAULT_MAX_CHARS_PER_WORD = 100;
// Python's str.split() whitespace set (HF's whitespace_tokenize); JS \s differs (has \ufeff, lacks \x1c-\x1f, \x85).
// eslint-disable-next-line no-control-regex -- those control characters are part of Python's set
const PY_WHITESPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

const RE_ZS = /^\p{Zs}$/u;
const RE_OTHER = /^\p{C}$/u; // Cc, Cf, Cs, Co, Cn: Python's unicodedata category starting with "C"
const RE_PUNCT = /^\p{P}$/u;
const RE_MN = /\p{Mn}/gu;

/** HF `_is_whitespace`: space, \t, \n, \r, or category Zs. */
function isWhitespace(ch: string, cp: number): boolean {
  if (cp === 0x20 || cp === 0x09 || cp === 0x0a || cp === 0x0d) return true;
  return cp > 0x7f && RE_ZS.test(ch);
}

/** HF `_is_control`: category C*, except \t \n \r (they count as whitespace). */
function isControl(ch: string, cp: number): boolean {
  if (cp === 0x09 || cp === 0x0a || cp === 0x0d) return false;
  if (cp < 0x7f) return cp < 0x20;
  return RE_OTHER.test(ch);
}

/** HF `_is_punctuation`: all non-alphanumeric printable ASCII (so "$", "^", "`" too) plus category P*. */
function isPunctuation(ch: string, cp: number): boolean {
  if (
    (cp >= 33 && cp <= 47) ||
    (cp >= 58 && cp <= 64) ||
    (cp >= 91 && cp <= 96) ||
    (cp >= 123 && cp <= 126)
  ) {
    return true;
  }
  return cp > 0x7f && RE_PUNCT.test(ch);
}

/** HF `_is_chinese_char`: the CJK Unified Ideographs blocks (not Hiragana, Katakana or Hangul). */
function isCjk(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

function whitespaceSplit(text: string): string[] {
  return text.split(PY_WHITESPACE).filter((t) => t.length > 0);
}

/** HF `_clean_text` + `_tokenize_chinese_chars`: drop NUL, U+FFFD, controls; whitespace -> " "; space out CJK. */
function cleanText(text: string, tokenizeChineseChars: boolean): string {
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp === 0 || cp === 0xfffd || isControl(ch, cp)) continue;
    if (isWhitespace(ch, cp)) out += ' ';
    else if (tokenizeChineseChars && isCjk(cp)) out += ` ${ch} `;
    else out += ch;
  }
  return out;
}

/** HF `_run_split_on_punc`: every punctuation char becomes its own token. */
function splitOnPunctuation(token: string, out: string[]): void {
  let current = '';
  for (const ch of token) {
    if (isPunctuation(ch, ch.codePointAt(0)!)) {
      if (current) out.push(current);
      out.push(ch);
      current = '';
    } else {
      current += ch;
    }
  }
  if (current) out.push(current);
}

/**
 * Parse a vocab.txt as HF `load_vocab` does: one token per line, id = line index; a duplicated token maps to its
 * last line (HF builds a dict). Unlike HF, a trailing "\r" and a leading BOM are dropped, so CRLF files still work.
 */
function parseVocab(vocabText: string): string[] {
  const text = vocabText.startsWith('\ufeff') ? vocabText.slice(1) : vocabText;
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop(); // the final newline ends a line, it adds none
  return lines.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
}

export class WordPieceTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly special: SpecialTokenIds;
  readonly maxLength: number;
  private readonly vocab: Map<string, number>;
  private readonly idToTok: (string | undefined)[];
  private readonly unkToken: string;
  private readonly lowerCase: boolean;
  private readonly stripAccents: boolean;
  private readonly tokenizeChineseChars: boolean;
  private readonly composeUnicode: boolean;
  private readonly addedTokens: readonly AddedToken[];
  private readonly template: SpecialsTemplate;
  private readonly prefix: string;
  private readonly maxCharsPerWord: number;

  private constructor(idToTok: (string | undefined)[], vocab: Map<string, number>, opts: TokenizerOptions) {
    this.idToTok = idToTok;
    this.vocab = vocab;
    this.vocabSize = idToTok.length;
    const names = opts.specialTokens ?? BERT_SPECIAL_TOKENS;
    const lookup = (name: keyof SpecialTokenIds): number => {
      const id = this.vocab.get(names[name]);
      if (id === undefined) {
        throw new FedloraError(
          'MODEL_INVALID',
          `vocab (${idToTok.length} tokens) lacks the special token ${names[name]}`,
        );
      }
      return id;
    };
    this.special = {
      pad: lookup('pad'),
      unk: lookup('unk'),
      cls: lookup('cls'),
      sep: lookup('sep'),
      mask: lookup('mask'),
    };
    this.unkToken = names.unk;
    this.maxLength = opts.maxLength ?? DEFAULT_MAX_LENGTH;
    checkMaxLength(this.maxLength, 'maxLength');
    this.lowerCase = opts.doLowerCase;
    // HF: with lower-casing, accents are stripped unless strip_accents is explicitly false; without, only if true.
    this.stripAccents = opts.doLowerCase ? opts.stripAccents !== false : opts.stripAccents === true;
    this.tokenizeChineseChars = opts.tokenizeChineseChars ?? true;
    this.composeUnicode = opts.composeUnicode ?? true;
    this.addedTokens = opts.addedTokens ?? Object.values(names).map((content) => ({ content }));
    this.template = opts.template ?? bertTemplate(names.cls, names.sep);
    this.prefix = opts.continuingSubwordPrefix ?? '##';
    this.maxCharsPerWord = opts.maxInputCharsPerWord ?? DEFAULT_MAX_CHARS_PER_WORD;
  }

  static fromVocabText(vocabText: string, opts: TokenizerOptions): WordPieceTokenizer {
    const tokens = parseVocab(vocabText);
    if (tokens.length === 0) throw new FedloraError('MODEL_INVALID', 'vocab is empty');
    const vocab = new Map<string, number>();
    tokens.forEach((tok, id) => vocab.set(tok, id));
    return new WordPieceTokenizer(tokens, vocab, opts);
  }

  /** From a token → id map (tokenizer.json's model.vocab plus its added tokens). */
  static fromVocabMap(vocab: ReadonlyMap<string, number>, opts: TokenizerOptions): WordPieceTokenizer {
    if (vocab.size === 0) throw new FedloraError('MODEL_INVALID', 'vocab is empty');
    const idToTok: (string | undefined)[] = [];
    for (const [tok, id] of vocab) idToTok[id] = tok;
    return new WordPieceTokenizer(Array.from(idToTok), new Map(vocab), opts);
  }

  /** Wordpieces of `text`, without [CLS]/[SEP]. Special-token strings in the text are kept as single tokens. */
  tokenize(text: string): string[] {
    const out: string[] = [];
    for (const segment of splitAddedTokens(text, this.addedTokens)) {
      if (segment.added) {
        out.push(segment.text);
        continue;
      }
      for (const word of this.basicTokenize(segment.text)) this.wordpiece(word, out);
    }
    return out;
  }

  /** [CLS] a [SEP] (b [SEP]), truncated 'longest_first' to maxLength like HF's slow tokenizer; never padded. */
  encode(text: string, pair?: string, opts?: { maxLength?: number }): Encoding {
    const b = pair === undefined ? null : this.tokenize(pair);
    return applyTemplate(this.tokenize(text), b, this.template, opts?.maxLength ?? this.maxLength, (t) => this.tokenToId(t));
  }

  /** As HF: an id outside the vocab reads as the unknown token. */
  idToToken(id: number): string {
    return this.idToTok[id] ?? this.unkToken;
  }

  tokenToId(tok: string): number {
    return this.vocab.get(tok) ?? this.special.unk;
  }

  /** HF BasicTokenizer.tokenize on text free of special tokens. */
  private basicTokenize(text: string): string[] {
    // HF lower-cases the whole text before splitting it (PreTrainedTokenizer.tokenize), then each token again.
    const lowered = this.lowerCase ? text.toLowerCase() : text;
    const cleaned = cleanText(lowered, this.tokenizeChineseChars);
    const out: string[] = [];
    for (let token of whitespaceSplit(this.composeUnicode ? cleaned.normalize('NFC') : cleaned)) {
      if (this.lowerCase) token = token.toLowerCase();
      if (this.stripAccents) token = token.normalize('NFD').replace(RE_MN, '');
      splitOnPunctuation(token, out);
    }
    return out.flatMap(whitespaceSplit);
  }

  /** HF WordpieceTokenizer: greedy longest-match-first; a word with any unmatched rest becomes one unknown token. */
  private wordpiece(word: string, out: string[]): void {
    const chars = Array.from(word); // code points, as Python's list(str)
    if (chars.length > this.maxCharsPerWord) {
      out.push(this.unkToken);
      return;
    }
    const offsets = [0]; // UTF-16 offset of each code point boundary, so substrings are slices
    for (const ch of chars) offsets.push(offsets[offsets.length - 1] + ch.length);
    const pieces: string[] = [];
    let start = 0;
    while (start < chars.length) {
      let end = chars.length;
      let piece: string | null = null;
      while (start < end) {
        const sub = (start > 0 ? this.prefix : '') + word.slice(offsets[start], offsets[end]);
        if (this.vocab.has(sub)) {
          piece = sub;
          break;
        }
        end--;
      }
      if (piece === null) {
        out.push(this.unkToken);
        return;
      }
      pieces.push(piece);
      start = end;
    }
    out.push(...pieces);
  }
}
