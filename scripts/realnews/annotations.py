"""Shared readers for the annotation layout in annotation/ (issue 9)."""
import glob, json
from collections import OrderedDict


def read_labels(pattern):
    """`<id>\\t<label>[\\t<note>]` lines of every file matching `pattern`."""
    d = {}
    for f in sorted(glob.glob(pattern)):
        for line in open(f, encoding="utf-8"):
            if line.strip():
                i, lab = line.rstrip("\n").split("\t")[:2]
                d[i] = lab
    return d


def read_articles(segments):
    """The segmented sentences, grouped by article in file order."""
    arts = OrderedDict()
    for line in open(segments, encoding="utf-8"):
        r = json.loads(line)
        arts.setdefault(r["id"].rsplit("#", 1)[0], []).append(r)
    return arts
