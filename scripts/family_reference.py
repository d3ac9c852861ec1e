#!/usr/bin/env python3
"""Writes the parity fixtures of the DistilBERT and RoBERTa model families (tests/fixtures/<family>-reference/):
a small random checkpoint with the real Hugging Face tensor names and config.json fields, its tokenizer.json (a cased
WordPiece for DistilBERT, a byte-level BPE trained here for RoBERTa), a LoRA adapter in PEFT layout, and the expected
token ids and last hidden states. The encoders are written from transformers' modeling_distilbert.py and
modeling_roberta.py in plain PyTorch (Debian's python3-torch; no transformers), the tokenizers by
scripts/hf_tokenizer_reference.py. It shares no code with fedlora and is not needed by `npm test`.

Usage: /usr/bin/python3 scripts/family_reference.py [--out tests/fixtures]
"""
import argparse
import json
import math
import os
import random
import struct

import numpy as np
import torch

import hf_tokenizer_reference as tok

HIDDEN, LAYERS, HEADS, INTERMEDIATE = 32, 2, 4, 64
LORA_R, LORA_ALPHA = 2, 4

# The texts every fixture tokenizes: accents, unicode, punctuation, long words, whitespace and special-token edge cases.
TEXTS = [
    "Hello world! The patient's BP was 120/80 mmHg.",
    "Café naïve résumé — déjà vu at the Straße café.",
    "  leading,   multiple\tspaces\tand\nnew lines  ",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "Unicode: 中文字 日本語 한국어 😀 ½ ① ﬁ İstanbul x\u0378y",
    "decomposed e\u0301 vs composed é; ZWJ 👨\u200d👩\u200d👧",
    "Tokens <mask> and [MASK] inside [CLS] text",
    "don't won't I'm we'll they've 3.14 1,000,000 $5 #tag @user",
    "\u00a0nbsp\u2028line\u2029para\u3000ideo\u0085nel\ufeffbom\u200bzw ctrl\x07\x00chars",
    "x" * 120 + " end",
    "",
]
PAIR = ("How old are you?", "I am six.")

WORDS = ("the patient account card refund payment blood pressure study results new transfer bank loan interest "
         "rate clinical trial heart acute chronic therapy dose hospital doctor nurse report market stock fund risk "
         "credit score balance fraud alert verify password click here offer free limited price value growth care "
         "Hello World The Patient Bank Card Monday Friday London Paris café naïve résumé déjà Straße über señor "
         "and or of to in on for with by from at as is was are were be been has have had will would should can "
         "could not no yes very more most less least high low fast slow good bad great small large old young").split()


def corpus(n_sentences=80, seed=7):
    """A few hundred words of generated text: sentences of random words with numbers and punctuation."""
    rng = random.Random(seed)
    out = []
    for _ in range(n_sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 10))]
        if rng.random() < 0.3:
            words.insert(rng.randint(0, len(words)), str(rng.randint(1, 2000)))
        s = " ".join(words)
        out.append(s[0].upper() + s[1:] + rng.choice([".", "!", "?", ",", ";", " —", "'s"]))
    return out


# ---- safetensors (written by hand: the format is 8 bytes of header length, a JSON header, the raw tensors) --------

