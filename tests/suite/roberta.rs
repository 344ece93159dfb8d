//! The RoBERTa family against transformers: `tests/fixtures/roberta-tiny` is
//! a tiny random `RobertaForSequenceClassification` that transformers created
//! (`scripts/interop/roberta_fixture.py`), with PyTorch's logits, loss and
//! the gradient of every parameter on four sentences. stance's tokenizer
//! path, inference engine, candle graph and native training step must
//! reproduce them; then the binary trains, saves and predicts with it.

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
    let p = interop::batch(&r, &ckpt).packed().unwrap();
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
    let names = interop::trains_saves_and_predicts(
        &fixture(),
        "roberta",
        "RobertaForSequenceClassification",
        &[
            "roberta.embeddings.position_embeddings.weight",
            "classifier.dense.weight",
            "classifier.out_proj.bias",
        ],
    );
    assert!(!names.iter().any(|k| k.starts_with("bert.")));
}
