//! Who claims what: the tagger's windows, BIO tags and decoding; training
//! a tiny tagger with `stance train --task attribution` on PolNeAR-layout
//! data; `stance eval --task attribution`; and `stance predict` and
//! `stance serve` giving each sentence its source and cue (JSONL, table,
//! CSV, HTML, the API).

use crate::common;

use stance::attribution::tags::{decode, gold_tags, tag, windows, TAGS};
use stance::attribution::{Role, Span};
use stance::batch::{TextEncoder, IGNORE};
use stance::engine::Precision;
use std::path::{Path, PathBuf};
use std::process::Command;

fn encoder(dir: &Path) -> TextEncoder {
    common::write_tokenizer(dir);
    TextEncoder::from_file(&dir.join("tokenizer.json"), 64).unwrap()
}

const TEXT: &str = "The mayor said the report was false. Police accused the driver. A";

fn sentences() -> Vec<std::ops::Range<usize>> {
    vec![0..36, 37..63, 64..65]
}

#[test]
fn windows_hold_whole_sentences_within_max_len_and_every_token_once() {
    let t = tempfile::tempdir().unwrap();
    let enc = encoder(t.path());
    let (cls, sep) = enc.bounds().unwrap();
    for max_len in [8, 12, 24, 64] {
        let ws = windows(&enc, TEXT, &sentences(), max_len).unwrap();
        let mut all: Vec<(usize, usize)> = Vec::new();
        for w in &ws {
            assert!(w.enc.ids.len() <= max_len, "window of {}", w.enc.ids.len());
            assert_eq!(w.enc.ids.first(), Some(&cls));
            assert_eq!(w.enc.ids.last(), Some(&sep));
            assert_eq!(w.offsets.len(), w.enc.ids.len());
            assert!(w.offsets[0].is_none() && w.offsets.last().unwrap().is_none());
            all.extend(w.offsets.iter().flatten());
        }
        // Every token of every sentence, in order, once.
        let mut want = Vec::new();
        for r in sentences() {
            let (_, offs) = enc.pieces(&TEXT[r.clone()]).unwrap();
            want.extend(offs.iter().map(|&(a, b)| (a + r.start, b + r.start)));
        }
        assert_eq!(all, want, "max_len {max_len}");
    }
    // With room, sentences share a window: as many as fit, greedily.
    let lens: Vec<usize> = sentences()
        .iter()
        .map(|r| enc.pieces(&TEXT[r.clone()]).unwrap().0.len())
        .collect();
    let room = lens[0] + lens[1] + 2;
    let ws = windows(&enc, TEXT, &sentences(), room).unwrap();
    assert_eq!(ws.len(), 2, "{lens:?}: the first two share a window");
    assert_eq!(ws[0].enc.ids.len(), room);
    let ws = windows(&enc, TEXT, &sentences(), room + lens[2]).unwrap();
    assert_eq!(ws.len(), 1);
}

fn gold() -> Vec<Span> {
    let find = |s: &str| {
        let a = TEXT.find(s).unwrap();
        (a, a + s.len())
    };
    let span = |role, s| {
        let (start, end) = find(s);
        Span { role, start, end }
    };
    vec![
        span(Role::Source, "The mayor"),
        span(Role::Cue, "said"),
        span(Role::Content, "the report was false"),
        span(Role::Source, "Police"),
        span(Role::Cue, "accused"),
    ]
}

#[test]
fn gold_tags_are_bio_and_decoding_them_gives_the_spans_back() {
    let t = tempfile::tempdir().unwrap();
    let enc = encoder(t.path());
    let mut spans = gold();
    spans.sort_by_key(|s| s.start);
    for max_len in [10, 64] {
        let ws = windows(&enc, TEXT, &sentences(), max_len).unwrap();
        let mut decoded = Vec::new();
        for w in &ws {
            let tags = gold_tags(w, &spans);
            assert_eq!(tags[0], IGNORE);
            assert_eq!(*tags.last().unwrap(), IGNORE);
            // An inside tag only continues its role.
            for p in tags.windows(2) {
                if let Some((role, true)) = stance::attribution::tags::untag(p[1] as usize) {
                    let prev = stance::attribution::tags::untag(p[0] as usize);
                    assert_eq!(prev.map(|x| x.0), Some(role), "{tags:?}");
                }
            }
            // One-hot logits of the gold tags decode to the gold spans.
            let mut logits = vec![0f32; tags.len() * TAGS.len()];
            for (i, &g) in tags.iter().enumerate() {
                if g != IGNORE {
                    logits[i * TAGS.len() + g as usize] = 10.0;
                }
            }
            decoded.extend(decode(w, &logits));
        }
        if max_len == 64 {
            assert_eq!(decoded, spans);
        } else {
            // Cut windows cut spans, but every byte of every span comes back.
            for s in &spans {
                let covered: usize = decoded
                    .iter()
                    .filter(|d| d.role == s.role && d.start >= s.start && d.end <= s.end)
                    .map(|d| d.end - d.start)
                    .sum();
                assert!(covered > 0, "{s:?} lost");
            }
        }
    }
}

