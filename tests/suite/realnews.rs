//! The real-news corpus (data/real/, stand-off): it rebuilds from a copy of
//! shared/realnews with every hash verified; it meets the size, source and
//! label floors; ids are unique; splits are disjoint by article; and no file
//! under data/ in git holds a sentence of the real sources. Also the
//! evaluation helper `scripts/realnews/average_predictions.py`.
//!
//! The documents are not shipped. CI has `../shared/realnews` beside the
//! checkout and sets STANCE_REQUIRE_REALNEWS=1, so there a missing copy fails
//! instead of skipping. STANCE_REALNEWS overrides the location.

use stance::data::realnews::{build, read_standoff, segment, sha1_hex, StandoffSentence, SOURCES};
use stance::data::{normalise, LabelledSentence};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn realnews() -> Option<PathBuf> {
    let dir = std::env::var_os("STANCE_REALNEWS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/realnews"));
    if dir.join("polnear").is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("STANCE_REQUIRE_REALNEWS").is_err(),
        "real-news documents missing at {}",
        dir.display()
    );
    eprintln!(
        "skipped: no real-news documents at {} (set STANCE_REALNEWS)",
        dir.display()
    );
    None
}

fn standoff() -> Vec<StandoffSentence> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("data/real"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    read_standoff(&files).unwrap()
}

#[test]
fn standoff_corpus_meets_its_floors_and_splits_by_article() {
    let rows = standoff();
    assert!(rows.len() >= 6000, "{} sentences", rows.len());
    let mut ids = HashSet::new();
    let mut articles: BTreeMap<(String, String), Vec<&StandoffSentence>> = BTreeMap::new();
    let mut labels: HashMap<&str, usize> = HashMap::new();
    let mut sources: HashMap<&str, usize> = HashMap::new();
    for r in &rows {
        assert!(ids.insert(r.id.clone()), "duplicate id {}", r.id);
        for l in [&r.label, &r.label_a, &r.label_b] {
            assert!(
                ["assertion", "denial", "allegation", "context"].contains(&l.as_str()),
                "{}: label {l}",
                r.id
            );
        }
        assert!(
            ["train", "dev", "test"].contains(&r.split.as_str()),
            "{}: split {}",
            r.id,
            r.split
        );
        assert_eq!(r.sha1.len(), 40, "{}: sha1", r.id);
        match r.review.as_deref() {
            None => assert!(
                r.label_a == r.label_b && r.label == r.label_a,
                "{}: no review, yet the passes differ or the final label is another",
                r.id
            ),
            Some("adjudicated") => assert_ne!(
                r.label_a, r.label_b,
                "{}: adjudicated without a disagreement",
                r.id
            ),
            Some("rechecked") => assert!(
                r.label_a == r.label_b && r.label != r.label_a,
                "{}: rechecked but not a changed agreed label",
                r.id
            ),
            Some(other) => panic!("{}: unknown review {other:?}", r.id),
        }
        *labels.entry(&r.label).or_default() += 1;
        *sources.entry(&r.source).or_default() += 1;
        articles
            .entry((r.source.clone(), r.doc.clone()))
            .or_default()
            .push(r);
    }
    assert!(articles.len() >= 350, "{} articles", articles.len());
    for s in SOURCES {
        let share = sources.get(s).copied().unwrap_or(0) as f64 / rows.len() as f64;
        assert!(share >= 0.20, "{s}: {:.1}% of the sentences", 100.0 * share);
    }
    assert!(
        labels.get("allegation").copied().unwrap_or(0) >= 500,
        "{labels:?}"
    );
    assert!(
        labels.get("denial").copied().unwrap_or(0) >= 400,
        "{labels:?}"
    );

    // Whole articles, in order, each in one split; about 70/15/15 per
    // source in the first round, which made the splits.
    let mut per_split: HashMap<(&str, &str), usize> = HashMap::new();
    let mut round1: HashMap<&str, usize> = HashMap::new();
    for ((source, doc), s) in &articles {
        let idx: Vec<usize> = s.iter().map(|r| r.index).collect();
        assert_eq!(
            idx,
            (0..s.len()).collect::<Vec<_>>(),
            "{source}/{doc}: indices not 0..n in order"
        );
        assert!(
            s.windows(2).all(|w| w[0].end <= w[1].start),
            "{source}/{doc}: sentences overlap or are out of order"
        );
        let splits: HashSet<&str> = s.iter().map(|r| r.split.as_str()).collect();
        assert_eq!(splits.len(), 1, "{source}/{doc} spans splits {splits:?}");
        // Later rounds add to one split each (2 and 4-6: train, 3 and 7: dev); test
        // stays the first round's articles.
        if s[0].round > 1 {
            let want = match s[0].round {
                2 | 4 | 5 | 6 => "train",
                3 | 7 => "dev",
                r => panic!("{source}/{doc}: unknown round {r}"),
            };
            assert_eq!(
                s[0].split, want,
                "{source}/{doc}: round {} outside {want}",
                s[0].round
            );
            continue;
        }
        *round1.entry(source.as_str()).or_default() += s.len();
        *per_split
            .entry((source.as_str(), s[0].split.as_str()))
            .or_default() += s.len();
    }
    for s in SOURCES {
        let n = round1[s] as f64;
        for (split, want) in [("train", 0.70), ("dev", 0.15), ("test", 0.15)] {
            let got = per_split.get(&(*s, split)).copied().unwrap_or(0) as f64 / n;
            assert!(
                (got - want).abs() <= 0.05,
                "{s} {split}: {:.1}% of its sentences",
                100.0 * got
            );
        }
    }
}

