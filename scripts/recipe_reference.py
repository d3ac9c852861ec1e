#!/usr/bin/env python3
"""A PyTorch reference of `fedlora-site train-local`'s default recipe, to check that our tfjs training reaches the
same quality on the same rows (issue 22: Banking77 subsets within 0.03 macro-F1). Plain PyTorch (Debian's
python3-torch 1.13; no transformers): the frozen encoder and the WordPiece tokenizer come from bert_reference.py,
written from the Hugging Face definitions; LoRA, the head and the training loop are written here from the recipe's
description (shared/src/training/recipe.ts), not translated from our code:
  LoRA r 8, alpha 16 on query and value of every layer (A ~ U(+-1/sqrt(in)), B = 0), a linear head on the masked mean
  of the last layer, AdamW lr 2e-3 (decay 0.01 on matrices only), warm-up min(50, steps/10) then linear decay to 0,
  batch 32, global gradient-norm clip 1.0, steps = 3 epochs' steps clamped to [300, 2000], validation macro-F1 every
  ceil(steps/10) steps and after the last, stop after 3 evaluations without a better score (ties: lower validation
  loss), restore the best.

Usage: /usr/bin/python3 scripts/recipe_reference.py --model DIR --train A.csv --validation B.csv --heldout C.csv
       --labels labels.json [--seed 0] [--max-length 128] [--threads 2]
CSV files: columns text,label. Prints one JSON line with accuracy, macroF1, steps, bestStep and seconds.
"""
import argparse
import csv
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bert_reference import basic_tokens, load_safetensors, wordpiece  # noqa: E402

RECIPE = dict(r=8, alpha=16, lr=2e-3, weight_decay=0.01, batch=32, epochs=3, min_steps=300, max_steps=2000,
              warmup=50, clip=1.0, evaluations=10, patience=3)


def read_csv(path, label_ids):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [label_ids[r["label"]] for r in rows]


