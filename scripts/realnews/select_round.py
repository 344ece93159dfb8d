#!/usr/bin/env python3
"""Print the rows of a built real-news file (data/real/build/real.*.jsonl)
that come from one annotation round, by id, e.g. the round-3 dev articles:

    python3 scripts/realnews/select_round.py data/real/build/real.dev.jsonl 3 > data/real/build/real.dev-r3only.jsonl
"""
import glob, json, sys

if len(sys.argv) != 3:
    sys.exit("usage: select_round.py BUILT.jsonl ROUND")
built, want = sys.argv[1], int(sys.argv[2])
ids = set()
for path in glob.glob("data/real/*.jsonl"):
    for line in open(path, encoding="utf-8"):
        r = json.loads(line)
        if r.get("round", 1) == want:
            ids.add(r["id"])
n = 0
for line in open(built, encoding="utf-8"):
    if json.loads(line)["id"] in ids:
        sys.stdout.write(line)
        n += 1
print(f"{n} rows of round {want}", file=sys.stderr)
