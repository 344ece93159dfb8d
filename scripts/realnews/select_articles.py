#!/usr/bin/env python3
"""Choose the real-news articles to annotate (issue 9), deterministically.

The label shares must be those of real news, so whole articles are labelled.
To reach the allegation and denial floors, most articles are chosen among
those dense in accusation-and-response words (a rough count of cue words per
sentence; it chooses articles, never labels); the rest are drawn at random
from everything else, so plain event reports, features, sport and opinion
stay in. Denials are the rarest act in real news, so denial words count
three times. Prints SOURCE/PATH lines.

Round 2 (`select_articles.py ROOT 2`) adds training articles: it skips every
document already in data/real/*.jsonl, and any document that shares a
sentence-length line with a dev or test article (so dev and test stay
unseen), and draws a larger, more denial-dense set, since denial was the
weakest label of the round-1 model.

Round 3 (`select_articles.py ROOT 3`) adds dev articles, because a real dev
of 62 articles could not tell recipes apart (issue 10): it skips every
annotated document and any document that shares a sentence-length line with
an annotated article of any split, so the new dev articles share nothing
with train or test. Its plan keeps round 1's mix of cue-dense and random
articles per source, so the larger dev stays like test.

Round 4 (`select_articles.py ROOT 4`) adds training articles again, as round
2 did, skipping documents that share a line with any dev (now including
round 3) or test article.

Round 5 (`select_articles.py ROOT 5`) adds training articles as round 4 did.
PolNeAR, the source the shipped model labels worst, has only 20 unannotated
articles of 6-34 sentences left, so its cap rises to 50 sentences; the
round-4 articles that were chosen but never labelled are in its pool.
Round 6 (`select_articles.py ROOT 6`) is a larger draw of the same kind.

Round 7 (`select_articles.py ROOT 7`) adds dev articles as round 3 did
(sharing no line with any annotated article), because 177 dev articles
still could not tell recipes apart; PolNeAR's and NewsDiscourse's caps rise
to 50 and 45 sentences, since their shorter articles are used up.

From round 8 on, an article is also skipped when more than half of its
sentence-length lines are lines of annotated articles: a repeat, which
assemble_round.py would drop after annotation. Rounds 5 and 6 re-chose such
repeats, because a dropped repeat stays unannotated (round 6 re-chose 4 of
round 5's; without this check, 15 of round 8's 144 picks would be
repeats). Round 8 (`select_articles.py ROOT 8`) adds training articles as
round 6 did; rounds 1-7 choose what they chose before.
"""
import glob, os, random, re, sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else "../shared/realnews"
ROUND = int(sys.argv[2]) if len(sys.argv) > 2 else 1
ACCUSE = re.compile(r"\b(accus\w*|alleg\w*|blam\w*|suspect\w*|charged|lawsuit\w*|sued|smear\w*)\b", re.I)
DENY = re.compile(r"\b(denie[sd]|deny\w*|denial\w*|reject\w*|dismiss\w*|refut\w*|disput\w*|baseless|unfounded|"
                  r"false(ly)?|insist\w*|not true|nonsense|untrue|innocen\w*)\b", re.I)

def docs():
    for f in sorted(glob.glob(f"{ROOT}/polnear/*/text/*.txt")):
        yield "polnear", os.path.relpath(f, f"{ROOT}/polnear"), open(f, encoding="utf-8").read()
    for f in sorted(glob.glob(f"{ROOT}/newsdiscourse/train/*/*.txt") + glob.glob(f"{ROOT}/newsdiscourse/validation/*.txt")):
        text = open(f, encoding="utf-8").read()
        body = "\n".join(l.split(" ", 1)[1] for l in text.splitlines() if re.match(r"^(H|S\d+) ", l))
        yield "newsdiscourse", os.path.relpath(f, f"{ROOT}/newsdiscourse"), body
    for f in sorted(glob.glob(f"{ROOT}/bbc/*/*.txt")):
        try:
            text = open(f, encoding="utf-8").read()
        except UnicodeDecodeError:
            continue  # one BBC file is not UTF-8; the builder reads UTF-8 only
        yield "bbc", os.path.relpath(f, f"{ROOT}/bbc"), text

