#!/usr/bin/env python3
"""Print the rows of a built real-news file (data/real/build/real.*.jsonl)
that come from the given annotation rounds, by id, e.g. the dev articles of
rounds 3 and 7, which no model chosen on round 1's dev has seen:

    python3 scripts/realnews/select_round.py data/real/build/real.dev.jsonl 3 7 > data/real/build/dev-unseen.jsonl

(a name outside `real.*.jsonl`, so that `stance data stats
data/real/build/real.*.jsonl` does not count the rows twice).
"""
import glob, json, sys

if len(sys.argv) < 3:
    sys.exit("usage: select_round.py BUILT.jsonl ROUND [ROUND...]")
built, want = sys.argv[1], {int(a) for a in sys.argv[2:]}
ids = set()
for path in glob.glob("data/real/*.jsonl"):
    for line in open(path, encoding="utf-8"):
        r = json.loads(line)
        if r.get("round", 1) in want:
            ids.add(r["id"])
n = 0
for line in open(built, encoding="utf-8"):
    if json.loads(line)["id"] in ids:
        sys.stdout.write(line)
        n += 1
print(f"{n} rows of round(s) {', '.join(map(str, sorted(want)))}", file=sys.stderr)
