//! The native training step (hand-written forward and backward over packed
//! sentences) against candle's autograd graph of the same model, on a tiny
//! random BERT: logits, loss and every gradient, for full fine-tuning, LoRA
//! and frozen bottom layers; plus dropout, reproducibility and bad input.

use crate::common;

use candle_core::{Device, Tensor};
use stance::batch::{Batch, TextEncoder};
use stance::model::{BertClassifier, BertConfig, LoraConfig};
use stance::rng::Rng;
use stance::train::loss::weighted_cross_entropy;
use stance::train::native;

const TEXTS: &[&str] = &[
    "The mayor denied the report.",
    "Short.",
    "He was accused of theft in 2020, police said.",
    "A",
];
const LABELS: &[u32] = &[1, 0, 2, 3];
const WEIGHTS: &[f32] = &[0.5, 1.0, 2.0, 1.5];

fn setup(dropout: f64) -> (tempfile::TempDir, BertClassifier, Batch) {
    setup_act(dropout, "gelu")
}

fn setup_act(dropout: f64, act: &str) -> (tempfile::TempDir, BertClassifier, Batch) {
    let t = tempfile::tempdir().unwrap();
    common::write_tokenizer(t.path());
    let enc = TextEncoder::from_file(&t.path().join("tokenizer.json"), 64).unwrap();
    let mut config = BertConfig::tiny(common::tiny_vocab().len());
    config.hidden_act = act.into();
    config.hidden_dropout_prob = dropout;
    config.attention_probs_dropout_prob = dropout;
    let mut model = BertClassifier::new(&config, 4, 3, &Device::Cpu).unwrap();
    // Non-trivial biases and norm parameters, so their gradients and the
    // paths through them are exercised.
    let mut rng = Rng::new(9);
    let names: Vec<String> = model
        .params
        .names()
        .iter()
        .filter(|n| n.ends_with(".bias") || n.contains("LayerNorm"))
        .cloned()
        .collect();
    for n in names {
        randomise(
            &mut model,
            &n,
            &mut rng,
            if n.contains("LayerNorm.weight") {
                1.0
            } else {
                0.0
            },
        );
    }
    let e = enc.encode(TEXTS, None).unwrap();
    let refs: Vec<_> = e.iter().collect();
    let batch = enc.batch(&refs, Some(LABELS), &Device::Cpu).unwrap();
    (t, model, batch)
}

fn randomise(model: &mut BertClassifier, name: &str, rng: &mut Rng, centre: f32) {
    let var = model.params.get(name).unwrap();
    let v: Vec<f32> = (0..var.elem_count())
        .map(|_| centre + 0.2 * rng.normal())
        .collect();
    var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
        .unwrap();
}

/// Native and candle agree on logits, loss and the gradient of every
/// trainable tensor, and compute gradients for exactly the same tensors.
fn check_against_candle(model: &BertClassifier, b: &Batch, what: &str) {
    check_against_candle_with(model, b, what, 1)
}

/// [`check_against_candle`] with both executors' dropout drawn from the
/// stream `Rng::new(seed)`.
fn check_against_candle_with(model: &BertClassifier, b: &Batch, what: &str, seed: u64) {
    let weights = Tensor::new(WEIGHTS, &Device::Cpu).unwrap();
    let logits = model
        .forward_t(&b.ids, &b.type_ids, &b.mask, Some(&mut Rng::new(seed)))
        .unwrap();
    let loss = weighted_cross_entropy(&logits, b.labels.as_ref().unwrap(), &weights).unwrap();
    let grads = loss.backward().unwrap();
    let out = native::step(model, &b.packed().unwrap(), WEIGHTS, &mut Rng::new(seed)).unwrap();
    let ours = Tensor::from_vec(out.logits.clone(), logits.shape(), &Device::Cpu).unwrap();
    assert!(
        common::max_abs(&(&ours - &logits).unwrap()) < 1e-5,
        "{what}: logits differ"
    );
    let l = loss.to_scalar::<f32>().unwrap() as f64;
    assert!(
        (out.loss - l).abs() < 1e-5,
        "{what}: loss {} vs {l}",
        out.loss
    );
    common::assert_grads_match(model, &out.grads, &grads, what);
}

#[test]
fn full_fine_tuning_matches_the_candle_graph() {
    let (_t, model, b) = setup(0.0);
    check_against_candle(&model, &b, "full");
}

#[test]
fn tanh_gelu_and_relu_match_the_candle_graph() {
    // Each activation the model description knows, through both executors.
    for act in ["gelu_new", "gelu_pytorch_tanh", "relu"] {
        let (_t, model, b) = setup_act(0.0, act);
        assert_eq!(
            model.spec.activation,
            stance::model::Activation::from_hf(act).unwrap()
        );
        check_against_candle(&model, &b, act);
    }
}

