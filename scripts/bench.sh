#!/usr/bin/env bash
# stance vs PyTorch + transformers on this machine, in one run: inference,
# full and LoRA fine-tuning sentences/s, end-to-end article labelling vs
# pipeline("text-classification"), peak memory, cold-start predict; plus the
# interoperability checks (each side loads the other's checkpoint and the
# logits must agree to 1e-4). Alternates the two tools, several repetitions,
# and reports medians.
#
# Usage: scripts/bench.sh [THREADS] [ROUNDS]      (defaults: 2 threads, 3 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
rounds=${2:-3}
venv=scripts/bench/.venv
scripts/fetch-base-model.sh
cargo build --release --quiet
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet torch transformers peft
fi
py="$venv/bin/python"
st="target/release/stance --threads $threads"
base=models/all-MiniLM-L6-v2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
res="$work/results.jsonl"
common="--batch-size 16 --max-len 48"
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads RAYON_NUM_THREADS=$threads
head -n 256 data/stance.train.jsonl > "$work/train-subset.jsonl"

for r in $(seq "$rounds"); do
  echo "round $r/$rounds" >&2
  $st bench --model $base --data data/stance.test.jsonl --mode infer $common --reps 3 >> "$res"
  $st bench --model $base --data data/stance.test.jsonl --mode infer $common --reps 3 --precision bf16 | sed 's/"mode":"infer"/"mode":"infer-bf16"/' >> "$res"
  "$py" scripts/bench/pytorch_ref.py --model $base --data data/stance.test.jsonl --mode infer $common --reps 3 --threads "$threads" >> "$res"
  $st bench --model $base --data "$work/train-subset.jsonl" --mode train-full $common --reps 2 --steps 6 >> "$res"
  "$py" scripts/bench/pytorch_ref.py --model $base --data "$work/train-subset.jsonl" --mode train-full $common --reps 2 --steps 6 --threads "$threads" >> "$res"
  $st bench --model $base --data "$work/train-subset.jsonl" --mode train-lora $common --reps 2 --steps 6 >> "$res"
  "$py" scripts/bench/pytorch_ref.py --model $base --data "$work/train-subset.jsonl" --mode train-lora $common --reps 2 --steps 6 --threads "$threads" >> "$res"
  # pipeline() runs the shipped model's architecture (all-mpnet-base-v2 with a
  # fresh head: the shipped delta needs stance to overlay it) and truncates
  # where stance predict does (max_len 128), so both label whole sentences.
  "$py" scripts/bench/pytorch_ref.py --model models/all-mpnet-base-v2 --data data/stance.test.jsonl --mode pipeline --batch-size 16 --max-len 128 --reps 1 --threads "$threads" >> "$res"
done

# End to end on whole articles: the test split's 28 articles as plain text,
# labelled by the shipped model (MPNet, as the pipeline() rows), process
# start, model load, splitting and tokenising included.
"$py" - "$work" <<'PY'
import json, sys, collections
arts = collections.OrderedDict()
for l in open("data/stance.test.jsonl"):
    r = json.loads(l); arts.setdefault(r["article"], []).append(r["text"])
for i, (a, s) in enumerate(arts.items()):
    open(f"{sys.argv[1]}/article-{i:02d}.txt", "w").write(" ".join(s) + "\n")
# one article of about 20 sentences for the cold-start check
best = min(arts.values(), key=lambda s: abs(len(s) - 20))
open(f"{sys.argv[1]}/one.txt", "w").write(" ".join(best) + "\n")
print(len(best), file=open(f"{sys.argv[1]}/one.n", "w"))
PY
n_sent=$(wc -l < data/stance.test.jsonl)
for r in $(seq "$rounds"); do
  s=$(date +%s.%N); $st predict --format jsonl "$work"/article-*.txt > "$work/e2e.jsonl"; e=$(date +%s.%N)
  echo "{\"tool\": \"stance\", \"mode\": \"end-to-end\", \"sentences_per_second\": $(printf %.4f "$(echo "$n_sent / ($e - $s)" | bc -l)")}" >> "$res"
  s=$(date +%s.%N); $st predict --precision bf16 --format jsonl "$work"/article-*.txt > "$work/e2e-bf16.jsonl"; e=$(date +%s.%N)
  echo "{\"tool\": \"stance\", \"mode\": \"end-to-end-bf16\", \"sentences_per_second\": $(printf %.4f "$(echo "$n_sent / ($e - $s)" | bc -l)")}" >> "$res"
  s=$(date +%s.%N); $st predict --format jsonl "$work/one.txt" > /dev/null; e=$(date +%s.%N)
  echo "{\"tool\": \"stance\", \"mode\": \"cold-start-seconds\", \"seconds\": $(printf %.4f "$(echo "$e - $s" | bc -l)"), \"sentences\": $(cat "$work/one.n")}" >> "$res"
