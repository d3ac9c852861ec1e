// Byte-level BPE (GPT-2, RoBERTa), rule for rule the Rust `tokenizers` crate that reads tokenizer.json: added tokens
// split out first, an optional normalizer, the ByteLevel pre-tokenizer (GPT-2's split pattern, each UTF-8 byte mapped
// to a printable character), then BPE merges by rank. Isomorphic. Built by tokenizer-json.ts.

import { FedloraError } from '../errors';
import {
  applyTemplate,
  checkMaxLength,
  splitAddedTokens,
  WHITE_SPACE_CLASS as WS,
  type AddedToken,
  type Encoding,
  type SpecialsTemplate,
  type SpecialTokenIds,
  type Tokenizer,
} from './tokenizer';

export interface ByteLevelBpeOptions {
  /** token → id, the model's vocab with the added tokens */
  vocab: ReadonlyMap<string, number>;
  /** merge pairs, highest priority first */
  merges: readonly (readonly [string, string])[];
  special: SpecialTokenIds;
  /** the unknown token for a symbol outside the vocab; null: such a symbol is dropped (as HF with unk_token null) */
  unkToken: string | null;
  addedTokens: readonly AddedToken[];
  template: SpecialsTemplate;
  /** applied to each stretch of text between added tokens; identity when the tokenizer has no normalizer */
  normalize: (text: string) => string;
  /** ByteLevel add_prefix_space: a stretch that does not start with a space gets one */
  addPrefixSpace: boolean;
  /** ByteLevel use_regex: split with GPT-2's pattern (else the whole stretch is one word) */
  useRegex: boolean;
  /** BPE ignore_merges: a word that is in the vocab is taken whole */
  ignoreMerges: boolean;
  maxLength: number;
}

// GPT-2's pattern as the Rust crate compiles it (Oniguruma): \s there is Unicode White_Space, not JS's \s.
const GPT2_SPLIT = new RegExp(
  `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WS}\\p{L}\\p{N}]+|[${WS}]+(?![^${WS}])|[${WS}]+`,
  'gu',
);

/** GPT-2's byte → character table: printable bytes map to themselves, the rest to U+0100 onwards. */
const BYTE_CHARS: readonly string[] = (() => {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) out[b] = String.fromCodePoint(printable(b) ? b : next++);
  return out;
})();

const utf8 = new TextEncoder();
// words repeat (" the"), so their merges are cached; the cache is cleared when it gets this big
const CACHE_LIMIT = 20_000;
// a pair key that no byte-level symbol can contain
const PAIR_SEPARATOR = '\u0000';

export class ByteLevelBpeTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly special: SpecialTokenIds;
  readonly maxLength: number;
  private readonly vocab: ReadonlyMap<string, number>;
  private readonly idToTok: (string | undefined)[] = [];
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, string[]>();

  constructor(private readonly o: ByteLevelBpeOptions) {
    this.vocab = o.vocab;
    for (const [tok, id] of o.vocab) this.idToTok[id] = tok;
    this.vocabSize = this.idToTok.length;
    o.merges.forEach(([a, b], rank) => {
      const key = a + PAIR_SEPARATOR + b;
      if (!this.ranks.has(key)) this.ranks.set(key, rank);
    });
    this.special = o.special;
    this.maxLength = o.maxLength;
    checkMaxLength(this.maxLength, 'maxLength');
    if (o.unkToken !== null && !o.vocab.has(o.unkToken))
      throw new FedloraError('MODEL_INVALID', `BPE unk_token ${o.unkToken} is not in the vocab`);
  }

  tokenize(text: string): string[] {
    const out: string[] = [];
    for (const segment of splitAddedTokens(text, this.o.addedTokens)) {
      if (segment.added) {
        out.push(segment.text);
        continue;
      }
      let s = this.o.normalize(segment.text);
      if (s === '') continue;
      if (this.o.addPrefixSpace && !s.startsWith(' ')) s = ' ' + s;
      for (const word of this.o.useRegex ? (s.match(GPT2_SPLIT) ?? []) : [s]) this.bpe(toByteChars(word), out);
    }
    return out;
  }

  encode(text: string, pair?: string, opts?: { maxLength?: number }): Encoding {
    const b = pair === undefined ? null : this.tokenize(pair);
    return applyTemplate(this.tokenize(text), b, this.o.template, opts?.maxLength ?? this.maxLength, (t) => this.tokenToId(t));
  }

  tokenToId(tok: string): number {
    return this.vocab.get(tok) ?? this.special.unk;
  }

  idToToken(id: number): string {
    return this.idToTok[id] ?? this.idToTok[this.special.unk] ?? '';
  }

  /** Merges the pair of lowest rank, every occurrence left to right, until no adjacent pair has a rank. */
  private bpe(word: string, out: string[]): void {
    if (this.o.ignoreMerges && this.vocab.has(word)) {
      out.push(word);
      return;
    }
    let symbols = this.cache.get(word);
    if (!symbols) {
      symbols = Array.from(word);
      for (;;) {
        let best = Infinity;
        for (let i = 0; i + 1 < symbols.length; i++) {
          const r = this.ranks.get(symbols[i] + PAIR_SEPARATOR + symbols[i + 1]);
          if (r !== undefined && r < best) best = r;
        }
        if (best === Infinity) break;
        const merged: string[] = [];
        for (let i = 0; i < symbols.length; i++) {
          const next = symbols[i + 1];
          if (next !== undefined && this.ranks.get(symbols[i] + PAIR_SEPARATOR + next) === best) {
            merged.push(symbols[i] + next);
            i++;
          } else merged.push(symbols[i]);
        }
        symbols = merged;
      }
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(word, symbols);
    }
    for (const s of symbols) {
      if (this.vocab.has(s)) out.push(s);
      else if (this.o.unkToken !== null) out.push(this.o.unkToken);
    }
  }
}

/** Each UTF-8 byte of `word` as its GPT-2 character ("Ġ" for a space). */
function toByteChars(word: string): string {
  let s = '';
  for (const b of utf8.encode(word)) s += BYTE_CHARS[b];
  return s;
}