#[test]
fn real_corpus_rebuilds_with_every_hash_verified() {
    let Some(dir) = realnews() else { return };
    let rows = standoff();
    let built = build(&rows, &dir).unwrap();
    let n: usize = built.values().map(Vec::len).sum();
    assert_eq!(n, rows.len());
    for (split, part) in &built {
        for r in part {
            assert_eq!(
                sha1_hex(&r.text),
                rows.iter()
                    .find(|s| Some(&s.id) == r.id.as_ref())
                    .unwrap()
                    .sha1,
                "{split}"
            );
        }
        let articles: HashSet<&str> = part.iter().map(|r| r.article.as_deref().unwrap()).collect();
        for (other, rest) in &built {
            if other != split {
                assert!(
                    rest.iter()
                        .all(|r| !articles.contains(r.article.as_deref().unwrap())),
                    "{split} and {other} share an article"
                );
            }
        }
    }
    // The corpus is the segmentation `stance data real-segment` produces.
    let first = &rows[0];
    let text = std::fs::read_to_string(dir.join(&first.source).join(&first.doc)).unwrap();
    let seg = segment(&first.source, &text);
    assert_eq!(
        (seg[first.index].start, seg[first.index].end),
        (first.start, first.end)
    );
}

#[test]
fn build_names_the_document_on_a_missing_file_or_a_changed_text() {
    let tmp = tempfile::tempdir().unwrap();
    let doc_dir = tmp.path().join("bbc/politics");
    std::fs::create_dir_all(&doc_dir).unwrap();
    std::fs::write(
        doc_dir.join("001.txt"),
        "Headline\n\nFirst sentence here. Second one.\n",
    )
    .unwrap();
    let row = |start, end, text: &str| StandoffSentence {
        id: "bbc/politics/001#1".into(),
        source: "bbc".into(),
        doc: "politics/001.txt".into(),
        index: 1,
        start,
        end,
        sha1: sha1_hex(text),
        label: "assertion".into(),
        label_a: "assertion".into(),
        label_b: "assertion".into(),
        split: "train".into(),
        review: None,
        round: 1,
    };
    let ok = build(&[row(10, 30, "First sentence here.")], tmp.path()).unwrap();
    assert_eq!(ok["train"][0].text, "First sentence here.");

    let err = build(&[row(10, 30, "First sentence HERE.")], tmp.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("001.txt") && err.contains("hash"), "{err}");
    let err = build(&[row(10, 300, "x")], tmp.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("001.txt") && err.contains("outside"), "{err}");
    let mut missing = row(10, 30, "First sentence here.");
    missing.doc = "politics/002.txt".into();
    let err = build(&[missing], tmp.path()).unwrap_err().to_string();
    assert!(err.contains("bbc/politics/002.txt"), "{err}");

    let bad = tmp.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"id\":1}\n").unwrap();
    let err = read_standoff(std::slice::from_ref(&bad))
        .unwrap_err()
        .to_string();
    assert!(err.contains("bad.jsonl:1"), "{err}");
    let mut escape = row(10, 30, "x");
    escape.doc = "../../etc/passwd".into();
    std::fs::write(&bad, serde_json::to_string(&escape).unwrap() + "\n").unwrap();
    let err = read_standoff(&[bad]).unwrap_err().to_string();
    assert!(err.contains("'..'"), "{err}");
}

