#!/usr/bin/env python3
"""PyTorch + transformers reference for scripts/bench.sh.

Measures exactly what `stance bench` measures (same sentences in the same
order, truncation to --max-len, batches padded to their longest member):

  infer        sentences/s of AutoModelForSequenceClassification in eval mode
  train-full   sentences/s of full fine-tuning steps (AdamW, clipping)
  train-lora   the same with PEFT LoRA r=8 on query,value (+ classifier)
  pipeline     sentences/s of pipeline("text-classification") on whole sentences
  attribution  sentences/s of the sentence classifier plus pipeline("token-classification") with a --tagger over whole --articles
  logits       write logits of the first --limit sentences as JSON (interop)
  train-save   fine-tune a few steps and save_pretrained (interop the other way)

Prints one JSON object per run, like `stance bench`.
"""
import argparse, json, resource, statistics, sys, time

import torch
from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

LABELS = ["assertion", "denial", "allegation", "context"]


def texts_from(path, limit=None):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line)["text"])
    return out[:limit] if limit else out


def load(model_dir):
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)), label2id={l: i for i, l in enumerate(LABELS)})
    return tok, model


def batches(tok, texts, bs, max_len):
    return [tok(texts[i:i + bs], padding=True, truncation=True, max_length=max_len, return_tensors="pt") for i in range(0, len(texts), bs)]


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--mode", required=True, choices=["infer", "train-full", "train-lora", "pipeline", "attribution", "logits", "train-save"])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-len", type=int, default=48)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--limit", type=int)
    ap.add_argument("--articles", nargs="*", default=[], help="attribution mode: the articles as text files")
    ap.add_argument("--out")
    ap.add_argument("--adapter", help="a PEFT LoRA directory to load over --model (logits mode)")
    ap.add_argument("--token", action="store_true", help="logits mode: --model is a token classifier (each sentence's token logits, flattened)")
    ap.add_argument("--tagger", help="attribution mode: a token classifier run by pipeline('token-classification') over the articles")
    ap.add_argument("--bf16", action="store_true", help="attribution mode: both models' weights in bfloat16 (oneDNN's bf16 kernels, AMX where the CPU has it)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    texts = texts_from(a.data, a.limit)
    if a.mode == "logits" and a.token:
        tok = AutoTokenizer.from_pretrained(a.model)
        model = AutoModelForTokenClassification.from_pretrained(a.model).eval()
        rows = []
        with torch.no_grad():
            for t in texts:
                b = tok([t], truncation=True, max_length=a.max_len, return_tensors="pt")
                rows.append(model(**b).logits[0].flatten().tolist())
        json.dump(rows, open(a.out, "w"))
        return
    tok, model = load(a.model)
    reps = []
    if a.mode == "logits":
        if a.adapter:
            from peft import PeftModel
            model = PeftModel.from_pretrained(model, a.adapter)
        model.eval()
        rows = []
        with torch.no_grad():
            for b in batches(tok, texts, 16, a.max_len):
                rows.extend(model(**b).logits.tolist())
        json.dump(rows, open(a.out, "w"))
        return
    if a.mode == "train-save":
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=5e-5)
        for i, b in enumerate(batches(tok, texts, 8, a.max_len)[:4]):
            y = torch.tensor([(i * 8 + j) % len(LABELS) for j in range(b["input_ids"].shape[0])])
            loss = model(**b, labels=y).loss
            loss.backward(); opt.step(); opt.zero_grad()
        model.save_pretrained(a.out, safe_serialization=True)
        tok.save_pretrained(a.out)
        return
    if a.mode == "infer":
        model.eval()
        bs = batches(tok, texts, a.batch_size, a.max_len)
        with torch.inference_mode():
            model(**bs[0])
            for _ in range(a.reps):
                t = time.perf_counter()
                for b in bs:
                    model(**b).logits.tolist()
                reps.append(len(texts) / (time.perf_counter() - t))
    elif a.mode == "attribution":
        # The two models on the same articles: the sentence classifier on
        # every sentence (--data), the tagger over each whole article
        # (--articles files), 128-token windows with a 16-token stride.
        # No warm-up: the first of --reps passes is cold, as a user's
        # first run is; later ones are warm.
        from transformers import pipeline
        model.eval()
        pipe = pipeline("text-classification", model=model, tokenizer=tok, device=-1, truncation=True, max_length=a.max_len)
        ttok = AutoTokenizer.from_pretrained(a.tagger)
        tagger = AutoModelForTokenClassification.from_pretrained(a.tagger).eval()
        if a.bf16:
            model, tagger = model.to(torch.bfloat16), tagger.to(torch.bfloat16)
            pipe = pipeline("text-classification", model=model, tokenizer=tok, device=-1, truncation=True, max_length=a.max_len)
        tag = pipeline("token-classification", model=tagger, tokenizer=ttok, device=-1, aggregation_strategy="simple", stride=16)
        tag.tokenizer.model_max_length = 128
        arts = [open(f, encoding="utf-8").read() for f in a.articles]
        for _ in range(a.reps):
            t = time.perf_counter()
            pipe(texts, batch_size=a.batch_size)
            tag(arts, batch_size=a.batch_size)
            reps.append(len(texts) / (time.perf_counter() - t))
    elif a.mode == "pipeline":
        from transformers import pipeline
        model.eval()
        pipe = pipeline("text-classification", model=model, tokenizer=tok, device=-1, truncation=True, max_length=a.max_len)
        pipe(texts[:a.batch_size], batch_size=a.batch_size)
        for _ in range(a.reps):
            t = time.perf_counter()
            pipe(texts, batch_size=a.batch_size)
            reps.append(len(texts) / (time.perf_counter() - t))
    else:
        if a.mode == "train-lora":
            from peft import LoraConfig, get_peft_model
            model = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["query", "value"]))
        model.train()
        need = a.batch_size * a.steps
        pool = (texts * (need // max(len(texts), 1) + 1))[:need]
        bs = batches(tok, pool, a.batch_size, a.max_len)
        params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for n, p in model.named_parameters() if p.requires_grad and not (n.endswith("bias") or "LayerNorm" in n)]
        nodecay = [p for n, p in model.named_parameters() if p.requires_grad and (n.endswith("bias") or "LayerNorm" in n)]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": nodecay, "weight_decay": 0.0}], lr=1e-5)

        def step(i, b):
            y = torch.tensor([(i * a.batch_size + j) % len(LABELS) for j in range(b["input_ids"].shape[0])])
            loss = torch.nn.functional.cross_entropy(model(**b).logits, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step(); opt.zero_grad(set_to_none=True)

        step(0, bs[0])
        for _ in range(a.reps):
            t = time.perf_counter()
            for i, b in enumerate(bs):
                step(i, b)
            reps.append(need / (time.perf_counter() - t))
    print(json.dumps({"tool": "pytorch", "mode": a.mode, "precision": "bf16" if a.bf16 else "f32", "batch_size": a.batch_size, "max_len": a.max_len,
                      "sentences_per_second": statistics.median(reps), "reps": reps, "peak_rss_mb": peak_mb(),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    sys.exit(main())
