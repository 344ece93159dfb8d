//! The token-classification head (the attribution tagger's): candle's
//! graph, the inference engine and the native training step agree on a tiny
//! random BERT and MPNet token classifier, for full fine-tuning, frozen
//! bottom layers and LoRA, with dropout off and on; labels marked
//! `IGNORE` get no loss; a sentence head and a token head refuse each
//! other's calls.

use crate::common;

use candle_core::{Device, Tensor};
use stance::batch::{Packed, TextEncoder, IGNORE};
use stance::engine::{Engine, Precision};
use stance::model::spec::{HeadKind, Task};
use stance::model::{BertClassifier, BertConfig, LoraConfig};
use stance::rng::Rng;
use stance::train::loss::weighted_cross_entropy;
use stance::train::native;

const TEXTS: &[&str] = &[
    "The mayor denied the report.",
    "Short.",
    "He was accused of theft in 2020, police said.",
];
const TAGS: usize = 7;
const WEIGHTS: &[f32] = &[0.5, 1.0, 2.0, 1.5, 1.0, 0.7, 1.2];

struct Setup {
    _dir: tempfile::TempDir,
    model: BertClassifier,
    enc: TextEncoder,
}

fn token_config(family: &str, dropout: f64) -> BertConfig {
    let mut c = BertConfig::tiny(common::tiny_vocab().len());
    c.extra
        .insert("model_type".into(), serde_json::json!(family));
    let class = if family == "mpnet" {
        "MPNetForTokenClassification"
    } else {
        "BertForTokenClassification"
    };
    c.extra
        .insert("architectures".into(), serde_json::json!([class]));
    if family == "mpnet" {
        c.pad_token_id = 1;
    }
    c.hidden_dropout_prob = dropout;
    c.attention_probs_dropout_prob = dropout;
    c
}

fn setup(family: &str, dropout: f64) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    common::write_tokenizer(dir.path());
    let enc = TextEncoder::from_file(&dir.path().join("tokenizer.json"), 64).unwrap();
    let model = BertClassifier::new(&token_config(family, dropout), TAGS, 5, &Device::Cpu).unwrap();
    // Biases, norms (and MPNet's relative table) away from their initial values.
    let mut rng = Rng::new(4);
    let names: Vec<String> = model
        .params
        .names()
        .iter()
        .filter(|n| n.ends_with(".bias") || n.contains("LayerNorm") || n.contains("relative"))
        .cloned()
        .collect();
    for n in names {
        let var = model.params.get(&n).unwrap();
        let centre = if n.contains("LayerNorm.weight") {
            1.0
        } else {
            0.0
        };
        let v: Vec<f32> = (0..var.elem_count())
            .map(|_| centre + 0.3 * rng.normal())
            .collect();
        var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
            .unwrap();
    }
    Setup {
        _dir: dir,
        model,
        enc,
    }
}

/// Deterministic tags per token, `IGNORE` on the first and last token.
fn tags(lengths: &[usize]) -> Vec<Vec<u32>> {
    let mut rng = Rng::new(21);
    lengths
        .iter()
        .map(|&n| {
            (0..n)
                .map(|i| {
                    if i == 0 || i + 1 == n {
                        IGNORE
                    } else {
                        (rng.next_u64() % TAGS as u64) as u32
                    }
                })
                .collect()
        })
        .collect()
}