#[test]
fn real_build_max_round_leaves_out_later_rounds() {
    let tmp = tempfile::tempdir().unwrap();
    let doc_dir = tmp.path().join("bbc/politics");
    std::fs::create_dir_all(&doc_dir).unwrap();
    std::fs::write(doc_dir.join("001.txt"), "One here.\nTwo there.\n").unwrap();
    std::fs::write(doc_dir.join("002.txt"), "Three now.\n").unwrap();
    let row = |doc: &str, index, start, end, text: &str, split: &str, round| StandoffSentence {
        id: format!("bbc/politics/{}#{index}", &doc[..3]),
        source: "bbc".into(),
        doc: format!("politics/{doc}"),
        index,
        start,
        end,
        sha1: sha1_hex(text),
        label: "context".into(),
        label_a: "context".into(),
        label_b: "context".into(),
        split: split.into(),
        review: None,
        round,
    };
    let rows = [
        row("001.txt", 0, 0, 9, "One here.", "dev", 1),
        row("001.txt", 1, 10, 20, "Two there.", "dev", 1),
        row("002.txt", 0, 0, 10, "Three now.", "dev", 3),
    ];
    let lines: String = rows
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    std::fs::write(tmp.path().join("bbc.jsonl"), lines).unwrap();
    let real_build = |out: &str, extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_stance"))
            .args([
                "data",
                "real-build",
                "bbc.jsonl",
                "--root",
                ".",
                "--out-dir",
                out,
            ])
            .args(extra)
            .current_dir(tmp.path())
            .output()
            .unwrap()
    };
    let run = |out: &str, extra: &[&str]| {
        let st = real_build(out, extra);
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        let dev = std::fs::read_to_string(tmp.path().join(out).join("real.dev.jsonl")).unwrap();
        dev.lines()
            .map(|l| serde_json::from_str::<LabelledSentence>(l).unwrap().text)
            .collect::<Vec<_>>()
    };
    assert_eq!(run("all", &[]), ["One here.", "Two there.", "Three now."]);
    assert_eq!(
        run("r2", &["--max-round", "2"]),
        ["One here.", "Two there."]
    );
    let st = real_build("r0", &["--max-round", "0"]);
    assert!(!st.status.success());
    assert!(String::from_utf8_lossy(&st.stderr).contains("--max-round"));
}

/// Every file under data/ that git tracks (or would, untracked but not
/// ignored), as text.
fn data_files_in_git() -> Vec<(PathBuf, String)> {
    let out = std::process::Command::new("git")
        .args([
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "data",
        ])
        .current_dir(root())
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git ls-files failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|p| {
            let path = root().join(p);
            std::fs::read(&path)
                .ok()
                .map(|b| (path, String::from_utf8_lossy(&b).into_owned()))
        })
        .collect()
}

/// Every sentence of every document under `dir` (the three sources),
/// normalised; short ones ("He said.") are too common to mean copying.
fn real_sentences(dir: &Path) -> HashSet<String> {
    let mut real = HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "txt") {
                let Ok(text) = std::fs::read_to_string(&p) else {
                    continue;
                };
                let rel = p.strip_prefix(dir).unwrap();
                let source = rel
                    .components()
                    .next()
                    .unwrap()
                    .as_os_str()
                    .to_string_lossy()
                    .into_owned();
                for s in segment(&source, &text) {
                    if s.text.chars().count() >= 40 {
                        real.insert(normalise(&s.text));
                    }
                }
            }
        }
    }
    real
}

/// The real sentences found in `files`: as plain text, and inside every
/// JSON string of a JSONL line.
fn find_leaks(real: &HashSet<String>, files: &[(PathBuf, String)]) -> Vec<String> {
    let mut leaks = Vec::new();
    for (path, text) in files {
        let mut candidates = vec![text.clone()];
        for line in text.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                collect_strings(&v, &mut candidates);
            }
        }
        for c in candidates {
            for s in stance::splitter::split_sentences(&c) {
                if real.contains(&normalise(&s.text)) {
                    leaks.push(format!("{}: {}", path.display(), s.text));
                }
            }
        }
    }
    leaks
}

