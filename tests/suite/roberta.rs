//! The RoBERTa family against transformers: `tests/fixtures/roberta-tiny` is
//! a tiny random `RobertaForSequenceClassification` that transformers created
//! (`scripts/interop/roberta_fixture.py`), with PyTorch's logits, loss and
//! the gradient of every parameter on four sentences. stance's tokenizer
//! path, inference engine, candle graph and native training step must
//! reproduce them; then the binary trains, saves and predicts with it.

use crate::common;

use candle_core::Device;
use stance::checkpoint::load;
use stance::engine::Precision;
use stance::train::native;
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/roberta-tiny")
}

struct Reference {
    texts: Vec<String>,
    ids: Vec<Vec<u32>>,
    labels: Vec<u32>,
    logits: Vec<Vec<f32>>,
    loss: f64,
}

fn reference() -> Reference {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("reference.json")).unwrap())
            .unwrap();
    let vecs = |k: &str| -> Vec<Vec<f64>> { serde_json::from_value(v[k].clone()).unwrap() };
    Reference {
        texts: serde_json::from_value(v["texts"].clone()).unwrap(),
        ids: serde_json::from_value(v["ids"].clone()).unwrap(),
        labels: serde_json::from_value(v["labels"].clone()).unwrap(),
        logits: vecs("logits")
            .into_iter()
            .map(|r| r.into_iter().map(|x| x as f32).collect())
            .collect(),
        loss: v["loss"].as_f64().unwrap(),
    }
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

#[test]
fn transformers_roberta_loads_and_every_executor_matches_pytorch() {
    let r = reference();
    let ckpt = load(&fixture(), &Device::Cpu).unwrap();
    assert_eq!(ckpt.model.spec.family, stance::model::spec::Family::Roberta);
    assert!(ckpt.load_report.fresh.is_empty());
    assert_eq!(ckpt.encoder.pad_id(), 1, "RoBERTa pads with <pad> = 1");
    let texts: Vec<&str> = r.texts.iter().map(String::as_str).collect();
    let encs = ckpt.encoder.encode(&texts, None).unwrap();
    let ids: Vec<Vec<u32>> = encs.iter().map(|e| e.ids.clone()).collect();
    assert_eq!(ids, r.ids, "tokenizer.json gives transformers' ids");
    assert!(encs.iter().all(|e| e.type_ids.iter().all(|&t| t == 0)));

    // Inference engine (positions numbered from pad_token_id + 1).
    let engine =
        stance::infer::predict_logits(&ckpt.model, &encs, 16, Precision::F32, |_| {}).unwrap();
    let d = max_diff(&engine, &r.logits);
    assert!(d < 1e-5, "engine logits differ from PyTorch by {d}");

    // candle's graph on a padded batch.
    let refs: Vec<_> = encs.iter().collect();
    let b = ckpt
        .encoder
        .batch(&refs, Some(&r.labels), &Device::Cpu)
        .unwrap();
    let graph = ckpt
        .model
        .forward_t(&b.ids, &b.type_ids, &b.mask, false)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let d = max_diff(&graph, &r.logits);
    assert!(d < 1e-5, "graph logits differ from PyTorch by {d}");

    // The native training step: loss and the gradient of every parameter
    // (the fixture's dropout is 0, so PyTorch's train mode is deterministic).
    let out = native::step(&ckpt.model, &b.packed, &[1.0; 4]).unwrap();
    assert!(
        (out.loss - r.loss).abs() < 1e-5,
        "loss {} vs PyTorch {}",
        out.loss,
        r.loss
    );
    let torch =
        candle_core::safetensors::load(fixture().join("grads.safetensors"), &Device::Cpu).unwrap();
    let mut compared = 0;
    for (name, var) in ckpt.model.params.iter() {
        let theirs = torch
            .get(name)
            .unwrap_or_else(|| panic!("PyTorch has no gradient for {name}"));
        let mine = out
            .grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no native gradient for {name}"));
        let diff = common::max_abs(&(mine - theirs).unwrap());
        let scale = common::max_abs(theirs);
        assert!(
            diff <= 1e-5 * scale.max(1.0),
            "{name}: gradient differs from PyTorch by {diff} (max |grad| {scale})"
        );
        compared += 1;
    }
    assert_eq!(compared, torch.len(), "every PyTorch gradient compared");
    assert!(torch.contains_key("classifier.out_proj.weight"));
    assert!(torch.contains_key("roberta.embeddings.position_embeddings.weight"));
}