/// The graph's logits `[batch, seq, tags]` and its weighted token loss over
/// the labelled tokens, against the native step's; then every gradient.
fn check(s: &Setup, what: &str, seed: u64) {
    let encs = s.enc.encode(TEXTS, None).unwrap();
    let refs: Vec<_> = encs.iter().collect();
    let b = s.enc.batch(&refs, None, &Device::Cpu).unwrap();
    let lengths: Vec<usize> = encs.iter().map(|e| e.ids.len()).collect();
    let gold = tags(&lengths);
    let logits = s
        .model
        .forward_t(&b.ids, &b.type_ids, &b.mask, Some(&mut Rng::new(seed)))
        .unwrap();
    let (n, t, k) = logits.dims3().unwrap();
    assert_eq!((n, k), (TEXTS.len(), TAGS), "{what}: logits shape");
    // The labelled tokens' rows of the padded logits, in packed order.
    let (mut rows, mut ys) = (Vec::new(), Vec::new());
    for (i, g) in gold.iter().enumerate() {
        for (j, &y) in g.iter().enumerate() {
            if y != IGNORE {
                rows.push((i * t + j) as u32);
                ys.push(y);
            }
        }
    }
    let flat = logits.reshape((n * t, k)).unwrap();
    let picked = flat
        .index_select(&Tensor::new(rows.as_slice(), &Device::Cpu).unwrap(), 0)
        .unwrap();
    let weights = Tensor::new(WEIGHTS, &Device::Cpu).unwrap();
    let ys_t = Tensor::new(ys.as_slice(), &Device::Cpu).unwrap();
    let loss = weighted_cross_entropy(&picked, &ys_t, &weights).unwrap();
    let grads = loss.backward().unwrap();

    let gold_refs: Vec<&[u32]> = gold.iter().map(Vec::as_slice).collect();
    let packed = Packed::tokens(&refs, &gold_refs).unwrap();
    let out = native::step(&s.model, &packed, WEIGHTS, &mut Rng::new(seed)).unwrap();
    // Packed rows against the graph's unpadded rows.
    let graph = logits.to_vec3::<f32>().unwrap();
    let mut r = 0;
    for (i, &len) in lengths.iter().enumerate() {
        for (j, row) in graph[i].iter().take(len).enumerate() {
            for (c, &g) in row.iter().enumerate() {
                let d = (out.logits[r * k + c] - g).abs();
                assert!(d < 1e-5, "{what}: logit ({i},{j},{c}) differs by {d}");
            }
            r += 1;
        }
    }
    let l = loss.to_scalar::<f32>().unwrap() as f64;
    assert!(
        (out.loss - l).abs() < 1e-5,
        "{what}: loss {} vs {l}",
        out.loss
    );
    common::assert_grads_match(&s.model, &out.grads, &grads, what);
}

#[test]
fn the_token_head_is_described_as_transformers_names_it() {
    let s = setup("bert", 0.0);
    let spec = &s.model.spec;
    assert_eq!(spec.head.kind, HeadKind::Token);
    assert_eq!(spec.task(), Task::Token);
    assert!(spec.head.pooler.is_none());
    assert_eq!(spec.head.classifier.name, "classifier");
    assert_eq!(spec.architecture(), "BertForTokenClassification");
    // No pooler tensors: a token classifier's checkpoint has none.
    assert!(s.model.params.names().iter().all(|n| !n.contains("pooler")));
    let m = setup("mpnet", 0.0);
    assert_eq!(m.model.spec.architecture(), "MPNetForTokenClassification");
    assert!(m.model.params.contains("classifier.weight"));
    assert!(!m.model.params.contains("classifier.out_proj.weight"));
}

#[test]
fn native_token_step_matches_the_graph_full_frozen_and_lora() {
    for family in ["bert", "mpnet"] {
        let mut s = setup(family, 0.0);
        check(&s, &format!("{family} full"), 1);
        s.model.set_trainable_layers(Some(1));
        check(&s, &format!("{family} top-1"), 1);
        let mut s = setup(family, 0.0);
        let targets = if family == "mpnet" {
            vec!["q".to_string(), "v".to_string()]
        } else {
            vec!["query".to_string(), "value".to_string()]
        };
        s.model
            .add_lora(&LoraConfig {
                r: 2,
                alpha: 4.0,
                targets,
            })
            .unwrap();
        check(&s, &format!("{family} lora"), 1);
    }
}

#[test]
fn with_dropout_the_token_head_drops_the_same_elements_in_both() {
    for family in ["bert", "mpnet"] {
        let mut s = setup(family, 0.2);
        check(&s, &format!("{family} dropout full"), 7);
        s.model.set_trainable_layers(Some(1));
        check(&s, &format!("{family} dropout top-1"), 8);
    }
}

