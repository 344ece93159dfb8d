//! The `stance` binary end to end on a tiny random model: train -> predict ->
//! eval, data stats / split, and exit codes and messages for bad input.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn stance(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stance"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fails_with(o: Output, needles: &[&str]) {
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    let e = stderr(&o);
    assert!(!e.contains("panicked"), "{e}");
    for n in needles {
        assert!(e.contains(n), "expected {n:?} in: {e}");
    }
}

struct Fixture {
    _t: tempfile::TempDir,
    dir: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().to_path_buf();
        common::tiny_base(&dir.join("base"), 3);
        common::write_jsonl(&dir.join("train.jsonl"), common::TRAIN_ROWS, 4);
        common::write_jsonl(&dir.join("dev.jsonl"), &common::TRAIN_ROWS[..8], 4);
        Fixture { _t: t, dir }
    }
    fn p(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
    fn write(&self, name: &str, bytes: &[u8]) -> String {
        std::fs::write(self.dir.join(name), bytes).unwrap();
        self.p(name)
    }
    fn train(&self, out: &str, extra: &[&str]) -> Output {
        let (tr, dev, base, out) = (
            self.p("train.jsonl"),
            self.p("dev.jsonl"),
            self.p("base"),
            self.p(out),
        );
        let mut args = vec![
            "train",
            "--train",
            &tr,
            "--dev",
            &dev,
            "--base",
            &base,
            "--out",
            &out,
            "--epochs",
            "3",
            "--batch-size",
            "4",
            "--lr",
            "1e-3",
            "--max-len",
            "48",
        ];
        args.extend_from_slice(extra);
        stance(&args)
    }
}