done

# What bf16 costs in accuracy: the shipped model on the test split.
for p in f32 bf16; do
  $st eval --precision $p --data data/stance.test.jsonl --json > "$work/eval-$p.json"
done

# Interoperability, both ways, on 50 test sentences.
$st train --train "$work/train-subset.jsonl" --base $base --out "$work/st-ckpt" --method full --epochs 1 --max-len 48 >/dev/null 2>&1
# Logits at 128 tokens, so that no test sentence is cut: stance labels a
# sentence longer than the window by its head and tail, transformers by its head.
$st bench --model "$work/st-ckpt" --data data/stance.test.jsonl --limit 50 --max-len 128 --logits-out "$work/st-on-st.json"
"$py" scripts/bench/pytorch_ref.py --model "$work/st-ckpt" --data data/stance.test.jsonl --mode logits --limit 50 --max-len 128 --out "$work/pt-on-st.json"
"$py" scripts/bench/pytorch_ref.py --model $base --data "$work/train-subset.jsonl" --mode train-save --max-len 48 --out "$work/pt-ckpt"
"$py" scripts/bench/pytorch_ref.py --model "$work/pt-ckpt" --data data/stance.test.jsonl --mode logits --limit 50 --max-len 128 --out "$work/pt-on-pt.json"
$st bench --model "$work/pt-ckpt" --data data/stance.test.jsonl --limit 50 --max-len 128 --logits-out "$work/st-on-pt.json"
# A stance LoRA checkpoint loaded by PEFT over the base.
$st train --train "$work/train-subset.jsonl" --base $base --out "$work/st-lora" --method lora --epochs 1 --max-len 48 --lr 1e-3 >/dev/null 2>&1
$st bench --model "$work/st-lora" --data data/stance.test.jsonl --limit 50 --max-len 128 --logits-out "$work/st-on-lora.json"
"$py" scripts/bench/pytorch_ref.py --model $base --adapter "$work/st-lora" --data data/stance.test.jsonl --mode logits --limit 50 --max-len 128 --out "$work/peft-on-lora.json"
# The RoBERTa family: a stance checkpoint trained from transformers' tiny
# random RobertaForSequenceClassification, loaded back by transformers.
rob=tests/fixtures/roberta-tiny
$st train --train "$work/train-subset.jsonl" --base $rob --out "$work/st-roberta" --method full --epochs 1 --max-len 32 >/dev/null 2>&1
$st bench --model "$work/st-roberta" --data data/stance.test.jsonl --limit 50 --max-len 128 --logits-out "$work/st-on-roberta.json"
"$py" scripts/bench/pytorch_ref.py --model "$work/st-roberta" --data data/stance.test.jsonl --mode logits --limit 50 --max-len 128 --out "$work/pt-on-roberta.json"
$st bench --model $rob --data data/stance.test.jsonl --limit 50 --max-len 128 --logits-out "$work/st-on-ptroberta.json"
"$py" scripts/bench/pytorch_ref.py --model $rob --data data/stance.test.jsonl --mode logits --limit 50 --max-len 128 --out "$work/pt-on-ptroberta.json"
# MPNet (relative-position attention), the same both ways.
mpt=tests/fixtures/mpnet-tiny
$st train --train "$work/train-subset.jsonl" --base $mpt --out "$work/st-mpnet" --method full --epochs 1 --max-len 32 >/dev/null 2>&1
$st bench --model "$work/st-mpnet" --data data/stance.test.jsonl --limit 50 --max-len 128 --logits-out "$work/st-on-mpnet.json"
"$py" scripts/bench/pytorch_ref.py --model "$work/st-mpnet" --data data/stance.test.jsonl --mode logits --limit 50 --max-len 128 --out "$work/pt-on-mpnet.json"
$st bench --model $mpt --data data/stance.test.jsonl --limit 50 --max-len 128 --logits-out "$work/st-on-ptmpnet.json"
"$py" scripts/bench/pytorch_ref.py --model $mpt --data data/stance.test.jsonl --mode logits --limit 50 --max-len 128 --out "$work/pt-on-ptmpnet.json"

