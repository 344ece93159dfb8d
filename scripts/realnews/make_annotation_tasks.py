#!/usr/bin/env python3
"""Lay out annotation work for the real-news corpus (issue 9).

Reads the segmented sentences (`stance data real-segment ... > segments.jsonl`)
and writes, for each pass (A and B), N chunk files of whole articles with
numbered sentences. The two passes group the articles differently, so no
annotator's chunk mirrors another's. Output goes to annotation/ (git-ignored:
it holds article text).
"""
import json, os, random, sys
from collections import OrderedDict

seg, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
arts = OrderedDict()
for line in open(seg, encoding="utf-8"):
    r = json.loads(line)
    art = r["id"].rsplit("#", 1)[0]
    arts.setdefault(art, []).append(r)
names = list(arts)
for p, seed in (("A", 1), ("B", 2)):
    order = names[:]
    random.Random(seed).shuffle(order)
    os.makedirs(f"{out}/pass{p}", exist_ok=True)
    for c in range(n):
        mine = order[c::n]
        with open(f"{out}/pass{p}/chunk{c + 1}.md", "w", encoding="utf-8") as f:
            f.write(f"# Pass {p}, chunk {c + 1}: {len(mine)} articles, {sum(len(arts[a]) for a in mine)} sentences\n\n")
            for a in mine:
                f.write(f"=== ARTICLE {a}\n")
                for r in arts[a]:
                    f.write(f"[{r['index']}] {r['text']}\n")
                f.write("\n")
print(len(names), "articles", sum(len(v) for v in arts.values()), "sentences")
