//! Streaming `stance predict` over JSONL (issue 13): output as each batch is
//! done, every input field passed through, bad lines skipped on request,
//! shards and resume.

use crate::common;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_stance");

fn stance(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn articles(n: usize) -> String {
    (0..n)
        .map(|i| json!({"id": i, "text": format!("The mayor denied report {i}. Police accused the driver."), "url": format!("https://x/{i}"), "date": 2020 + i as i64}).to_string() + "\n")
        .collect()
}

#[test]
fn fields_pass_through_and_bad_lines_fail_or_skip() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    common::train_tiny(BIN, d);
    std::fs::write(d.join("in.jsonl"), articles(3)).unwrap();

    // --format articles: the input object, types kept, plus its sentences.
    let o = stance(
        d,
        &[
            "predict", "--model", "ckpt", "--format", "articles", "in.jsonl",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = lines(&o.stdout);
    assert_eq!(out.len(), 3);
    for (i, a) in out.iter().enumerate() {
        assert_eq!(a["id"], json!(i));
        assert_eq!(a["url"], json!(format!("https://x/{i}")));
        assert_eq!(a["date"], json!(2020 + i as i64));
        assert!(a.get("text").is_none());
        assert_eq!(a["sentences"].as_array().unwrap().len(), 2);
    }
    // --format jsonl: sentence records whose "article" is the id as given.
    let o = stance(
        d,
        &[
            "predict", "--model", "ckpt", "--format", "jsonl", "in.jsonl",
        ],
    );
    let out = lines(&o.stdout);
    assert_eq!(out.len(), 6);
    assert_eq!(out[0]["article"], json!(0));
    // The same labels as the whole-input path (text articles).
    std::fs::write(
        d.join("a.txt"),
        "The mayor denied report 0. Police accused the driver.",
    )
    .unwrap();
    let whole = lines(
        &stance(
            d,
            &["predict", "--model", "ckpt", "--format", "jsonl", "a.txt"],
        )
        .stdout,
    );
    for k in ["label", "probability", "start", "end", "text"] {
        assert_eq!(whole[0][k], out[0][k], "{k}");
        assert_eq!(whole[1][k], out[1][k], "{k}");
    }

    // HTML input (by extension): markup, script, style and navigation gone,
    // entities decoded, the headline its own sentence; --top-k adds the runners-up.
    std::fs::write(d.join("page.html"), "<html><head><style>p{}</style></head><body><nav>Home | World</nav><h1>Mayor denies report</h1><p>The mayor denied the report &amp; the claims.</p><script>x()</script></body></html>").unwrap();
    let o = stance(
        d,
        &[
            "predict",
            "--model",
            "ckpt",
            "--format",
            "jsonl",
            "--top-k",
            "3",
            "page.html",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = lines(&o.stdout);
    let texts: Vec<&str> = got.iter().map(|v| v["text"].as_str().unwrap()).collect();
    assert_eq!(
        texts,
        [
            "Mayor denies report",
            "The mayor denied the report & the claims."
        ]
    );
    let top = got[0]["top_k"].as_array().unwrap();
    assert_eq!(top.len(), 3);
    assert_eq!(top[0]["label"], got[0]["label"]);
    assert!(top[0]["probability"].as_f64() >= top[1]["probability"].as_f64());

    // A bad line: fail (default) stops with its line, and -o is left as it was.
    let mut bad = articles(2);
    bad.insert_str(bad.find('\n').unwrap() + 1, "{\"id\": 9}\nnot json\n");
    std::fs::write(d.join("bad.jsonl"), &bad).unwrap();
    std::fs::write(d.join("out.jsonl"), "keep me\n").unwrap();
    let o = stance(
        d,
        &[
            "predict",
            "--model",
            "ckpt",
            "--format",
            "articles",
            "bad.jsonl",
            "-o",
            "out.jsonl",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.jsonl:2") && err.contains("\"text\""),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("out.jsonl")).unwrap(),
        "keep me\n"
    );
    assert!(!std::fs::read_dir(d).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains(".tmp-")));

    // skip: error records in place, the rest labelled, exit status 3.
    let o = stance(
        d,
        &[
            "predict",
            "--model",
            "ckpt",
            "--format",
            "articles",
            "--on-error",
            "skip",
            "bad.jsonl",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = lines(&o.stdout);
    assert_eq!(out.len(), 4);
    assert_eq!(
        (out[0]["id"].clone(), out[3]["id"].clone()),
        (json!(0), json!(1))
    );
    assert_eq!(
        (out[1]["id"].clone(), out[1]["line"].clone()),
        (json!(9), json!(2))
    );
    assert!(out[1]["error"]
        .as_str()
        .unwrap()
        .contains("missing string field"));
    assert_eq!(out[2]["line"], json!(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("2 input line(s) skipped"));
    // ... or in --errors FILE.
    let o = stance(
        d,
        &[
            "predict",
            "--model",
            "ckpt",
            "--format",
            "articles",
            "--on-error",
            "skip",
            "--errors",
            "errors.jsonl",
            "bad.jsonl",
        ],
    );
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(lines(&o.stdout).len(), 2);
    assert_eq!(
        lines(&std::fs::read(d.join("errors.jsonl")).unwrap()).len(),
        2
    );

    // Streaming-only flags on text input are refused by name.
    let o = stance(
        d,
        &["predict", "--model", "ckpt", "--shard", "1/2", "a.txt"],
    );
    assert!(
        !o.status.success()
            && String::from_utf8_lossy(&o.stderr).contains("--shard needs JSONL input")
    );
    let o = stance(
        d,
        &[
            "predict", "--model", "ckpt", "--format", "articles", "--shard", "3/2", "in.jsonl",
        ],
    );
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("1 <= K <= N"));
}

#[test]
fn shards_cover_every_article_once_and_resume_finishes_a_killed_run() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    common::train_tiny(BIN, d);
    std::fs::write(d.join("in.jsonl"), articles(10)).unwrap();
    let full = stance(
        d,
        &[
            "predict", "--model", "ckpt", "--format", "articles", "in.jsonl",
        ],
    )
    .stdout;
    for by in ["line", "id"] {
        let mut ids = Vec::new();
        for k in 1..=3 {
            let o = stance(
                d,
                &[
                    "predict",
                    "--model",
                    "ckpt",
                    "--format",
                    "articles",
                    "--shard",
                    &format!("{k}/3"),
                    "--shard-by",
                    by,
                    "in.jsonl",
                ],
            );
            assert!(o.status.success());
            ids.extend(
                lines(&o.stdout)
                    .into_iter()
                    .map(|a| a["id"].as_u64().unwrap()),
            );
        }
        ids.sort();
        assert_eq!(ids, (0..10).collect::<Vec<_>>(), "--shard-by {by}");
    }
    // A killed run left 4 complete articles and half a line.
    let text = String::from_utf8(full.clone()).unwrap();
    let mut partial: String = text.lines().take(4).map(|l| l.to_string() + "\n").collect();
    partial += &text.lines().nth(4).unwrap()[..20];
    std::fs::write(d.join("out.jsonl"), &partial).unwrap();
    let o = stance(
        d,
        &[
            "predict",
            "--model",
            "ckpt",
            "--format",
            "articles",
            "--resume",
            "-o",
            "out.jsonl",
            "in.jsonl",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("4 already in the output"));
    assert_eq!(
        std::fs::read(d.join("out.jsonl")).unwrap(),
        full,
        "resumed output = one uninterrupted run"
    );
    let o = stance(
        d,
        &[
            "predict", "--model", "ckpt", "--format", "jsonl", "--resume", "-o", "x.jsonl",
            "in.jsonl",
        ],
    );
    assert!(
        !o.status.success()
            && String::from_utf8_lossy(&o.stderr).contains("--resume needs --format articles")
    );
}

#[test]
fn each_article_comes_out_before_the_next_is_read() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    common::train_tiny(BIN, d);
    let mut child = Command::new(BIN)
        .args([
            "predict", "--model", "ckpt", "--jsonl", "--format", "articles", "-",
        ])
        .current_dir(d)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines() {
            let _ = tx.send(l.unwrap());
        }
    });
    writeln!(
        stdin,
        "{}",
        json!({"id": "first", "text": "The mayor denied the report."})
    )
    .unwrap();
    stdin.flush().unwrap();
    let first = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the first article's line, with the input still open");
    assert!(first.contains("\"first\""));
    writeln!(
        stdin,
        "{}",
        json!({"id": "second", "text": "Police accused him."})
    )
    .unwrap();
    drop(stdin);
    let second = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(second.contains("\"second\""));
    assert!(child.wait().unwrap().success());
}
