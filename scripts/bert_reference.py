#!/usr/bin/env python3
"""An independent reference for `fedlora-site inspect`: BERT's uncased WordPiece tokenizer and its encoder forward
pass written from the Hugging Face definitions in plain PyTorch (Debian's python3-torch; no transformers, no
tokenizers), reading config.json, vocab.txt and model.safetensors itself. It shares no code with fedlora.

Usage: python3 scripts/bert_reference.py --model models/fedlora-bert-mini --text "…" [--max-length 512]
Prints one JSON line: {"inputIds": [...], "cls": [...], "mean": [...]} (the last layer's [CLS] vector and the
attention-masked mean over tokens). scripts/inspect-parity.ts compares it with `fedlora-site inspect --json`.
"""
import argparse
import json
import math
import struct
import unicodedata

import numpy as np
import torch

DTYPES = {"F32": np.float32, "F16": np.float16}


def load_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        body = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        arr = np.frombuffer(body[a:b], dtype=DTYPES[meta["dtype"]]).reshape(meta["shape"])
        out[name.removeprefix("bert.")] = torch.from_numpy(arr.astype(np.float32))
    return out


# ---- tokenizer (BERT's BasicTokenizer + WordpieceTokenizer, uncased) ----

def is_punct(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
            or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def basic_tokens(text):
    cleaned = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch).startswith("C") and ch not in "\t\n\r"):
            continue
        cleaned.append(" " if ch.isspace() else (f" {ch} " if is_cjk(cp) else ch))
    words = []
    for word in "".join(cleaned).split():
        word = "".join(c for c in unicodedata.normalize("NFD", word.lower()) if unicodedata.category(c) != "Mn")
        cur = ""
        for ch in word:
            if is_punct(ch):
                if cur:
                    words.append(cur)
                words.append(ch)
                cur = ""
            else:
                cur += ch
        if cur:
            words.append(cur)
    return words


def wordpiece(word, vocab, max_chars=100):
    if len(word) > max_chars:
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(word):
        end, found = len(word), None
        while start < end:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                found = piece
                break
            end -= 1
        if found is None:
            return ["[UNK]"]
        pieces.append(found)
        start = end
    return pieces


# ---- encoder ----

def encoder(w, cfg, ids):
    H, heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg.get("layer_norm_eps", 1e-12)
    T = len(ids)
    ids_t = torch.tensor(ids)
    x = w["embeddings.word_embeddings.weight"][ids_t] + w["embeddings.position_embeddings.weight"][:T] \
        + w["embeddings.token_type_embeddings.weight"][0]
    ln = lambda t, p: torch.nn.functional.layer_norm(t, (H,), w[p + ".weight"], w[p + ".bias"], eps)
    lin = lambda t, p: t @ w[p + ".weight"].T + w[p + ".bias"]
    x = ln(x, "embeddings.LayerNorm")
    hd = H // heads
    for l in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{l}."
        split = lambda t: t.reshape(T, heads, hd).transpose(0, 1)  # [heads, T, hd]
        q, k, v = (split(lin(x, p + f"attention.self.{m}")) for m in ("query", "key", "value"))
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1)
        ctx = (att @ v).transpose(0, 1).reshape(T, H)
        x = ln(x + lin(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        h = torch.nn.functional.gelu(lin(x, p + "intermediate.dense"))  # exact (erf) GELU
        x = ln(x + lin(h, p + "output.dense"), p + "output.LayerNorm")
    return x


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--text", required=True)
    ap.add_argument("--max-length", type=int, default=512)
    a = ap.parse_args()
    cfg = json.load(open(f"{a.model}/config.json"))
    vocab = {t: i for i, t in enumerate(open(f"{a.model}/vocab.txt", encoding="utf-8").read().split("\n")) if t}
    pieces = [p for word in basic_tokens(a.text) for p in wordpiece(word, vocab)]
    ids = [vocab["[CLS]"]] + [vocab[p] for p in pieces][: a.max_length - 2] + [vocab["[SEP]"]]
    w = load_safetensors(f"{a.model}/model.safetensors")
    with torch.no_grad():
        x = encoder(w, cfg, ids).double()
    print(json.dumps({"inputIds": ids, "cls": x[0].tolist(), "mean": x.mean(0).tolist()}))


if __name__ == "__main__":
    main()
