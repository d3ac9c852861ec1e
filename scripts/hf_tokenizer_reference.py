#!/usr/bin/env python3
"""An independent reference for the Hugging Face `tokenizer.json` format, written from the definitions of the Rust
`tokenizers` crate (normalizers/bert.rs, pre_tokenizers/bert.rs and byte_level.rs, models/wordpiece and models/bpe,
processors/template.rs and roberta.rs, added_vocabulary.rs) in plain Python: no transformers, no tokenizers, no
`regex` module. It shares no code with fedlora. scripts/family_reference.py uses it to write the tokenizer fixtures;
it also trains the tiny byte-level BPE of the RoBERTa fixture and writes both tokenizer.json layouts.

Supported: a WordPiece model with BertNormalizer + BertPreTokenizer, a BPE model with the ByteLevel pre-tokenizer
(no normalizer), post-processors TemplateProcessing and RobertaProcessing, added tokens with lstrip/rstrip.
"""
import json
import unicodedata

# Unicode White_Space (Rust char::is_whitespace, Oniguruma's \s): not Python's str.isspace, which adds \x1c-\x1f.
WHITE_SPACE = set("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | {chr(c) for c in range(0x2000, 0x200B)}


def is_whitespace(ch):
    return ch in WHITE_SPACE


def category(ch):
    return unicodedata.category(ch)


# ---- BertNormalizer (normalizers/bert.rs) -------------------------------------------------------------------------

def bert_is_control(ch):
    if ch in "\t\n\r":
        return False
    return category(ch).startswith("C")  # Cc, Cf, Cs, Co, Cn: unicode_categories' is_other


def bert_is_chinese(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
            or 0x2B740 <= cp <= 0x2B81F or 0x2B920 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF
            or 0x2F800 <= cp <= 0x2FA1F)


def bert_normalize(text, cfg):
    if cfg.get("clean_text", True):
        text = "".join(" " if (c in "\t\n\r" or is_whitespace(c)) else c
                       for c in text if not (c == "\0" or c == "\ufffd" or bert_is_control(c)))
    if cfg.get("handle_chinese_chars", True):
        text = "".join(f" {c} " if bert_is_chinese(ord(c)) else c for c in text)
    lowercase = cfg.get("lowercase", True)
    strip = cfg.get("strip_accents")
    if strip if strip is not None else lowercase:
        text = "".join(c for c in unicodedata.normalize("NFD", text) if category(c) != "Mn")
    if lowercase:
        text = text.lower()
    return text


# ---- BertPreTokenizer (pre_tokenizers/bert.rs): split on whitespace, isolate punctuation --------------------------

def is_bert_punct(ch):
    return (ch.isascii() and ch in "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") or category(ch).startswith("P")


def bert_pre_tokenize(text):
    words, cur = [], ""
    for ch in text:
        if is_whitespace(ch):
            if cur:
                words.append(cur)
            cur = ""
        elif is_bert_punct(ch):
            if cur:
                words.append(cur)
            words.append(ch)
            cur = ""
        else:
            cur += ch
    if cur:
        words.append(cur)
    return words


# ---- WordPiece (models/wordpiece) --------------------------------------------------------------------------------

def wordpiece(word, model):
    vocab, prefix, unk = model["vocab"], model.get("continuing_subword_prefix", "##"), model["unk_token"]
    if len(word) > model.get("max_input_chars_per_word", 100):
        return [unk]
    pieces, start = [], 0
    while start < len(word):
        end, found = len(word), None
        while start < end:
            piece = (prefix if start > 0 else "") + word[start:end]
            if piece in vocab:
                found = piece
                break
            end -= 1
        if found is None:
            return [unk]
        pieces.append(found)
        start = end
    return pieces


# ---- ByteLevel (pre_tokenizers/byte_level.rs) ---------------------------------------------------------------------

def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_CHARS = bytes_to_unicode()
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]


def is_letter(ch):
    return category(ch).startswith("L")


def is_number(ch):
    return category(ch).startswith("N")


