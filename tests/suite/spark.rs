//! The Spark job (`scripts/spark/label_articles.py`) in local mode on a tiny
//! model: every article's sentences come back exactly once, with the labels
//! and probabilities of a direct `stance predict`, from JSONL and from
//! Parquet input with renamed columns. Needs Java 17 and pyspark + pyarrow
//! (`.ci/run` installs them and sets `STANCE_REQUIRE_SPARK=1`); elsewhere
//! the test is skipped when they are missing.

use crate::common;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn have_pyspark() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import pyspark, pyarrow"])
        .output()
        .is_ok_and(|o| o.status.success())
        && Command::new("java")
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok && std::env::var_os("STANCE_REQUIRE_SPARK").is_some() {
        panic!("STANCE_REQUIRE_SPARK is set but pyspark, pyarrow or java is missing");
    }
    ok
}

/// (article id, sentence index) -> (start, end, label, probability), from
/// the job's Parquet output.
fn read_parquet(dir: &Path) -> BTreeMap<(String, i64), (i64, i64, String, f64)> {
    let o = Command::new("python3")
        .args([
            "-c",
            "import sys, json, pyarrow.parquet as pq\nfor r in pq.read_table(sys.argv[1]).to_pylist(): print(json.dumps(r))",
            dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut rows = BTreeMap::new();
    for line in String::from_utf8(o.stdout).unwrap().lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        let key = (
            r["article_id"].as_str().unwrap().to_string(),
            r["sentence_index"].as_i64().unwrap(),
        );
        let val = (
            r["start"].as_i64().unwrap(),
            r["end"].as_i64().unwrap(),
            r["label"].as_str().unwrap().to_string(),
            r["probability"].as_f64().unwrap(),
        );
        assert!(
            rows.insert(key.clone(), val).is_none(),
            "{key:?} came back twice"
        );
    }
    rows
}

#[test]
fn spark_local_mode_matches_direct_predict_exactly_once() {
    if !have_pyspark() {
        eprintln!("skipped: pyspark, pyarrow or java missing");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_stance");
    let t = tempfile::tempdir().unwrap();
    let model = common::train_tiny(bin, t.path());
    let sentences: Vec<&str> = common::TRAIN_ROWS.iter().map(|(s, _)| *s).collect();
    let n = 40;
    let mut jsonl = String::new();
    for i in 0..n {
        let text = (0..1 + i % 4)
            .map(|k| sentences[(i + k) % sentences.len()])
            .collect::<Vec<_>>()
            .join(" ");
        jsonl += &(json!({"id": format!("a{i}"), "text": text, "url": format!("u{i}")})
            .to_string()
            + "\n");
    }
    let input = t.path().join("articles.jsonl");
    std::fs::write(&input, &jsonl).unwrap();

    // Direct run.
    let direct = t.path().join("direct.jsonl");
    let o = Command::new(bin)
        .args(["predict", "--jsonl", "--format", "articles", "--model"])
        .arg(&model)
        .arg(&input)
        .arg("-o")
        .arg(&direct)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut want = BTreeMap::new();
    for line in std::fs::read_to_string(&direct).unwrap().lines() {
        let a: Value = serde_json::from_str(line).unwrap();
        for s in a["sentences"].as_array().unwrap() {
            want.insert(
                (
                    a["id"].as_str().unwrap().to_string(),
                    s["index"].as_i64().unwrap(),
                ),
                (
                    s["start"].as_i64().unwrap(),
                    s["end"].as_i64().unwrap(),
                    s["label"].as_str().unwrap().to_string(),
                    s["probability"].as_f64().unwrap(),
                ),
            );
        }
    }
    assert_eq!(want.len(), (0..n).map(|i| 1 + i % 4).sum::<usize>());

    // The same articles as Parquet, with other column names.
    let parquet_in = t.path().join("articles.parquet");
    let o = Command::new("python3")
        .args([
            "-c",
            "import sys, json, pyarrow as pa, pyarrow.parquet as pq\nrows=[json.loads(l) for l in open(sys.argv[1])]\npq.write_table(pa.table({'doc': [r['id'] for r in rows], 'body': [r['text'] for r in rows]}), sys.argv[2])",
        ])
        .arg(&input)
        .arg(&parquet_in)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/spark/label_articles.py");
    for (name, source, cols) in [
        ("jsonl", &input, ["id", "text"]),
        ("parquet", &parquet_in, ["doc", "body"]),
    ] {
        let out = t.path().join(format!("spark-{name}.parquet"));
        let o = Command::new("python3")
            .arg(&script)
            .args([
                "--master",
                "local[2]",
                "--partitions",
                "3",
                "--threads",
                "1",
                "--base",
                "",
            ])
            .arg("--input")
            .arg(source)
            .args(["--id-col", cols[0], "--text-col", cols[1]])
            .arg("--output")
            .arg(&out)
            .arg("--stance")
            .arg(bin)
            .arg("--model")
            .arg(&model)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let got = read_parquet(&out);
        assert_eq!(got.len(), want.len(), "{name}");
        for (k, w) in &want {
            let g = &got[k];
            assert_eq!((g.0, g.1, &g.2), (w.0, w.1, &w.2), "{name}: {k:?}");
            assert!(
                (g.3 - w.3).abs() < 1e-6,
                "{name}: {k:?}: {} vs {}",
                g.3,
                w.3
            );
        }
    }
}
