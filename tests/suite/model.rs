//! The model on a tiny random BERT: shapes, gradients reaching every tensor,
//! train and inference paths agreeing, save -> load, learning, reproducibility.

use crate::common;

use candle_core::{Device, Tensor};
use stance::batch::TextEncoder;
use stance::checkpoint::{load, load_base, save, SaveExtras};
use stance::labels::LabelSet;
use stance::model::BertConfig;
use stance::train::{train, ClassWeights, Example, TrainConfig};

fn tiny_batch(enc: &TextEncoder, texts: &[&str]) -> stance::batch::Batch {
    let e = enc.encode(texts, None).unwrap();
    let refs: Vec<_> = e.iter().collect();
    enc.batch(&refs, None, &Device::Cpu).unwrap()
}

fn setup() -> (tempfile::TempDir, stance::checkpoint::Checkpoint) {
    let t = tempfile::tempdir().unwrap();
    let base = common::tiny_base(&t.path().join("base"), 1);
    // The seed draws the fresh classifier head. The overfitting check below
    // depends on that draw: with each parameter on its own random stream,
    // seeds 1, 2, 3, 8 and 9 all reach its loss; 7 plateaus at 0.82.
    let ckpt = load_base(&base, &LabelSet::default_stance(), 64, 1, &Device::Cpu).unwrap();
    (t, ckpt)
}

#[test]
fn logits_shape_and_load_report() {
    let (_t, ckpt) = setup();
    // Only the head is new: the base has no classifier.
    assert_eq!(
        ckpt.load_report.fresh,
        vec!["classifier.weight", "classifier.bias"]
    );
    assert!(ckpt
        .load_report
        .loaded
        .contains(&"bert.encoder.layer.0.attention.self.query.weight".to_string()));
    let b = tiny_batch(
        &ckpt.encoder,
        &[
            "The mayor denied it.",
            "Short.",
            "A much longer sentence than the others here.",
        ],
    );
    let logits = ckpt
        .model
        .forward_t(&b.ids, &b.type_ids, &b.mask, None)
        .unwrap();
    assert_eq!(logits.dims(), &[3, 4]);
}

#[test]
fn gradient_reaches_every_trainable_tensor() {
    let (_t, ckpt) = setup();
    let b = tiny_batch(
        &ckpt.encoder,
        &[
            "The mayor denied the report.",
            "He was accused of theft in 2020.",
        ],
    );
    let logits = ckpt
        .model
        .forward_t(
            &b.ids,
            &b.type_ids,
            &b.mask,
            Some(&mut stance::rng::Rng::new(1)),
        )
        .unwrap();
    let labels = Tensor::new(&[1u32, 2], &Device::Cpu).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
    let grads = loss.backward().unwrap();
    let vars = ckpt.model.params.trainable();
    assert_eq!(vars.len(), ckpt.model.params.names().len());
    let mut missing = Vec::new();
    for (name, var) in &vars {
        let g = grads.get(var.as_tensor());
        let norm = g
            .map(|g| {
                g.abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            })
            .unwrap_or(0.0);
        if norm <= 0.0 {
            missing.push(name.clone());
        }
    }
    // Position embeddings beyond the batch length get no gradient; every
    // other tensor must. Check the word embeddings and layer 0 explicitly.
    assert!(missing.is_empty(), "no gradient for: {missing:?}");
    for must in [
        "bert.embeddings.word_embeddings.weight",
        "bert.embeddings.LayerNorm.weight",
        "bert.encoder.layer.0.attention.self.query.weight",
        "bert.encoder.layer.0.output.LayerNorm.bias",
    ] {
        assert!(vars.iter().any(|(n, _)| n == must), "{must}");
    }
}

#[test]
fn training_and_inference_paths_agree_without_dropout() {
    let t = tempfile::tempdir().unwrap();
    let base = common::tiny_base(&t.path().join("base"), 2);
    let mut cfg = BertConfig::from_file(&base.join("config.json")).unwrap();
    cfg.hidden_dropout_prob = 0.0;
    cfg.attention_probs_dropout_prob = 0.0;
    std::fs::write(
        base.join("config.json"),
        serde_json::to_string(&cfg).unwrap(),
    )
    .unwrap();
    let ckpt = load_base(&base, &LabelSet::default_stance(), 64, 3, &Device::Cpu).unwrap();
    let b = tiny_batch(&ckpt.encoder, &["The mayor denied the report.", "Yes."]);
    let a = ckpt
        .model
        .forward_t(
            &b.ids,
            &b.type_ids,
            &b.mask,
            Some(&mut stance::rng::Rng::new(1)),
        )
        .unwrap();
    let i = ckpt
        .model
        .forward_t(&b.ids, &b.type_ids, &b.mask, None)
        .unwrap();
    let diff = (a - i)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 1e-4, "{diff}");
}