#[test]
fn sentence_pairs_match_the_candle_graph() {
    // Sentences with a context segment (token type 1), as `--context` trains them.
    let (t, model, _) = setup(0.0);
    let enc = TextEncoder::from_file(&t.path().join("tokenizer.json"), 64).unwrap();
    let contexts: Vec<String> = [
        "The council met on Monday.",
        "",
        "Police said so.",
        "He was accused of theft.",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let e = enc.encode(TEXTS, Some(&contexts)).unwrap();
    assert!(e.iter().any(|x| x.type_ids.contains(&1)));
    let refs: Vec<_> = e.iter().collect();
    let b = enc.batch(&refs, Some(LABELS), &Device::Cpu).unwrap();
    check_against_candle(&model, &b, "pairs");
}

#[test]
fn lora_matches_the_candle_graph() {
    let (_t, mut model, b) = setup(0.0);
    model
        .add_lora(&LoraConfig {
            r: 2,
            alpha: 4.0,
            targets: vec!["query".into(), "value".into(), "dense".into()],
        })
        .unwrap();
    // B starts at zero; give it values so the adapters carry gradient to A.
    let mut rng = Rng::new(4);
    let names: Vec<String> = model
        .params
        .names()
        .iter()
        .filter(|n| n.contains("lora_B"))
        .cloned()
        .collect();
    for n in names {
        randomise(&mut model, &n, &mut rng, 0.0);
    }
    check_against_candle(&model, &b, "lora");
}

#[test]
fn frozen_bottom_layers_match_the_candle_graph() {
    for k in [Some(0), Some(1), None] {
        let (_t, mut model, b) = setup(0.0);
        model.set_trainable_layers(k);
        check_against_candle(&model, &b, &format!("top {k:?} layers"));
    }
}

#[test]
fn every_trainable_tensor_gets_a_gradient_with_dropout_on() {
    let (_t, model, b) = setup(0.1);
    let out = native::step(&model, &b.packed().unwrap(), WEIGHTS, &mut Rng::new(0)).unwrap();
    let mut missing = Vec::new();
    for (name, var) in model.params.iter() {
        let norm = out
            .grads
            .get(var.as_tensor())
            .map(common::max_abs)
            .unwrap_or(0.0);
        if norm <= 0.0 {
            missing.push(name.to_string());
        }
    }
    assert!(missing.is_empty(), "no gradient for: {missing:?}");
    assert!(model
        .params
        .names()
        .iter()
        .any(|n| n == "bert.embeddings.word_embeddings.weight"));
    assert!(model
        .params
        .names()
        .iter()
        .any(|n| n == "bert.encoder.layer.0.attention.self.query.weight"));
}

#[test]
fn dropout_follows_the_seed() {
    let (_t, model, b) = setup(0.1);
    let p = b.packed().unwrap();
    let mut stream = Rng::new(5);
    let a = native::step(&model, &p, WEIGHTS, &mut stream).unwrap();
    let next = native::step(&model, &p, WEIGHTS, &mut stream).unwrap();
    let again = native::step(&model, &p, WEIGHTS, &mut Rng::new(5)).unwrap();
    assert_eq!(a.logits, again.logits, "same seed, same masks");
    assert_ne!(a.logits, next.logits, "the stream moves on between steps");
    let (_t2, off, b2) = setup(0.0);
    let plain = native::step(&off, &b2.packed().unwrap(), WEIGHTS, &mut Rng::new(5)).unwrap();
    assert_ne!(a.logits, plain.logits, "dropout changes the forward pass");
}

#[test]
fn with_dropout_on_the_graph_and_the_native_step_drop_the_same_elements() {
    // One dropout definition: the same stream gives candle's graph and the
    // native step the same masks, so logits, loss and every gradient agree
    // with dropout on, for full training and with frozen bottom layers
    // (whose sites draw no seed), and for a RoBERTa-style head (which
    // drops its input too).
    for k in [None, Some(1)] {
        let (_t, mut model, b) = setup(0.2);
        model.set_trainable_layers(k);
        check_against_candle_with(&model, &b, &format!("dropout 0.2, top {k:?}"), 17);
    }
}

#[test]
fn bad_batches_are_errors_not_panics() {
    let (_t, model, b) = setup(0.0);
    let mut p = b.packed().unwrap();
    p.labels = Some(vec![0, 1, 2, 9]);
    assert!(native::step(&model, &p, WEIGHTS, &mut Rng::new(0))
        .err()
        .unwrap()
        .to_string()
        .contains("label id 9"));
    let mut p = b.packed().unwrap();
    p.ids[0] = 1_000_000;
    assert!(native::step(&model, &p, WEIGHTS, &mut Rng::new(0))
        .err()
        .unwrap()
        .to_string()
        .contains("token id"));
    let mut p = b.packed().unwrap();
    p.lengths[0] += 1;
    assert!(native::step(&model, &p, WEIGHTS, &mut Rng::new(0)).is_err());
    assert!(native::step(&model, &b.packed().unwrap(), &[1.0], &mut Rng::new(0)).is_err());
}
