#!/usr/bin/env python3
"""Add a later annotation round to the stand-off corpus (issue 10).

    assemble_round.py ANN OUT BUILD ROUND SPLIT

Round 2 added training articles only (`... 2 train`); round 3 adds dev
articles only (`... 3 dev`). Real test stays the round-1 articles, so every
shipped model is scored on the same held-out sentences. Inputs as for
assemble.py (ANN, e.g. annotation/round3/: segments.jsonl, passA/, passB/,
adjudicate/). Rows get "round": ROUND and "split": SPLIT and are appended to
OUT/<source>.jsonl (rows of other rounds are kept as they are; running this
again replaces this round's rows). BUILD is the corpus built without this
round (`stance data real-build --max-round ROUND-1`).

An article is left out when one of its sentences (30 characters or more,
case and spacing folded) is also in an article of another split (the
selection already skips those; this is the check), or when most of its
sentences are already in an earlier article of its own split (the BBC set
holds some stories twice). Prints the agreement figures for the data card.
"""
import collections, json, sys

from annotations import read_articles, read_labels

if len(sys.argv) != 6 or sys.argv[5] not in ("train", "dev"):
    sys.exit("usage: assemble_round.py ANN OUT BUILD ROUND train|dev")
ANN, OUT, BUILD, ROUND, SPLIT = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
if ROUND < 2:
    sys.exit("round 1 made the splits: assemble it with assemble.py")
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

round_ids = set(ids)
held, seen = set(), set()
for split in ("train", "dev", "test"):
    for line in open(f"{BUILD}/real.{split}.jsonl", encoding="utf-8"):
        r = json.loads(line)
        if r["id"] in round_ids:
            sys.exit(f"{BUILD} holds {r['id']} of this round: build it with --max-round {ROUND - 1}")
        t = norm(r["text"])
        if len(t) >= 30:
            (seen if split == SPLIT else held).add(t)

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
               "split": SPLIT, "round": ROUND}
        if a[i] != b[i]:
            row["review"] = "adjudicated"
        by_source[s["source"]].append(row)
for source in ("polnear", "newsdiscourse", "bbc"):
    path = f"{OUT}/{source}.jsonl"
    old = [l for l in open(path, encoding="utf-8") if json.loads(l).get("round", 1) != ROUND]
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
print(f"round {ROUND}: sentences {n}, articles {len(arts)}, raw agreement {agree / n:.3f} ({agree}/{n}), Cohen's kappa {(agree / n - pe) / (1 - pe):.3f}")
f1s = []
for l in LABELS:
    tp = sum(1 for i in ids if a[i] == l and b[i] == l)
    p, r = (tp / pb[l] if pb[l] else 0), (tp / pa[l] if pa[l] else 0)
    f1s.append(2 * p * r / (p + r) if p + r else 0)
print("per-label F1 of B against A:", {l: round(f, 3) for l, f in zip(LABELS, f1s)}, f"macro {sum(f1s) / 4:.3f}")
sides = collections.Counter("A" if adj[i] == a[i] else "B" if adj[i] == b[i] else "neither" for i in disagree)
print(f"adjudicated {len(disagree)}: A {sides['A']}, B {sides['B']}, neither {sides['neither']}")
print(f"left out: {len(dropped_held)} articles sharing a sentence with another split {dropped_held[:5]}, "
      f"{len(dropped_dup)} repeating an earlier article {dropped_dup[:5]}")
fin = collections.Counter(r["label"] for rows in by_source.values() for r in rows)
print(f"added to {SPLIT}:", {s: len(v) for s, v in by_source.items()}, "sentences;",
      sum(1 for _ in kept), "articles; labels", dict(fin))
