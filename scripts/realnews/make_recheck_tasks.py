#!/usr/bin/env python3
"""Re-check, under the rules settled in adjudication, the agreed labels those
rules can affect (issue 9: "re-check the labels it affects"). The sentences
are selected by the words the rules are about (rejected, insisted, accused,
sued, confessed, ...): the selection only decides what a person re-reads,
never a label. Each is shown with its article around it. Writes
annotation/recheck/taskN.md (git-ignored)."""
import os, re, sys

from annotations import read_articles, read_labels

ann, n = sys.argv[1], int(sys.argv[2])
RULE_WORDS = re.compile(r"\b(reject\w*|refus\w*|dismiss\w*|defend\w*|insist\w*|claimed responsibility|confess\w*|admit\w*|"
                        r"accus\w*|who (has|have) denied|which (he|she|they) den\w*|stands? by|editor'?s note|sued|sues|"
                        r"lawsuit|indictment|racist|sexist|motivated)\b", re.I)
a, b = read_labels(f"{ann}/passA/*.labels.tsv"), read_labels(f"{ann}/passB/*.labels.tsv")
arts = read_articles(f"{ann}/segments.jsonl")
keys = [k for k, rows in arts.items() if any(a[r["id"]] == b[r["id"]] and RULE_WORDS.search(r["text"]) for r in rows)]
os.makedirs(f"{ann}/recheck", exist_ok=True)
tasks = [keys[t::n] for t in range(n)]
for t, ks in enumerate(tasks):
    count = 0
    with open(f"{ann}/recheck/task{t + 1}.md", "w", encoding="utf-8") as f:
        for k in ks:
            f.write(f"=== ARTICLE {k}\n")
            for r in arts[k]:
                i = r["id"]
                if a[i] == b[i] and RULE_WORDS.search(r["text"]):
                    f.write(f"[{r['index']}] {r['text']}   <<< RECHECK  label={a[i]}  id={i}\n")
                    count += 1
                else:
                    f.write(f"[{r['index']}] {r['text']}\n")
            f.write("\n")
    print(f"task{t + 1}: {len(ks)} articles, {count} sentences to re-check")
