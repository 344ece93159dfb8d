//! Shared test fixtures: a tiny random BERT (2 layers, hidden 32) with a
//! character-level WordPiece vocabulary, and tiny labelled data. Everything
//! is built in a temporary directory; nothing touches the network.
#![allow(dead_code)]

use candle_core::Device;
use stance::model::{BertClassifier, BertConfig};
use std::path::{Path, PathBuf};
pub mod interop;

/// Special tokens, punctuation, digits, letters and their `##` continuations,
/// and a few whole words: enough for any lower-cased English text.
pub fn tiny_vocab() -> Vec<String> {
    let mut v: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for c in ".,;:!?\"'()-$%&/>".chars() {
        v.push(c.to_string());
    }
    for c in ('0'..='9').chain('a'..='z') {
        v.push(c.to_string());
        v.push(format!("##{c}"));
    }
    for w in [
        "the", "said", "denied", "accused", "report", "was", "is", "of", "and", "in", "to", "a",
    ] {
        v.push(w.to_string());
    }
    v
}

/// Write vocab.txt and tokenizer.json into `dir`.
pub fn write_tokenizer(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("vocab.txt"), tiny_vocab().join("\n") + "\n").unwrap();
    let tok = stance::batch::tokenizer_from_vocab(&dir.join("vocab.txt"), true).unwrap();
    tok.save(dir.join("tokenizer.json"), false).unwrap();
}

/// A tiny random pretrained encoder directory in Hugging Face layout. Its
/// weights are saved without the `bert.` prefix (as `BertModel` saves them)
/// and without a classifier, like a real base checkpoint.
pub fn tiny_base(dir: &Path, seed: u64) -> PathBuf {
    write_tokenizer(dir);
    let mut config = BertConfig::tiny(tiny_vocab().len());
    config
        .extra
        .insert("architectures".into(), serde_json::json!(["BertModel"]));
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
    let model = BertClassifier::new(&config, 2, seed, &Device::Cpu).unwrap();
    let tensors: std::collections::HashMap<String, candle_core::Tensor> = model
        .params
        .snapshot()
        .unwrap()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("classifier"))
        .map(|(k, v)| (k.trim_start_matches("bert.").to_string(), v))
        .collect();
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
    dir.to_path_buf()
}

/// Sentences whose label is signalled by a word, so a tiny model can learn them.
pub const TRAIN_ROWS: &[(&str, &str)] = &[
    ("The mayor denied the report.", "denial"),
    ("The club denied any wrongdoing.", "denial"),
    ("She flatly denied the claims.", "denial"),
    ("Police accused the driver of fraud.", "allegation"),
    ("Rivals accused the firm of lying.", "allegation"),
    ("He was accused of theft.", "allegation"),
    ("The council approved the budget.", "assertion"),
    ("Shares rose 4 percent on Monday.", "assertion"),
    ("The plant opened in May.", "assertion"),
    ("The town was founded in 1820.", "context"),
    ("Such cases are rare in the region.", "context"),
    ("The law dates back decades.", "context"),
];

pub fn write_jsonl(path: &Path, rows: &[(&str, &str)], article_size: usize) {
    let mut s = String::new();
    for (i, (t, l)) in rows.iter().enumerate() {
        s += &serde_json::json!({"text": t, "label": l, "article": format!("a{}", i / article_size), "index": i % article_size}).to_string();
        s.push('\n');
    }
    std::fs::write(path, s).unwrap();
}

/// Train a tiny checkpoint at `dir/ckpt` with the `stance` binary (a tiny
/// random base, the tiny rows, 2 epochs): the fixture the end-to-end tests
/// of predict's outputs and the server share.
pub fn train_tiny(bin: &str, dir: &Path) -> PathBuf {
    tiny_base(&dir.join("base"), 3);
    train_tiny_from(bin, dir, Path::new("base"))
}

/// [`train_tiny`] from another base directory (relative to `dir` or absolute).
pub fn train_tiny_from(bin: &str, dir: &Path, base: &Path) -> PathBuf {
    write_jsonl(&dir.join("train.jsonl"), TRAIN_ROWS, 4);
    let o = tiny_train_command(bin, dir, base, "ckpt").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    dir.join("ckpt")
}

/// The `stance train` command of [`train_tiny_from`] (train.jsonl in `dir`,
/// 2 epochs of batches of 4) writing to `dir/out`, not yet run.
pub fn tiny_train_command(bin: &str, dir: &Path, base: &Path, out: &str) -> std::process::Command {
    let mut c = std::process::Command::new(bin);
    c.args([
        "train",
        "--train",
        "train.jsonl",
        "--base",
        base.to_str().unwrap(),
        "--out",
        out,
        "--epochs",
        "2",
        "--batch-size",
        "4",
        "--max-len",
        "32",
    ])
    .current_dir(dir);
    c
}

/// The native step's gradients against the graph's: the same tensors get
/// one (exactly the trainable ones), each within 2e-4 of its scale.
pub fn assert_grads_match(
    model: &BertClassifier,
    native: &candle_core::backprop::GradStore,
    graph: &candle_core::backprop::GradStore,
    what: &str,
) {
    let mut checked = 0;
    for (name, var) in model.params.iter() {
        let mine = native.get(var.as_tensor());
        assert_eq!(
            mine.is_some(),
            model.params.is_trainable(name),
            "{what}: {name} gradient presence"
        );
        let (Some(theirs), Some(mine)) = (graph.get(var.as_tensor()), mine) else {
            continue;
        };
        let scale = max_abs(theirs).max(1e-3);
        let diff = max_abs(&(mine - theirs).unwrap());
        assert!(
            diff <= 2e-4 * scale,
            "{what}: {name}: max |diff| {diff} against max |grad| {scale}"
        );
        checked += 1;
    }
    assert!(checked > 0, "{what}: nothing compared");
}

/// The largest absolute value of a tensor.
pub fn max_abs(t: &candle_core::Tensor) -> f32 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// The shipped model's directory.
pub const SHIPPED: &str = "models/stance-mpnet";

/// Whether the shipped model's base encoder (the path its config records)
/// is installed; when it is not, panics under `STANCE_REQUIRE_BASE` (CI)
/// and otherwise says the test is skipped.
pub fn shipped_base_present(root: &Path) -> bool {
    base_present(root, SHIPPED)
}

/// The shipped attribution tagger's directory.
pub const SHIPPED_TAGGER: &str = "models/stance-tagger";

/// [`shipped_base_present`] for the delta checkpoint at `model` (relative
/// to the project root).
pub fn base_present(root: &Path, model: &str) -> bool {
    let cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join(model).join("config.json")).unwrap(),
    )
    .unwrap();
    let base = root
        .join(cfg["stance"]["base"]["path"].as_str().unwrap())
        .join("model.safetensors");
    if base.is_file() {
        return true;
    }
    assert!(
        std::env::var("STANCE_REQUIRE_BASE").is_err(),
        "base weights missing at {}: run scripts/fetch-base-model.sh",
        base.display()
    );
    eprintln!(
        "skipped: no base weights at {} (run scripts/fetch-base-model.sh)",
        base.display()
    );
    false
}