#[test]
fn decoding_never_starts_a_span_inside() {
    let t = tempfile::tempdir().unwrap();
    let enc = encoder(t.path());
    let one = vec![std::ops::Range { start: 0, end: 7 }];
    let ws = windows(&enc, "said so", &one, 64).unwrap();
    let w = &ws[0];
    let k = TAGS.len();
    // Every token prefers I-CUE: a lone "inside" must become a span's start.
    let mut logits = vec![0f32; w.offsets.len() * k];
    for i in 0..w.offsets.len() {
        logits[i * k + tag(Role::Cue, true) as usize] = 5.0;
        logits[i * k + tag(Role::Cue, false) as usize] = 4.0;
    }
    let spans = decode(w, &logits);
    assert_eq!(
        spans,
        vec![Span {
            role: Role::Cue,
            start: 0,
            end: 7
        }]
    );
}

/// A PolNeAR-layout directory of `n` short articles in a fixed pattern
/// ("NAME said the report was false. ..."), brat offsets in characters.
fn polnear_dir(root: &Path, n: usize) -> PathBuf {
    let dir = root.join("polnear");
    std::fs::create_dir_all(dir.join("text")).unwrap();
    std::fs::create_dir_all(dir.join("attributions")).unwrap();
    let names = ["the mayor", "police", "the club", "rivals", "the council"];
    let claims = [
        "the report was false",
        "a deal was near",
        "the vote is in may",
    ];
    for i in 0..n {
        let who = names[i % names.len()];
        let what = claims[i % claims.len()];
        let other = names[(i + 2) % names.len()];
        let text = format!(
            "“{what},” {who} said. The plant opened in 1820. {other} denied that {what}.\n"
        );
        let c = |s: &str, from: usize| {
            let b = text[from..].find(s).unwrap() + from;
            let start = text[..b].chars().count();
            (start, start + s.chars().count(), b + s.len())
        };
        let mut ann = String::new();
        let mut t = 0;
        let mut from = 0;
        for (role, s) in [
            ("Content", what),
            ("Source", who),
            ("Cue", "said"),
            ("Source", other),
            ("Cue", "denied"),
            ("Content", what),
        ] {
            let (a, b, end) = c(s, from);
            from = end;
            t += 1;
            ann += &format!("T{t}\t{role} {a} {b}\t{s}\n");
        }
        ann += "E1\tAttribution:T3 Content:T1 Cue:T3 Source:T2\n";
        std::fs::write(dir.join(format!("text/a{i:02}.txt")), &text).unwrap();
        std::fs::write(dir.join(format!("attributions/a{i:02}_4e07.ann")), ann).unwrap();
    }
    dir
}

