//! The frozen-layer cache (`--method top` keeps the frozen bottom's output
//! between epochs): training with it gives the same weights, bit for bit, as
//! recomputing the frozen layers at every step, with dropout on, on BERT and
//! on MPNet (whose frozen layers read the shared relative-position table).

use crate::common;

use candle_core::Device;
use stance::checkpoint::{load, load_base, Checkpoint};
use stance::labels::LabelSet;
use stance::train::native::FrozenCache;
use stance::train::{train, Example, Target, TrainConfig, TrainEvent};

fn examples(ckpt: &Checkpoint, copies: usize) -> Vec<Example> {
    let texts: Vec<&str> = common::TRAIN_ROWS.iter().map(|r| r.0).collect();
    let encs = ckpt.encoder.encode(&texts, None).unwrap();
    let one: Vec<Example> = encs
        .into_iter()
        .zip(common::TRAIN_ROWS)
        .map(|(enc, (_, l))| Example {
            enc,
            target: Target::Sentence(ckpt.labels.id(l).unwrap() as u32),
        })
        .collect();
    (0..copies).flat_map(|_| one.clone()).collect()
}

fn config(frozen_cache_mb: usize) -> TrainConfig {
    TrainConfig {
        epochs: 3,
        batch_size: 4,
        lr: 5e-3,
        seed: 7,
        patience: 0,
        frozen_cache_mb,
        ..TrainConfig::default()
    }
}

fn tiny_bert(t: &tempfile::TempDir) -> Checkpoint {
    let base = common::tiny_base(&t.path().join("base"), 1);
    load_base(&base, &LabelSet::default_stance(), 64, 1, &Device::Cpu).unwrap()
}

fn tiny_mpnet() -> Checkpoint {
    let mut ckpt = load(&common::interop::fixture("mpnet-tiny"), &Device::Cpu).unwrap();
    // The fixture has dropout off; the cache must hold with it on.
    ckpt.model.config.hidden_dropout_prob = 0.1;
    ckpt.model.config.attention_probs_dropout_prob = 0.1;
    ckpt
}

/// Train the top layer for 3 epochs; every tensor's values after, each
/// epoch's loss and the trainer's information lines.
fn run(mut ckpt: Checkpoint, cache_mb: usize) -> (Vec<Vec<f32>>, Vec<f64>, Vec<String>) {
    ckpt.model.set_trainable_layers(Some(1));
    let ex = examples(&ckpt, 2);
    let labels = ckpt.labels.clone();
    let (mut losses, mut info) = (Vec::new(), Vec::new());
    train(
        &mut ckpt.model,
        &ex,
        &ex[..8],
        &labels,
        &config(cache_mb),
        &mut |e| match e {
            TrainEvent::Epoch(r) => losses.push(r.train_loss),
            TrainEvent::Info(s) => info.push(s.clone()),
            _ => {}
        },
    )
    .unwrap();
    let weights = ckpt
        .model
        .params
        .iter()
        .map(|(_, v)| {
            v.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        })
        .collect();
    (weights, losses, info)
}

#[test]
fn keeping_the_frozen_layers_output_trains_the_same_weights_bit_for_bit() {
    for family in ["bert", "mpnet"] {
        let t = tempfile::tempdir().unwrap();
        let make = || {
            if family == "bert" {
                tiny_bert(&t)
            } else {
                tiny_mpnet()
            }
        };
        let (kept, kept_losses, kept_info) = run(make(), 64);
        let (fresh, fresh_losses, fresh_info) = run(make(), 0);
        assert!(
            kept_info
                .iter()
                .any(|s| s.contains("keeping the 1 frozen layers' output")),
            "{family}: the cache was not used: {kept_info:?}"
        );
        assert!(
            !fresh_info.iter().any(|s| s.contains("frozen layers")),
            "{family}: {fresh_info:?}"
        );
        assert_eq!(kept_losses, fresh_losses, "{family}");
        assert!(
            kept_losses[2] < kept_losses[0],
            "{family}: it did not learn: {kept_losses:?}"
        );
        assert_eq!(kept, fresh, "{family}: the weights differ");
    }
}

#[test]
fn only_a_frozen_bottom_that_nothing_trains_is_kept() {
    let t = tempfile::tempdir().unwrap();
    let mut ckpt = tiny_bert(&t);
    ckpt.model.set_trainable_layers(Some(1));
    assert_eq!(FrozenCache::new(&ckpt.model, 4).map(|c| c.layer()), Some(1));
    ckpt.model.set_trainable_layers(Some(0));
    assert_eq!(FrozenCache::new(&ckpt.model, 4).map(|c| c.layer()), Some(2));
    // Full fine-tuning trains the embeddings: nothing is fixed.
    ckpt.model.set_trainable_layers(None);
    assert!(FrozenCache::new(&ckpt.model, 4).is_none());
    // Top-k on MPNet keeps the relative-position table frozen, so its
    // bottom is fixed too.
    let mut m = tiny_mpnet();
    m.model.set_trainable_layers(Some(1));
    assert_eq!(FrozenCache::new(&m.model, 4).map(|c| c.layer()), Some(1));
}

#[test]
fn training_data_over_the_memory_limit_is_not_kept_and_says_so() {
    let t = tempfile::tempdir().unwrap();
    let mut ckpt = tiny_bert(&t);
    ckpt.model.set_trainable_layers(Some(1));
    // About 1.2 MiB of hidden states: over a 1 MiB limit.
    let ex = examples(&ckpt, 400);
    let tokens: usize = ex.iter().map(|e| e.enc.ids.len()).sum();
    assert!(FrozenCache::bytes_for(&ckpt.model, tokens) > 1 << 20);
    let labels = ckpt.labels.clone();
    let mut info = Vec::new();
    let mut cfg = config(1);
    cfg.epochs = 1;
    cfg.batch_size = 64;
    train(&mut ckpt.model, &ex, &[], &labels, &cfg, &mut |e| {
        if let TrainEvent::Info(s) = e {
            info.push(s.clone())
        }
    })
    .unwrap();
    assert!(
        info.iter()
            .any(|s| s.contains("not keeping") && s.contains("--frozen-cache-mb 1")),
        "{info:?}"
    );
}
