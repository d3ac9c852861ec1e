// Reads a Hugging Face tokenizer.json (the `tokenizers` library's one-file format) into a fedlora Tokenizer, from its
// text (isomorphic: the Node loader reads the file, the browser its model cache). Supported, the layouts BERT-family
// and RoBERTa-family checkpoints ship: a WordPiece model behind BertNormalizer + BertPreTokenizer (built as today's
// WordPieceTokenizer, which is faster than a generic pipeline: see the commit adding this file), and a BPE model behind
// the ByteLevel pre-tokenizer with an optional Unicode/lowercase normalizer. Anything else is refused by name.

import { FedloraError } from '../errors';
import { ByteLevelBpeTokenizer } from './byte-level-bpe';
import {
  bertTemplate,
  robertaTemplate,
  type AddedToken,
  type SpecialsTemplate,
  type SpecialTokenIds,
  type TemplatePiece,
  type Tokenizer,
  WHITE_SPACE_CLASS,
} from './tokenizer';
import { WordPieceTokenizer } from './wordpiece';

type Json = Record<string, unknown>;

export interface TokenizerJsonContext {
  /** tokenizer_config.json, parsed (its *_token fields name the roles), or null */
  tokenizerConfig: Json | null;
  /** config.json's pad_token_id: the padding token when nothing else names it */
  padTokenId?: number;
  maxLength: number;
  /** names the file in errors */
  path: string;
}