# (cue-dense articles, random others, max sentences) per source
PLAN = {1: {"polnear": (110, 25, 34), "newsdiscourse": (100, 25, 32), "bbc": (110, 40, 28)},
        2: {"polnear": (95, 20, 34), "newsdiscourse": (80, 20, 32), "bbc": (105, 25, 28)},
        3: {"polnear": (33, 8, 34), "newsdiscourse": (30, 8, 32), "bbc": (33, 12, 28)},
        4: {"polnear": (100, 20, 34), "newsdiscourse": (80, 20, 32), "bbc": (95, 25, 28)},
        5: {"polnear": (35, 5, 50), "newsdiscourse": (50, 10, 32), "bbc": (50, 10, 28)},
        6: {"polnear": (60, 10, 50), "newsdiscourse": (60, 15, 32), "bbc": (60, 15, 28)},
        7: {"polnear": (30, 10, 50), "newsdiscourse": (30, 10, 45), "bbc": (45, 20, 28)},
        8: {"polnear": (60, 10, 50), "newsdiscourse": (60, 15, 45), "bbc": (60, 15, 28)}}[ROUND]
# The split each later round adds to.
SPLIT = {1: None, 2: "train", 3: "dev", 4: "train", 5: "train", 6: "train", 7: "dev", 8: "train"}[ROUND]


def lines_of(text):
    """The normalised lines of 30 characters or more, as assemble_round.py
    compares them."""
    out = []
    for l in re.split(r"(?<=[.!?])\s+|\n", text):
        norm = " ".join(l.lower().split())
        if len(norm) >= 30:
            out.append(norm)
    return out


def annotated_lines(all_docs, seen):
    """The lines of every annotated article (for the repeat check)."""
    return {l for s, d, t in all_docs if (s, d) in seen for l in lines_of(t)}


def repeats(text, annotated):
    """Whether more than half of an article's lines are annotated ones."""
    long = lines_of(text)
    return bool(long) and sum(l in annotated for l in long) * 2 > len(long)


def held_out(all_docs):
    """Documents already annotated, and the normalised lines of the ones whose
    lines a new article must not share: dev/test ones (round 2), all (round 3)."""
    import json
    seen, lines = set(), set()
    for source in PLAN:
        path = f"data/real/{source}.jsonl"
        if not os.path.exists(path):
            continue
        for line in open(path, encoding="utf-8"):
            r = json.loads(line)
            seen.add((source, r["doc"]))
            if r["split"] != "train" or SPLIT == "dev":
                lines.add((source, r["doc"]))
    texts = set()
    # Rounds 2 and 3 read the raw files, where a NewsDiscourse line starts
    # with its `S<n>` tag, so NewsDiscourse lines never matched and
    # assemble_round.py's check dropped those articles after annotation
    # (6 in round 3). From round 4 the lines are the article text, as
    # docs() reads it; earlier rounds keep their selection reproducible.
    body = {(s, d): t for s, d, t in all_docs} if ROUND >= 4 else {}
    for source, doc in lines:
        text = body.get((source, doc)) or open(f"{ROOT}/{source}/{doc}", encoding="utf-8").read()
        texts.update(lines_of(text))
    return seen, texts

def main():
    rng = random.Random(2026 + ROUND - 1)
    by_source = {}
    all_docs = list(docs())
    seen, held = held_out(all_docs) if ROUND > 1 else (set(), set())
    annotated = annotated_lines(all_docs, seen) if ROUND >= 8 else set()
    for source, doc, text in all_docs:
        if (source, doc) in seen:
            continue
        if annotated and repeats(text, annotated):
            continue
        if any(l in held for l in lines_of(text)):
            continue
        n = max(1, len(re.findall(r"[.!?][\"'”’)]*\s+(?=[\"“‘(]?[A-Z])", text)) + text.count("\n\n"))
        cues = len(ACCUSE.findall(text)) + 3 * len(DENY.findall(text))
        by_source.setdefault(source, []).append((cues / n, n, doc))
    for source, (dense, others, cap) in PLAN.items():
        pool = [d for d in by_source[source] if 6 <= d[1] <= cap]
        pool.sort(key=lambda d: (-d[0], d[2]))
        chosen = pool[:dense]
        rest = pool[dense:]
        rng.shuffle(rest)
        chosen += rest[:others]
        for *_, doc in sorted(chosen, key=lambda d: d[2]):
            print(f"{source}/{doc}")

main()
