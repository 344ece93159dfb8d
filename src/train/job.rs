//! `stance train` as one library call: read and tokenise the data, build the
//! classifier from a pretrained encoder, train, and write the checkpoint.

use super::trainer::{train, Example, Target, TrainConfig, TrainEvent};
use crate::checkpoint::{load_base_for, save, Checkpoint, SaveExtras};
use crate::data::{read_files, LabelledSentence};
use crate::labels::LabelSet;
use crate::metrics::Metrics;
use crate::model::spec::Task;
use crate::{Error, Result};
use candle_core::Device;
use serde::Serialize;
use std::path::PathBuf;

/// Which label set to train on.
#[derive(Debug, Clone)]
pub enum LabelSource {
    /// This list, in this order.
    Fixed(Vec<String>),
    /// The labels found in the training data, sorted.
    FromData,
}

/// In `training_args.json`: the list itself, or `"auto"` (what `--labels`
/// takes), not Rust's variant names.
impl Serialize for LabelSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            LabelSource::Fixed(v) => v.serialize(s),
            LabelSource::FromData => s.serialize_str("auto"),
        }
    }
}

/// Which parameters fine-tuning updates.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// Every tensor.
    Full,
    /// The top N encoder layers, the pooler and the classifier.
    /// (`None`: every encoder layer, the embeddings frozen.)
    Top(Option<usize>),
    /// Only the pooler and classifier, over a frozen encoder.
    Head,
    /// LoRA adapters plus the classifier (saved in PEFT's layout).
    Lora(crate::model::LoraConfig),
}

/// In `training_args.json`, as the flags say it: `{"method": "top",
/// "train_layers": 6}`, `{"method": "lora", "lora_r": 8, ...}`.
impl Serialize for Method {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        match self {
            Method::Full => m.serialize_entry("method", "full")?,
            Method::Head => m.serialize_entry("method", "head")?,
            Method::Top(k) => {
                m.serialize_entry("method", "top")?;
                match k {
                    Some(k) => m.serialize_entry("train_layers", k)?,
                    None => m.serialize_entry("train_layers", "all")?,
                }
            }
            Method::Lora(l) => {
                m.serialize_entry("method", "lora")?;
                m.serialize_entry("lora_r", &l.r)?;
                m.serialize_entry("lora_alpha", &l.alpha)?;
                m.serialize_entry("lora_targets", &l.targets)?;
            }
        }
        m.end()
    }
}

/// Where a delta checkpoint's base comes from (`--delta`).
#[derive(Debug, Clone, Serialize)]
pub struct DeltaOf {
    pub id: String,
    pub revision: String,
}

/// What the model learns to label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainTask {
    /// Sentences with stance labels, from labelled sentence files.
    Stance,
    /// Tokens with source / cue / content BIO tags, from PolNeAR-layout
    /// directories (`text/`, `attributions/`): the attribution tagger.
    Attribution,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrainJob {
    pub task: TrainTask,
    /// Data files (stance) or directories (attribution).
    pub train_files: Vec<PathBuf>,
    pub dev_files: Vec<PathBuf>,
    pub base: PathBuf,
    pub out: PathBuf,
    /// Replace `out` when it is an earlier stance checkpoint.
    pub overwrite: bool,
    pub labels: LabelSource,
    pub max_len: usize,
    pub context: usize,
    #[serde(flatten)]
    pub method: Method,
    /// Save only the trained tensors (f16) plus a reference to the base.
    pub delta: Option<DeltaOf>,
    pub train: TrainConfig,
    /// After the temperature, fit per-label offsets on dev that maximise
    /// macro-F1 ([`crate::calibrate::fit_offsets`]).
    #[serde(default)]
    pub fit_offsets: bool,
}

#[derive(Debug)]
pub struct TrainSummary {
    pub best_epoch: usize,
    pub best_dev: Option<Metrics>,
    pub out: PathBuf,
}

