#!/usr/bin/env python3
"""Paired article-level bootstrap of two models' macro-F1 on the same split.

    stance eval --model A --data SPLIT --predictions a.jsonl
    stance eval --model B --data SPLIT --predictions b.jsonl
    python3 scripts/realnews/paired_bootstrap.py a.jsonl b.jsonl [--rounds 1000] [--seed 0]

Resamples whole articles with replacement (sentences of one article are not
independent) and prints B - A with its 95% interval, and A's own interval.
"""
import argparse
import collections
import json
import random
import sys

LABELS = ["assertion", "denial", "allegation", "context"]


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def macro_f1(idx, rows):
    f1 = []
    for label in LABELS:
        tp = sum(1 for i in idx if rows[i]["gold"] == label and rows[i]["label"] == label)
        predicted = sum(1 for i in idx if rows[i]["label"] == label)
        gold = sum(1 for i in idx if rows[i]["gold"] == label)
        p = tp / predicted if predicted else 0.0
        r = tp / gold if gold else 0.0
        f1.append(2 * p * r / (p + r) if p + r else 0.0)
    return sum(f1) / len(f1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    a, b = load(args.a), load(args.b)
    if [(r["article"], r["text"], r["gold"]) for r in a] != [(r["article"], r["text"], r["gold"]) for r in b]:
        sys.exit(f"{args.a} and {args.b} are not predictions on the same sentences")
    by_article = collections.defaultdict(list)
    for i, r in enumerate(a):
        by_article[r["article"]].append(i)
    articles = list(by_article)
    everything = range(len(a))
    diff = macro_f1(everything, b) - macro_f1(everything, a)
    rng = random.Random(args.seed)
    diffs, own = [], []
    for _ in range(args.rounds):
        idx = [i for art in rng.choices(articles, k=len(articles)) for i in by_article[art]]
        diffs.append(macro_f1(idx, b) - macro_f1(idx, a))
        own.append(macro_f1(idx, a))
    diffs.sort()
    own.sort()
    lo, hi = int(0.025 * args.rounds), int(0.975 * args.rounds) - 1
    print(
        f"{len(articles)} articles, {len(a)} sentences: A {macro_f1(everything, a):.4f}, "
        f"B {macro_f1(everything, b):.4f}, B - A {diff:+.4f} "
        f"(95% interval {diffs[lo]:+.4f} to {diffs[hi]:+.4f}); A alone {own[lo]:.3f} to {own[hi]:.3f}"
    )


if __name__ == "__main__":
    main()