class LoraBert(torch.nn.Module):
    """Frozen BERT encoder with LoRA on query/value and a mean-pooled linear head; batched with an attention mask."""

    def __init__(self, w, cfg, num_labels, r, alpha):
        super().__init__()
        self.w, self.cfg = w, cfg
        H = cfg["hidden_size"]
        self.scaling = alpha / r
        self.lora = torch.nn.ParameterDict()
        for l in range(cfg["num_hidden_layers"]):
            for m in ("query", "value"):
                bound = 1 / math.sqrt(H)
                self.lora[f"{l}_{m}_A"] = torch.nn.Parameter(torch.empty(r, H).uniform_(-bound, bound))
                self.lora[f"{l}_{m}_B"] = torch.nn.Parameter(torch.zeros(H, r))
        self.head = torch.nn.Linear(H, num_labels)  # PyTorch's default init, as ours

    def forward(self, ids, mask):
        w, cfg = self.w, self.cfg
        H, heads, eps = cfg["hidden_size"], cfg["num_attention_heads"], cfg.get("layer_norm_eps", 1e-12)
        B, T = ids.shape
        hd = H // heads
        ln = lambda t, p: F.layer_norm(t, (H,), w[p + ".weight"], w[p + ".bias"], eps)
        lin = lambda t, p: t @ w[p + ".weight"].T + w[p + ".bias"]
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:T] \
            + w["embeddings.token_type_embeddings.weight"][0]
        x = ln(x, "embeddings.LayerNorm")
        bias = (1.0 - mask[:, None, None, :].float()) * -1e9
        for l in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{l}."

            def proj(m):
                out = lin(x, p + f"attention.self.{m}")
                if m in ("query", "value"):
                    out = out + (x @ self.lora[f"{l}_{m}_A"].T @ self.lora[f"{l}_{m}_B"].T) * self.scaling
                return out.reshape(B, T, heads, hd).transpose(1, 2)

            q, k, v = proj("query"), proj("key"), proj("value")
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + bias, dim=-1)
            ctx = (att @ v).transpose(1, 2).reshape(B, T, H)
            x = ln(x + lin(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm")
            h = F.gelu(lin(x, p + "intermediate.dense"))
            x = ln(x + lin(h, p + "output.dense"), p + "output.LayerNorm")
        m = mask[:, :, None].float()
        return self.head((x * m).sum(1) / m.sum(1))


def collate(examples):
    T = max(len(e) for e in examples)
    ids = torch.zeros(len(examples), T, dtype=torch.long)
    mask = torch.zeros(len(examples), T, dtype=torch.long)
    for i, e in enumerate(examples):
        ids[i, : len(e)] = torch.tensor(e)
        mask[i, : len(e)] = 1
    return ids, mask


def macro_f1(y_true, y_pred, k):
    f1s = []
    for c in range(k):
        tp = sum(1 for t, p in zip(y_true, y_pred) if t == c and p == c)
        support = sum(1 for t in y_true if t == c)
        predicted = sum(1 for p in y_pred if p == c)
        if support or predicted:
            f1s.append(2 * tp / (support + predicted))
    return sum(f1s) / len(f1s)


def evaluate(model, enc, y, k):
    model.eval()
    preds, loss = [], 0.0
    order = sorted(range(len(enc)), key=lambda i: -len(enc[i]))
    with torch.no_grad():
        for s in range(0, len(order), 64):
            idx = order[s : s + 64]
            logits = model(*collate([enc[i] for i in idx]))
            loss += F.cross_entropy(logits, torch.tensor([y[i] for i in idx]), reduction="sum").item()
            preds += list(zip(idx, logits.argmax(1).tolist()))
    pred = [p for _, p in sorted(preds)]
    acc = sum(int(a == b) for a, b in zip(y, pred)) / len(y)
    return acc, macro_f1(y, pred, k), loss / len(y)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for a in ("--model", "--train", "--validation", "--heldout", "--labels"):
        ap.add_argument(a, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    torch.set_num_threads(a.threads)
    cfg = json.load(open(f"{a.model}/config.json"))
    vocab = {t: i for i, t in enumerate(open(f"{a.model}/vocab.txt", encoding="utf-8").read().split("\n")) if t}
    w = load_safetensors(f"{a.model}/model.safetensors")
    labels = json.load(open(a.labels))
    label_ids = {l: i for i, l in enumerate(labels)}
    k = len(labels)

    def encode(texts):
        out = []
        for t in texts:
            pieces = [p for word in basic_tokens(t) for p in wordpiece(word, vocab)]
            out.append([vocab["[CLS]"]] + [vocab[p] for p in pieces][: a.max_length - 2] + [vocab["[SEP]"]])
        return out

    (tr_x, tr_y), (va_x, va_y), (he_x, he_y) = (read_csv(p, label_ids) for p in (a.train, a.validation, a.heldout))
    tr, va, he = encode(tr_x), encode(va_x), encode(he_x)
    R = RECIPE
    steps = min(R["max_steps"], max(R["min_steps"], math.ceil(len(tr) / R["batch"]) * R["epochs"]))
    warmup = min(R["warmup"], steps // 10)
    every = max(1, math.ceil(steps / R["evaluations"]))

    model = LoraBert(w, cfg, k, R["r"], R["alpha"])
    params = list(model.parameters())
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": R["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=R["lr"], eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if warmup and s < warmup else max(0.0, (steps - s - 1) / max(1, steps - warmup)))

    start = time.time()
    step, best, best_state, since_best, history = 0, None, None, 0, []
    while step < steps:
        order = list(range(len(tr)))
        random.shuffle(order)
        for s in range(0, len(order), R["batch"]):
            if step >= steps:
                break
            idx = order[s : s + R["batch"]]
            model.train()
            loss = F.cross_entropy(model(*collate([tr[i] for i in idx])), torch.tensor([tr_y[i] for i in idx]))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, R["clip"])
            opt.step()
            sched.step()
            step += 1
            if step % every == 0 or step == steps:
                _, f1, vloss = evaluate(model, va, va_y, k)
                history.append({"step": step, "score": f1, "loss": vloss})
                if best is None or f1 > best["score"] or (f1 == best["score"] and vloss < best["loss"]):
                    best, since_best = history[-1], 0
                    best_state = {n: p.detach().clone() for n, p in model.named_parameters()}
                else:
                    since_best += 1
                    if since_best >= R["patience"]:
                        steps = step  # early stop
    if best_state is not None:
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(best_state[n])
    seconds = time.time() - start
    acc, f1, _ = evaluate(model, he, he_y, k)
    print(json.dumps({"accuracy": acc, "macroF1": f1, "steps": step, "bestStep": best["step"], "validationMacroF1": best["score"],
                      "trainExamples": len(tr), "validationExamples": len(va), "heldoutExamples": len(he), "seconds": seconds}))


if __name__ == "__main__":
    main()