fn resolve_labels(job: &TrainJob, rows: &[LabelledSentence]) -> Result<LabelSet> {
    match &job.labels {
        LabelSource::Fixed(v) => LabelSet::new(v.clone()),
        LabelSource::FromData => {
            let set: std::collections::BTreeSet<String> =
                rows.iter().map(|r| r.label.clone()).collect();
            LabelSet::new(set.into_iter().collect())
        }
    }
}

pub fn run(job: &TrainJob, on_event: &mut dyn FnMut(&TrainEvent)) -> Result<TrainSummary> {
    if job.train_files.is_empty() {
        return Err(Error::Invalid("no --train file given".into()));
    }
    // Before any work: the output must be new or an earlier stance checkpoint, and hold no input.
    let inputs: Vec<PathBuf> = job
        .train_files
        .iter()
        .chain(&job.dev_files)
        .chain(std::iter::once(&job.base))
        .cloned()
        .collect();
    crate::guard::checkpoint_dir(&job.out, "--out", job.overwrite, &inputs)?;
    // Held for the whole run, so a second run writing the same --out is refused before it trains.
    let _lock = crate::atomic::DirLock::acquire(&job.out)?;
    if job.task == TrainTask::Attribution {
        return run_attribution(job, on_event);
    }

    let raw = read_files(&job.train_files, None)?;
    let labels = resolve_labels(job, &raw)?;
    // Re-read with the label set so unknown labels are reported by file and line.
    let train_rows = read_files(&job.train_files, Some(&labels))?;
    let dev_rows = read_files(&job.dev_files, Some(&labels))?;
    let present: std::collections::BTreeSet<&str> =
        train_rows.iter().map(|r| r.label.as_str()).collect();
    if present.len() < 2 {
        on_event(&TrainEvent::Info(format!(
            "warning: the training data holds a single label ({}); the model can only learn to predict it",
            present.iter().next().copied().unwrap_or("none")
        )));
    } else if present.len() < labels.len() {
        let missing: Vec<&str> = labels
            .names()
            .iter()
            .map(String::as_str)
            .filter(|l| !present.contains(l))
            .collect();
        on_event(&TrainEvent::Info(format!(
            "warning: no training sentence has the label(s) {}",
            missing.join(", ")
        )));
    }
    let mut ckpt = prepare(job, &labels, Task::Sentence)?;
    ckpt.settings.context = job.context;
    on_event(&TrainEvent::Info(format!(
        "base {}: {}",
        job.base.display(),
        ckpt.load_report.summary()
    )));
    let examples = |rows: &[LabelledSentence]| -> Result<Vec<Example>> {
        let encs = crate::eval::encode_rows(&ckpt, rows)?;
        Ok(encs
            .into_iter()
            .zip(rows)
            .map(|(enc, r)| Example {
                enc,
                target: Target::Sentence(labels.id(&r.label).expect("validated") as u32),
            })
            .collect())
    };
    let train_ex = examples(&train_rows)?;
    let dev_ex = examples(&dev_rows)?;
    on_event(&TrainEvent::Info(format!(
        "{} training and {} dev sentences, labels: {}",
        train_ex.len(),
        dev_ex.len(),
        labels.names().join(", ")
    )));
    let cfg = job.train.clone();
    let outcome = train(&mut ckpt.model, &train_ex, &dev_ex, &labels, &cfg, on_event)?;
    let calibration = calibrate(job, &mut ckpt, &dev_ex, &labels, on_event)?;
    finish(job, &ckpt, outcome, calibration)
}

