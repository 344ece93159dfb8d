"""Interop lines of the bench scripts: the largest |difference| between two
tools' logits (JSON lists of rows) for the same sentences.

Usage: interop.py [--what "token logit"] LABEL A.json B.json [LABEL A B ...]
Prints one line per pair; exits 1 if any pair differs by 1e-4 or more.
"""
import json, sys


def maxdiff(a, b):
    A, B = json.load(open(a)), json.load(open(b))
    return max(abs(x - y) for ra, rb in zip(A, B) for x, y in zip(ra, rb)), len(A)


def main(argv):
    what = "logit"
    if argv[:1] == ["--what"]:
        what, argv = argv[1], argv[2:]
    if not argv or len(argv) % 3:
        sys.exit(__doc__)
    bad = False
    for label, a, b in zip(argv[::3], argv[1::3], argv[2::3]):
        d, n = maxdiff(a, b)
        bad |= not d < 1e-4
        print(f"interop: {label}: max |{what} diff| {d:.2e} over {n} sentences ({'ok' if d < 1e-4 else 'FAIL'})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