def gpt2_split(s):
    """GPT-2's pattern 's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+ as a hand
    scanner: at each position the first alternative that matches, each greedy (with the lookahead's backtrack)."""
    out, i, n = [], 0, len(s)

    def run(j, pred):
        k = j
        while k < n and pred(s[k]):
            k += 1
        return k

    other = lambda c: not (is_whitespace(c) or is_letter(c) or is_number(c))
    while i < n:
        m = next((c for c in CONTRACTIONS if s.startswith(c, i)), None)
        if m:
            out.append(m)
            i += len(m)
            continue
        end = None
        for pred in (is_letter, is_number, other):
            j = i + 1 if s[i] == " " and i + 1 < n and pred(s[i + 1]) else i
            k = run(j, pred)
            if k > j:
                end = k
                break
        if end is None:  # whitespace: \s+(?!\S), else \s+
            k = run(i, is_whitespace)
            end = k if k == n or k - i == 1 else k - 1
        out.append(s[i:end])
        i = end
    return out


def byte_level_pre_tokenize(text, cfg):
    if cfg.get("add_prefix_space", True) and not text.startswith(" "):
        text = " " + text
    words = gpt2_split(text) if cfg.get("use_regex", True) else [text]
    return ["".join(BYTE_CHARS[b] for b in w.encode("utf-8")) for w in words]


# ---- BPE (models/bpe): merge the lowest-ranked pair, all its occurrences left to right, until none applies -------

def bpe(word, ranks):
    symbols = list(word)
    while len(symbols) > 1:
        pairs = [(ranks.get((a, b)), i) for i, (a, b) in enumerate(zip(symbols, symbols[1:]))]
        pairs = [p for p in pairs if p[0] is not None]
        if not pairs:
            break
        best = min(pairs)[0]
        a, b = next((x, y) for x, y in zip(symbols, symbols[1:]) if ranks.get((x, y)) == best)
        merged, i = [], 0
        while i < len(symbols):
            if i + 1 < len(symbols) and symbols[i] == a and symbols[i + 1] == b:
                merged.append(a + b)
                i += 2
            else:
                merged.append(symbols[i])
                i += 1
        symbols = merged
    return symbols


def train_byte_level_bpe(texts, num_merges):
    """The classic BPE training loop on byte-level words: count adjacent pairs, merge the most frequent (ties broken by
    the pair's text, so the result is deterministic), repeat."""
    counts = {}
    for t in texts:
        for w in byte_level_pre_tokenize(t, {"add_prefix_space": False}):
            counts[w] = counts.get(w, 0) + 1
    words = {w: list(w) for w in counts}
    merges = []
    for _ in range(num_merges):
        pair_counts = {}
        for w, syms in words.items():
            for p in zip(syms, syms[1:]):
                pair_counts[p] = pair_counts.get(p, 0) + counts[w]
        if not pair_counts:
            break
        best = min(pair_counts, key=lambda p: (-pair_counts[p], p))
        if pair_counts[best] < 2:
            break
        merges.append(best)
        for w, syms in words.items():
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and (syms[i], syms[i + 1]) == best:
                    out.append(syms[i] + syms[i + 1])
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            words[w] = out
    return merges


# ---- the pipeline: added tokens → normalizer → pre-tokenizer → model → post-processor -----------------------------

def split_added_tokens(text, added):
    """added_vocabulary.rs: leftmost-longest matches of the added tokens in the raw text; lstrip/rstrip make a match
    swallow the whitespace beside it. Returns [(segment, is_added)]."""
    by_content = sorted(added, key=lambda a: -len(a["content"]))
    out, i, start = [], 0, 0
    while i < len(text):
        hit = next((a for a in by_content if text.startswith(a["content"], i)), None)
        if hit is None:
            i += 1
            continue
        left, right = i, i + len(hit["content"])
        if hit.get("lstrip"):
            while left > start and is_whitespace(text[left - 1]):
                left -= 1
        if hit.get("rstrip"):
            while right < len(text) and is_whitespace(text[right]):
                right += 1
        if left > start:
            out.append((text[start:left], False))
        out.append((hit["content"], True))
        i = start = right
    if start < len(text):
        out.append((text[start:], False))
    return out