#[test]
fn padding_does_not_change_logits() {
    let (_t, ckpt) = setup();
    let alone = tiny_batch(&ckpt.encoder, &["Short one."]);
    let padded = tiny_batch(
        &ckpt.encoder,
        &[
            "Short one.",
            "This sentence is a good deal longer than the first.",
        ],
    );
    let a = ckpt
        .model
        .forward_t(&alone.ids, &alone.type_ids, &alone.mask, None)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let p = ckpt
        .model
        .forward_t(&padded.ids, &padded.type_ids, &padded.mask, None)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    for (x, y) in a[0].iter().zip(&p[0]) {
        assert!((x - y).abs() < 1e-5, "{a:?} vs {p:?}");
    }
}

#[test]
fn save_then_load_gives_identical_logits_and_hf_config() {
    let (t, ckpt) = setup();
    let out = t.path().join("ckpt");
    let v = serde_json::json!({});
    save(
        &out,
        &ckpt,
        &SaveExtras {
            training_args: &v,
            metrics: &v,
            epoch_log: &[],
            delta_of: None,
        },
    )
    .unwrap();
    let back = load(&out, &Device::Cpu).unwrap();
    let b = tiny_batch(
        &ckpt.encoder,
        &["The mayor denied the report.", "Police accused him."],
    );
    let x = ckpt
        .model
        .forward_t(&b.ids, &b.type_ids, &b.mask, None)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let y = back
        .model
        .forward_t(&b.ids, &b.type_ids, &b.mask, None)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert_eq!(x, y);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "BertForSequenceClassification");
    assert_eq!(config["id2label"]["2"], "allegation");
    assert_eq!(config["label2id"]["context"], 3);
    let names =
        candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap();
    assert!(
        names.contains_key("bert.encoder.layer.1.output.dense.weight")
            && names.contains_key("classifier.bias")
    );
    // A base encoder is not a fine-tuned checkpoint.
    let err = load(&t.path().join("base"), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("id2label"), "{err}");
}

#[test]
fn shape_mismatch_fails_and_names_the_tensor() {
    let t = tempfile::tempdir().unwrap();
    let base = common::tiny_base(&t.path().join("base"), 1);
    let mut cfg = BertConfig::from_file(&base.join("config.json")).unwrap();
    cfg.intermediate_size = 48;
    std::fs::write(
        base.join("config.json"),
        serde_json::to_string(&cfg).unwrap(),
    )
    .unwrap();
    let err = load_base(&base, &LabelSet::default_stance(), 64, 1, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("intermediate.dense.weight")
            && err.contains("intermediate_size")
            && err.contains("config.json"),
        "{err}"
    );
}

fn examples(ckpt: &stance::checkpoint::Checkpoint) -> Vec<Example> {
    let texts: Vec<&str> = common::TRAIN_ROWS.iter().map(|r| r.0).collect();
    let encs = ckpt.encoder.encode(&texts, None).unwrap();
    encs.into_iter()
        .zip(common::TRAIN_ROWS)
        .map(|(enc, (_, l))| Example {
            enc,
            target: stance::train::Target::Sentence(ckpt.labels.id(l).unwrap() as u32),
        })
        .collect()
}

fn fast_config(seed: u64) -> TrainConfig {
    TrainConfig {
        epochs: 60,
        batch_size: 4,
        lr: 5e-3,
        weight_decay: 0.01,
        warmup_ratio: 0.1,
        max_grad_norm: 1.0,
        class_weights: ClassWeights::Auto,
        seed,
        patience: 0,
        frozen_cache_mb: stance::train::DEFAULT_FROZEN_CACHE_MB,
    }
}

