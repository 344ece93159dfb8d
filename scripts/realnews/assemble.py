#!/usr/bin/env python3
"""Assemble the stand-off real-news corpus from the annotation passes (issue 9).

Inputs (annotation/, git-ignored because it holds article text):
  segments.jsonl            the sentences as cut by `stance data real-segment`
  passA/*.labels.tsv        annotator A: `<article>#<index>\t<label>`
  passB/*.labels.tsv        annotator B, blind to A
  adjudicate/*.labels.tsv   the third pass: a final label for every sentence
                            where A and B differ (`<id>\t<label>\t<note>`)
  recheck/*.labels.tsv      agreed labels re-read under the rules settled in
                            adjudication (`<id>\t<label>\t<keep | changed: ...>`)
Writes data/real/<source>.jsonl (no text: doc, offsets, sha1, labels, split)
and prints agreement figures for the data card.

Splits are by article, about 70/15/15, stratified by source: each source's
articles are shuffled with a fixed seed and each goes to the split furthest
below its share of that source's sentences.
"""
import collections, glob, json, random, sys

ANN = sys.argv[1] if len(sys.argv) > 1 else "annotation"
OUT = sys.argv[2] if len(sys.argv) > 2 else "data/real"
LABELS = ["assertion", "denial", "allegation", "context"]
SHARES = {"train": 0.70, "dev": 0.15, "test": 0.15}

def read_tsv(pattern):
    out = {}
    for f in sorted(glob.glob(pattern)):
        for n, line in enumerate(open(f, encoding="utf-8"), 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2 or parts[1] not in LABELS:
                sys.exit(f"{f}:{n}: expected <id>TAB<label>, got {line!r}")
            if parts[0] in out:
                sys.exit(f"{f}:{n}: {parts[0]} labelled twice")
            out[parts[0]] = parts[1]
    return out

segs = [json.loads(l) for l in open(f"{ANN}/segments.jsonl", encoding="utf-8")]
a, b = read_tsv(f"{ANN}/passA/*.labels.tsv"), read_tsv(f"{ANN}/passB/*.labels.tsv")
adj = read_tsv(f"{ANN}/adjudicate/*.labels.tsv")
recheck = read_tsv(f"{ANN}/recheck/*.labels.tsv")
ids = [s["id"] for s in segs]
for name, m in (("pass A", a), ("pass B", b)):
    missing = [i for i in ids if i not in m]
    if missing:
        sys.exit(f"{name}: {len(missing)} sentences unlabelled, e.g. {missing[:3]}")
disagree = [i for i in ids if a[i] != b[i]]
missing = [i for i in disagree if i not in adj]
if missing:
    sys.exit(f"adjudication: {len(missing)} disagreements without a final label, e.g. {missing[:3]}")

# Splits by article, stratified by source.
arts = collections.OrderedDict()
for s in segs:
    arts.setdefault((s["source"], s["id"].rsplit("#", 1)[0]), []).append(s)
# Articles that share a sentence (the BBC set holds some stories twice, and
# wire stories repeat boilerplate paragraphs) go to the same split, so no
# sentence is in two splits.
parent = {k: k for k in arts}
def find(k):
    while parent[k] != k:
        parent[k] = parent[parent[k]]
        k = parent[k]
    return k
first_seen = {}
for k, rows in arts.items():
    for s in rows:
        norm = " ".join(s["text"].lower().split())
        if len(norm) >= 30:
            other = first_seen.setdefault(norm, k)
            parent[find(k)] = find(other)
groups = collections.OrderedDict()
for k in arts:
    groups.setdefault(find(k), []).append(k)
split_of = {}
rng = random.Random(2026)
for source in ("polnear", "newsdiscourse", "bbc"):
    mine = [g for g in groups.values() if g[0][0] == source]
    rng.shuffle(mine)
    total = sum(len(arts[k]) for g in mine for k in g)
    filled = dict.fromkeys(SHARES, 0)
    for g in mine:
        s = max(SHARES, key=lambda x: SHARES[x] * total - filled[x])
        filled[s] += sum(len(arts[k]) for k in g)
        for k in g:
            split_of[k] = s

by_source = collections.defaultdict(list)
for k, rows in arts.items():
    for s in rows:
        i = s["id"]
        final = adj[i] if a[i] != b[i] else recheck.get(i, a[i])
        row = {"id": i, "source": s["source"], "doc": s["doc"], "index": s["index"], "start": s["start"], "end": s["end"],
               "sha1": s["sha1"], "label": final, "label_a": a[i], "label_b": b[i], "split": split_of[k]}
        if a[i] != b[i]:
            row["review"] = "adjudicated"
        elif final != a[i]:
            row["review"] = "rechecked"
        by_source[s["source"]].append(row)
for source, rows in by_source.items():
    with open(f"{OUT}/{source}.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

# Agreement of B against A.
n = len(ids)
agree = n - len(disagree)
pa = collections.Counter(a[i] for i in ids)
pb = collections.Counter(b[i] for i in ids)
pe = sum(pa[l] * pb[l] for l in LABELS) / n / n
kappa = (agree / n - pe) / (1 - pe)
print(f"sentences {n}, articles {len(arts)}, raw agreement {agree / n:.3f} ({agree}/{n}), Cohen's kappa {kappa:.3f}")
print("| label | F1 of B against A | A count | B count | final count |\n|---|---|---|---|---|")
fin = collections.Counter(r["label"] for rows in by_source.values() for r in rows)
f1s = []
for l in LABELS:
    tp = sum(1 for i in ids if a[i] == l and b[i] == l)
    p = tp / pb[l] if pb[l] else 0
    r = tp / pa[l] if pa[l] else 0
    f = 2 * p * r / (p + r) if p + r else 0
    f1s.append(f)
    print(f"| {l} | {f:.3f} | {pa[l]} | {pb[l]} | {fin[l]} |")
print(f"macro-F1 of B against A: {sum(f1s) / 4:.3f}")
print("confusion A (rows) x B (columns):", LABELS)
for l in LABELS:
    print(f"| {l} | " + " | ".join(str(sum(1 for i in ids if a[i] == l and b[i] == m)) for m in LABELS) + " |")
changed = collections.Counter((a[i], recheck[i]) for i in recheck if i in a and a[i] == b[i] and recheck[i] != a[i])
print(f"re-checked {len(recheck)} agreed labels under the settled rules: changed {sum(changed.values())}:", dict(changed))
adj_sides = collections.Counter("A" if adj[i] == a[i] else "B" if adj[i] == b[i] else "neither" for i in disagree)
print(f"adjudicated {len(disagree)}: sided with A {adj_sides['A']}, with B {adj_sides['B']}, neither {adj_sides['neither']}")
cnt = collections.Counter((r["split"], r["source"]) for rows in by_source.values() for r in rows)
for sp in SHARES:
    print(sp, {s: cnt[(sp, s)] for s in ("polnear", "newsdiscourse", "bbc")})