def tokenize(text, tj):
    model = tj["model"]
    tokens = []
    for segment, is_added in split_added_tokens(text, tj["added_tokens"]):
        if is_added:
            tokens.append(segment)
            continue
        norm = tj.get("normalizer")
        if norm is not None:
            assert norm["type"] == "BertNormalizer", norm["type"]
            segment = bert_normalize(segment, norm)
        pre = tj["pre_tokenizer"]
        if model["type"] == "WordPiece":
            assert pre["type"] == "BertPreTokenizer"
            tokens += [p for w in bert_pre_tokenize(segment) for p in wordpiece(w, model)]
        else:
            assert model["type"] == "BPE" and pre["type"] == "ByteLevel"
            ranks = {tuple(m.split(" ") if isinstance(m, str) else m): r for r, m in enumerate(model["merges"])}
            tokens += [p for w in byte_level_pre_tokenize(segment, pre) for p in bpe(w, ranks)]
    return tokens


def post_process(a, b, tj):
    """[(token, type_id)] with the specials of the post-processor."""
    pp = tj["post_processor"]
    if pp["type"] == "RobertaProcessing":  # every type id is 0 (processors/roberta.rs)
        cls, sep = pp["cls"][0], pp["sep"][0]
        seq = [cls] + a + [sep] + ([sep] + b + [sep] if b is not None else [])
        return [(t, 0) for t in seq]
    assert pp["type"] == "TemplateProcessing"
    out = []
    for item in pp["single" if b is None else "pair"]:
        if "SpecialToken" in item:
            out.append((item["SpecialToken"]["id"], item["SpecialToken"]["type_id"]))
        else:
            seq = a if item["Sequence"]["id"] == "A" else b
            out += [(t, item["Sequence"]["type_id"]) for t in seq]
    return out


def token_id(token, tj):
    for a in tj["added_tokens"]:
        if a["content"] == token:
            return a["id"]
    vocab = tj["model"]["vocab"]
    return vocab[token] if token in vocab else vocab[tj["model"]["unk_token"]]


def encode(text, tj, pair=None):
    a = tokenize(text, tj)
    b = tokenize(pair, tj) if pair is not None else None
    seq = post_process(a, b, tj)
    tokens = [t for t, _ in seq]
    return {"tokens": tokens, "input_ids": [token_id(t, tj) for t in tokens], "token_type_ids": [y for _, y in seq]}


# ---- tokenizer.json writers, in the layouts Hugging Face saves for BERT and RoBERTa -------------------------------

def added(content, id_, lstrip=False):
    return {"id": id_, "content": content, "single_word": False, "lstrip": lstrip, "rstrip": False,
            "normalized": False, "special": True}


def wordpiece_tokenizer_json(vocab, lowercase, strip_accents=None):
    v = {t: i for i, t in enumerate(vocab)}
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    template = lambda seqs: [x for s, y in seqs for x in ([{"SpecialToken": {"id": s, "type_id": y}}] if s.startswith("[")
                                                          else [{"Sequence": {"id": s, "type_id": y}}])]
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added(s, v[s]) for s in specials],
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": strip_accents, "lowercase": lowercase},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": template([("[CLS]", 0), ("A", 0), ("[SEP]", 0)]),
            "pair": template([("[CLS]", 0), ("A", 0), ("[SEP]", 0), ("B", 1), ("[SEP]", 1)]),
            "special_tokens": {s: {"id": s, "ids": [v[s]], "tokens": [s]} for s in ("[CLS]", "[SEP]")},
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                  "max_input_chars_per_word": 100, "vocab": v},
    }


def byte_level_bpe_tokenizer_json(merges):
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    vocab = {s: i for i, s in enumerate(specials)}
    for b in sorted(BYTE_CHARS):
        vocab.setdefault(BYTE_CHARS[b], len(vocab))
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    vocab["<mask>"] = len(vocab)
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added(s, vocab[s]) for s in specials] + [added("<mask>", vocab["<mask>"], lstrip=True)],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", vocab["</s>"]], "cls": ["<s>", vocab["<s>"]],
                           "trim_offsets": True, "add_prefix_space": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges]},
    }


if __name__ == "__main__":
    import sys
    tj = json.load(open(sys.argv[1], encoding="utf-8"))
    for line in sys.argv[2:]:
        print(json.dumps(encode(line, tj), ensure_ascii=False))
