//! The inference engine against the candle model it is built from, on a
//! tiny random BERT: the same logits for sentences of mixed lengths (the
//! engine packs them without padding), for sentence pairs (token type 1),
//! for merged LoRA adapters and for long inputs; bf16 close to f32 but not
//! equal to it; bad token ids are errors.

use crate::common;

use candle_core::{Device, Tensor};
use stance::batch::{Encoded, TextEncoder};
use stance::checkpoint::load_base;
use stance::engine::{Engine, Precision};
use stance::labels::LabelSet;

fn setup() -> (tempfile::TempDir, stance::checkpoint::Checkpoint) {
    let t = tempfile::tempdir().unwrap();
    let base = common::tiny_base(&t.path().join("base"), 3);
    let ckpt = load_base(&base, &LabelSet::default_stance(), 128, 11, &Device::Cpu).unwrap();
    (t, ckpt)
}

const TEXTS: &[&str] = &[
    "The mayor denied the report.",
    "Police accused him.",
    "Shares rose 4 percent on Monday after the company said its quarterly results beat forecasts.",
    "No.",
    "The council approved the budget, the mayor said in a statement on Friday evening.",
];

/// Logits of the candle model's inference path on one padded batch.
fn candle_logits(
    enc: &TextEncoder,
    model: &stance::model::BertClassifier,
    encs: &[Encoded],
) -> Vec<Vec<f32>> {
    let refs: Vec<&Encoded> = encs.iter().collect();
    let b = enc.batch(&refs, None, &Device::Cpu).unwrap();
    model
        .forward_t(&b.ids, &b.type_ids, &b.mask, None)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap()
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn engine_logits(engine: &Engine, encs: &[Encoded]) -> Vec<Vec<f32>> {
    engine.logits(&encs.iter().collect::<Vec<_>>()).unwrap()
}

#[test]
fn f32_engine_matches_the_padded_candle_model() {
    let (_t, ckpt) = setup();
    let encs = ckpt.encoder.encode(TEXTS, None).unwrap();
    let want = candle_logits(&ckpt.encoder, &ckpt.model, &encs);
    let engine = Engine::new(&ckpt.model, Precision::F32).unwrap();
    let got = engine_logits(&engine, &encs);
    assert_eq!(got.len(), TEXTS.len());
    assert_eq!(got[0].len(), 4);
    let d = max_diff(&got, &want);
    assert!(d < 1e-4, "max |diff| {d}");
    // Each sentence alone gives its logits in the batch: nothing leaks
    // between packed sentences.
    for (i, e) in encs.iter().enumerate() {
        let alone = engine_logits(&engine, std::slice::from_ref(e));
        assert_eq!(alone, got[i..i + 1], "sentence {i}");
    }
}

#[test]
fn sentence_pairs_and_long_inputs_match() {
    let (_t, ckpt) = setup();
    let contexts: Vec<String> = TEXTS.iter().rev().map(|s| s.to_string()).collect();
    let pairs = ckpt.encoder.encode(TEXTS, Some(&contexts)).unwrap();
    assert!(pairs.iter().all(|e| e.type_ids.contains(&1)));
    // 120 tokens: past the 32-row tiles and 16-lane chunks of every kernel.
    let long = "the report said the mayor was accused of fraud and denied it ".repeat(8);
    let mut encs = pairs;
    encs.extend(ckpt.encoder.encode(&[long.as_str()], None).unwrap());
    assert!(encs.last().unwrap().ids.len() >= 100);
    let want = candle_logits(&ckpt.encoder, &ckpt.model, &encs);
    let got = engine_logits(&Engine::new(&ckpt.model, Precision::F32).unwrap(), &encs);
    let d = max_diff(&got, &want);
    assert!(d < 1e-4, "max |diff| {d}");
}

#[test]
fn lora_adapters_are_merged() {
    let (_t, mut ckpt) = setup();
    let cfg = stance::model::LoraConfig {
        r: 2,
        alpha: 4.0,
        targets: vec!["query".into(), "value".into(), "dense".into()],
    };
    ckpt.model.add_lora(&cfg).unwrap();
    // Move every B off zero, so the adapters change the function.
    let names: Vec<String> = ckpt
        .model
        .params
        .names()
        .iter()
        .filter(|n| n.contains("lora_B"))
        .cloned()
        .collect();
    for (i, n) in names.iter().enumerate() {
        let var = ckpt.model.params.get(n).unwrap();
        let shape = var.as_tensor().dims().to_vec();
        let count: usize = shape.iter().product();
        let vals: Vec<f32> = (0..count)
            .map(|j| ((i * 31 + j * 7) % 13) as f32 * 0.1 - 0.6)
            .collect();
        var.set(&Tensor::from_vec(vals, shape, &Device::Cpu).unwrap())
            .unwrap();
    }
    let encs = ckpt.encoder.encode(TEXTS, None).unwrap();
    let want = candle_logits(&ckpt.encoder, &ckpt.model, &encs);
    let plain = engine_logits(
        &Engine::new(&setup().1.model, Precision::F32).unwrap(),
        &encs,
    );
    assert!(
        max_diff(&plain, &want) > 1e-3,
        "the adapters should matter: {}",
        max_diff(&plain, &want)
    );
    let got = engine_logits(&Engine::new(&ckpt.model, Precision::F32).unwrap(), &encs);
    let d = max_diff(&got, &want);
    assert!(d < 1e-4, "max |diff| {d}");
}

#[test]
fn bf16_is_close_to_f32_but_not_the_same() {
    let (_t, ckpt) = setup();
    let encs = ckpt.encoder.encode(TEXTS, None).unwrap();
    let f = engine_logits(&Engine::new(&ckpt.model, Precision::F32).unwrap(), &encs);
    let b = Engine::new(&ckpt.model, Precision::Bf16).unwrap();
    assert_eq!(b.precision(), Precision::Bf16);
    let g = engine_logits(&b, &encs);
    let d = max_diff(&f, &g);
    // bf16 keeps 8 significant bits: relative error about 4e-3 per product.
    assert!(d > 0.0 && d < 0.05, "max |diff| {d}");
}

#[test]
fn bad_token_ids_are_errors() {
    let (_t, ckpt) = setup();
    let engine = Engine::new(&ckpt.model, Precision::F32).unwrap();
    let vocab = ckpt.model.config.vocab_size as u32;
    let bad = Encoded {
        ids: vec![2, vocab + 5, 3],
        type_ids: vec![0, 0, 0],
    };
    let err = engine.logits(&[&bad]).unwrap_err().to_string();
    assert!(err.contains("outside the vocabulary"), "{err}");
    let bad_type = Encoded {
        ids: vec![2, 3],
        type_ids: vec![0, 7],
    };
    assert!(engine.logits(&[&bad_type]).is_err());
    let empty = Encoded {
        ids: vec![],
        type_ids: vec![],
    };
    assert!(engine.logits(&[&empty]).is_err());
    let too_long = Encoded {
        ids: vec![2; 129],
        type_ids: vec![0; 129],
    };
    assert!(engine
        .logits(&[&too_long])
        .unwrap_err()
        .to_string()
        .contains("max_position_embeddings"));
}
