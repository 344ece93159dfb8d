#!/usr/bin/env python3
"""Lay out the third pass (issue 9): every sentence where annotators A and B
disagree, shown inside its whole article with both labels, for an adjudicator
who decides the final label under the guideline. Writes
annotation/adjudicate/taskN.md (git-ignored: article text)."""
import os, sys

from annotations import read_articles, read_labels

ann, n = sys.argv[1], int(sys.argv[2])
a, b = read_labels(f"{ann}/passA/*.labels.tsv"), read_labels(f"{ann}/passB/*.labels.tsv")
arts = read_articles(f"{ann}/segments.jsonl")
todo = [k for k, rows in arts.items() if any(a[r["id"]] != b[r["id"]] for r in rows)]
os.makedirs(f"{ann}/adjudicate", exist_ok=True)
# Balance tasks by number of disagreements.
loads, tasks = [0] * n, [[] for _ in range(n)]
for k in sorted(todo, key=lambda k: -sum(a[r["id"]] != b[r["id"]] for r in arts[k])):
    t = loads.index(min(loads))
    tasks[t].append(k)
    loads[t] += sum(a[r["id"]] != b[r["id"]] for r in arts[k])
for t, keys in enumerate(tasks):
    with open(f"{ann}/adjudicate/task{t + 1}.md", "w", encoding="utf-8") as f:
        f.write(f"# Adjudication task {t + 1}: {len(keys)} articles, {loads[t]} disagreements\n\n")
        for k in sorted(keys):
            f.write(f"=== ARTICLE {k}\n")
            for r in arts[k]:
                i = r["id"]
                mark = f"   <<< DISAGREE  A={a[i]}  B={b[i]}  id={i}" if a[i] != b[i] else f"   (agreed: {a[i]})"
                f.write(f"[{r['index']}] {r['text']}{mark}\n")
            f.write("\n")
print(len(todo), "articles", sum(loads), "disagreements", loads)
