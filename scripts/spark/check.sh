#!/usr/bin/env bash
# Run the Spark job in local mode on >= 1,000 articles (the corpus articles,
# repeated with distinct ids) and check it against a direct `stance predict`:
# every article's sentences come back exactly once, with identical labels;
# prints both throughputs and Spark's overhead. Needs Java 17 and pyspark
# (pip install pyspark pyarrow). CI runs the same checks on 40 articles of a
# tiny model (tests/suite/spark.rs); this script is the full-size run.
#   scripts/spark/check.sh [COPIES (default 4: 1,064 articles)] [local[2]]
set -euo pipefail
cd "$(dirname "$0")/../.."
copies=${1:-4}
master=${2:-local[2]}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet
python3 - "$work/articles.jsonl" "$copies" <<'PY'
import json, sys, collections
arts = collections.OrderedDict()
for split in ("train", "dev", "test"):
    for line in open(f"data/stance.{split}.jsonl", encoding="utf-8"):
        r = json.loads(line)
        arts.setdefault(r["article"], []).append(r["text"])
with open(sys.argv[1], "w", encoding="utf-8") as f:
    for c in range(int(sys.argv[2])):
        for name, sents in arts.items():
            f.write(json.dumps({"id": f"{name}~{c}", "text": " ".join(sents)}) + "\n")
PY
n=$(wc -l < "$work/articles.jsonl")
echo "articles: $n"
start=$(date +%s.%N)
target/release/stance --threads 2 predict --jsonl --format articles "$work/articles.jsonl" -o "$work/direct.jsonl"
direct=$(echo "$(date +%s.%N) - $start" | bc)
start=$(date +%s.%N)
python3 scripts/spark/label_articles.py --master "$master" --input "$work/articles.jsonl" --output "$work/spark.parquet" \
  --partitions 2 --threads 1 2> "$work/spark.log" || { tail -30 "$work/spark.log"; exit 1; }
spark=$(echo "$(date +%s.%N) - $start" | bc)
python3 - "$work" "$n" "$direct" "$spark" <<'PY'
import json, sys, collections
import pyarrow.parquet as pq
work, n, direct, spark = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
want = {}
for line in open(f"{work}/direct.jsonl"):
    a = json.loads(line)
    want[a["id"]] = [(s["index"], s["start"], s["end"], s["label"]) for s in a["sentences"]]
t = pq.read_table(f"{work}/spark.parquet").to_pylist()
got = collections.defaultdict(list)
for r in t:
    got[r["article_id"]].append((r["sentence_index"], r["start"], r["end"], r["label"]))
assert len(want) == n, (len(want), n)
assert set(got) == set(want), "articles differ"
for k, v in want.items():
    g = sorted(got[k])
    assert g == v, f"{k}: Spark {g[:3]} vs direct {v[:3]}"
s = sum(len(v) for v in want.values())
print(f"OK: {n} articles, {s} sentences, each exactly once, labels identical to direct stance predict")
print(f"direct CLI: {direct:.1f} s ({s / direct:.0f} sentences/s); Spark {sys.argv[0] and ''}local: {spark:.1f} s ({s / spark:.0f} sentences/s); overhead {100 * (spark / direct - 1):.1f}%")
PY
