#!/usr/bin/env python3
"""Check the hand-written corpus under data/raw/ (or the files given).

Prints problems and per-label / per-domain counts. Exit status 1 on any problem.
Checks: every line parses, fields present, labels valid, ids unique, articles
contiguous with indices 0..n-1 and 8-30 sentences, and no two sentences in the
whole corpus sharing more than 80% of their word 3-grams (measured against the
smaller set of the two, so a sentence with a clause added still counts).
Usage: python3 scripts/check_corpus.py [FILE...]
"""
import collections, glob, json, re, sys

LABELS = {"assertion", "denial", "allegation", "context"}

def trigrams(text):
    words = re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower())
    return {tuple(words[i:i + 3]) for i in range(len(words) - 2)}

def main(paths):
    paths = paths or sorted(glob.glob("data/raw/*.jsonl"))
    problems, rows, ids = [], [], set()
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    r = json.loads(line)
                except Exception as e:
                    problems.append(f"{path}:{n}: bad JSON: {e}"); continue
                for k in ("id", "article", "index", "text", "label", "domain"):
                    if k not in r:
                        problems.append(f"{path}:{n}: missing field {k}")
                if r.get("label") not in LABELS:
                    problems.append(f"{path}:{n}: unknown label {r.get('label')!r}")
                if not str(r.get("text", "")).strip():
                    problems.append(f"{path}:{n}: empty text")
                if r.get("id") in ids:
                    problems.append(f"{path}:{n}: duplicate id {r.get('id')}")
                ids.add(r.get("id"))
                rows.append((path, n, r))
    arts = collections.OrderedDict()
    for path, n, r in rows:
        arts.setdefault(r.get("article"), []).append((path, n, r))
    for a, items in arts.items():
        idx = [r.get("index") for _, _, r in items]
        if idx != list(range(len(items))):
            problems.append(f"{items[0][0]}: article {a}: indices not 0..n-1 in order: {idx}")
        if not 8 <= len(items) <= 30:
            problems.append(f"{items[0][0]}: article {a}: {len(items)} sentences (need 8-30)")
        if len({r.get('domain') for _, _, r in items}) != 1:
            problems.append(f"{items[0][0]}: article {a}: mixed domains")
    # near-duplicates via an inverted index over 3-grams
    grams = [trigrams(r["text"]) for _, _, r in rows]
    inv = collections.defaultdict(list)
    for i, g in enumerate(grams):
        for t in g:
            inv[t].append(i)
    for i, g in enumerate(grams):
        if not g:
            continue
        shared = collections.Counter()
        for t in g:
            for j in inv[t]:
                if j > i:
                    shared[j] += 1
        for j, c in shared.items():
            if c / min(len(g), len(grams[j])) > 0.8:
                a, b = rows[i], rows[j]
                problems.append(f"near-duplicate: {a[0]}:{a[1]} {a[2]['text']!r} ~ {b[0]}:{b[1]} {b[2]['text']!r}")
    for p in problems:
        print(p)
    total = len(rows)
    by_label = collections.Counter(r["label"] for _, _, r in rows if "label" in r)
    by_domain = collections.Counter(r.get("domain") for _, _, r in rows)
    print(f"\n{total} sentences, {len(arts)} articles")
    for l, c in sorted(by_label.items()):
        print(f"  {l:<11} {c:5} {100*c/max(total,1):5.1f}%")
    for d, c in sorted(by_domain.items()):
        nart = len({r['article'] for _, _, r in rows if r.get('domain') == d})
        print(f"  {d:<28} {c:5} sentences {nart:3} articles")
    print(f"{len(problems)} problems")
    return 1 if problems else 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
