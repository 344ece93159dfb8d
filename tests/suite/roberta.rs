//! The RoBERTa family against transformers: `tests/fixtures/roberta-tiny` is
//! a tiny random `RobertaForSequenceClassification` that transformers created
//! (`scripts/interop/roberta_fixture.py`), with PyTorch's logits, loss and
//! the gradient of every parameter on four sentences. stance's tokenizer
//! path, inference engine, candle graph and native training step must
//! reproduce them; then the binary trains, saves and predicts with it.

use crate::common;
use crate::common::interop::{self, Reference};

use candle_core::Device;
use stance::checkpoint::load;
use stance::rng::Rng;
use stance::train::native;
use std::path::PathBuf;

fn fixture() -> PathBuf {
    interop::fixture("roberta-tiny")
}

fn reference() -> Reference {
    Reference::load(&fixture())
}

#[test]
fn transformers_roberta_loads_and_every_executor_matches_pytorch() {
    let ckpt = interop::assert_executors_match_pytorch(&fixture());
    assert_eq!(ckpt.model.spec.family, stance::model::spec::Family::Roberta);
    assert_eq!(ckpt.encoder.pad_id(), 1, "RoBERTa pads with <pad> = 1");
    let r = reference();
    let encs = r.encode(&ckpt);
    assert!(encs.iter().all(|e| e.type_ids.iter().all(|&t| t == 0)));
    let names: Vec<&str> = ckpt.model.params.iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"classifier.out_proj.weight"));
    assert!(names.contains(&"roberta.embeddings.position_embeddings.weight"));
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
    let p = b.packed().unwrap();
    let a = native::step(&ckpt.model, &p, &[1.0; 4], &mut Rng::new(3)).unwrap();
    let again = native::step(&ckpt.model, &p, &[1.0; 4], &mut Rng::new(3)).unwrap();
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