/// The attribution tagger: windows of PolNeAR articles, tagged BIO.
fn run_attribution(job: &TrainJob, on_event: &mut dyn FnMut(&TrainEvent)) -> Result<TrainSummary> {
    use crate::attribution::tags;
    if job.context > 0 || job.fit_offsets {
        return Err(Error::Invalid(
            "--context and --fit-offsets are for --task stance (the tagger reads windows of whole sentences)".into(),
        ));
    }
    let labels = LabelSet::new(tags::TAGS.iter().map(|t| t.to_string()).collect())?;
    let mut ckpt = prepare(job, &labels, Task::Token)?;
    on_event(&TrainEvent::Info(format!(
        "base {}: {}",
        job.base.display(),
        ckpt.load_report.summary()
    )));
    let examples = |dirs: &[PathBuf]| -> Result<(Vec<Example>, usize)> {
        let mut out = Vec::new();
        let mut docs = 0;
        for dir in dirs {
            for doc in crate::attribution::polnear::read_dir(dir)? {
                docs += 1;
                for (enc, t) in tags::examples(&ckpt.encoder, &doc, job.max_len)? {
                    out.push(Example {
                        enc,
                        target: Target::Tokens(t),
                    });
                }
            }
        }
        Ok((out, docs))
    };
    let (train_ex, train_docs) = examples(&job.train_files)?;
    let (dev_ex, dev_docs) = examples(&job.dev_files)?;
    on_event(&TrainEvent::Info(format!(
        "{} training windows ({train_docs} articles), {} dev windows ({dev_docs} articles), tags: {}",
        train_ex.len(),
        dev_ex.len(),
        labels.names().join(", ")
    )));
    let outcome = train(
        &mut ckpt.model,
        &train_ex,
        &dev_ex,
        &labels,
        &job.train,
        on_event,
    )?;
    finish(job, &ckpt, outcome, serde_json::Value::Null)
}

/// The base encoder as a classifier of `task` over `labels`, its trainable
/// tensors set by the job's method.
fn prepare(job: &TrainJob, labels: &LabelSet, task: Task) -> Result<Checkpoint> {
    let device = Device::Cpu;
    let mut ckpt = load_base_for(
        &job.base,
        labels,
        job.max_len,
        job.train.seed,
        &device,
        task,
    )?;
    match &job.method {
        Method::Full => ckpt.model.set_trainable_layers(None),
        Method::Top(k) => {
            let layers = ckpt.model.config.num_hidden_layers;
            let k = &k.unwrap_or(layers);
            if *k == 0 || *k > layers {
                return Err(Error::Invalid(format!("--train-layers {k}: the base has {layers} layers; give 1..={layers} (or --method head / full)")));
            }
            ckpt.model.set_trainable_layers(Some(*k))
        }
        Method::Head => ckpt.model.set_trainable_layers(Some(0)),
        Method::Lora(cfg) => {
            let hidden = ckpt.model.config.hidden_size;
            if cfg.r > hidden {
                return Err(Error::Invalid(format!(
                    "--lora-r {}: larger than the model's hidden size {hidden}",
                    cfg.r
                )));
            }
            ckpt.model.add_lora(cfg)?
        }
    }
    if job.delta.is_some() && job.method == Method::Full {
        return Err(Error::Invalid(
            "--delta stores only the trained tensors; use it with --method top or head".into(),
        ));
    }
    Ok(ckpt)
}

