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
use crate::model::spec::Task;
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
    /// Per-label offsets added to `logits / temperature`, fitted on dev to
    /// maximise macro-F1 (`train --fit-offsets`); empty: none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub class_offsets: Vec<f32>,
    /// Set for checkpoints that store only what differs from their base
    /// encoder (`model.safetensors` then holds just the trained tensors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseRef>,
}

/// The base encoder a delta checkpoint was trained from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BaseRef {
    /// Hub id, e.g. `sentence-transformers/all-MiniLM-L6-v2`.
    pub id: String,
    pub revision: String,
    /// sha256 of the base's `model.safetensors`.
    pub sha256: String,
    /// Where the base directory is expected, relative to the project root.
    pub path: String,
}

/// Its sha256 must be the one the checkpoint recorded.
fn verify_base(dir: &Path, base: &BaseRef, base_dir: &Path) -> Result<()> {
    let got = crate::hash_cache::sha256(&base_dir.join("model.safetensors"))?;
    if got != base.sha256 {
        return Err(Error::model(dir, format!("base model at {} has sha256 {got}, but this checkpoint was trained on {} with sha256 {}", base_dir.display(), base.id, base.sha256)));
    }
    Ok(())
}

/// Find the base of a delta checkpoint in `dir`: `$STANCE_BASE_DIR`, the
/// recorded path relative to the working directory, or relative to the
/// project root two levels above `dir` (`models/<name>`), else in the hub
/// cache (`stance download`, huggingface_hub) by its id and sha256.
fn find_base(dir: &Path, base: &BaseRef) -> Result<PathBuf> {
    let mut tried = Vec::new();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(p) = std::env::var("STANCE_BASE_DIR") {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(PathBuf::from(&base.path));
    if let Some(root) = dir.parent().and_then(|p| p.parent()) {
        candidates.push(root.join(&base.path));
    }
    for c in candidates {
        let weights = c.join("model.safetensors");
        if weights.is_file() {
            return Ok(c);
        }
        tried.push(c.display().to_string());
    }
    if let Ok(cache) = crate::hub::cache::RepoCache::from_env(&base.id) {
        if let Some(snap) = cache.snapshot_with("model.safetensors", &base.sha256) {
            return Ok(snap);
        }
        tried.push(format!("the hub cache {}", cache.dir().display()));
    }
    Err(Error::model(
        dir,
        format!("needs its base model {} (revision {}) at {}; fetch it with scripts/fetch-base-model.sh or `stance download {} --out {}`, or set STANCE_BASE_DIR", base.id, base.revision, tried.join(" or "), base.id, base.path),
    ))
}

fn one() -> f32 {
    1.0
}

impl StanceSettings {
    /// Values a corrupt or hostile config could carry, refused by key.
    pub fn validate(&self, config: &BertConfig) -> std::result::Result<(), String> {
        if !(self.temperature.is_finite() && self.temperature > 0.0 && self.temperature < 1000.0) {
            return Err(format!(
                "stance.temperature {} must be a positive number",
                self.temperature
            ));
        }
        let labels = config.id2label.as_ref().map(|m| m.len());
        if !self.class_offsets.is_empty()
            && (labels.is_some_and(|n| n != self.class_offsets.len())
                || self
                    .class_offsets
                    .iter()
                    .any(|b| !b.is_finite() || b.abs() > 50.0))
        {
            return Err(format!(
                "stance.class_offsets {:?} must be one finite number (|b| <= 50) per label",
                self.class_offsets
            ));
        }
        if self.max_len < 4 || self.max_len > config.max_tokens() {
            return Err(format!(
                "stance.max_len {} must be in 4..={} (max_position_embeddings)",
                self.max_len,
                config.max_tokens()
            ));
        }
        if self.context > 16 {
            return Err(format!(
                "stance.context {} is more than 16 sentences on each side",
                self.context
            ));
        }
        Ok(())
    }
}

impl Default for StanceSettings {
    fn default() -> Self {
        StanceSettings {
            max_len: 128,
            context: 0,
            temperature: 1.0,
            class_offsets: Vec::new(),
            base: None,
        }
    }
}

impl StanceSettings {
    /// The calibrated label probabilities of one sentence's logits.
    pub fn probabilities(&self, logits: &[f32]) -> Vec<f32> {
        crate::infer::calibrated(logits, self.temperature, &self.class_offsets)
    }
}

const TOKENIZER_CONFIG: &str = "tokenizer_config.json";

/// `tokenizer_config.json` for a saved checkpoint: it tells transformers'
/// `AutoTokenizer` to run `tokenizer.json` as it is (without it, a RoBERTa
/// checkpoint gets a byte-level BPE rebuilt from the vocabulary), and names
/// the special tokens the tokenizer holds.
fn tokenizer_config(tok: &tokenizers::Tokenizer, max_len: usize) -> serde_json::Value {
    let mut v = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_len,
    });
    let roles = [
        ("pad_token", ["[PAD]", "<pad>"]),
        ("unk_token", ["[UNK]", "<unk>"]),
        ("cls_token", ["[CLS]", "<s>"]),
        ("sep_token", ["[SEP]", "</s>"]),
        ("mask_token", ["[MASK]", "<mask>"]),
        ("bos_token", ["<s>", "<s>"]),
        ("eos_token", ["</s>", "</s>"]),
    ];
    for (role, names) in roles {
        if let Some(n) = names.iter().find(|n| tok.token_to_id(n).is_some()) {
            v[role] = serde_json::json!(n);
        }
    }
    v
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
        return tokenizers::Tokenizer::from_file(&tj).map_err(|e| Error::Tokenizer {
            path: tj,
            message: e.to_string(),
        });
    }
    let vocab = dir.join("vocab.txt");
    if !vocab.is_file() {
        return Err(Error::model(
            dir,
            "missing tokenizer.json (and no vocab.txt to build one from)",
        ));
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
pub fn load_base(
    dir: &Path,
    labels: &LabelSet,
    max_len: usize,
    seed: u64,
    device: &Device,
) -> Result<Checkpoint> {
    load_base_for(dir, labels, max_len, seed, device, Task::Sentence)
}

/// [`load_base`] for a classifier of sentences or of tokens (`task`).
pub fn load_base_for(
    dir: &Path,
    labels: &LabelSet,
    max_len: usize,
    seed: u64,
    device: &Device,
    task: Task,
) -> Result<Checkpoint> {
    let config_path = require(dir, "config.json")?;
    let mut config = BertConfig::from_file(&config_path)?;
    if task == Task::Token {
        let family = crate::model::spec::Family::from_config(&config)
            .map_err(|m| Error::file(&config_path, m))?;
        config.extra.insert(
            "architectures".into(),
            serde_json::json!([family.token_classifier_class()]),
        );
    }
    let weights = weights_file(dir)?;
    crate::model::preflight::check_against_weights(&config, &config_path, &weights)?;
    let mut model = BertClassifier::new_for_loading(&config, labels.len(), seed, device)?;
    let load_report = model.load_weights(&weights)?;
    model.params.draw_pending()?;
    model.params.check_finite().map_err(|name| {
        Error::model(
            dir,
            format!("weight {name} holds NaN or infinite values; the base is corrupt"),
        )
    })?;
    if load_report.loaded.is_empty() {
        return Err(Error::model(
            dir,
            format!(
                "{} holds none of the encoder's tensors: not a BERT checkpoint?",
                weights.display()
            ),
        ));
    }
    let encoder = TextEncoder::new(
        tokenizer_path_or_build(dir)?,
        max_len.min(config.max_tokens()),
        &dir.join("tokenizer.json"),
    )?;
    let settings = StanceSettings {
        max_len,
        ..Default::default()
    };
    Ok(Checkpoint {
        dir: dir.into(),
        model,
        encoder,
        labels: labels.clone(),
        settings,
        load_report,
    })
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
    let labels = config.labels().ok_or_else(|| {
        Error::model(
            dir,
            "config.json has no id2label: not a classification checkpoint",
        )
    })??;
    let settings: StanceSettings = match config.extra.get("stance") {
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| Error::file(&config_path, format!("bad \"stance\" settings: {e}")))?,
        // A transformers checkpoint: stance's defaults, within its positions.
        None => {
            let mut s = StanceSettings::default();
            s.max_len = s.max_len.min(config.max_tokens());
            s
        }
    };
    settings
        .validate(&config)
        .map_err(|m| Error::file(&config_path, m))?;
    // Sizes against the tensors on disk before anything is allocated: the
    // base's file for a delta checkpoint, the checkpoint's own otherwise.
    let base_dir = settings
        .base
        .as_ref()
        .map(|b| find_base(dir, b))
        .transpose()?;
    if let Some(b) = &base_dir {
        crate::model::preflight::check_against_weights(
            &config,
            &config_path,
            &b.join("model.safetensors"),
        )?;
    }
    if dir.join("model.safetensors").is_file() {
        crate::model::preflight::check_against_weights(
            &config,
            &config_path,
            &dir.join("model.safetensors"),
        )?;
    }
    let mut model = BertClassifier::new_for_loading(&config, labels.len(), 0, device)?;
    // The tokenizer is parsed, and the base's hash checked, on threads of
    // their own while the weights load.
    let (load_report, tokenizer) = std::thread::scope(|scope| -> Result<_> {
        let tokenizer = scope.spawn(|| tokenizer_path_or_build(dir));
        let report = match &settings.base {
            Some(base) => {
                let base_dir = base_dir.clone().expect("found above");
                let verified = {
                    let base_dir = base_dir.clone();
                    scope.spawn(move || verify_base(dir, base, &base_dir))
                };
                let report = load_delta(dir, &mut model, &base_dir, device);
                verified
                    .join()
                    .map_err(|_| Error::model(dir, "checking the base model's hash failed"))??;
                report?
            }
            None => model.load_weights(&weights_file(dir)?)?,
        };
        let tokenizer = tokenizer
            .join()
            .map_err(|_| Error::model(dir, "reading the tokenizer failed"))??;
        Ok((report, tokenizer))
    })?;
    if !load_report.fresh.is_empty() {
        return Err(Error::model(dir, format!("model.safetensors lacks {} (is this a base encoder rather than a fine-tuned checkpoint?)", load_report.fresh.join(", "))));
    }
    model.params.draw_pending()?;
    model.params.check_finite().map_err(|name| {
        Error::model(
            dir,
            format!("weight {name} holds NaN or infinite values; the checkpoint is corrupt"),
        )
    })?;
    let encoder = TextEncoder::new(
        tokenizer,
        settings.max_len.min(config.max_tokens()),
        &dir.join("tokenizer.json"),
    )?;
    Ok(Checkpoint {
        dir: dir.into(),
        model,
        encoder,
        labels,
        settings,
        load_report,
    })
}

