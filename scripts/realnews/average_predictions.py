#!/usr/bin/env python3
"""Average several models' calibrated probabilities on the same split.

    stance eval --model A --data SPLIT --predictions a.jsonl
    stance eval --model B --data SPLIT --predictions b.jsonl
    python3 scripts/realnews/average_predictions.py a.jsonl b.jsonl > ab.jsonl
    python3 scripts/realnews/paired_bootstrap.py a.jsonl ab.jsonl

Sentences are matched by article, text and their occurrence within the
article, so the files may list them in different orders (a context run's
`eval` sorts them differently); every file must hold the same sentences
with the same gold labels. Writes the first file's rows, in its order, with
the mean probabilities and their most probable label, and prints the
average's macro-F1 and expected calibration error (10 bins on the top
probability, as `stance eval`) to stderr.
"""
import collections
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paired_bootstrap import LABELS, macro_f1  # noqa: E402


def load(path):
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        sys.exit(f"{path}: line {n} is not JSON ({e.msg})")
    except OSError as e:
        sys.exit(f"{path}: {e.strerror}")
    if not rows:
        sys.exit(f"{path}: no predictions")
    return rows


def keyed(path, rows):
    """(article, text, occurrence) -> row, refusing a file with no gold."""
    seen, out = collections.Counter(), {}
    for n, r in enumerate(rows, 1):
        if "gold" not in r or "probabilities" not in r:
            sys.exit(f"{path}: line {n} has no gold label or probabilities (write it with stance eval --predictions)")
        k = (r["article"], r["text"])
        out[k + (seen[k],)] = r
        seen[k] += 1
    return out


def ece(rows):
    bins = [[0, 0.0, 0] for _ in range(10)]
    for r in rows:
        p = max(r["probabilities"])
        b = bins[min(int(p * 10), 9)]
        b[0] += 1
        b[1] += p
        b[2] += r["label"] == r["gold"]
    return sum(abs(s - c) for n, s, c in bins if n) / len(rows)


def main():
    paths = sys.argv[1:]
    if len(paths) < 2:
        sys.exit("usage: average_predictions.py A.jsonl B.jsonl [C.jsonl ...]")
    files = [keyed(p, load(p)) for p in paths]
    first = files[0]
    for p, f in zip(paths[1:], files[1:]):
        if f.keys() != first.keys():
            missing = sorted(first.keys() - f.keys())[:1] or sorted(f.keys() - first.keys())[:1]
            sys.exit(f"{p}: not the same sentences as {paths[0]} (for one, {missing[0][:2]})")
        for k, r in f.items():
            if r["gold"] != first[k]["gold"]:
                sys.exit(f"{p}: gold label of {k[:2]} differs from {paths[0]}")
    out = []
    for k, r in first.items():
        probs = [sum(f[k]["probabilities"][i] for f in files) / len(files) for i in range(len(LABELS))]
        row = dict(r, probabilities=probs, label=LABELS[max(range(len(LABELS)), key=lambda i: probs[i])])
        out.append(row)
        print(json.dumps(row, ensure_ascii=False))
    print(f"average of {len(paths)}: {len(out)} sentences, macro-F1 {macro_f1(range(len(out)), out):.4f}, ECE {ece(out):.4f}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
