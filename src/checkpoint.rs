//! Checkpoints are Hugging Face style directories: `config.json` (a
//! transformers BERT config with `architectures`, `id2label`, `label2id`),
//! `model.safetensors` with transformers' names, `tokenizer.json`, plus
//! `training_args.json` and `metrics.json`. `AutoModelForSequenceClassification
//! .from_pretrained(dir)` loads ours, and we load theirs.
//!
//! Settings only stance uses (maximum length, article context, calibration
//! temperature) live under a `"stance"` key in `config.json`, which
//! transformers keeps as an inert attribute.

use crate::batch::{tokenizer_from_vocab, TextEncoder};
use crate::labels::LabelSet;
use crate::model::{BertClassifier, BertConfig, LoadReport};
use crate::{Error, Result};
use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// stance-specific settings stored in `config.json` under `"stance"`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StanceSettings {
    pub max_len: usize,
    /// Neighbouring sentences on each side fed as the second segment (0: none).
    #[serde(default)]
    pub context: usize,
    /// Softmax temperature fitted on dev data (1: uncalibrated).
    #[serde(default = "one")]
    pub temperature: f32,
}

fn one() -> f32 {
    1.0
}

impl Default for StanceSettings {
    fn default() -> Self {
        StanceSettings { max_len: 128, context: 0, temperature: 1.0 }
    }
}

/// A model ready to use: weights, tokenizer, labels and settings.
pub struct Checkpoint {
    pub dir: PathBuf,
    pub model: BertClassifier,
    pub encoder: TextEncoder,
    pub labels: LabelSet,
    pub settings: StanceSettings,
    pub load_report: LoadReport,
}

fn require(dir: &Path, name: &str) -> Result<PathBuf> {
    let p = dir.join(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(Error::model(dir, format!("missing {name}")))
    }
}

/// The tokenizer of a model directory: `tokenizer.json`, or one built from
/// `vocab.txt` (lower-casing unless `tokenizer_config.json` says otherwise).
pub fn tokenizer_path_or_build(dir: &Path) -> Result<tokenizers::Tokenizer> {
    let tj = dir.join("tokenizer.json");
    if tj.is_file() {
        return tokenizers::Tokenizer::from_file(&tj).map_err(|e| Error::Tokenizer { path: tj, message: e.to_string() });
    }
    let vocab = dir.join("vocab.txt");
    if !vocab.is_file() {
        return Err(Error::model(dir, "missing tokenizer.json (and no vocab.txt to build one from)"));
    }
    let lower = std::fs::read_to_string(dir.join("tokenizer_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("do_lower_case").and_then(|b| b.as_bool()))
        .unwrap_or(true);
    tokenizer_from_vocab(&vocab, lower)
}

/// Build a classifier over `labels` from a pretrained encoder directory
/// (`config.json`, `model.safetensors`, tokenizer). The classifier head, and
/// anything else the file lacks, stays freshly initialised (see the report).
pub fn load_base(dir: &Path, labels: &LabelSet, max_len: usize, seed: u64, device: &Device) -> Result<Checkpoint> {
    let config = BertConfig::from_file(&require(dir, "config.json")?)?;
    let weights = weights_file(dir)?;
    let mut model = BertClassifier::new(&config, labels.len(), seed, device)?;
    let load_report = model.load_weights(&weights)?;
    if load_report.loaded.is_empty() {
        return Err(Error::model(dir, format!("{} holds none of the encoder's tensors: not a BERT checkpoint?", weights.display())));
    }
    let encoder = TextEncoder::new(tokenizer_path_or_build(dir)?, max_len.min(config.max_position_embeddings), &dir.join("tokenizer.json"))?;
    let settings = StanceSettings { max_len, ..Default::default() };
    Ok(Checkpoint { dir: dir.into(), model, encoder, labels: labels.clone(), settings, load_report })
}

fn weights_file(dir: &Path) -> Result<PathBuf> {
    let p = dir.join("model.safetensors");
    if p.is_file() {
        return Ok(p);
    }
    if dir.join("pytorch_model.bin").is_file() {
        return Err(Error::model(dir, "only pytorch_model.bin found; stance reads model.safetensors (convert with transformers: model.save_pretrained(dir, safe_serialization=True))"));
    }
    Err(Error::model(dir, "missing model.safetensors"))
}

/// Load a fine-tuned classifier checkpoint.
pub fn load(dir: &Path, device: &Device) -> Result<Checkpoint> {
    if !dir.is_dir() {
        return Err(Error::model(dir, "no such directory"));
    }
    let config_path = require(dir, "config.json")?;
    let config = BertConfig::from_file(&config_path)?;
    let labels = config.labels().ok_or_else(|| Error::model(dir, "config.json has no id2label: not a classification checkpoint"))??;
    let settings: StanceSettings = match config.extra.get("stance") {
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| Error::file(&config_path, format!("bad \"stance\" settings: {e}")))?,
        None => StanceSettings::default(),
    };
    let mut model = BertClassifier::new(&config, labels.len(), 0, device)?;
    let load_report = model.load_weights(&weights_file(dir)?)?;
    if !load_report.fresh.is_empty() {
        return Err(Error::model(dir, format!("model.safetensors lacks {} (is this a base encoder rather than a fine-tuned checkpoint?)", load_report.fresh.join(", "))));
    }
    let encoder = TextEncoder::new(tokenizer_path_or_build(dir)?, settings.max_len.min(config.max_position_embeddings), &dir.join("tokenizer.json"))?;
    Ok(Checkpoint { dir: dir.into(), model, encoder, labels, settings, load_report })
}

/// Everything a checkpoint directory holds besides the weights.
pub struct SaveExtras<'a> {
    pub training_args: &'a serde_json::Value,
    pub metrics: &'a serde_json::Value,
    /// One JSON object per line (the per-epoch log), written as `metrics.jsonl`.
    pub epoch_log: &'a [serde_json::Value],
}

/// Write `ckpt` to `dir` atomically (temporary directory, then rename).
pub fn save(dir: &Path, ckpt: &Checkpoint, extras: &SaveExtras) -> Result<()> {
    let mut config = ckpt.model.config.for_classification(&ckpt.labels);
    config.extra.insert("stance".into(), serde_json::to_value(&ckpt.settings).expect("plain struct"));
    let tensors = ckpt.model.params.snapshot()?;
    let json = |v: &serde_json::Value| serde_json::to_string_pretty(v).expect("serialisable") + "\n";
    crate::atomic::write_dir(dir, |tmp| {
        std::fs::write(tmp.join("config.json"), json(&serde_json::to_value(&config).expect("serialisable"))).map_err(|e| Error::io(tmp.join("config.json"), e))?;
        candle_core::safetensors::save(&tensors, tmp.join("model.safetensors"))?;
        ckpt.encoder.tokenizer().save(tmp.join("tokenizer.json"), false).map_err(|e| Error::Tokenizer { path: tmp.join("tokenizer.json"), message: e.to_string() })?;
        std::fs::write(tmp.join("training_args.json"), json(extras.training_args)).map_err(|e| Error::io(tmp.join("training_args.json"), e))?;
        std::fs::write(tmp.join("metrics.json"), json(extras.metrics)).map_err(|e| Error::io(tmp.join("metrics.json"), e))?;
        let log: String = extras.epoch_log.iter().map(|v| v.to_string() + "\n").collect();
        std::fs::write(tmp.join("metrics.jsonl"), log).map_err(|e| Error::io(tmp.join("metrics.jsonl"), e))?;
        Ok(())
    })
}