/// The base's weights, then the checkpoint's own tensors over them (a LoRA
/// adapter in PEFT layout, or the trained tensors).
fn load_delta(
    dir: &Path,
    model: &mut BertClassifier,
    base_dir: &Path,
    device: &Device,
) -> Result<LoadReport> {
    let from_base = model.load_weights(&base_dir.join("model.safetensors"))?;
    let delta = if dir.join(ADAPTER_CONFIG).is_file() {
        // The adapter's settings come from its file, so a bad one is
        // reported there, not as a command-line flag.
        model
            .add_lora(&read_adapter_config(dir)?)
            .map_err(|e| match e {
                Error::Invalid(m) => Error::file(dir.join(ADAPTER_CONFIG), m),
                other => other,
            })?;
        let path = require(dir, ADAPTER_WEIGHTS)?;
        let tensors = candle_core::safetensors::load(&path, device)
            .map_err(|e| Error::file(&path, format!("cannot read safetensors: {e}")))?;
        let tensors = tensors
            .into_iter()
            .map(|(k, v)| (k.strip_prefix(PEFT_PREFIX).unwrap_or(&k).to_string(), v))
            .collect();
        model.load_tensors(&tensors, &path)?
    } else {
        model.load_weights(&weights_file(dir)?)?
    };
    let fresh: Vec<String> = model
        .params
        .names()
        .iter()
        .filter(|n| !delta.loaded.contains(n) && !from_base.loaded.contains(n))
        .cloned()
        .collect();
    Ok(LoadReport {
        loaded: delta.loaded,
        fresh,
        unused: delta.unused,
    })
}