def write_safetensors(path, tensors, f32=()):
    """F16 for every tensor (small fixtures) except the names in f32."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        dtype = "F32" if name in f32 else "F16"
        data = t.detach().numpy().astype(np.float32 if dtype == "F32" else np.float16).tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw + b"".join(blobs))


def as_stored(t, dtype="F16"):
    """The value the fixture holds after the round trip through its dtype (the reference computes on exactly that)."""
    return t.half().float() if dtype == "F16" else t.float()


# ---- random weights ----------------------------------------------------------------------------------------------

def rand(gen, *shape, std=0.3):
    return torch.randn(*shape, generator=gen) * std


def layer_norm_params(gen, prefix, n=HIDDEN):
    return {prefix + ".weight": 1 + rand(gen, n, std=0.1), prefix + ".bias": rand(gen, n, std=0.1)}


def linear_params(gen, prefix, out_f, in_f):
    return {prefix + ".weight": rand(gen, out_f, in_f, std=1 / math.sqrt(in_f)), prefix + ".bias": rand(gen, out_f, std=0.1)}


def sinusoidal(n_pos, dim):
    """modeling_distilbert.create_sinusoidal_embeddings."""
    enc = np.array([[pos / np.power(10000, 2 * (j // 2) / dim) for j in range(dim)] for pos in range(n_pos)])
    out = np.zeros((n_pos, dim), dtype=np.float32)
    out[:, 0::2] = np.sin(enc[:, 0::2])
    out[:, 1::2] = np.cos(enc[:, 1::2])
    return torch.from_numpy(out)


# ---- encoders ------------------------------------------------------------------------------------------------------

def attention_bias(mask):
    """[B, 1, 1, T]: 0 for real keys, float32-min for padding (BERT/RoBERTa add it; DistilBERT's masked_fill with the
    same value gives the same softmax)."""
    return (1 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min


def self_attention(x, bias, q, k, v, heads):
    B, T, H = x.shape
    hd = H // heads
    split = lambda t: t.view(B, T, heads, hd).transpose(1, 2)  # [B, heads, T, hd]
    scores = split(q(x)) @ split(k(x)).transpose(-1, -2) / math.sqrt(hd) + bias
    return (torch.softmax(scores, dim=-1) @ split(v(x))).transpose(1, 2).reshape(B, T, H)


def linear(w, name, lora=None):
    """x·Wᵀ + b, plus the LoRA branch (x·Aᵀ·Bᵀ·alpha/r) when the adapter has this module."""
    def f(x):
        y = x @ w[name + ".weight"].T + w[name + ".bias"]
        if lora is not None and name in lora:
            a, b = lora[name]
            y = y + (x @ a.T @ b.T) * (LORA_ALPHA / LORA_R)
        return y
    return f


def roberta_forward(w, cfg, ids, mask, types, lora=None):
    """modeling_roberta.RobertaModel (no prefix in `w`): BERT's encoder; positions count real tokens from padding_idx+1."""
    eps, pad = cfg["layer_norm_eps"], cfg["pad_token_id"]
    not_pad = (ids != pad).int()
    positions = torch.cumsum(not_pad, dim=1) * not_pad + pad  # create_position_ids_from_input_ids
    ln = lambda t, p: torch.nn.functional.layer_norm(t, (HIDDEN,), w[p + ".weight"], w[p + ".bias"], eps)
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][positions] \
        + w["embeddings.token_type_embeddings.weight"][types]
    x = ln(x, "embeddings.LayerNorm")
    bias = attention_bias(mask)
    for l in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{l}."
        att = self_attention(x, bias, *(linear(w, p + f"attention.self.{m}", lora) for m in ("query", "key", "value")),
                             cfg["num_attention_heads"])
        x = ln(x + linear(w, p + "attention.output.dense")(att), p + "attention.output.LayerNorm")
        h = torch.nn.functional.gelu(linear(w, p + "intermediate.dense")(x))
        x = ln(x + linear(w, p + "output.dense")(h), p + "output.LayerNorm")
    return x


def distilbert_forward(w, cfg, ids, mask, types=None, lora=None):
    """modeling_distilbert.DistilBertModel: word + position embeddings (no token types), then post-LN blocks with
    q_lin/k_lin/v_lin/out_lin, sa_layer_norm, ffn.lin1/lin2 and output_layer_norm (LayerNorm eps 1e-12)."""
    T = ids.shape[1]
    ln = lambda t, p: torch.nn.functional.layer_norm(t, (cfg["dim"],), w[p + ".weight"], w[p + ".bias"], 1e-12)
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:T]
    x = ln(x, "embeddings.LayerNorm")
    bias = attention_bias(mask)
    for l in range(cfg["n_layers"]):
        p = f"transformer.layer.{l}."
        att = self_attention(x, bias, *(linear(w, p + f"attention.{m}_lin", lora) for m in ("q", "k", "v")), cfg["n_heads"])
        x = ln(linear(w, p + "attention.out_lin")(att) + x, p + "sa_layer_norm")
        h = torch.nn.functional.gelu(linear(w, p + "ffn.lin1")(x))
        x = ln(linear(w, p + "ffn.lin2")(h) + x, p + "output_layer_norm")
    return x


# ---- the two families ----------------------------------------------------------------------------------------------

def distilbert_vocab(texts):
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = [chr(c) for c in range(33, 127)] + list("éèàçïñüßÉ中文字日本語")
    counts = {}
    for t in texts:
        for w in tok.bert_pre_tokenize(t):
            counts[w] = counts.get(w, 0) + 1
    words = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if len(w) > 1][:120]
    pieces = ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"] + ["##s", "##ing", "##ed", "##ly", "##er", "##tion", "##é"]
    vocab = []
    for t in specials + chars + words + pieces:
        if t not in vocab:
            vocab.append(t)
    return vocab