#[test]
fn roberta_head_dropout_reaches_the_native_step() {
    // With dropout on, RoBERTa's head drops its input too: the step still
    // gives every tensor a gradient and follows the seed.
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixture().join(f), dir.path().join(f)).unwrap();
    }
    let cfg = dir.path().join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    v["hidden_dropout_prob"] = serde_json::json!(0.3);
    std::fs::write(&cfg, v.to_string()).unwrap();
    let ckpt = load(dir.path(), &Device::Cpu).unwrap();
    let r = reference();
    let texts: Vec<&str> = r.texts.iter().map(String::as_str).collect();
    let encs = ckpt.encoder.encode(&texts, None).unwrap();
    let refs: Vec<_> = encs.iter().collect();
    let b = ckpt
        .encoder
        .batch(&refs, Some(&r.labels), &Device::Cpu)
        .unwrap();
    ckpt.model.reseed_dropout(3);
    let a = native::step(&ckpt.model, &b.packed, &[1.0; 4]).unwrap();
    ckpt.model.reseed_dropout(3);
    let again = native::step(&ckpt.model, &b.packed, &[1.0; 4]).unwrap();
    assert_eq!(a.logits, again.logits);
    let plain: Vec<f32> = r.logits.concat();
    assert_ne!(a.logits, plain, "dropout changes the forward pass");
    for (name, var) in ckpt.model.params.iter() {
        let g = a.grads.get(var.as_tensor()).unwrap();
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        // The type table has one row, used by every token; all get signal.
        assert!(norm > 0.0, "{name} got no gradient");
    }
}

#[test]
fn the_binary_trains_saves_and_predicts_with_a_roberta_base() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bin = env!("CARGO_BIN_EXE_stance");
    let ckpt_dir = common::train_tiny_from(bin, d, &fixture());
    assert_eq!(ckpt_dir, d.join("ckpt"));
    let run = |args: &[&str]| {
        let o = std::process::Command::new(bin)
            .args(args)
            .current_dir(d)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    };
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("ckpt/config.json")).unwrap())
            .unwrap();
    assert_eq!(config["model_type"], "roberta");
    assert_eq!(
        config["architectures"],
        serde_json::json!(["RobertaForSequenceClassification"])
    );
    let weights =
        candle_core::safetensors::load(d.join("ckpt/model.safetensors"), &Device::Cpu).unwrap();
    for name in [
        "roberta.embeddings.position_embeddings.weight",
        "classifier.dense.weight",
        "classifier.out_proj.bias",
    ] {
        assert!(weights.contains_key(name), "saved checkpoint lacks {name}");
    }
    assert!(!weights.keys().any(|k| k.starts_with("bert.")));
    std::fs::write(
        d.join("a.txt"),
        "The mayor denied the report. Police accused the driver of fraud.\n",
    )
    .unwrap();
    let o = run(&["predict", "--model", "ckpt", "--format", "jsonl", "a.txt"]);
    let lines: Vec<serde_json::Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "one line per sentence");
    for l in &lines {
        assert!(["assertion", "denial", "allegation", "context"]
            .contains(&l["label"].as_str().unwrap()));
    }
    // And the saved checkpoint loads back as a RoBERTa.
    let ckpt = load(&d.join("ckpt"), &Device::Cpu).unwrap();
    assert_eq!(ckpt.model.spec.family, stance::model::spec::Family::Roberta);
}