fn no_partial_files(dir: &Path) {
    let stray: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".partial") || n.contains(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn train_predict_eval_end_to_end() {
    let f = Fixture::new();
    // The base says which transformers wrote it; the checkpoint must not
    // repeat that as if transformers had written it too.
    let base_cfg = f.dir.join("base/config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&base_cfg).unwrap()).unwrap();
    v["transformers_version"] = serde_json::json!("4.8.2");
    std::fs::write(&base_cfg, v.to_string()).unwrap();
    let o = f.train("ckpt", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("freshly initialised: classifier.weight, classifier.bias"),
        "{}",
        stderr(&o)
    );
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "training_args.json",
        "metrics.json",
        "metrics.jsonl",
    ] {
        assert!(f.dir.join("ckpt").join(file).is_file(), "{file}");
    }
    // training_args.json speaks the flags' language, not Rust's.
    let args: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(f.dir.join("ckpt/training_args.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        args["labels"],
        serde_json::json!(["assertion", "denial", "allegation", "context"])
    );
    assert!(args["method"].is_string(), "{args}");
    let log = std::fs::read_to_string(f.dir.join("ckpt/metrics.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 3);
    let first: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
    assert!(first["dev_macro_f1"].is_number() && first["train_loss"].is_number());
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.dir.join("ckpt/metrics.json")).unwrap())
            .unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.dir.join("ckpt/config.json")).unwrap())
            .unwrap();
    assert!(config.get("transformers_version").is_none(), "{config}");
    let t = metrics["calibration"]["temperature"].as_f64().unwrap();
    assert!(
        t > 0.0 && (config["stance"]["temperature"].as_f64().unwrap() - t).abs() < 1e-6,
        "{metrics}"
    );
    // The fitted temperature minimises dev NLL, so it cannot be worse than T = 1.
    assert!(
        metrics["calibration"]["dev_nll_after"].as_f64().unwrap()
            <= metrics["calibration"]["dev_nll_before"].as_f64().unwrap() + 1e-9,
        "{metrics}"
    );
    assert!(metrics["calibration"]["dev_ece_after"].is_number());

    let article = f.write("article.txt", "Mr. Smith denied the report on Jan. 5. Police accused him of fraud.\n\nThe town was founded in 1820.".as_bytes());
    let o = stance(&[
        "predict",
        "--model",
        &f.p("ckpt"),
        &article,
        "--format",
        "jsonl",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["text"], "Mr. Smith denied the report on Jan. 5.");
    assert_eq!(rows[1]["start"], 39);
    let p: f64 = rows[0]["probabilities"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!((p - 1.0).abs() < 1e-3);
    assert!(["assertion", "denial", "allegation", "context"]
        .contains(&rows[0]["label"].as_str().unwrap()));

    let o = stance(&[
        "predict",
        "--model",
        &f.p("ckpt"),
        &article,
        "--format",
        "csv",
    ]);
    assert!(
        stdout(&o).starts_with("article,index,start,end,label,probability,p_assertion"),
        "{}",
        stdout(&o)
    );
    let o = stance(&[
        "predict",
        "--model",
        &f.p("ckpt"),
        &article,
        "--format",
        "table",
    ]);
    assert!(
        stdout(&o).contains("  1  ") && stdout(&o).contains("Mr. Smith denied"),
        "{}",
        stdout(&o)
    );
    let jl = f.write(
        "articles.jsonl",
        b"{\"id\": \"x\", \"text\": \"One. Two.\"}\n{\"text\": \"Three.\"}\n",
    );
    let o = stance(&[
        "predict",
        "--model",
        &f.p("ckpt"),
        "--jsonl",
        &jl,
        "--output",
        &f.p("out.jsonl"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(f.dir.join("out.jsonl"))
            .unwrap()
            .lines()
            .count(),
        3
    );

    let o = stance(&["eval", "--model", &f.p("ckpt"), "--data", &f.p("dev.jsonl")]);
    assert!(o.status.success(), "{}", stderr(&o));
    for s in [
        "precision",
        "recall",
        "f1-score",
        "support",
        "macro avg",
        "weighted avg",
        "accuracy",
        "confusion matrix",
        "allegation",
        "calibration",
    ] {
        assert!(stdout(&o).contains(s), "{s} missing in {}", stdout(&o));
    }
    let o = stance(&[
        "eval",
        "--model",
        &f.p("ckpt"),
        "--data",
        &f.p("dev.jsonl"),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["metrics"]["support"], 8);
    assert_eq!(v["metrics"]["confusion"]["labels"][1], "denial");
    no_partial_files(&f.dir);
}

#[test]
fn bad_data_is_reported_with_file_and_line() {
    let f = Fixture::new();
    let bad = f.write(
        "bad.jsonl",
        b"{\"text\": \"ok.\", \"label\": \"context\"}\n{\"text\": \"x\", \"label\": \"rumour\"}\n",
    );
    let o = stance(&[
        "train",
        "--train",
        &bad,
        "--base",
        &f.p("base"),
        "--out",
        &f.p("o"),
    ]);
    fails_with(o, &["bad.jsonl:2", "unknown label \"rumour\""]);
    let bad = f.write(
        "bad2.jsonl",
        b"{\"text\": \"ok.\", \"label\": \"context\"}\n{\"text\": \"x\",\n",
    );
    fails_with(
        stance(&[
            "train",
            "--train",
            &bad,
            "--base",
            &f.p("base"),
            "--out",
            &f.p("o"),
        ]),
        &["bad2.jsonl:2", "bad JSON"],
    );
    let bad = f.write("bad3.jsonl", b"{\"text\": \"\", \"label\": \"context\"}\n");
    fails_with(
        stance(&[
            "train",
            "--train",
            &bad,
            "--base",
            &f.p("base"),
            "--out",
            &f.p("o"),
        ]),
        &["bad3.jsonl:1", "empty text"],
    );
    let bad = f.write(
        "bad4.jsonl",
        b"{\"text\": \"caf\xe9\", \"label\": \"context\"}\n",
    );
    fails_with(
        stance(&["data", "stats", &bad]),
        &["bad4.jsonl:1", "invalid UTF-8"],
    );
    assert!(!f.dir.join("o").exists());
}

#[test]
fn bad_models_and_inputs_fail_cleanly() {
    let f = Fixture::new();
    fails_with(
        stance(&["predict", "--model", &f.p("nope"), &f.p("train.jsonl")]),
        &["nope", "no such directory"],
    );
    // A base encoder is not a classifier checkpoint.
    let a = f.write("a.txt", b"Hello there.");
    fails_with(
        stance(&["predict", "--model", &f.p("base"), &a]),
        &["id2label"],
    );
    // Missing weights in the base.
    std::fs::create_dir_all(f.dir.join("empty")).unwrap();
    std::fs::copy(
        f.dir.join("base/config.json"),
        f.dir.join("empty/config.json"),
    )
    .unwrap();
    fails_with(
        f_train_with_base(&f, "empty"),
        &["missing model.safetensors"],
    );
    // Mismatched shapes between config and weights.
    std::fs::create_dir_all(f.dir.join("mismatch")).unwrap();
    for file in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(
            f.dir.join("base").join(file),
            f.dir.join("mismatch").join(file),
        )
        .unwrap();
    }
    let cfg = std::fs::read_to_string(f.dir.join("base/config.json"))
        .unwrap()
        .replace("\"intermediate_size\": 64", "\"intermediate_size\": 80");
    std::fs::write(f.dir.join("mismatch/config.json"), cfg).unwrap();
    fails_with(
        f_train_with_base(&f, "mismatch"),
        &[
            "intermediate.dense.weight",
            "config.json",
            "intermediate_size",
        ],
    );
    // Non-UTF-8 and empty articles.
    let o = f.train("ckpt", &["--epochs", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bin = f.write("bin.txt", b"Fine line.\n\xff\xfe broken");
    fails_with(
        stance(&["predict", "--model", &f.p("ckpt"), &bin]),
        &["bin.txt:2", "invalid UTF-8"],
    );
    let empty = f.write("empty.txt", b"  \n");
    fails_with(
        stance(&["predict", "--model", &f.p("ckpt"), &empty]),
        &["empty.txt", "empty"],
    );
    let jl = f.write("no_text.jsonl", b"{\"body\": \"x\"}\n");
    fails_with(
        stance(&["predict", "--model", &f.p("ckpt"), "--jsonl", &jl]),
        &["no_text.jsonl:1", "text"],
    );
    // Data whose labels the model does not know.
    let other = f.write(
        "other.jsonl",
        b"{\"text\": \"x.\", \"label\": \"satire\"}\n",
    );
    fails_with(
        stance(&["eval", "--model", &f.p("ckpt"), "--data", &other]),
        &["other.jsonl:1", "satire"],
    );
    // Usage errors exit with 2.
    assert_eq!(stance(&["train"]).status.code(), Some(2));
}

fn f_train_with_base(f: &Fixture, base: &str) -> Output {
    stance(&[
        "train",
        "--train",
        &f.p("train.jsonl"),
        "--base",
        &f.p(base),
        "--out",
        &f.p("o"),
    ])
}

#[test]
fn diverging_training_leaves_no_checkpoint() {
    let f = Fixture::new();
    let o = f.train("ckpt", &["--lr", "1e30"]);
    fails_with(o, &["diverged"]);
    assert!(!f.dir.join("ckpt").exists());
    no_partial_files(&f.dir);
}

#[test]
fn labels_from_data_and_seed_reproduces_weights() {
    let f = Fixture::new();
    let rows: Vec<(&str, &str)> = common::TRAIN_ROWS
        .iter()
        .map(|(t, l)| (*t, if *l == "denial" { "rebuttal" } else { "other" }))
        .collect();
    common::write_jsonl(&f.dir.join("custom.jsonl"), &rows, 4);
    let run = |out: &str| {
        stance(&[
            "train",
            "--train",
            &f.p("custom.jsonl"),
            "--base",
            &f.p("base"),
            "--out",
            &f.p(out),
            "--labels",
            "auto",
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--seed",
            "9",
        ])
    };
    assert!(run("c1").status.success());
    assert!(run("c2").status.success());
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.dir.join("c1/config.json")).unwrap())
            .unwrap();
    assert_eq!(
        cfg["id2label"],
        serde_json::json!({"0": "other", "1": "rebuttal"})
    );
    assert_eq!(
        std::fs::read(f.dir.join("c1/model.safetensors")).unwrap(),
        std::fs::read(f.dir.join("c2/model.safetensors")).unwrap()
    );
}

#[test]
fn data_stats_and_split() {
    let f = Fixture::new();
    let mut rows = Vec::new();
    for a in 0..20 {
        for i in 0..5 {
            let label = ["assertion", "denial", "allegation", "context"][(a + i) % 4];
            rows.push(serde_json::json!({"text": format!("Sentence {i} of story {a}."), "label": label, "article": format!("s{a}"), "index": i, "domain": if a % 2 == 0 { "sport" } else { "courts" }}).to_string());
        }
    }
    rows.push(serde_json::json!({"text": "Sentence 0 of story 0.", "label": "context", "article": "s1", "index": 5, "domain": "courts"}).to_string());
    let data = f.write("d.jsonl", (rows.join("\n") + "\n").as_bytes());
    let o = stance(&["data", "stats", &data]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    assert!(
        s.contains("101 sentences in 20 articles")
            && s.contains("sport")
            && s.contains("duplicate sentences: 1"),
        "{s}"
    );
    let o = stance(&["data", "stats", &data, "--tokenizer", &f.p("base")]);
    assert!(stdout(&o).contains("length in tokens"), "{}", stdout(&o));
    let o = stance(&[
        "data",
        "split",
        &data,
        "--dev",
        "0.2",
        "--test",
        "0.2",
        "--seed",
        "1",
        "--out-dir",
        &f.p("split"),
        "--prefix",
        "x",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut total = 0;
    for part in ["train", "dev", "test"] {
        let n = std::fs::read_to_string(f.dir.join(format!("split/x.{part}.jsonl")))
            .unwrap()
            .lines()
            .count();
        assert!(n > 0);
        total += n;
    }
    assert_eq!(total, 101);
    assert!(stdout(&o).contains("cross-split duplicate sentences"));
}

#[test]
fn bench_reports_throughput_and_logits_match_the_model() {
    let f = Fixture::new();
    for mode in ["infer", "train-full", "train-lora"] {
        let o = stance(&[
            "bench",
            "--model",
            &f.p("base"),
            "--data",
            &f.p("train.jsonl"),
            "--mode",
            mode,
            "--reps",
            "2",
            "--steps",
            "2",
            "--batch-size",
            "4",
        ]);
        assert!(o.status.success(), "{mode}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        assert_eq!(v["mode"], mode);
        assert!(
            v["sentences_per_second"].as_f64().unwrap() > 0.0
                && v["reps"].as_array().unwrap().len() == 2
        );
        assert!(v["peak_rss_mb"].as_f64().unwrap() > 0.0);
    }
    let o = f.train("ckpt", &["--epochs", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = stance(&[
        "bench",
        "--model",
        &f.p("ckpt"),
        "--data",
        &f.p("dev.jsonl"),
        "--limit",
        "3",
        "--logits-out",
        &f.p("logits.json"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let logits: Vec<Vec<f32>> =
        serde_json::from_str(&std::fs::read_to_string(f.dir.join("logits.json")).unwrap()).unwrap();
    assert_eq!(logits.len(), 3);
    // The same sentence through `predict` gives the softmax of those logits at the fitted temperature.
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(f.dir.join("ckpt/config.json")).unwrap())
            .unwrap();
    let t = cfg["stance"]["temperature"].as_f64().unwrap() as f32;
    let first = f.write("first.txt", common::TRAIN_ROWS[0].0.as_bytes());
    let o = stance(&[
        "predict",
        "--model",
        &f.p("ckpt"),
        &first,
        "--format",
        "jsonl",
    ]);
    let row: serde_json::Value = serde_json::from_str(stdout(&o).lines().next().unwrap()).unwrap();
    let want = stance::infer::probabilities(&logits[0], t);
    let got = row["probabilities"]["assertion"].as_f64().unwrap() as f32;
    assert!((got - want[0]).abs() < 1e-3, "{got} vs {want:?}");
}

#[test]
fn context_checkpoints_feed_neighbours_as_second_segment() {
    let f = Fixture::new();
    let o = f.train("ctx", &["--epochs", "1", "--context", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ckpt = stance::checkpoint::load(&f.dir.join("ctx"), &candle_core::Device::Cpu).unwrap();
    assert_eq!(ckpt.settings.context, 1);
    let rows = stance::data::read_file(&f.dir.join("dev.jsonl"), None).unwrap();
    let encs = stance::eval::encode_rows(&ckpt, &rows).unwrap();
    // Sentence 1 of article a0 sees sentences 0 and 2 as segment B (type 1).
    assert!(encs[1].type_ids.contains(&1));
    let alone = ckpt.encoder.encode(&[rows[1].text.as_str()], None).unwrap();
    assert!(encs[1].ids.len() > alone[0].ids.len() + 5);
    // predict picks the context up from the checkpoint by itself.
    let a = f.write(
        "a.txt",
        b"The mayor denied the report. Police accused him of fraud. The town was founded in 1820.",
    );
    let o = stance(&["predict", "--model", &f.p("ctx"), &a, "--format", "jsonl"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 3);
}

#[test]
fn table_width_follows_columns_and_wide_prints_whole_sentences() {
    let f = Fixture::new();
    assert!(f.train("ckpt", &[]).status.success());
    let long = "The council approved the budget after a long and heated debate that ran past midnight and drew hundreds of residents.";
    let art = f.write("long.txt", long.as_bytes());
    let model = f.p("ckpt");
    let run = |extra: &[&str], columns: &str| {
        let mut all: Vec<&str> = vec!["predict", "--model", &model, "--format", "table", &art];
        all.extend_from_slice(extra);
        Command::new(env!("CARGO_BIN_EXE_stance"))
            .args(&all)
            .env("COLUMNS", columns)
            .output()
            .unwrap()
    };
    let narrow = stdout(&run(&[], "60"));
    let row = narrow.lines().nth(1).unwrap();
    assert!(row.chars().count() <= 60 && row.ends_with('…'), "{row:?}");
    let wide = stdout(&run(&["--wide"], "60"));
    assert!(wide.contains(long), "{wide}");
}

#[test]
fn long_sentences_keep_their_end_and_are_flagged() {
    let f = Fixture::new();
    assert!(f.train("ckpt", &[]).status.success());
    // 150 words, the denial at the very end.
    let long = format!(
        "{} and the mayor denied it.",
        vec!["the council met again"; 37].join(" and")
    );
    let art = f.write(
        "long.txt",
        format!("{long} The plant opened in May.").as_bytes(),
    );
    let o = stance(&[
        "predict",
        "--model",
        &f.p("ckpt"),
        "--format",
        "jsonl",
        &art,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("1 sentence(s) longer than the model's 48-token window"),
        "{}",
        stderr(&o)
    );
    let rows: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["truncated"], true);
    assert_eq!(rows[1]["truncated"], false);
    // The window holds the sentence's last words.
    let enc =
        stance::batch::TextEncoder::from_file(&f.dir.join("ckpt/tokenizer.json"), 48).unwrap();
    let (e, flags) = enc.encode_flagged(&[long.as_str()], None).unwrap();
    assert!(flags[0] && e[0].ids.len() == 48);
    let tail = enc.tokenizer().encode("denied it.", false).unwrap();
    let tail_ids = tail.get_ids();
    let n = e[0].ids.len();
    assert_eq!(
        &e[0].ids[n - 1 - tail_ids.len()..n - 1],
        tail_ids,
        "the end of the sentence is in the window"
    );
    // A 5 MB single sentence is labelled quickly, its memory bounded by the character cap.
    let huge = "word ".repeat(1_000_000) + "denied.";
    let big = f.write("huge.txt", huge.as_bytes());
    let t = std::time::Instant::now();
    let o = stance(&[
        "predict",
        "--model",
        &f.p("ckpt"),
        "--format",
        "jsonl",
        &big,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(t.elapsed().as_secs() < 20, "{:?}", t.elapsed());
}

#[test]
fn bylines_and_credits_are_context_by_rule() {
    let f = Fixture::new();
    assert!(f.train("ckpt", &[]).status.success());
    let art = f.write("wire.txt", b"Mayor denies report\nBy Ellen Marsh\nThe mayor denied the report.\n(Reporting by Jan Strupczewski; Editing by Alison Williams)\n");
    let o = stance(&[
        "predict",
        "--model",
        &f.p("ckpt"),
        "--format",
        "jsonl",
        &art,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4, "{rows:?}");
    for i in [1, 3] {
        assert_eq!(rows[i]["label"], "context", "{}", rows[i]);
        assert_eq!(rows[i]["rule"], "boilerplate", "{}", rows[i]);
    }
    assert!(rows[2]["rule"].is_null());
    let table = stdout(&stance(&[
        "predict",
        "--model",
        &f.p("ckpt"),
        "--format",
        "table",
        &art,
    ]));
    assert_eq!(table.lines().count(), 5, "one row per sentence: {table}");
}

#[test]
fn class_offsets_move_labels_in_eval_and_predictions_and_bad_ones_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let bin = env!("CARGO_BIN_EXE_stance");
    let ckpt = common::train_tiny(bin, d);
    let data = d.join("train.jsonl");
    let run = |args: &[&str]| {
        Command::new(bin)
            .args(args)
            .current_dir(d)
            .output()
            .unwrap()
    };
    // An offset of +40 on `context` (label 3) outweighs any tiny model's
    // logits: every sentence is called context, in the report and in the
    // predictions file, and the report names the offsets.
    let cfg_path = ckpt.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["stance"]["class_offsets"] = serde_json::json!([0.0, 0.0, 0.0, 40.0]);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let o = run(&[
        "eval",
        "--model",
        "ckpt",
        "--data",
        "train.jsonl",
        "--predictions",
        "pred.jsonl",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("class offsets [+0.0, +0.0, +0.0, +40.0]"),
        "{}",
        stdout(&o)
    );
    let preds: Vec<serde_json::Value> = std::fs::read_to_string(d.join("pred.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let n = std::fs::read_to_string(&data).unwrap().lines().count();
    assert_eq!(preds.len(), n);
    assert!(preds.iter().all(|p| p["label"] == "context"));
    assert!(preds
        .iter()
        .all(|p| p["probabilities"][3].as_f64().unwrap() > 0.99));
    let o = run(&["eval", "--model", "ckpt", "--data", "train.jsonl", "--json"]);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let per: Vec<&serde_json::Value> = r["metrics"]["per_class"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    let context = per.iter().find(|c| c["label"] == "context").unwrap();
    assert_eq!(context["recall"].as_f64().unwrap(), 1.0);
    // The predictions file may not be an input.
    fails_with(
        run(&[
            "eval",
            "--model",
            "ckpt",
            "--data",
            "train.jsonl",
            "--predictions",
            "train.jsonl",
        ]),
        &["--predictions", "is also an input"],
    );
    // train --fit-offsets fits them on dev and records what they did there.
    let o = run(&[
        "train",
        "--train",
        "train.jsonl",
        "--dev",
        "train.jsonl",
        "--base",
        "base",
        "--out",
        "fitted",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--max-len",
        "32",
        "--fit-offsets",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("class offsets ["), "{}", stderr(&o));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("fitted/metrics.json")).unwrap())
            .unwrap();
    let c = &m["calibration"];
    assert_eq!(c["class_offsets"].as_array().unwrap().len(), 4);
    assert!(
        c["dev_macro_f1_after_offsets"].as_f64().unwrap()
            >= c["dev_macro_f1_before_offsets"].as_f64().unwrap()
    );
    let o = run(&[
        "train",
        "--train",
        "train.jsonl",
        "--base",
        "base",
        "--out",
        "x",
        "--fit-offsets",
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("--dev"),
        "{}",
        stderr(&o)
    );
    // Offsets that do not fit the labels are refused by key.
    cfg["stance"]["class_offsets"] = serde_json::json!([0.0, 1.0]);
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    fails_with(
        run(&["eval", "--model", "ckpt", "--data", "train.jsonl"]),
        &["class_offsets"],
    );
}

#[test]
fn progress_reaches_a_log_file_as_plain_lines() {
    // stderr is a pipe here, as in `stance train ... 2> train.log`: the live
    // bar cannot draw, so plain progress lines take its place, one per
    // STANCE_PROGRESS_SECS (0: at every update; the default is 30 s).
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let bin = env!("CARGO_BIN_EXE_stance");
    common::tiny_base(&d.join("base"), 3);
    common::write_jsonl(&d.join("train.jsonl"), common::TRAIN_ROWS, 4);
    let train = |secs: &str, out: &str| {
        common::tiny_train_command(bin, d, Path::new("base"), out)
            .env("STANCE_PROGRESS_SECS", secs)
            .output()
            .unwrap()
    };
    let o = train("0", "every");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    let steps: Vec<&str> = err.lines().filter(|l| l.contains(" steps (")).collect();
    let total = common::TRAIN_ROWS.len().div_ceil(4) * 2;
    assert_eq!(steps.len(), total, "one line per step: {err}");
    assert!(
        steps[0].starts_with("[00:") && steps[0].contains(&format!("1/{total} steps")),
        "{err}"
    );
    let last = format!("{total}/{total} steps (100%)  epoch 2  loss ");
    assert!(steps[total - 1].contains(&last), "{err}");
    // The epoch summaries still come, each once, between the step lines.
    assert_eq!(err.matches("epoch 1: train loss").count(), 1, "{err}");
    // A short run at the default interval writes none.
    let o = train("30", "quiet");
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains(" steps ("), "{err}");
    assert!(err.contains("epoch 2: train loss"), "{err}");

    // predict counts sentences.
    std::fs::write(d.join("a.txt"), "Ann said so. Bob denied it. It rained.\n").unwrap();
    let o = Command::new(bin)
        .args(["predict", "--model", "every", "--no-attribution", "a.txt"])
        .env("STANCE_PROGRESS_SECS", "0")
        .current_dir(d)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("] 3 sentences"), "{err}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("sentences"));
}