const ADAPTER_CONFIG: &str = "adapter_config.json";
const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
/// PEFT prefixes every adapter tensor name with this.
const PEFT_PREFIX: &str = "base_model.model.";

fn read_adapter_config(dir: &Path) -> Result<crate::model::LoraConfig> {
    let path = dir.join(ADAPTER_CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    parse_adapter_config(&path, &text)
}

/// A PEFT `adapter_config.json` (LoRA only); errors name `path`.
pub fn parse_adapter_config(path: &Path, text: &str) -> Result<crate::model::LoraConfig> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::file(path, format!("bad JSON: {e}")))?;
    if v["peft_type"] != "LORA" {
        return Err(Error::file(
            path,
            format!("peft_type {} is not LORA", v["peft_type"]),
        ));
    }
    let targets = match &v["target_modules"] {
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        serde_json::Value::String(s) => vec![s.clone()],
        _ => Vec::new(),
    };
    if targets.is_empty() {
        return Err(Error::file(
            path,
            format!(
                "target_modules {} must name at least one module (query, key, value, dense)",
                v["target_modules"]
            ),
        ));
    }
    let r = v["r"]
        .as_u64()
        .filter(|r| (1..=4096).contains(r))
        .ok_or_else(|| Error::file(path, format!("r {} must be an integer in 1..=4096", v["r"])))?
        as usize;
    let alpha = match &v["lora_alpha"] {
        serde_json::Value::Null => r as f64,
        x => x
            .as_f64()
            .filter(|a| a.is_finite() && *a > 0.0)
            .ok_or_else(|| {
                Error::file(path, format!("lora_alpha {x} must be a positive number"))
            })?,
    };
    Ok(crate::model::LoraConfig { r, alpha, targets })
}