fn collect_strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_strings(x, out)),
        serde_json::Value::Object(m) => m.values().for_each(|x| collect_strings(x, out)),
        _ => {}
    }
}

#[test]
fn no_file_under_data_holds_a_sentence_of_the_real_sources() {
    let Some(dir) = realnews() else { return };
    let real = real_sentences(&dir);
    assert!(
        real.len() > 50_000,
        "only {} real sentences found under {}",
        real.len(),
        dir.display()
    );
    let leaks = find_leaks(&real, &data_files_in_git());
    assert!(
        leaks.is_empty(),
        "{} real sentences in data/:\n{}",
        leaks.len(),
        leaks.join("\n")
    );

    // The check would catch a copy: a corpus sentence pasted into a JSONL
    // text field, and one pasted into prose.
    let rows = standoff();
    let built: BTreeMap<String, Vec<LabelledSentence>> = build(&rows[..60], &dir).unwrap();
    let s = built
        .values()
        .flatten()
        .find(|r| r.text.chars().count() >= 40)
        .unwrap();
    let jsonl = serde_json::json!({"text": s.text, "label": "assertion"}).to_string() + "\n";
    let prose = format!("Some words of our own here. {} More of ours.\n", s.text);
    let planted = [
        (PathBuf::from("planted.jsonl"), jsonl),
        (PathBuf::from("planted.md"), prose),
    ];
    assert_eq!(
        find_leaks(&real, &planted).len(),
        2,
        "the leak check missed a planted sentence: {}",
        s.text
    );
}

#[test]
fn average_predictions_matches_sentences_by_article_and_text() {
    // Two models' `eval --predictions` rows for one article, the second
    // file in another order, with a sentence repeated within the article.
    let t = tempfile::tempdir().unwrap();
    let row = |text: &str, gold: &str, p: [f64; 4]| {
        serde_json::json!({"article": "a/1", "text": text, "gold": gold, "label": "x", "probabilities": p})
            .to_string()
    };
    let a = [
        row("Police accused him.", "allegation", [0.2, 0.0, 0.6, 0.2]),
        row("He denied it.", "denial", [0.5, 0.4, 0.0, 0.1]),
        row("He denied it.", "denial", [0.1, 0.9, 0.0, 0.0]),
    ];
    let b = [
        row("He denied it.", "denial", [0.1, 0.8, 0.0, 0.1]),
        row("He denied it.", "denial", [0.3, 0.7, 0.0, 0.0]),
        row("Police accused him.", "allegation", [0.6, 0.0, 0.2, 0.2]),
    ];
    let (pa, pb) = (t.path().join("a.jsonl"), t.path().join("b.jsonl"));
    std::fs::write(&pa, a.join("\n") + "\n").unwrap();
    std::fs::write(&pb, b.join("\n") + "\n").unwrap();
    let average = || {
        std::process::Command::new("python3")
            .arg(root().join("scripts/realnews/average_predictions.py"))
            .args([&pa, &pb])
            .output()
            .unwrap()
    };
    let o = average();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<serde_json::Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let probs = |r: &serde_json::Value| -> Vec<f64> {
        r["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v.as_f64().unwrap() * 100.0).round() / 100.0)
            .collect()
    };
    // The first file's order; the first "He denied it." of each file is
    // averaged with the other's first, the second with the second.
    assert_eq!(rows.len(), 3);
    assert_eq!(probs(&rows[0]), [0.4, 0.0, 0.4, 0.2]);
    assert_eq!(probs(&rows[1]), [0.3, 0.6, 0.0, 0.1]);
    assert_eq!(probs(&rows[2]), [0.2, 0.8, 0.0, 0.0]);
    let labels: Vec<&str> = rows.iter().map(|r| r["label"].as_str().unwrap()).collect();
    // A tie (0.4, 0.4) goes to the first label, as argmax does.
    assert_eq!(labels, ["assertion", "denial", "denial"]);
    let summary = String::from_utf8(o.stderr).unwrap();
    assert!(summary.contains("average of 2: 3 sentences"), "{summary}");

    // A file with other sentences is refused, naming it.
    std::fs::write(&pb, b[..2].join("\n") + "\n").unwrap();
    let o = average();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("b.jsonl: not the same sentences"), "{err}");
}
