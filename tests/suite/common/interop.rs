//! Fixtures that transformers wrote (`scripts/interop/*_fixture.py`): a tiny
//! random checkpoint with PyTorch's logits, loss and gradients on a few
//! sentences, and the checks every executor must pass against them.

use candle_core::Device;
use stance::checkpoint::{load, Checkpoint};
use stance::engine::Precision;
use stance::train::native;
use std::path::{Path, PathBuf};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub struct Reference {
    pub texts: Vec<String>,
    /// Per sentence, its context segment (if the fixture encoded a pair).
    pub contexts: Vec<Option<String>>,
    pub ids: Vec<Vec<u32>>,
    /// A sentence classifier's label per sentence (empty for a token one).
    pub labels: Vec<u32>,
    /// A token classifier's label per token (-100 read as `IGNORE`).
    pub token_labels: Option<Vec<Vec<u32>>>,
    /// Per sentence: its logits, or a token classifier's `[tokens * labels]`.
    pub logits: Vec<Vec<f32>>,
    pub loss: f64,
    pub raw: serde_json::Value,
}

impl Reference {
    pub fn load(dir: &Path) -> Reference {
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
                .unwrap();
        let texts: Vec<String> = serde_json::from_value(v["texts"].clone()).unwrap();
        let contexts = match v.get("contexts") {
            Some(c) => serde_json::from_value(c.clone()).unwrap(),
            None => vec![None; texts.len()],
        };
        let token = v["task"] == "token";
        let logits: Vec<Vec<f32>> = if token {
            let l: Vec<Vec<Vec<f64>>> = serde_json::from_value(v["logits"].clone()).unwrap();
            l.into_iter()
                .map(|s| s.into_iter().flatten().map(|x| x as f32).collect())
                .collect()
        } else {
            let l: Vec<Vec<f64>> = serde_json::from_value(v["logits"].clone()).unwrap();
            l.into_iter()
                .map(|r| r.into_iter().map(|x| x as f32).collect())
                .collect()
        };
        let token_labels = token.then(|| {
            let t: Vec<Vec<i64>> = serde_json::from_value(v["token_labels"].clone()).unwrap();
            t.into_iter()
                .map(|s| {
                    s.into_iter()
                        .map(|l| {
                            if l < 0 {
                                stance::batch::IGNORE
                            } else {
                                l as u32
                            }
                        })
                        .collect()
                })
                .collect()
        });
        Reference {
            texts,
            contexts,
            ids: serde_json::from_value(v["ids"].clone()).unwrap(),
            labels: if token {
                Vec::new()
            } else {
                serde_json::from_value(v["labels"].clone()).unwrap()
            },
            token_labels,
            logits,
            loss: v["loss"].as_f64().unwrap(),
            raw: v,
        }
    }

    /// Each sentence tokenised as the fixture did (alone, or with its context).
    pub fn encode(&self, ckpt: &Checkpoint) -> Vec<stance::batch::Encoded> {
        self.texts
            .iter()
            .zip(&self.contexts)
            .map(|(t, c)| {
                let ctx = c.as_ref().map(|c| vec![c.clone()]);
                ckpt.encoder
                    .encode(&[t.as_str()], ctx.as_deref())
                    .unwrap()
                    .remove(0)
            })
            .collect()
    }
}

pub fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

/// Load the fixture and check that the tokenizer, the engine, candle's graph
/// and the native step reproduce PyTorch (logits and loss within 1e-5, every
/// gradient within 1e-5 of its scale). Returns the checkpoint.
pub fn assert_executors_match_pytorch(dir: &Path) -> Checkpoint {
    assert_executors_match_pytorch_at(dir, dir)
}

