//! MPNet against transformers: `tests/fixtures/mpnet-tiny` is a tiny random
//! `MPNetForSequenceClassification` that transformers created
//! (`scripts/interop/mpnet_fixture.py`), with PyTorch's logits, loss, the
//! gradient of every parameter, and its relative-position buckets. One
//! sentence is 30 tokens and one is a pair with context, so distances reach
//! the logarithmic buckets; the relative-position table is random (not
//! transformers' zero-ish init), so it carries signal into every executor.

use crate::common;
use crate::common::interop::{self, Reference};

use candle_core::Device;
use stance::checkpoint::load;
use stance::model::spec::{Family, RelativeBiasSpec};
use stance::train::native;
use std::path::PathBuf;

fn fixture() -> PathBuf {
    interop::fixture("mpnet-tiny")
}

#[test]
fn relative_position_buckets_are_transformers() {
    let r = Reference::load(&fixture());
    let rel: Vec<isize> = serde_json::from_value(r.raw["relative_positions"].clone()).unwrap();
    let want: Vec<usize> = serde_json::from_value(r.raw["buckets"].clone()).unwrap();
    assert_eq!(rel.len(), 601);
    let got: Vec<usize> = rel.iter().map(|&d| RelativeBiasSpec::bucket(d)).collect();
    assert_eq!(got, want);
}

#[test]
fn transformers_mpnet_loads_and_every_executor_matches_pytorch() {
    let ckpt = interop::assert_executors_match_pytorch(&fixture());
    let spec = &ckpt.model.spec;
    assert_eq!(spec.family, Family::Mpnet);
    assert!(
        spec.embeddings.token_type.is_none(),
        "MPNet has no token types"
    );
    assert_eq!(spec.position_offset, 2);
    let names: Vec<&str> = ckpt.model.params.iter().map(|(n, _)| n).collect();
    for n in [
        "mpnet.encoder.relative_attention_bias.weight",
        "mpnet.encoder.layer.1.attention.attn.o.weight",
        "mpnet.encoder.layer.0.attention.LayerNorm.bias",
        "classifier.out_proj.bias",
    ] {
        assert!(names.contains(&n), "no parameter {n}");
    }
    // The pair's second segment has type ids the model must ignore.
    let r = Reference::load(&fixture());
    let encs = r.encode(&ckpt);
    assert!(r.contexts[3].is_some());
    assert_eq!(encs[3].ids.windows(2).filter(|w| w == &[2, 2]).count(), 1);
}

#[test]
fn a_frozen_relative_table_gets_no_gradient_and_a_trained_one_does() {
    // Top-k training keeps the table (read by the frozen layers too) as
    // the base has it, like the embeddings; full training trains it.
    let r = Reference::load(&fixture());
    let mut ckpt = load(&fixture(), &Device::Cpu).unwrap();
    let b = interop::batch(&r, &ckpt);
    let table = "mpnet.encoder.relative_attention_bias.weight";
    ckpt.model.set_trainable_layers(Some(1));
    assert!(!ckpt.model.params.is_trainable(table));
    let out = native::step(
        &ckpt.model,
        &b.packed().unwrap(),
        &[1.0; 4],
        &mut stance::rng::Rng::new(0),
    )
    .unwrap();
    let var = ckpt.model.params.get(table).unwrap();
    assert!(out.grads.get(var.as_tensor()).is_none());
    ckpt.model.set_trainable_layers(None);
    let out = native::step(
        &ckpt.model,
        &b.packed().unwrap(),
        &[1.0; 4],
        &mut stance::rng::Rng::new(0),
    )
    .unwrap();
    let var = ckpt.model.params.get(table).unwrap();
    let g = out.grads.get(var.as_tensor()).unwrap();
    assert!(common::max_abs(g) > 0.0);
}

#[test]
fn the_binary_trains_saves_and_predicts_with_an_mpnet_base() {
    let names = interop::trains_saves_and_predicts(
        &fixture(),
        "mpnet",
        "MPNetForSequenceClassification",
        &[
            "mpnet.encoder.relative_attention_bias.weight",
            "mpnet.encoder.layer.0.attention.attn.q.weight",
            "classifier.out_proj.weight",
        ],
    );
    assert!(!names.iter().any(|k| k.contains("token_type")));
}

#[test]
fn lora_takes_mpnets_module_names_and_a_wrong_name_lists_them() {
    let r = Reference::load(&fixture());
    let mut ckpt = load(&fixture(), &Device::Cpu).unwrap();
    let lora = |t: &[&str]| stance::model::LoraConfig {
        r: 2,
        alpha: 4.0,
        targets: t.iter().map(|s| s.to_string()).collect(),
    };
    let err = ckpt
        .model
        .add_lora(&lora(&["query", "value"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("q, k, v, o, dense"), "{err}");
    ckpt.model.add_lora(&lora(&["q", "v"])).unwrap();
    let b = interop::batch(&r, &ckpt);
    let out = native::step(
        &ckpt.model,
        &b.packed().unwrap(),
        &[1.0; 4],
        &mut stance::rng::Rng::new(0),
    )
    .unwrap();
    let a = ckpt
        .model
        .params
        .get("mpnet.encoder.layer.0.attention.attn.q.lora_A.weight")
        .unwrap();
    assert!(out.grads.get(a.as_tensor()).is_some());
    assert!(ckpt
        .model
        .params
        .get("mpnet.encoder.layer.0.attention.attn.k.lora_A.weight")
        .is_none());
}
