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
# Both tools timed the same ways, in f32 and in bf16:
# - start to results: one cold process over all articles, start-up,
#   imports and model loads included (PyTorch: the process's wall time
#   less its second, warm pass);
# - compute only: stance's run less a run over a one-sentence article
#   (its start-up and loads); PyTorch's warm second pass.
printf 'Officials said the plan was sound.\n' > "$work/one.txt"
now() { date +%s.%N; }
dt() { echo "$2 - $1" | bc -l | sed 's/^\./0./'; } # seconds from $1 to $2, as JSON
for r in $(seq "$rounds"); do
  echo "attribution round $r/$rounds" >&2
  s=$(now); $st predict --no-attribution --format jsonl "$work"/article-*.txt > /dev/null; e=$(now)
  echo "{\"tool\": \"stance\", \"mode\": \"sentences\", \"precision\": \"f32\", \"wall\": $(dt "$s" "$e")}" >> "$res"
  for prec in f32 bf16; do
    s=$(now); $st predict --precision $prec --format jsonl "$work"/article-*.txt > "$work/who-$prec.jsonl"; e=$(now)
    s1=$(now); $st predict --precision $prec --format jsonl "$work/one.txt" > /dev/null; e1=$(now)
    echo "{\"tool\": \"stance\", \"mode\": \"attribution\", \"precision\": \"$prec\", \"wall\": $(dt "$s" "$e"), \"startup\": $(dt "$s1" "$e1")}" >> "$res"
    flag=; [ $prec = bf16 ] && flag=--bf16
    s=$(now)
    out=$("$py" scripts/bench/pytorch_ref.py --model models/all-mpnet-base-v2 --tagger "$work/pt-tagger" --data data/stance.test.jsonl --articles "$work"/article-*.txt --mode attribution --batch-size 16 --max-len 128 --reps 2 --threads "$threads" $flag)
    e=$(now)
    echo "$out" | "$py" -c 'import json, sys; r = json.loads(sys.stdin.read()); r["wall"] = float(sys.argv[1]); print(json.dumps(r))' "$(dt "$s" "$e")" >> "$res"
  done
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
n = sum(1 for l in open("data/stance.test.jsonl") if l.strip())
def med(tool, mode, prec, f):
    return statistics.median(f(r) for r in rows if r["tool"] == tool and r["mode"] == mode and r.get("precision", "f32") == prec)
plain = med("stance", "sentences", "f32", lambda r: r["wall"])
print(f"\nwho claims what on the test split's {n} sentences in whole articles ({threads} threads, medians of {len(rows) // 5} round(s)): sentence model + attribution tagger\n")
print("| precision | measure | stance s (sentences/s) | PyTorch + transformers s (sentences/s) | stance faster |")
print("|---|---|---|---|---|")
for prec in ["f32", "bf16"]:
    e2e = (med("stance", "attribution", prec, lambda r: r["wall"]), med("pytorch", "attribution", prec, lambda r: r["wall"] - n / r["reps"][1]))
    comp = (med("stance", "attribution", prec, lambda r: r["wall"] - r["startup"]), med("pytorch", "attribution", prec, lambda r: n / r["reps"][1]))
    for what, (a, b) in [("start to results (cold process, loads included)", e2e), ("compute only (stance less its start-up; PyTorch's warm pass)", comp)]:
        print(f"| {prec} | {what} | {a:.2f} ({n / a:.1f}) | {b:.2f} ({n / b:.1f}) | {b / a:.2f}x |")
with_tagger = med("stance", "attribution", "f32", lambda r: r["wall"])
print(f"\nthe tagger's cost (f32, start to results): {with_tagger:.2f} s with it against {plain:.2f} s without, {with_tagger / plain:.2f}x")
f32, bf16 = ([json.loads(l) for l in open(f"{work}/who-{p}.jsonl")] for p in ["f32", "bf16"])
field = lambda r, role: ((r.get(role) or {}).get("start"), (r.get(role) or {}).get("end"))
print(f"bf16 against f32 (last round): labels differ on {sum(a['label'] != b['label'] for a, b in zip(f32, bf16))} of {len(f32)} sentences, sources on {sum(field(a, 'source') != field(b, 'source') for a, b in zip(f32, bf16))}, cues on {sum(field(a, 'cue') != field(b, 'cue') for a, b in zip(f32, bf16))}")
PY
echo
"$py" scripts/bench/interop.py --what "token logit" \
  "transformers loads a stance token classifier" "$work/st-on-st.json" "$work/pt-on-st.json" \
  "stance loads transformers' BertForTokenClassification" "$work/st-on-pt.json" "$work/pt-on-pt.json"