def make_distilbert(gen, texts):
    vocab = distilbert_vocab(texts)
    tj = tok.wordpiece_tokenizer_json(vocab, lowercase=False)  # cased, as BioBERT-style checkpoints are
    cfg = {"architectures": ["DistilBertModel"], "model_type": "distilbert", "vocab_size": len(vocab), "dim": HIDDEN,
           "n_layers": LAYERS, "n_heads": HEADS, "hidden_dim": INTERMEDIATE, "activation": "gelu", "dropout": 0.1,
           "attention_dropout": 0.1, "max_position_embeddings": 128, "sinusoidal_pos_embds": True, "pad_token_id": 0,
           "initializer_range": 0.02, "qa_dropout": 0.1, "seq_classif_dropout": 0.2, "tie_weights_": True}
    w = {"embeddings.word_embeddings.weight": rand(gen, len(vocab), HIDDEN, std=1.0),
         "embeddings.position_embeddings.weight": sinusoidal(128, HIDDEN)}
    w.update(layer_norm_params(gen, "embeddings.LayerNorm"))
    for l in range(LAYERS):
        p = f"transformer.layer.{l}."
        for m in ("q_lin", "k_lin", "v_lin", "out_lin"):
            w.update(linear_params(gen, p + "attention." + m, HIDDEN, HIDDEN))
        w.update(layer_norm_params(gen, p + "sa_layer_norm"))
        w.update(linear_params(gen, p + "ffn.lin1", INTERMEDIATE, HIDDEN))
        w.update(linear_params(gen, p + "ffn.lin2", HIDDEN, INTERMEDIATE))
        w.update(layer_norm_params(gen, p + "output_layer_norm"))
    # the sinusoidal table stays F32 so a loader that rebuilds it from the config gets the same numbers
    f32 = {"embeddings.position_embeddings.weight"}
    w = {k: as_stored(t, "F32" if k in f32 else "F16") for k, t in w.items()}
    lora_modules = [f"transformer.layer.{l}.attention.{m}" for l in range(LAYERS) for m in ("q_lin", "v_lin")]
    # saved as DistilBertModel saves: no "distilbert." prefix
    return {"config": cfg, "tokenizer": tj, "weights": w, "stored": dict(w), "f32": f32, "forward": distilbert_forward,
            "lora_modules": lora_modules, "peft_prefix": "base_model.model.", "target_modules": ["q_lin", "v_lin"],
            "pad": 0}