fn stance(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stance"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// A tiny tagger trained by the binary on the pattern articles.
fn tiny_tagger(d: &Path) -> PathBuf {
    common::tiny_base(&d.join("base"), 3);
    polnear_dir(d, 10);
    let o = stance(
        d,
        &[
            "train",
            "--task",
            "attribution",
            "--train",
            "polnear",
            "--dev",
            "polnear",
            "--base",
            "base",
            "--out",
            "tagger",
            "--epochs",
            "60",
            "--batch-size",
            "2",
            "--lr",
            "3e-3",
            "--max-len",
            "128",
            "--class-weights",
            "none",
            "--patience",
            "0",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("10 training windows (10 articles)"), "{err}");
    d.join("tagger")
}

#[test]
fn a_trained_tagger_is_a_token_classifier_that_finds_cues_and_sources() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let tagger = tiny_tagger(d);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tagger.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(
        config["architectures"],
        serde_json::json!(["BertForTokenClassification"])
    );
    assert_eq!(config["id2label"]["3"], "B-CUE");

    // eval --task attribution scores it span by span.
    let o = stance(
        d,
        &[
            "eval",
            "--task",
            "attribution",
            "--model",
            "tagger",
            "--data",
            "polnear",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["documents"], 10);
    let role = |name: &str| {
        r["roles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["role"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(role("cue")["exact"]["gold"], 20);
    assert_eq!(role("source")["exact"]["gold"], 20);
    // The pattern is learnable: the cues are single words.
    let cue_f1 = role("cue")["exact"]["f1"].as_f64().unwrap();
    assert!(
        cue_f1 >= 0.9,
        "cue exact F1 {cue_f1} on its own training data"
    );
    let text = stance(
        d,
        &[
            "eval",
            "--task",
            "attribution",
            "--model",
            "tagger",
            "--data",
            "polnear",
        ],
    );
    let table = String::from_utf8_lossy(&text.stdout);
    assert!(
        table.contains("source") && table.contains("words P"),
        "{table}"
    );

    // predict: every sentence gets "source" and "cue" (null or a span of the article).
    let sentence_model =
        common::train_tiny_from(env!("CARGO_BIN_EXE_stance"), d, Path::new("base"));
    let model = sentence_model.to_str().unwrap();

    // One Labeller builds its engines once and answers call after call as
    // a fresh one does: nothing carries over between batches (serve's
    // batches and a stream's chunks reuse one).
    {
        use stance::labeller::Labeller;
        use stance::predict::Article;
        let ckpt = stance::checkpoint::load(&sentence_model, &candle_core::Device::Cpu).unwrap();
        let tagger = stance::attribution::tagger::Tagger::load(&d.join("tagger")).unwrap();
        let art = |name: &str, text: &str| Article {
            name: name.into(),
            text: text.into(),
        };
        let a = vec![art(
            "a",
            "“A deal was near,” the club said. The plant opened in 1820.",
        )];
        let b = vec![
            art(
                "b",
                "Reports said the mayor resigned. He denied it on Monday.",
            ),
            art("c", "Rain fell."),
        ];
        let json = |p: Vec<stance::predict::Prediction>| serde_json::to_string(&p).unwrap();
        let fresh = |arts: &[Article]| {
            let l = Labeller::new(&ckpt, Some(&tagger), Precision::F32).unwrap();
            json(l.label(arts, 2, |_| {}).unwrap())
        };
        let reused = Labeller::new(&ckpt, Some(&tagger), Precision::F32).unwrap();
        let first = json(reused.label(&a, 2, |_| {}).unwrap());
        assert!(first.contains("\"source\""), "{first}");
        assert_eq!(json(reused.label(&b, 2, |_| {}).unwrap()), fresh(&b));
        assert_eq!(json(reused.label(&a, 2, |_| {}).unwrap()), first);
        assert_eq!(first, fresh(&a));
    }

    let predict = |format: &str, extra: &[&str], input: &str| {
        let mut args = vec![
            "predict", "--model", model, "--tagger", "tagger", "--format", format,
        ];
        args.extend(extra);
        args.push(input);
        let o = stance(d, &args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let jsonl = |text: &str| -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let article = "“A deal was near,” the club said. The plant opened in 1820.\n";
    std::fs::write(d.join("a.txt"), article).unwrap();
    let chars: Vec<char> = article.chars().collect();
    let lines = jsonl(&predict("jsonl", &[], "a.txt"));
    assert_eq!(lines.len(), 2);
    let mut cues = 0;
    for l in &lines {
        assert!(l.get("source").is_some() && l.get("cue").is_some(), "{l}");
        for key in ["source", "cue"] {
            if let Some(s) = l[key].as_object() {
                let (a, b) = (
                    s["start"].as_u64().unwrap() as usize,
                    s["end"].as_u64().unwrap() as usize,
                );
                let slice: String = chars[a..b].iter().collect();
                assert_eq!(
                    slice,
                    s["text"].as_str().unwrap(),
                    "{key} offsets are characters"
                );
                cues += (key == "cue") as usize;
            }
        }
    }
    assert!(cues >= 1, "the cue \"said\" is found: {lines:?}");
    assert_eq!(lines[0]["cue"]["text"], "said");
    // The table gains a who column; --no-attribution drops it all.
    let table = predict("table", &[], "a.txt");
    let first = table.lines().nth(1).unwrap();
    assert!(
        first.contains("club") || first.contains("(said)"),
        "{table}"
    );
    let plain = jsonl(&predict("jsonl", &["--no-attribution"], "a.txt"));
    assert!(plain[0].get("source").is_none());
    // JSONL input (the streaming path) says who claims what too.
    std::fs::write(
        d.join("in.jsonl"),
        serde_json::json!({"id": "x", "text": article}).to_string() + "\n",
    )
    .unwrap();
    let streamed = jsonl(&predict("jsonl", &[], "in.jsonl"));
    assert_eq!(streamed[0]["cue"], lines[0]["cue"]);
    assert_eq!(streamed[0]["source"], lines[0]["source"]);
    // CSV gets source and cue columns; HTML marks them.
    let csv = predict("csv", &[], "a.txt");
    assert!(
        csv.lines().next().unwrap().contains("source,cue,text"),
        "{csv}"
    );
    let html = predict("html", &[], "a.txt");
    assert!(
        html.contains("<mark class=\"who-cue\" title=\"cue\">said</mark>"),
        "{html}"
    );
    assert!(html.contains("who makes the claim"));

    // stance serve says who claims what as predict does: in the API's
    // sentences, in /v1/model, and in the article view.
    let server = crate::serve::Server::start(
        &d.join(&sentence_model),
        &["--tagger", d.join("tagger").to_str().unwrap()],
    );
    let body = serde_json::json!({ "text": article }).to_string();
    let (code, v) = server.post_json("/v1/predict", &body);
    assert_eq!(code, 200, "{v}");
    let served = v["articles"][0]["sentences"].as_array().unwrap();
    assert_eq!(served.len(), lines.len());
    for (s, l) in served.iter().zip(&lines) {
        assert_eq!((&s["source"], &s["cue"]), (&l["source"], &l["cue"]), "{s}");
    }
    assert_eq!(served[0]["cue"]["text"], "said");
    let info: serde_json::Value = ureq::get(&server.url("/v1/model"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(info["attribution"]["model"], "tagger", "{info}");
    let view = ureq::post(&server.url("/v1/view"))
        .set("Content-Type", "application/json")
        .send_string(&body)
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        view.contains("<mark class=\"who-cue\" title=\"cue\">said</mark>"),
        "{view}"
    );
    drop(server);
    let plain = crate::serve::Server::start(&d.join(&sentence_model), &[]);
    let (_, v) = plain.post_json("/v1/predict", &body);
    assert!(
        v["articles"][0]["sentences"][0].get("source").is_none(),
        "{v}"
    );
}

#[test]
fn bad_attribution_input_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    common::tiny_base(&d.join("base"), 3);
    let dir = polnear_dir(d, 2);
    // A sentence classifier is not a tagger.
    let model = common::train_tiny_from(env!("CARGO_BIN_EXE_stance"), d, Path::new("base"));
    let o = stance(
        d,
        &[
            "eval",
            "--task",
            "attribution",
            "--model",
            model.to_str().unwrap(),
            "--data",
            "polnear",
        ],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not an attribution tagger"), "{err}");
    std::fs::write(d.join("a.txt"), "The mayor said so.\n").unwrap();
    let o = stance(
        d,
        &[
            "predict",
            "--model",
            model.to_str().unwrap(),
            "--tagger",
            "nope",
            "a.txt",
        ],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--tagger nope"));
    // A broken .ann line is named by file and line.
    let ann = dir.join("attributions/a01_4e07.ann");
    let body = std::fs::read_to_string(&ann).unwrap();
    std::fs::write(&ann, body.replacen("Cue ", "Cue x", 1)).unwrap();
    let o = stance(
        d,
        &[
            "train",
            "--task",
            "attribution",
            "--train",
            "polnear",
            "--base",
            "base",
            "--out",
            "t2",
        ],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("a01_4e07.ann:3:"), "{err}");
    assert!(!d.join("t2").exists(), "nothing written on bad input");
    // Stance-only flags are refused, not ignored.
    let o = stance(
        d,
        &[
            "train",
            "--task",
            "attribution",
            "--train",
            "polnear",
            "--base",
            "base",
            "--out",
            "t3",
            "--context",
            "1",
        ],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--context"));
}
