#!/usr/bin/env bash
# Who claims what, timed: stance predict with the attribution tagger against
# stance predict without it (the tagger's cost), and against PyTorch +
# transformers running the same two models on the same articles
# (pipeline("text-classification") with the sentence model's architecture on
# every sentence, pipeline("token-classification") with the tagger's over
# every whole article); plus the tagger's interoperability with transformers
# both ways (token logits within 1e-4). scripts/bench.sh runs it at its end.
#
# Usage: scripts/bench-attribution.sh [THREADS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
rounds=${2:-3}
py=scripts/bench/.venv/bin/python
st="target/release/stance --threads $threads"
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads RAYON_NUM_THREADS=$threads
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
res="$work/results.jsonl"
tagger=models/stance-tagger
[ -d "$tagger" ] || { echo "no $tagger" >&2; exit 1; }
"$py" - "$work" <<'PY'
import json, sys, collections
arts = collections.OrderedDict()
for l in open("data/stance.test.jsonl"):
    r = json.loads(l); arts.setdefault(r["article"], []).append(r["text"])
for i, (a, s) in enumerate(arts.items()):
    open(f"{sys.argv[1]}/article-{i:02d}.txt", "w").write(" ".join(s) + "\n")
PY
n_sent=$(wc -l < data/stance.test.jsonl)
# PyTorch needs full checkpoints: the tagger's architecture is its base
# (all-MiniLM-L6-v2) with a fresh 7-tag head; the sentence model's is
# all-mpnet-base-v2 (timing only: the weights do not change the work).
"$py" - "$work/pt-tagger" <<'PY'
import sys
from transformers import AutoModelForTokenClassification, AutoTokenizer
tags = ["O", "B-SOURCE", "I-SOURCE", "B-CUE", "I-CUE", "B-CONTENT", "I-CONTENT"]
m = AutoModelForTokenClassification.from_pretrained("models/all-MiniLM-L6-v2", num_labels=7, id2label=dict(enumerate(tags)), label2id={t: i for i, t in enumerate(tags)})
m.save_pretrained(sys.argv[1]); AutoTokenizer.from_pretrained("models/all-MiniLM-L6-v2").save_pretrained(sys.argv[1])
PY
for r in $(seq "$rounds"); do
  echo "attribution round $r/$rounds" >&2
  s=$(date +%s.%N); $st predict --no-attribution --format jsonl "$work"/article-*.txt > /dev/null; e=$(date +%s.%N)
  echo "{\"tool\": \"stance\", \"mode\": \"sentences\", \"sentences_per_second\": $(echo "$n_sent / ($e - $s)" | bc -l)}" >> "$res"
  s=$(date +%s.%N); $st predict --format jsonl "$work"/article-*.txt > "$work/who.jsonl"; e=$(date +%s.%N)
  echo "{\"tool\": \"stance\", \"mode\": \"attribution\", \"sentences_per_second\": $(echo "$n_sent / ($e - $s)" | bc -l)}" >> "$res"
  "$py" scripts/bench/pytorch_ref.py --model models/all-mpnet-base-v2 --tagger "$work/pt-tagger" --data data/stance.test.jsonl --articles "$work"/article-*.txt --mode attribution --batch-size 16 --max-len 128 --reps 1 --threads "$threads" >> "$res"
done

# Interop: a stance tagger (trained fully for a few steps on three PolNeAR
# articles) loaded by transformers, and transformers' tiny random
# BertForTokenClassification loaded by stance; token logits of 50 sentences.
sub="$work/polnear-sub"; mkdir -p "$sub/text" "$sub/attributions"
for f in $(ls ../shared/realnews/polnear/train/text | head -3); do
  cp "../shared/realnews/polnear/train/text/$f" "$sub/text/"
  cp ../shared/realnews/polnear/train/attributions/"${f%.txt}"_*.ann "$sub/attributions/"
done
$st train --task attribution --train "$sub" --base models/all-MiniLM-L6-v2 --out "$work/st-tagger" --method full --epochs 1 --max-len 64 >/dev/null 2>&1
$st bench --model "$work/st-tagger" --data data/stance.test.jsonl --limit 50 --max-len 128 --logits-out "$work/st-on-st.json"
"$py" scripts/bench/pytorch_ref.py --model "$work/st-tagger" --token --data data/stance.test.jsonl --mode logits --limit 50 --max-len 128 --out "$work/pt-on-st.json"
fx=tests/fixtures/bert-token-tiny
$st bench --model $fx --data data/stance.test.jsonl --limit 50 --max-len 128 --logits-out "$work/st-on-pt.json"
"$py" scripts/bench/pytorch_ref.py --model $fx --token --data data/stance.test.jsonl --mode logits --limit 50 --max-len 128 --out "$work/pt-on-pt.json"

"$py" - "$res" "$work" "$threads" <<'PY'
import json, statistics, sys
res, work, threads = sys.argv[1:]
rows = [json.loads(l) for l in open(res) if l.strip()]
med = lambda tool, mode: statistics.median(r["sentences_per_second"] for r in rows if r["tool"] == tool and r["mode"] == mode)
s0, s1, p = med("stance", "sentences"), med("stance", "attribution"), med("pytorch", "attribution")
print(f"\nwho claims what on the test split's whole articles ({threads} threads, medians): sentence model + attribution tagger\n")
print("| measure | sentences/s | ratio |")
print("|---|---|---|")
print(f"| stance predict, sentences only | {s0:.1f} | |")
print(f"| stance predict with attribution | {s1:.1f} | costs {s0 / s1:.2f}x |")
print(f"| PyTorch: pipeline() text + token classification | {p:.1f} | stance {s1 / p:.2f}x faster |")
def maxdiff(a, b):
    A, B = json.load(open(f"{work}/{a}")), json.load(open(f"{work}/{b}"))
    return max(abs(x - y) for ra, rb in zip(A, B) for x, y in zip(ra, rb)), len(A)
d1, n1 = maxdiff("st-on-st.json", "pt-on-st.json")
d2, n2 = maxdiff("st-on-pt.json", "pt-on-pt.json")
print(f"\ninterop: transformers loads a stance token classifier: max |token logit diff| {d1:.2e} over {n1} sentences ({'ok' if d1 < 1e-4 else 'FAIL'})")
print(f"interop: stance loads transformers' BertForTokenClassification: max |token logit diff| {d2:.2e} over {n2} sentences ({'ok' if d2 < 1e-4 else 'FAIL'})")
PY