def make_roberta(gen, texts):
    merges = tok.train_byte_level_bpe(texts, 260)
    tj = tok.byte_level_bpe_tokenizer_json(merges)
    V = len(tj["model"]["vocab"])
    cfg = {"architectures": ["RobertaForMaskedLM"], "model_type": "roberta", "vocab_size": V, "hidden_size": HIDDEN,
           "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "intermediate_size": INTERMEDIATE,
           "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
           "max_position_embeddings": 130, "type_vocab_size": 1, "initializer_range": 0.02, "layer_norm_eps": 1e-05,
           "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "position_embedding_type": "absolute"}
    w = {"embeddings.word_embeddings.weight": rand(gen, V, HIDDEN, std=1.0),
         "embeddings.position_embeddings.weight": rand(gen, 130, HIDDEN, std=0.5),
         "embeddings.token_type_embeddings.weight": rand(gen, 1, HIDDEN, std=0.5)}
    w.update(layer_norm_params(gen, "embeddings.LayerNorm"))
    for l in range(LAYERS):
        p = f"encoder.layer.{l}."
        for m in ("query", "key", "value"):
            w.update(linear_params(gen, p + "attention.self." + m, HIDDEN, HIDDEN))
        w.update(linear_params(gen, p + "attention.output.dense", HIDDEN, HIDDEN))
        w.update(layer_norm_params(gen, p + "attention.output.LayerNorm"))
        w.update(linear_params(gen, p + "intermediate.dense", INTERMEDIATE, HIDDEN))
        w.update(linear_params(gen, p + "output.dense", HIDDEN, INTERMEDIATE))
        w.update(layer_norm_params(gen, p + "output.LayerNorm"))
    w = {k: as_stored(t) for k, t in w.items()}
    # saved as RobertaForMaskedLM saves: "roberta."-prefixed encoder (no pooler) and an lm_head the encoder ignores
    stored = {"roberta." + k: t for k, t in w.items()}
    stored.update({k: as_stored(t) for k, t in {**linear_params(gen, "lm_head.dense", HIDDEN, HIDDEN),
                                               **layer_norm_params(gen, "lm_head.layer_norm"),
                                               "lm_head.bias": rand(gen, V, std=0.1)}.items()})
    lora_modules = [f"encoder.layer.{l}.attention.self.{m}" for l in range(LAYERS) for m in ("query", "value")]
    return {"config": cfg, "tokenizer": tj, "weights": w, "stored": stored, "f32": set(), "forward": roberta_forward,
            "lora_modules": lora_modules, "peft_prefix": "base_model.model.roberta.", "target_modules": ["query", "value"],
            "pad": 1}


def round_list(t, digits=5):
    return np.round(t.double().numpy(), digits).tolist()


def write_family(name, fam, out_dir, gen):
    d = os.path.join(out_dir, f"{name}-reference")
    os.makedirs(d, exist_ok=True)
    tj, cfg, w = fam["tokenizer"], fam["config"], fam["weights"]
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=2)
    json.dump(tj, open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8"), ensure_ascii=False, indent=None,
              separators=(",", ":"))
    write_safetensors(os.path.join(d, "model.safetensors"), fam["stored"], fam["f32"])

    tokenizer_cases = [dict(text=t, **tok.encode(t, tj)) for t in TEXTS]
    tokenizer_cases.append(dict(text=PAIR[0], pair=PAIR[1], **tok.encode(PAIR[0], tj, PAIR[1])))

    def batch(encs):
        T = max(len(e["input_ids"]) for e in encs)
        pad = lambda xs, v: [x + [v] * (T - len(x)) for x in xs]
        ids = pad([e["input_ids"] for e in encs], fam["pad"])
        return {"input_ids": ids, "attention_mask": pad([[1] * len(e["input_ids"]) for e in encs], 0),
                "token_type_ids": pad([e["token_type_ids"] for e in encs], 0)}

    cases = [
        # the empty text pads 2 tokens to the longest: RoBERTa's padded positions must stay at padding_idx
        dict(name="three texts, right padding", **batch([tokenizer_cases[i] for i in (0, 1, 10)])),
        dict(name="a sentence pair", **batch([tokenizer_cases[-1]])),
        dict(name="whitespace edge cases, no padding", **batch([tokenizer_cases[2]])),
    ]
    run = lambda c, lora=None: fam["forward"](w, cfg, torch.tensor(c["input_ids"]), torch.tensor(c["attention_mask"]),
                                              torch.tensor(c["token_type_ids"]), lora)
    with torch.no_grad():
        for c in cases:
            c["last_hidden_state"] = round_list(run(c))
        # LoRA on query and value of every layer, in PEFT layout with the family's own module names
        lora, peft = {}, {}
        for m in fam["lora_modules"]:
            a = as_stored(rand(gen, LORA_R, HIDDEN, std=0.3))
            b = as_stored(rand(gen, HIDDEN, LORA_R, std=0.3))
            lora[m] = (a, b)
            peft[f"{fam['peft_prefix']}{m}.lora_A.weight"] = a
            peft[f"{fam['peft_prefix']}{m}.lora_B.weight"] = b
        lora_case = {"case": 1, "last_hidden_state": round_list(run(cases[1], lora))}
    write_safetensors(os.path.join(d, "lora.safetensors"), peft)
    json.dump({"peft_type": "LORA", "task_type": "FEATURE_EXTRACTION", "r": LORA_R, "lora_alpha": LORA_ALPHA,
               "lora_dropout": 0.0, "target_modules": fam["target_modules"], "bias": "none", "fan_in_fan_out": False,
               "base_model_name_or_path": f"{name}-reference"}, open(os.path.join(d, "adapter_config.json"), "w"), indent=2)
    fixtures = {"family": name, "tolerance_abs": 1e-4,
                "mask_value": "float32 min added to attention scores of padded keys", "gelu": "exact erf",
                "tokenizer_cases": tokenizer_cases, "cases": cases, "lora_case": lora_case}
    with open(os.path.join(d, "fixtures.json"), "w", encoding="utf-8") as f:
        json.dump(fixtures, f, ensure_ascii=False, separators=(",", ":"))
    print(f"{d}: vocab {cfg['vocab_size']}, " + ", ".join(f"{n} {os.path.getsize(os.path.join(d, n))} B" for n in sorted(os.listdir(d))))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")))
    a = ap.parse_args()
    texts = corpus()
    gen = torch.Generator().manual_seed(22)
    write_family("distilbert", make_distilbert(gen, texts), a.out, gen)
    write_family("roberta", make_roberta(gen, texts), a.out, gen)


if __name__ == "__main__":
    main()