const SUPPORTED = 'WordPiece (with BertNormalizer and BertPreTokenizer) or BPE (with the ByteLevel pre-tokenizer)';

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A Tokenizer from tokenizer.json's text. */
export function tokenizerFromJson(text: string, ctx: TokenizerJsonContext): Tokenizer {
  const invalid = (why: string) => new FedloraError('MODEL_INVALID', `${ctx.path}: ${why}`);
  const unsupported = (why: string) => new FedloraError('MODEL_UNSUPPORTED', `${ctx.path}: ${why}; fedlora reads ${SUPPORTED}`);
  let tj: unknown;
  try {
    tj = JSON.parse(text);
  } catch (err) {
    throw new FedloraError('MODEL_INVALID', `${ctx.path} is not valid JSON`, { cause: err });
  }
  if (!isObject(tj) || !isObject(tj.model)) throw invalid('no "model" object');
  const model = tj.model;
  // older files leave the model's type out; its fields tell which it is
  const type = model.type ?? ('merges' in model ? 'BPE' : 'continuing_subword_prefix' in model ? 'WordPiece' : undefined);
  if (type !== 'WordPiece' && type !== 'BPE')
    throw unsupported(`model type ${JSON.stringify(type ?? null)} is not supported`);
  if (!isObject(model.vocab)) throw invalid(`model.vocab must map tokens to ids`);

  const vocab = new Map<string, number>();
  for (const [tok, id] of Object.entries(model.vocab)) {
    if (!Number.isInteger(id) || (id as number) < 0) throw invalid(`model.vocab: ${JSON.stringify(tok)} has id ${JSON.stringify(id)}`);
    vocab.set(tok, id as number);
  }
  const added = readAddedTokens(tj.added_tokens, vocab, invalid);
  const template = readTemplate(tj.post_processor ?? null, type, unsupported, invalid);
  const unkToken = typeof model.unk_token === 'string' ? model.unk_token : null;
  const special = resolveRoles(tj, template, unkToken, vocab, ctx, invalid);
  const addedTokens = added.map(({ content, lstrip, rstrip }) => ({ content, lstrip, rstrip }));

  if (type === 'WordPiece') {
    const norm = tj.normalizer;
    if (!isObject(norm) || norm.type !== 'BertNormalizer')
      throw unsupported(`a WordPiece model with normalizer ${describe(norm)} is not supported`);
    if (norm.clean_text === false) throw unsupported('BertNormalizer with clean_text false is not supported');
    const pre = tj.pre_tokenizer;
    if (!isObject(pre) || pre.type !== 'BertPreTokenizer')
      throw unsupported(`a WordPiece model with pre_tokenizer ${describe(pre)} is not supported`);
    const names = Object.fromEntries(Object.entries(special).map(([role, id]) => [role, tokenOf(vocab, id)])) as Record<keyof SpecialTokenIds, string>;
    return WordPieceTokenizer.fromVocabMap(vocab, {
      doLowerCase: norm.lowercase !== false,
      stripAccents: typeof norm.strip_accents === 'boolean' ? norm.strip_accents : null,
      tokenizeChineseChars: norm.handle_chinese_chars !== false,
      composeUnicode: false, // the Rust BertNormalizer does not NFC-compose (the slow BertTokenizer does)
      specialTokens: names,
      addedTokens,
      template,
      continuingSubwordPrefix: typeof model.continuing_subword_prefix === 'string' ? model.continuing_subword_prefix : '##',
      maxInputCharsPerWord: typeof model.max_input_chars_per_word === 'number' ? model.max_input_chars_per_word : 100,
      maxLength: ctx.maxLength,
    });
  }

  const pre = readByteLevel(tj.pre_tokenizer ?? null, unsupported);
  for (const field of ['continuing_subword_prefix', 'end_of_word_suffix'] as const)
    if (typeof model[field] === 'string' && model[field] !== '')
      throw unsupported(`BPE ${field} ${JSON.stringify(model[field])} is not supported with the ByteLevel pre-tokenizer`);
  if (model.byte_fallback === true) throw unsupported('BPE byte_fallback is not supported');
  if (typeof model.dropout === 'number' && model.dropout > 0)
    throw unsupported(`BPE dropout ${model.dropout} is not supported (tokenization would be random)`);
  if (!Array.isArray(model.merges)) throw invalid('BPE model.merges must be a list');
  const merges = model.merges.map((m, i): [string, string] => {
    // "a b" (older files) or ["a", "b"]
    const pair = typeof m === 'string' ? splitOnce(m) : Array.isArray(m) && m.length === 2 ? (m as [string, string]) : null;
    if (!pair || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') throw invalid(`BPE merge ${i} is ${JSON.stringify(m)}`);
    return pair;
  });
  return new ByteLevelBpeTokenizer({
    vocab,
    merges,
    special,
    unkToken: unkToken !== null && vocab.has(unkToken) ? unkToken : null,
    addedTokens,
    template,
    normalize: readNormalizer(tj.normalizer ?? null, unsupported),
    addPrefixSpace: pre.add_prefix_space !== false,
    useRegex: pre.use_regex !== false,
    ignoreMerges: model.ignore_merges === true,
    maxLength: ctx.maxLength,
  });
}

function describe(component: unknown): string {
  return isObject(component) ? JSON.stringify(component.type) : JSON.stringify(component ?? null);
}

function splitOnce(m: string): [string, string] | null {
  const at = m.indexOf(' ');
  return at < 0 ? null : [m.slice(0, at), m.slice(at + 1)];
}

function tokenOf(vocab: ReadonlyMap<string, number>, id: number): string {
  for (const [tok, i] of vocab) if (i === id) return tok;
  throw new FedloraError('MODEL_INVALID', `tokenizer.json: no token has id ${id}`);
}

interface AddedTokenEntry extends AddedToken {
  id: number;
}

/** added_tokens: each joins the vocab under its id (they may lie outside model.vocab). */
function readAddedTokens(raw: unknown, vocab: Map<string, number>, invalid: (why: string) => FedloraError): AddedTokenEntry[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw invalid('added_tokens must be a list');
  return raw.map((a, i) => {
    if (!isObject(a) || typeof a.content !== 'string' || a.content === '' || !Number.isInteger(a.id))
      throw invalid(`added_tokens[${i}] needs a content string and an integer id`);
    vocab.set(a.content, a.id as number);
    return { content: a.content, id: a.id as number, lstrip: a.lstrip === true, rstrip: a.rstrip === true };
  });
}

/** The post-processor as a template; TemplateProcessing, BertProcessing, RobertaProcessing (ByteLevel adds none). */
function readTemplate(
  pp: unknown,
  modelType: 'WordPiece' | 'BPE',
  unsupported: (why: string) => FedloraError,
  invalid: (why: string) => FedloraError,
): SpecialsTemplate {
  // no specials: A, or A then B with token type 1 (the Rust default for a pair)
  const plain: SpecialsTemplate = { single: [{ sequence: 'A', typeId: 0 }], pair: [{ sequence: 'A', typeId: 0 }, { sequence: 'B', typeId: 1 }] };
  if (pp === null) return plain;
  if (!isObject(pp)) throw invalid('post_processor must be an object or null');
  const tokenOfPair = (v: unknown, what: string): string => {
    if (!Array.isArray(v) || typeof v[0] !== 'string') throw invalid(`post_processor.${what} must be [token, id]`);
    return v[0];
  };
  switch (pp.type) {
    case 'ByteLevel':
      return plain;
    case 'BertProcessing':
      return bertTemplate(tokenOfPair(pp.cls, 'cls'), tokenOfPair(pp.sep, 'sep'));
    case 'RobertaProcessing':
      return robertaTemplate(tokenOfPair(pp.cls, 'cls'), tokenOfPair(pp.sep, 'sep'));
    case 'TemplateProcessing': {
      const specials = isObject(pp.special_tokens) ? pp.special_tokens : {};
      const read = (items: unknown, which: string): TemplatePiece[] => {
        if (!Array.isArray(items)) throw invalid(`post_processor.${which} must be a list`);
        return items.flatMap((item): TemplatePiece[] => {
          if (isObject(item) && isObject(item.SpecialToken)) {
            const { id, type_id } = item.SpecialToken;
            // a template special may stand for several tokens (special_tokens[id].tokens)
            const entry = isObject(specials[id as string]) ? (specials[id as string] as Json) : null;
            const tokens = Array.isArray(entry?.tokens) ? (entry.tokens as string[]) : [id as string];
            return tokens.map((special) => ({ special, typeId: Number(type_id ?? 0) }));
          }
          if (isObject(item) && isObject(item.Sequence) && (item.Sequence.id === 'A' || item.Sequence.id === 'B'))
            return [{ sequence: item.Sequence.id, typeId: Number(item.Sequence.type_id ?? 0) }];
          throw invalid(`post_processor.${which} has an item ${JSON.stringify(item)}`);
        });
      };
      return { single: read(pp.single, 'single'), pair: read(pp.pair, 'pair') };
    }
    case 'Sequence': {
      // e.g. [ByteLevel, TemplateProcessing]: only one of them may add specials
      const parts = (Array.isArray(pp.processors) ? pp.processors : []).filter((p) => !(isObject(p) && p.type === 'ByteLevel'));
      if (parts.length > 1) throw unsupported('a post_processor Sequence with more than one special-token processor is not supported');
      return parts.length ? readTemplate(parts[0], modelType, unsupported, invalid) : plain;
    }
    default:
      throw unsupported(`post_processor ${describe(pp)} is not supported`);
  }
}

/** Which token has each role: the template's first/last special, tokenizer_config.json's *_token, the usual names. */
function resolveRoles(
  tj: Json,
  template: SpecialsTemplate,
  unkToken: string | null,
  vocab: ReadonlyMap<string, number>,
  ctx: TokenizerJsonContext,
  invalid: (why: string) => FedloraError,
): SpecialTokenIds {
  const configured = (key: string): string | undefined => {
    const v = ctx.tokenizerConfig?.[key];
    if (typeof v === 'string') return v;
    if (isObject(v) && typeof v.content === 'string') return v.content; // an AddedToken written as an object
    return undefined;
  };
  const specials = template.single.flatMap((p) => ('special' in p ? [p.special] : []));
  const padding = isObject(tj.padding) && typeof tj.padding.pad_token === 'string' ? tj.padding.pad_token : undefined;
  const padFromConfig = ctx.padTokenId !== undefined ? [...vocab].find(([, id]) => id === ctx.padTokenId)?.[0] : undefined;
  const candidates: Record<keyof SpecialTokenIds, (string | null | undefined)[]> = {
    pad: [configured('pad_token'), padding, '[PAD]', '<pad>', padFromConfig],
    unk: [unkToken, configured('unk_token'), '[UNK]', '<unk>'],
    cls: [specials[0], configured('cls_token'), configured('bos_token'), '[CLS]', '<s>'],
    sep: [specials.at(-1), configured('sep_token'), configured('eos_token'), '[SEP]', '</s>'],
    mask: [configured('mask_token'), '[MASK]', '<mask>'],
  };
  const out = {} as SpecialTokenIds;
  for (const role of Object.keys(candidates) as (keyof SpecialTokenIds)[]) {
    const token = candidates[role].find((t): t is string => typeof t === 'string' && vocab.has(t));
    if (token === undefined)
      throw invalid(`no ${role} token: none of ${candidates[role].filter((t) => typeof t === 'string').join(', ')} is in the vocab`);
    out[role] = vocab.get(token) as number;
  }
  return out;
}

function readByteLevel(pre: unknown, unsupported: (why: string) => FedloraError): Json {
  if (isObject(pre) && pre.type === 'ByteLevel') return pre;
  if (isObject(pre) && pre.type === 'Sequence' && Array.isArray(pre.pretokenizers) && pre.pretokenizers.length === 1)
    return readByteLevel(pre.pretokenizers[0], unsupported);
  throw unsupported(`a BPE model with pre_tokenizer ${describe(pre)} is not supported`);
}

/** The normalizers a byte-level BPE may have: Unicode forms, Lowercase, StripAccents, Strip, and Sequences of them. */
function readNormalizer(norm: unknown, unsupported: (why: string) => FedloraError): (s: string) => string {
  if (norm === null) return (s) => s;
  if (!isObject(norm)) throw unsupported(`normalizer ${JSON.stringify(norm)} is not supported`);
  switch (norm.type) {
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD': {
      const form = norm.type;
      return (s) => s.normalize(form);
    }
    case 'Lowercase':
      return (s) => s.toLowerCase();
    case 'StripAccents': // removes nonspacing marks; tokenizer.json puts NFD before it
      return (s) => s.replace(/\p{Mn}/gu, '');
    case 'Strip': {
      const left = norm.strip_left !== false;
      const right = norm.strip_right !== false;
      const ws = new RegExp(`^[${WHITE_SPACE_CLASS}]+|[${WHITE_SPACE_CLASS}]+$`, 'gu');
      return (s) => s.replace(ws, (m, at: number) => ((at === 0 ? left : right) ? '' : m));
    }
    case 'Sequence': {
      const steps = (Array.isArray(norm.normalizers) ? norm.normalizers : []).map((n) => readNormalizer(n, unsupported));
      return (s) => steps.reduce((acc, f) => f(acc), s);
    }
    default:
      throw unsupported(`normalizer ${describe(norm)} is not supported with a BPE model`);
  }
}