/// Fit the softmax temperature of the chosen epoch on dev (and, with
/// `--fit-offsets`, the class offsets); what was fitted, for `metrics.json`.
fn calibrate(
    job: &TrainJob,
    ckpt: &mut Checkpoint,
    dev_ex: &[Example],
    labels: &LabelSet,
    on_event: &mut dyn FnMut(&TrainEvent),
) -> Result<serde_json::Value> {
    let cfg = &job.train;
    let mut calibration = serde_json::Value::Null;
    if !dev_ex.is_empty() {
        let encs: Vec<_> = dev_ex.iter().map(|e| e.enc.clone()).collect();
        let gold: Vec<usize> = dev_ex.iter().map(|e| e.target.ids()[0] as usize).collect();
        let logits = crate::infer::predict_logits(
            &ckpt.model,
            &encs,
            cfg.batch_size * 2,
            crate::engine::Precision::F32,
            |_| {},
        )?;
        let t = crate::calibrate::fit_temperature(&logits, &gold);
        let ece = |t: f32| {
            let p: Vec<Vec<f32>> = logits
                .iter()
                .map(|l| crate::infer::probabilities(l, t))
                .collect();
            crate::metrics::expected_calibration_error(&p, &gold, 10)
        };
        calibration = serde_json::json!({
            "temperature": t,
            "dev_ece_before": ece(1.0),
            "dev_ece_after": ece(t),
            "dev_nll_before": crate::calibrate::nll(&logits, &gold, 1.0),
            "dev_nll_after": crate::calibrate::nll(&logits, &gold, t),
        });
        on_event(&TrainEvent::Info(format!(
            "calibration: temperature {t:.3}, dev ECE {:.4} -> {:.4}",
            ece(1.0),
            ece(t)
        )));
        ckpt.settings.temperature = t;
        if job.fit_offsets {
            let k = labels.len();
            let b = crate::calibrate::fit_offsets(&logits, &gold, t, k);
            let zero = vec![0f32; k];
            let (before, after) = (
                crate::calibrate::macro_f1_with(&logits, &gold, t, &zero),
                crate::calibrate::macro_f1_with(&logits, &gold, t, &b),
            );
            let p: Vec<Vec<f32>> = logits
                .iter()
                .map(|l| crate::infer::calibrated(l, t, &b))
                .collect();
            let ece_b = crate::metrics::expected_calibration_error(&p, &gold, 10);
            on_event(&TrainEvent::Info(format!(
                "class offsets {b:?}: dev macro-F1 {before:.4} -> {after:.4}, dev ECE {ece_b:.4}"
            )));
            calibration["class_offsets"] = serde_json::json!(b);
            calibration["dev_macro_f1_before_offsets"] = serde_json::json!(before);
            calibration["dev_macro_f1_after_offsets"] = serde_json::json!(after);
            calibration["dev_ece_after_offsets"] = serde_json::json!(ece_b);
            ckpt.settings.class_offsets = if b.iter().all(|v| *v == 0.0) {
                Vec::new()
            } else {
                b
            };
        }
    }
    Ok(calibration)
}

/// Write the checkpoint with its training arguments and metrics.
fn finish(
    job: &TrainJob,
    ckpt: &Checkpoint,
    outcome: super::trainer::TrainOutcome,
    calibration: serde_json::Value,
) -> Result<TrainSummary> {
    let args = serde_json::to_value(job).expect("serialisable");
    let metrics = serde_json::json!({
        "best_epoch": outcome.best_epoch,
        "dev": outcome.best_dev,
        "calibration": calibration,
        "epochs": outcome.epochs,
    });
    let log: Vec<serde_json::Value> = outcome
        .epochs
        .iter()
        .map(|e| serde_json::to_value(e).expect("serialisable"))
        .collect();
    let delta = match (&job.delta, &job.method) {
        (None, Method::Lora(_)) => Some(DeltaOf {
            id: job.base.display().to_string(),
            revision: "unknown".into(),
        }),
        (d, _) => d.clone(),
    };
    let delta_of = match &delta {
        None => None,
        Some(d) => Some(crate::checkpoint::BaseRef {
            id: d.id.clone(),
            revision: d.revision.clone(),
            sha256: crate::hash_cache::sha256_uncached(&job.base.join("model.safetensors"))?,
            path: job.base.display().to_string(),
        }),
    };
    save(
        &job.out,
        ckpt,
        &SaveExtras {
            training_args: &args,
            metrics: &metrics,
            epoch_log: &log,
            delta_of,
        },
    )?;
    Ok(TrainSummary {
        best_epoch: outcome.best_epoch,
        best_dev: outcome.best_dev,
        out: job.out.clone(),
    })
}