#[test]
fn loss_falls_when_overfitting_a_few_sentences() {
    let (_t, mut ckpt) = setup();
    let ex = examples(&ckpt);
    let labels = ckpt.labels.clone();
    let mut losses = Vec::new();
    let out = train(
        &mut ckpt.model,
        &ex,
        &ex,
        &labels,
        &fast_config(5),
        &mut |e| {
            if let stance::train::TrainEvent::Epoch(r) = e {
                losses.push(r.train_loss)
            }
        },
    )
    .unwrap();
    assert!(losses.last().unwrap() < &(losses[0] * 0.25), "{losses:?}");
    assert!(out.best_dev.unwrap().accuracy >= 0.9);
}

#[test]
fn same_seed_same_weights_other_seed_other_weights() {
    let run = |seed: u64| {
        let (_t, mut ckpt) = setup();
        let ex = examples(&ckpt);
        let labels = ckpt.labels.clone();
        let mut cfg = fast_config(seed);
        cfg.epochs = 2;
        train(&mut ckpt.model, &ex, &[], &labels, &cfg, &mut |_| {}).unwrap();
        ckpt.model
            .params
            .get("bert.encoder.layer.0.attention.self.query.weight")
            .unwrap()
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let a = run(11);
    assert_eq!(a, run(11));
    assert_ne!(a, run(12));
}

#[test]
fn nan_loss_is_an_error_not_a_panic() {
    let (_t, mut ckpt) = setup();
    let ex = examples(&ckpt);
    let labels = ckpt.labels.clone();
    let mut cfg = fast_config(1);
    cfg.lr = f64::NAN;
    cfg.epochs = 2;
    let err = train(&mut ckpt.model, &ex, &[], &labels, &cfg, &mut |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("diverged"), "{err}");
}

#[test]
fn top_layers_and_head_methods_train_only_their_tensors() {
    for (k, expect_layer0, expect_layer1) in [
        (Some(1), false, true),
        (Some(0), false, false),
        (Some(2), true, true),
    ] {
        let (_t, mut ckpt) = setup();
        ckpt.model.set_trainable_layers(k);
        let b = tiny_batch(
            &ckpt.encoder,
            &["The mayor denied the report.", "He was accused of theft."],
        );
        let logits = ckpt
            .model
            .forward_t(
                &b.ids,
                &b.type_ids,
                &b.mask,
                Some(&mut stance::rng::Rng::new(1)),
            )
            .unwrap();
        let loss = candle_nn::loss::cross_entropy(
            &logits,
            &Tensor::new(&[1u32, 2], &Device::Cpu).unwrap(),
        )
        .unwrap();
        let grads = loss.backward().unwrap();
        let has_grad = |name: &str| {
            let v = ckpt.model.params.get(name).unwrap();
            grads
                .get(v.as_tensor())
                .map(|g| {
                    g.abs()
                        .unwrap()
                        .sum_all()
                        .unwrap()
                        .to_scalar::<f32>()
                        .unwrap()
                        > 0.0
                })
                .unwrap_or(false)
        };
        assert!(
            !has_grad("bert.embeddings.word_embeddings.weight"),
            "{k:?}: frozen embeddings got a gradient"
        );
        assert_eq!(
            has_grad("bert.encoder.layer.0.attention.self.query.weight"),
            expect_layer0,
            "{k:?}"
        );
        assert_eq!(
            has_grad("bert.encoder.layer.1.output.dense.weight"),
            expect_layer1,
            "{k:?}"
        );
        assert!(
            has_grad("classifier.weight") && has_grad("bert.pooler.dense.weight"),
            "{k:?}"
        );
        // Every tensor marked trainable gets a gradient, and only those.
        for (name, var) in ckpt.model.params.iter() {
            let g = grads.get(var.as_tensor()).is_some();
            assert_eq!(g, ckpt.model.params.is_trainable(name), "{k:?}: {name}");
        }
    }
}

#[test]
fn delta_checkpoint_loads_through_its_verified_base() {
    let (t, mut ckpt) = setup();
    ckpt.model.set_trainable_layers(Some(1));
    let ex = examples(&ckpt);
    let labels = ckpt.labels.clone();
    let mut cfg = fast_config(3);
    cfg.epochs = 3;
    train(&mut ckpt.model, &ex, &[], &labels, &cfg, &mut |_| {}).unwrap();
    // Layout like the project: <root>/models/base and <root>/models/delta.
    let root = t.path().join("root");
    let base_dir = root.join("models/base");
    std::fs::create_dir_all(root.join("models")).unwrap();
    std::fs::rename(t.path().join("base"), &base_dir).unwrap();
    let base = stance::checkpoint::BaseRef {
        id: "org/tiny".into(),
        revision: "abc".into(),
        sha256: stance::hash_cache::sha256_uncached(&base_dir.join("model.safetensors")).unwrap(),
        path: "models/base".into(),
    };
    let out = root.join("models/delta");
    let v = serde_json::json!({});
    save(
        &out,
        &ckpt,
        &SaveExtras {
            training_args: &v,
            metrics: &v,
            epoch_log: &[],
            delta_of: Some(base.clone()),
        },
    )
    .unwrap();
    let stored =
        candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap();
    assert!(
        stored.contains_key("bert.encoder.layer.1.output.dense.weight")
            && stored.contains_key("classifier.weight")
    );
    assert!(
        !stored.contains_key("bert.encoder.layer.0.output.dense.weight")
            && !stored.contains_key("bert.embeddings.word_embeddings.weight")
    );
    assert!(stored
        .values()
        .all(|t| t.dtype() == candle_core::DType::F16));

    let back = load(&out, &Device::Cpu).unwrap();
    let b = tiny_batch(
        &ckpt.encoder,
        &["The mayor denied the report.", "Police accused him."],
    );
    let x = ckpt
        .model
        .forward_t(&b.ids, &b.type_ids, &b.mask, None)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let y = back
        .model
        .forward_t(&b.ids, &b.type_ids, &b.mask, None)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    for (r, s) in x.iter().zip(&y) {
        for (a, b) in r.iter().zip(s) {
            assert!((a - b).abs() < 2e-2, "f16 delta drifted: {x:?} vs {y:?}");
        }
    }
    // A different base file is refused, naming both hashes.
    let mut st =
        candle_core::safetensors::load(base_dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let k = st.keys().next().unwrap().clone();
    let changed = (st[&k].clone() + 1.0).unwrap();
    st.insert(k, changed);
    candle_core::safetensors::save(&st, base_dir.join("model.safetensors")).unwrap();
    let err = load(&out, &Device::Cpu).err().unwrap().to_string();
    assert!(
        err.contains("sha256") && err.contains(&base.sha256),
        "{err}"
    );
    // A missing base says what to fetch.
    std::fs::remove_dir_all(&base_dir).unwrap();
    let err = load(&out, &Device::Cpu).err().unwrap().to_string();
    assert!(
        err.contains("org/tiny") && err.contains("fetch-base-model.sh"),
        "{err}"
    );
}

#[test]
fn lora_trains_only_adapters_and_saves_in_peft_layout() {
    let (t, mut ckpt) = setup();
    let b = tiny_batch(
        &ckpt.encoder,
        &["The mayor denied the report.", "Police accused him."],
    );
    let before = ckpt
        .model
        .forward_t(&b.ids, &b.type_ids, &b.mask, None)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let cfg = stance::model::LoraConfig {
        r: 4,
        alpha: 8.0,
        targets: vec!["query".into(), "value".into()],
    };
    ckpt.model.add_lora(&cfg).unwrap();
    // B starts at zero: adding adapters does not change the function.
    assert_eq!(
        ckpt.model
            .forward_t(&b.ids, &b.type_ids, &b.mask, None)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap(),
        before
    );
    let trainable: Vec<String> = ckpt
        .model
        .params
        .trainable()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(trainable.len(), 2 * 2 * 2 + 2, "{trainable:?}");
    assert!(trainable
        .iter()
        .all(|n| n.contains(".lora_") || n.starts_with("classifier.")));

    let logits = ckpt
        .model
        .forward_t(
            &b.ids,
            &b.type_ids,
            &b.mask,
            Some(&mut stance::rng::Rng::new(1)),
        )
        .unwrap();
    let loss =
        candle_nn::loss::cross_entropy(&logits, &Tensor::new(&[1u32, 2], &Device::Cpu).unwrap())
            .unwrap();
    let grads = loss.backward().unwrap();
    for (name, var) in ckpt.model.params.iter() {
        assert_eq!(
            grads.get(var.as_tensor()).is_some(),
            ckpt.model.params.is_trainable(name),
            "{name}"
        );
    }
    let frozen_before = ckpt
        .model
        .params
        .get("bert.encoder.layer.0.attention.self.query.weight")
        .unwrap()
        .as_tensor()
        .to_vec2::<f32>()
        .unwrap();
    let ex = examples(&ckpt);
    let labels = ckpt.labels.clone();
    let mut tc = fast_config(2);
    tc.epochs = 3;
    train(&mut ckpt.model, &ex, &[], &labels, &tc, &mut |_| {}).unwrap();
    let frozen_after = ckpt
        .model
        .params
        .get("bert.encoder.layer.0.attention.self.query.weight")
        .unwrap()
        .as_tensor()
        .to_vec2::<f32>()
        .unwrap();
    assert_eq!(frozen_before, frozen_after, "a frozen weight moved");

    let root = t.path().join("root");
    std::fs::create_dir_all(root.join("models")).unwrap();
    std::fs::rename(t.path().join("base"), root.join("models/base")).unwrap();
    let base = stance::checkpoint::BaseRef {
        id: "org/tiny".into(),
        revision: "r1".into(),
        sha256: stance::hash_cache::sha256_uncached(&root.join("models/base/model.safetensors"))
            .unwrap(),
        path: "models/base".into(),
    };
    let out = root.join("models/lora");
    let v = serde_json::json!({});
    save(
        &out,
        &ckpt,
        &SaveExtras {
            training_args: &v,
            metrics: &v,
            epoch_log: &[],
            delta_of: Some(base),
        },
    )
    .unwrap();
    let adapter: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(adapter["peft_type"], "LORA");
    assert_eq!(adapter["task_type"], "SEQ_CLS");
    assert_eq!(adapter["r"], 4);
    assert_eq!(
        adapter["target_modules"],
        serde_json::json!(["query", "value"])
    );
    let stored =
        candle_core::safetensors::load(out.join("adapter_model.safetensors"), &Device::Cpu)
            .unwrap();
    assert!(
        stored.contains_key(
            "base_model.model.bert.encoder.layer.1.attention.self.value.lora_B.weight"
        ),
        "{:?}",
        stored.keys()
    );
    assert!(stored.contains_key("base_model.model.classifier.weight"));
    assert_eq!(stored.len(), 10);
    assert!(!out.join("model.safetensors").exists());

    let back = load(&out, &Device::Cpu).unwrap();
    assert!(back.load_report.fresh.is_empty(), "{:?}", back.load_report);
    let x = ckpt
        .model
        .forward_t(&b.ids, &b.type_ids, &b.mask, None)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let y = back
        .model
        .forward_t(&b.ids, &b.type_ids, &b.mask, None)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert_eq!(x, y);
    assert_ne!(x, before, "training moved the adapters");
}

#[test]
fn deferred_initialisation_draws_what_new_draws() {
    // A model built for loading, with nothing loaded, must equal a fresh
    // one tensor for tensor; and with one tensor loaded, every other tensor
    // (the classifier too) keeps the fresh model's values.
    let cfg = BertConfig::tiny(common::tiny_vocab().len());
    let fresh = stance::model::BertClassifier::new(&cfg, 4, 9, &Device::Cpu).unwrap();
    let mut deferred =
        stance::model::BertClassifier::new_for_loading(&cfg, 4, 9, &Device::Cpu).unwrap();
    let word = "bert.embeddings.word_embeddings.weight";
    let zeros = Tensor::zeros(
        fresh.params.get(word).unwrap().dims(),
        candle_core::DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    deferred.params.get(word).unwrap().set(&zeros).unwrap();
    deferred.params.mark_loaded(word);
    deferred.params.draw_pending().unwrap();
    for (name, var) in fresh.params.iter() {
        let a = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let b = deferred
            .params
            .get(name)
            .unwrap()
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        if name == word {
            assert!(b.iter().all(|v| *v == 0.0));
        } else {
            assert_eq!(a, b, "{name}");
        }
    }
    // After drawing, new parameters (LoRA adapters) draw at once, as in a fresh model.
    let lora = stance::model::LoraConfig {
        r: 2,
        alpha: 4.0,
        targets: vec!["query".into()],
    };
    let (mut f, mut d) = (fresh, deferred);
    f.add_lora(&lora).unwrap();
    d.add_lora(&lora).unwrap();
    let a_name = "bert.encoder.layer.0.attention.self.query.lora_A.weight";
    assert_eq!(
        f.params
            .get(a_name)
            .unwrap()
            .as_tensor()
            .to_vec2::<f32>()
            .unwrap(),
        d.params
            .get(a_name)
            .unwrap()
            .as_tensor()
            .to_vec2::<f32>()
            .unwrap()
    );
}