# The larger base, all-mpnet-base-v2: inference and full fine-tuning speed.
mp=models/all-mpnet-base-v2
for r in $(seq "$rounds"); do
  echo "mpnet round $r/$rounds" >&2
  $st bench --model $mp --data data/stance.test.jsonl --mode infer $common --reps 2 | sed 's/"mode":"infer"/"mode":"mpnet-infer"/' >> "$res"
  "$py" scripts/bench/pytorch_ref.py --model $mp --data data/stance.test.jsonl --mode infer $common --reps 2 --threads "$threads" | sed 's/"mode": *"infer"/"mode": "mpnet-infer"/' >> "$res"
  $st bench --model $mp --data "$work/train-subset.jsonl" --mode train-full $common --reps 1 --steps 3 | sed 's/"mode":"train-full"/"mode":"mpnet-train-full"/' >> "$res"
  "$py" scripts/bench/pytorch_ref.py --model $mp --data "$work/train-subset.jsonl" --mode train-full $common --reps 1 --steps 3 --threads "$threads" | sed 's/"mode": *"train-full"/"mode": "mpnet-train-full"/' >> "$res"
done

"$py" - "$res" "$work" "$threads" <<'PY'
import json, statistics, sys
res, work, threads = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [json.loads(l) for l in open(res) if l.strip()]
def med(tool, mode, key="sentences_per_second"):
    v = [r[key] for r in rows if r["tool"] == tool and r["mode"] == mode]
    return statistics.median(v) if v else float("nan")
def peak(tool, mode):
    v = [r.get("peak_rss_mb", float("nan")) for r in rows if r["tool"] == tool and r["mode"] == mode]
    return max(v) if v else float("nan")
print(f"\nall-MiniLM-L6-v2 (all-mpnet-base-v2 where named; whole articles: the shipped MPNet model), batch 16, max 48 tokens (whole articles 128), {threads} threads; medians of alternating runs\n")
print("| measure | stance | PyTorch | stance / PyTorch |")
print("|---|---|---|---|")
for mode, label in [("infer", "inference, sentences/s"), ("train-full", "full fine-tuning, sentences/s"), ("train-lora", "LoRA fine-tuning, sentences/s")]:
    s, p = med("stance", mode), med("pytorch", mode)
    print(f"| {label} | {s:.1f} | {p:.1f} | {s / p:.2f} |")
    if mode == "infer":
        s = med("stance", "infer-bf16")
        print(f"| inference, stance bf16 vs PyTorch fp32, sentences/s | {s:.1f} | {p:.1f} | {s / p:.2f} |")
for mode, label in [("infer", "inference peak memory, MB"), ("train-full", "full fine-tuning peak memory, MB"), ("train-lora", "LoRA peak memory, MB")]:
    s, p = peak("stance", mode), peak("pytorch", mode)
    print(f"| {label} | {s:.0f} | {p:.0f} | {s / p:.2f} |")
s, p = med("stance", "end-to-end"), med("pytorch", "pipeline")
print(f"| whole articles (stance predict) vs pipeline(), sentences/s | {s:.1f} | {p:.1f} | {s / p:.2f} |")
s = med("stance", "end-to-end-bf16")
print(f"| whole articles (stance predict --precision bf16) vs pipeline(), sentences/s | {s:.1f} | {p:.1f} | {s / p:.2f} |")
for mode, label in [("mpnet-infer", "all-mpnet-base-v2 inference, sentences/s"), ("mpnet-train-full", "all-mpnet-base-v2 full fine-tuning, sentences/s")]:
    s, p = med("stance", mode), med("pytorch", mode)
    print(f"| {label} | {s:.1f} | {p:.1f} | {s / p:.2f} |")
c = med("stance", "cold-start-seconds", "seconds")
print(f"| stance predict, one article, cold start, seconds | {c:.2f} | | |")
f32, bf16 = (json.load(open(f"{work}/eval-{p}.json")) for p in ("f32", "bf16"))
def macro(r):
    m = r.get("metrics", r)
    return m["macro_avg"]["f1"]
print(f"\nshipped model, test split macro-F1: f32 {macro(f32):.4f}, bf16 {macro(bf16):.4f} (bf16 - f32 = {macro(bf16) - macro(f32):+.4f})")
PY
echo
interop=0
"$py" scripts/bench/interop.py \
  "transformers loads a stance checkpoint" "$work/st-on-st.json" "$work/pt-on-st.json" \
  "stance loads a transformers checkpoint" "$work/st-on-pt.json" "$work/pt-on-pt.json" \
  "PEFT loads a stance LoRA adapter" "$work/st-on-lora.json" "$work/peft-on-lora.json" \
  "transformers loads a stance RoBERTa checkpoint" "$work/st-on-roberta.json" "$work/pt-on-roberta.json" \
  "stance loads transformers' RobertaForSequenceClassification" "$work/st-on-ptroberta.json" "$work/pt-on-ptroberta.json" \
  "transformers loads a stance MPNet checkpoint" "$work/st-on-mpnet.json" "$work/pt-on-mpnet.json" \
  "stance loads transformers' MPNetForSequenceClassification" "$work/st-on-ptmpnet.json" "$work/pt-on-ptmpnet.json" || interop=1
scripts/bench-attribution.sh "$threads" "$rounds"
exit "$interop"
