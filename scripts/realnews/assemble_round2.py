#!/usr/bin/env python3
"""Add a second annotation round to the stand-off corpus (issue 10).

Round 2 adds training articles only: real dev and real test stay the round-1
articles, so every model is still chosen and scored on the same held-out
sentences. Inputs as for assemble.py (annotation/round2/: segments.jsonl,
passA/, passB/, adjudicate/). Rows get "round": 2 and "split": "train" and
are appended to data/real/<source>.jsonl (round-1 rows are kept as they are;
running this again replaces the round-2 rows).

An article is left out when one of its sentences (30 characters or more,
case and spacing folded) is also in a dev or test article (the selection
already skips those; this is the check), or when most of its sentences are
already in an earlier article (the BBC set holds some stories twice).
Prints the agreement figures for the data card.
"""
import collections, json, sys

from annotations import read_articles, read_labels

ANN = sys.argv[1] if len(sys.argv) > 1 else "annotation/round2"
OUT = sys.argv[2] if len(sys.argv) > 2 else "data/real"
BUILD = sys.argv[3] if len(sys.argv) > 3 else "data/real/build"
LABELS = ["assertion", "denial", "allegation", "context"]


def norm(t):
    return " ".join(t.lower().split())


a, b = read_labels(f"{ANN}/passA/*.labels.tsv"), read_labels(f"{ANN}/passB/*.labels.tsv")
adj = read_labels(f"{ANN}/adjudicate/*.labels.tsv")
arts = read_articles(f"{ANN}/segments.jsonl")
for name, m in (("pass A", a), ("pass B", b)):
    bad = [r["id"] for rows in arts.values() for r in rows if m.get(r["id"]) not in LABELS]
    if bad:
        sys.exit(f"{name}: {len(bad)} sentences without a valid label, e.g. {bad[:3]}")
ids = [r["id"] for rows in arts.values() for r in rows]
disagree = [i for i in ids if a[i] != b[i]]
missing = [i for i in disagree if adj.get(i) not in LABELS]
if missing:
    sys.exit(f"adjudication: {len(missing)} disagreements without a final label, e.g. {missing[:3]}")

held = set()
for split in ("dev", "test"):
    for line in open(f"{BUILD}/real.{split}.jsonl", encoding="utf-8"):
        t = norm(json.loads(line)["text"])
        if len(t) >= 30:
            held.add(t)
seen = set()
for line in open(f"{BUILD}/real.train.jsonl", encoding="utf-8"):
    t = norm(json.loads(line)["text"])
    if len(t) >= 30:
        seen.add(t)

kept, dropped_held, dropped_dup = collections.OrderedDict(), [], []
for k, rows in arts.items():
    long = [norm(r["text"]) for r in rows if len(norm(r["text"])) >= 30]
    if any(t in held for t in long):
        dropped_held.append(k)
        continue
    if long and sum(t in seen for t in long) * 2 > len(long):
        dropped_dup.append(k)
        continue
    seen.update(long)
    kept[k] = rows

by_source = collections.defaultdict(list)
for k, rows in kept.items():
    for s in rows:
        i = s["id"]
        row = {"id": i, "source": s["source"], "doc": s["doc"], "index": s["index"], "start": s["start"], "end": s["end"],
               "sha1": s["sha1"], "label": adj[i] if a[i] != b[i] else a[i], "label_a": a[i], "label_b": b[i],
               "split": "train", "round": 2}
        if a[i] != b[i]:
            row["review"] = "adjudicated"
        by_source[s["source"]].append(row)
for source in ("polnear", "newsdiscourse", "bbc"):
    path = f"{OUT}/{source}.jsonl"
    old = [l for l in open(path, encoding="utf-8") if json.loads(l).get("round", 1) == 1]
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.writelines(old)
        for r in by_source[source]:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    import os
    os.replace(path + ".tmp", path)

n = len(ids)
agree = n - len(disagree)
pa, pb = collections.Counter(a[i] for i in ids), collections.Counter(b[i] for i in ids)
pe = sum(pa[l] * pb[l] for l in LABELS) / n / n
print(f"round 2: sentences {n}, articles {len(arts)}, raw agreement {agree / n:.3f} ({agree}/{n}), Cohen's kappa {(agree / n - pe) / (1 - pe):.3f}")
f1s = []
for l in LABELS:
    tp = sum(1 for i in ids if a[i] == l and b[i] == l)
    p, r = (tp / pb[l] if pb[l] else 0), (tp / pa[l] if pa[l] else 0)
    f1s.append(2 * p * r / (p + r) if p + r else 0)
print("per-label F1 of B against A:", {l: round(f, 3) for l, f in zip(LABELS, f1s)}, f"macro {sum(f1s) / 4:.3f}")
sides = collections.Counter("A" if adj[i] == a[i] else "B" if adj[i] == b[i] else "neither" for i in disagree)
print(f"adjudicated {len(disagree)}: A {sides['A']}, B {sides['B']}, neither {sides['neither']}")
print(f"left out: {len(dropped_held)} articles sharing a sentence with dev/test {dropped_held[:5]}, "
      f"{len(dropped_dup)} repeating an earlier article {dropped_dup[:5]}")
fin = collections.Counter(r["label"] for rows in by_source.values() for r in rows)
print("added to train:", {s: len(v) for s, v in by_source.items()}, "sentences;",
      sum(1 for _ in kept), "articles; labels", dict(fin))