#[test]
fn the_engine_gives_the_graphs_token_logits() {
    for family in ["bert", "mpnet"] {
        let s = setup(family, 0.1);
        let encs = s.enc.encode(TEXTS, None).unwrap();
        let refs: Vec<_> = encs.iter().collect();
        let b = s.enc.batch(&refs, None, &Device::Cpu).unwrap();
        let graph = s
            .model
            .forward_t(&b.ids, &b.type_ids, &b.mask, None)
            .unwrap()
            .to_vec3::<f32>()
            .unwrap();
        let engine = Engine::new(&s.model, Precision::F32).unwrap();
        assert!(engine.is_token_classifier());
        let ours = engine.token_logits(&refs).unwrap();
        for (i, e) in encs.iter().enumerate() {
            assert_eq!(ours[i].len(), e.ids.len() * TAGS);
            for j in 0..e.ids.len() {
                for c in 0..TAGS {
                    let d = (ours[i][j * TAGS + c] - graph[i][j][c]).abs();
                    assert!(d < 1e-4, "{family}: ({i},{j},{c}) differs by {d}");
                }
            }
        }
        let err = engine.logits(&refs).unwrap_err().to_string();
        assert!(err.contains("token classifier"), "{err}");
    }
}

#[test]
fn a_sentence_head_refuses_token_calls_and_bad_token_batches_are_errors() {
    let s = setup("bert", 0.0);
    let encs = s.enc.encode(TEXTS, None).unwrap();
    let refs: Vec<_> = encs.iter().collect();
    // Labels that do not match the tokens.
    let short: Vec<Vec<u32>> = encs.iter().map(|e| vec![0; e.ids.len() - 1]).collect();
    let short_refs: Vec<&[u32]> = short.iter().map(Vec::as_slice).collect();
    assert!(Packed::tokens(&refs, &short_refs).is_err());
    // A tag id out of range.
    let mut bad: Vec<Vec<u32>> = encs.iter().map(|e| vec![0; e.ids.len()]).collect();
    bad[1][1] = TAGS as u32;
    let bad_refs: Vec<&[u32]> = bad.iter().map(Vec::as_slice).collect();
    let p = Packed::tokens(&refs, &bad_refs).unwrap();
    let err = native::step(&s.model, &p, WEIGHTS, &mut Rng::new(1))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("out of range"), "{err}");
    // Nothing labelled.
    let none: Vec<Vec<u32>> = encs.iter().map(|e| vec![IGNORE; e.ids.len()]).collect();
    let none_refs: Vec<&[u32]> = none.iter().map(Vec::as_slice).collect();
    let p = Packed::tokens(&refs, &none_refs).unwrap();
    assert!(native::step(&s.model, &p, WEIGHTS, &mut Rng::new(1)).is_err());
    // Sentence labels for a token classifier.
    let p = Packed::new(&refs, Some(&[0, 1, 2])).unwrap();
    let err = native::step(&s.model, &p, WEIGHTS, &mut Rng::new(1))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("labels for a batch"), "{err}");
    // A sentence classifier's engine has no token head.
    let c = BertConfig::tiny(common::tiny_vocab().len());
    let sentence = BertClassifier::new(&c, 4, 1, &Device::Cpu).unwrap();
    let engine = Engine::new(&sentence, Precision::F32).unwrap();
    assert!(!engine.is_token_classifier());
    assert!(engine.token_logits(&refs).is_err());
}

#[test]
fn transformers_token_classifiers_load_and_every_executor_matches_pytorch() {
    use crate::common::interop;
    for (name, class) in [
        ("bert-token-tiny", "BertForTokenClassification"),
        ("mpnet-token-tiny", "MPNetForTokenClassification"),
    ] {
        let ckpt = interop::assert_executors_match_pytorch(&interop::fixture(name));
        assert_eq!(ckpt.model.spec.architecture(), class);
        assert_eq!(ckpt.labels.names(), stance::attribution::tags::TAGS);
        // Saved by stance, it is still the transformers class with its labels.
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().join("saved");
        stance::checkpoint::save(
            &dir,
            &ckpt,
            &stance::checkpoint::SaveExtras {
                training_args: &serde_json::json!({}),
                metrics: &serde_json::json!({}),
                epoch_log: &[],
                delta_of: None,
            },
        )
        .unwrap();
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(config["architectures"], serde_json::json!([class]));
        assert_eq!(config["id2label"]["1"], "B-SOURCE");
        assert!(config.get("problem_type").is_none());
        interop::assert_executors_match_pytorch_at(&dir, &interop::fixture(name));
    }
}