fn adapter_config_json(lora: &crate::model::LoraConfig, base: &BaseRef) -> serde_json::Value {
    serde_json::json!({
        "peft_type": "LORA",
        "task_type": "SEQ_CLS",
        "r": lora.r,
        "lora_alpha": lora.alpha,
        "lora_dropout": 0.0,
        "target_modules": lora.targets,
        "modules_to_save": ["classifier"],
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "base_model_name_or_path": base.id,
        "revision": base.revision,
    })
}

/// Everything a checkpoint directory holds besides the weights.
pub struct SaveExtras<'a> {
    pub training_args: &'a serde_json::Value,
    pub metrics: &'a serde_json::Value,
    /// One JSON object per line (the per-epoch log), written as `metrics.jsonl`.
    pub epoch_log: &'a [serde_json::Value],
    /// Store only the trainable tensors, in f16, relative to this base.
    pub delta_of: Option<BaseRef>,
}

/// Write `ckpt` to `dir` atomically (temporary directory, then rename).
pub fn save(dir: &Path, ckpt: &Checkpoint, extras: &SaveExtras) -> Result<()> {
    let mut config = ckpt
        .model
        .config
        .for_classification(&ckpt.model.spec, &ckpt.labels);
    let mut settings = ckpt.settings.clone();
    settings.base = extras.delta_of.clone();
    config.extra.insert(
        "stance".into(),
        serde_json::to_value(&settings).expect("plain struct"),
    );
    let mut tensors = ckpt.model.params.snapshot()?;
    let lora = ckpt.model.lora().cloned();
    if lora.is_some() && extras.delta_of.is_none() {
        return Err(Error::Invalid(
            "a LoRA checkpoint must record its base model".into(),
        ));
    }
    if lora.is_some() {
        // PEFT layout: only adapters and the classifier, f32, prefixed names.
        tensors = tensors
            .into_iter()
            .filter(|(n, _)| ckpt.model.params.is_trainable(n))
            .map(|(n, t)| (format!("{PEFT_PREFIX}{n}"), t))
            .collect();
    } else if extras.delta_of.is_some() {
        tensors.retain(|name, _| ckpt.model.params.is_trainable(name));
        for t in tensors.values_mut() {
            *t = t.to_dtype(candle_core::DType::F16)?;
        }
    }
    let json =
        |v: &serde_json::Value| serde_json::to_string_pretty(v).expect("serialisable") + "\n";
    crate::atomic::write_dir(dir, "checkpoint", |tmp| {
        std::fs::write(
            tmp.join("config.json"),
            json(&serde_json::to_value(&config).expect("serialisable")),
        )
        .map_err(|e| Error::io(tmp.join("config.json"), e))?;
        match (&lora, &extras.delta_of) {
            (Some(l), Some(base)) => {
                candle_core::safetensors::save(&tensors, tmp.join(ADAPTER_WEIGHTS))?;
                std::fs::write(
                    tmp.join(ADAPTER_CONFIG),
                    json(&adapter_config_json(l, base)),
                )
                .map_err(|e| Error::io(tmp.join(ADAPTER_CONFIG), e))?;
            }
            _ => candle_core::safetensors::save(&tensors, tmp.join("model.safetensors"))?,
        }
        ckpt.encoder
            .tokenizer()
            .save(tmp.join("tokenizer.json"), false)
            .map_err(|e| Error::Tokenizer {
                path: tmp.join("tokenizer.json"),
                message: e.to_string(),
            })?;
        let tc = tokenizer_config(ckpt.encoder.tokenizer(), ckpt.settings.max_len);
        std::fs::write(tmp.join(TOKENIZER_CONFIG), json(&tc))
            .map_err(|e| Error::io(tmp.join(TOKENIZER_CONFIG), e))?;
        std::fs::write(tmp.join("training_args.json"), json(extras.training_args))
            .map_err(|e| Error::io(tmp.join("training_args.json"), e))?;
        std::fs::write(tmp.join("metrics.json"), json(extras.metrics))
            .map_err(|e| Error::io(tmp.join("metrics.json"), e))?;
        let log: String = extras
            .epoch_log
            .iter()
            .map(|v| v.to_string() + "\n")
            .collect();
        std::fs::write(tmp.join("metrics.jsonl"), log)
            .map_err(|e| Error::io(tmp.join("metrics.jsonl"), e))?;
        Ok(())
    })
}