/// [`assert_executors_match_pytorch`] for the checkpoint in `model`
/// against the fixture in `dir` (a fixture stance saved again).
pub fn assert_executors_match_pytorch_at(model: &Path, dir: &Path) -> Checkpoint {
    let r = Reference::load(dir);
    let ckpt = load(model, &Device::Cpu).unwrap();
    assert!(ckpt.load_report.fresh.is_empty());
    let encs = r.encode(&ckpt);
    let ids: Vec<Vec<u32>> = encs.iter().map(|e| e.ids.clone()).collect();
    assert_eq!(ids, r.ids, "tokenizer.json gives transformers' ids");

    let engine =
        stance::infer::predict_logits(&ckpt.model, &encs, 16, Precision::F32, |_| {}).unwrap();
    let d = max_diff(&engine, &r.logits);
    assert!(d < 1e-5, "engine logits differ from PyTorch by {d}");

    let b = batch(&r, &ckpt);
    let out = ckpt
        .model
        .forward_t(&b.ids, &b.type_ids, &b.mask, None)
        .unwrap();
    let graph = match &r.token_labels {
        None => out.to_vec2::<f32>().unwrap(),
        // [batch, seq, labels], padding dropped, each sentence flattened.
        Some(_) => out
            .to_vec3::<f32>()
            .unwrap()
            .into_iter()
            .zip(&encs)
            .map(|(s, e)| s.into_iter().take(e.ids.len()).flatten().collect())
            .collect(),
    };
    let d = max_diff(&graph, &r.logits);
    assert!(d < 1e-5, "graph logits differ from PyTorch by {d}");

    // The fixture's dropout is 0, so PyTorch's train mode is deterministic.
    let packed = match &r.token_labels {
        None => b.packed().unwrap(),
        Some(t) => {
            let refs: Vec<_> = encs.iter().collect();
            let tags: Vec<&[u32]> = t.iter().map(Vec::as_slice).collect();
            stance::batch::Packed::tokens(&refs, &tags).unwrap()
        }
    };
    let out = native::step(
        &ckpt.model,
        &packed,
        &vec![1.0; ckpt.labels.len()],
        &mut stance::rng::Rng::new(0),
    )
    .unwrap();
    assert!(
        (out.loss - r.loss).abs() < 1e-5,
        "loss {} vs PyTorch {}",
        out.loss,
        r.loss
    );
    let torch =
        candle_core::safetensors::load(dir.join("grads.safetensors"), &Device::Cpu).unwrap();
    let mut compared = 0;
    for (name, var) in ckpt.model.params.iter() {
        let theirs = torch
            .get(name)
            .unwrap_or_else(|| panic!("PyTorch has no gradient for {name}"));
        let mine = out
            .grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("no native gradient for {name}"));
        let diff = super::max_abs(&(mine - theirs).unwrap());
        let scale = super::max_abs(theirs);
        assert!(
            diff <= 1e-5 * scale.max(1.0),
            "{name}: gradient differs from PyTorch by {diff} (max |grad| {scale})"
        );
        compared += 1;
    }
    assert_eq!(compared, torch.len(), "every PyTorch gradient compared");
    ckpt
}

/// The fixture's sentences as one labelled, padded batch.
pub fn batch(r: &Reference, ckpt: &Checkpoint) -> stance::batch::Batch {
    let encs = r.encode(ckpt);
    let refs: Vec<_> = encs.iter().collect();
    let labels = r.token_labels.is_none().then_some(r.labels.as_slice());
    ckpt.encoder.batch(&refs, labels, &Device::Cpu).unwrap()
}

/// The binary trains from the fixture as a base, saves a checkpoint whose
/// `config.json` names `model_type` and `architectures` and whose weights
/// hold `tensors`, predicts two sentences with it, and the checkpoint loads
/// back. Returns the saved weights' names.
pub fn trains_saves_and_predicts(
    base: &Path,
    model_type: &str,
    architecture: &str,
    tensors: &[&str],
) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bin = env!("CARGO_BIN_EXE_stance");
    let ckpt_dir = super::train_tiny_from(bin, d, base);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ckpt_dir.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["model_type"], model_type);
    assert_eq!(config["architectures"], serde_json::json!([architecture]));
    let weights =
        candle_core::safetensors::load(ckpt_dir.join("model.safetensors"), &Device::Cpu).unwrap();
    for name in tensors {
        assert!(weights.contains_key(*name), "saved checkpoint lacks {name}");
    }
    std::fs::write(
        d.join("a.txt"),
        "The mayor denied the report. Police accused the driver of fraud.\n",
    )
    .unwrap();
    let o = std::process::Command::new(bin)
        .args(["predict", "--model", "ckpt", "--format", "jsonl", "a.txt"])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
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
    let back = load(&ckpt_dir, &Device::Cpu).unwrap();
    assert_eq!(back.model.spec.family.model_type(), model_type);
    weights.keys().cloned().collect()
}
