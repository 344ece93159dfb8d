//! The training loop. It does no I/O: it reports through `on_event`, and the
//! caller turns events into progress bars and log lines (or, in tests,
//! collects them).

use super::loss::balanced_weights;
use super::native::FrozenCache;
use super::optim::{clip_scale, grad_norm, AdamW};
use super::schedule::lr_at;
use crate::batch::{Encoded, Packed};
use crate::labels::LabelSet;
use crate::metrics::{Confusion, Metrics};
use crate::model::BertClassifier;
use crate::rng::Rng;
use crate::{Error, Result};
use candle_core::Tensor;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Instant;

/// A tokenised, labelled training example.
#[derive(Debug, Clone)]
pub struct Example {
    pub enc: Encoded,
    pub target: Target,
}

/// What an example is labelled with: the model's task decides which.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A sentence classifier's label id.
    Sentence(u32),
    /// A token classifier's label id per token ([`crate::batch::IGNORE`]
    /// where there is none).
    Tokens(Vec<u32>),
}

impl Target {
    /// The label ids: one for a sentence, one per token.
    pub fn ids(&self) -> &[u32] {
        match self {
            Target::Sentence(l) => std::slice::from_ref(l),
            Target::Tokens(t) => t,
        }
    }
}

/// The examples `idx` of `examples` as one packed batch.
fn packed(examples: &[Example], idx: &[usize]) -> Result<Packed> {
    let items: Vec<&Encoded> = idx.iter().map(|&i| &examples[i].enc).collect();
    match &examples[idx[0]].target {
        Target::Sentence(_) => {
            let ys: Vec<u32> = idx.iter().map(|&i| examples[i].target.ids()[0]).collect();
            Packed::new(&items, Some(&ys))
        }
        Target::Tokens(_) => {
            let ys: Vec<&[u32]> = idx.iter().map(|&i| examples[i].target.ids()).collect();
            Packed::tokens(&items, &ys)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassWeights {
    Auto,
    None,
}

/// [`TrainConfig::frozen_cache_mb`] unless asked otherwise: the shipped
/// recipe's data (14,072 sentences on MPNet) needs 1,215 MiB.
pub const DEFAULT_FROZEN_CACHE_MB: usize = 4096;

#[derive(Debug, Clone, Serialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub warmup_ratio: f64,
    pub max_grad_norm: f64,
    pub class_weights: ClassWeights,
    pub seed: u64,
    /// Stop after this many epochs without a better dev macro-F1 (0: never).
    pub patience: usize,
    /// Memory (MiB) for keeping the frozen bottom layers' output between
    /// epochs ([`super::native::FrozenCache`]); 0 recomputes them at every
    /// step. When the training data needs more, nothing is kept.
    pub frozen_cache_mb: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 4,
            batch_size: 16,
            lr: 5e-5,
            weight_decay: 0.01,
            warmup_ratio: 0.1,
            max_grad_norm: 1.0,
            class_weights: ClassWeights::Auto,
            seed: 42,
            patience: 2,
            frozen_cache_mb: DEFAULT_FROZEN_CACHE_MB,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EpochReport {
    pub epoch: usize,
    pub train_loss: f64,
    pub dev_macro_f1: Option<f64>,
    pub dev_accuracy: Option<f64>,
    pub seconds: f64,
    pub train_sentences_per_second: f64,
    pub best: bool,
}

#[derive(Debug, Clone)]
pub enum TrainEvent {
    /// A line of information for the user (what was loaded, data sizes).
    Info(String),
    Start {
        steps: usize,
        examples: usize,
    },
    Step {
        step: usize,
        epoch: usize,
        loss: f64,
        lr: f64,
        grad_norm: f64,
        examples_seen: usize,
    },
    Epoch(EpochReport),
    EarlyStop {
        epoch: usize,
        best_epoch: usize,
    },
}

pub struct TrainOutcome {
    pub epochs: Vec<EpochReport>,
    pub best_epoch: usize,
    pub best_dev: Option<Metrics>,
}

/// Batches for one epoch: shuffle, sort chunks of 50 batches by length (so
/// batches need little padding), cut, shuffle the batches.
fn epoch_batches(rng: &mut Rng, examples: &[Example], batch_size: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..examples.len()).collect();
    rng.shuffle(&mut order);
    let mut batches = Vec::new();
    for chunk in order.chunks(batch_size * 50) {
        let mut c = chunk.to_vec();
        c.sort_by_key(|&i| examples[i].enc.ids.len());
        batches.extend(c.chunks(batch_size).map(|b| b.to_vec()));
    }
    rng.shuffle(&mut batches);
    batches
}

/// The cache of the frozen bottom's output for `train`, when the model has
/// a frozen bottom and its output fits in `limit_mb`; says which on `on_event`.
fn frozen_cache(
    model: &BertClassifier,
    train: &[Example],
    limit_mb: usize,
    on_event: &mut dyn FnMut(&TrainEvent),
) -> Option<FrozenCache> {
    let cache = FrozenCache::new(model, train.len())?;
    let tokens = train.iter().map(|e| e.enc.ids.len()).sum();
    let mb = FrozenCache::bytes_for(model, tokens).div_ceil(1 << 20);
    if mb > limit_mb {
        if limit_mb > 0 {
            on_event(&TrainEvent::Info(format!(
                "not keeping the {} frozen layers' output between epochs: it needs {mb} MiB, over --frozen-cache-mb {limit_mb}",
                cache.layer()
            )));
        }
        return None;
    }
    on_event(&TrainEvent::Info(format!(
        "keeping the {} frozen layers' output between epochs ({mb} MiB; --frozen-cache-mb 0 turns this off)",
        cache.layer()
    )));
    Some(cache)
}

/// Score `examples` with the model (the same code as `stance eval`).
pub fn evaluate(
    model: &BertClassifier,
    examples: &[Example],
    labels: &LabelSet,
    batch_size: usize,
) -> Result<Metrics> {
    let encs: Vec<Encoded> = examples.iter().map(|e| e.enc.clone()).collect();
    if model.spec.task() == crate::model::spec::Task::Token {
        let gold: Vec<&[u32]> = examples.iter().map(|e| e.target.ids()).collect();
        return crate::eval::score_tokens(model, &encs, &gold, labels, batch_size);
    }
    let gold: Vec<usize> = examples
        .iter()
        .map(|e| e.target.ids()[0] as usize)
        .collect();
    Ok(crate::eval::score(
        model,
        &encs,
        &gold,
        labels,
        crate::eval::Scoring {
            batch_size,
            precision: crate::engine::Precision::F32,
            temperature: 1.0,
            offsets: &[],
        },
        |_| {},
    )?
    .0
    .metrics)
}

/// One optimisation step on a labelled batch: forward in training mode,
/// class-weighted loss, backward, gradient clipping, AdamW update. Returns
/// the loss and the gradient norm before clipping. Runs the native step
/// ([`super::native`]); candle's graph is only the reference it is tested
/// against.
#[allow(clippy::too_many_arguments)]
pub fn train_step(
    model: &BertClassifier,
    b: &Packed,
    weights: &Tensor,
    dropout: &mut Rng,
    opt: &mut AdamW,
    vars: &[(String, candle_core::Var)],
    max_grad_norm: f64,
    lr: f64,
    cache: Option<(&mut FrozenCache, &[usize])>,
) -> Result<(f64, f64)> {
    let out = super::native::step_cached(model, b, &weights.to_vec1::<f32>()?, dropout, cache)?;
    let (loss_v, grads) = (out.loss, out.grads);
    if !loss_v.is_finite() {
        return Err(Error::Diverged(format!("loss is {loss_v}")));
    }
    let grad_norm = grad_norm(&grads, vars)?;
    if !grad_norm.is_finite() {
        return Err(Error::Diverged(format!("gradient norm is {grad_norm}")));
    }
    opt.step_scaled(&grads, lr, clip_scale(grad_norm, max_grad_norm))?;
    Ok((loss_v, grad_norm))
}

/// Fine-tune `model` on `train`, choosing the epoch with the best macro-F1 on
/// `dev` (the last epoch when `dev` is empty). On return the model holds the
/// chosen epoch's weights.
pub fn train(
    model: &mut BertClassifier,
    train: &[Example],
    dev: &[Example],
    labels: &LabelSet,
    cfg: &TrainConfig,
    on_event: &mut dyn FnMut(&TrainEvent),
) -> Result<TrainOutcome> {
    if train.is_empty() {
        return Err(Error::Invalid("no training examples".into()));
    }
    if cfg.epochs == 0 || cfg.batch_size == 0 {
        return Err(Error::Invalid(
            "--epochs and --batch-size must be positive".into(),
        ));
    }
    let mut rng = Rng::new(cfg.seed);
    // The dropout masks' stream, seeded from --seed.
    let mut dropout = Rng::new(rng.next_u64());
    let device = model.device().clone();
    let k = labels.len();
    let token = model.spec.task() == crate::model::spec::Task::Token;
    if train
        .iter()
        .chain(dev)
        .any(|e| matches!(e.target, Target::Tokens(_)) != token)
    {
        let (model, data) = if token {
            ("token", "sentence")
        } else {
            ("sentence", "token")
        };
        return Err(Error::Invalid(format!(
            "{data} labels given to a {model} classifier"
        )));
    }
    let train_labels: Vec<u32> = train
        .iter()
        .flat_map(|e| e.target.ids().iter().copied())
        .filter(|&l| l != crate::batch::IGNORE)
        .collect();
    let weights = match cfg.class_weights {
        ClassWeights::Auto => balanced_weights(&train_labels, k),
        ClassWeights::None => vec![1.0; k],
    };
    let weights = Tensor::from_vec(weights, k, &device)?;
    let vars = model.params.trainable();
    let mut opt = AdamW::new(vars.clone(), cfg.weight_decay)?;
    let steps_per_epoch = train.len().div_ceil(cfg.batch_size);
    let total = steps_per_epoch * cfg.epochs;
    let warmup = (cfg.warmup_ratio * total as f64).round() as usize;
    let mut cache = frozen_cache(model, train, cfg.frozen_cache_mb, on_event);
    on_event(&TrainEvent::Start {
        steps: total,
        examples: train.len(),
    });

    let mut step = 0;
    let mut reports = Vec::new();
    let mut best: Option<(f64, usize, HashMap<String, Tensor>, Metrics)> = None;
    let mut since_best = 0;
    for epoch in 1..=cfg.epochs {
        let started = Instant::now();
        let mut loss_sum = 0.0;
        let mut seen = 0;
        for batch_idx in epoch_batches(&mut rng, train, cfg.batch_size) {
            let b = packed(train, &batch_idx)?;
            let lr = lr_at(step, total, warmup, cfg.lr);
            let (loss_v, grad_norm) = train_step(
                model,
                &b,
                &weights,
                &mut dropout,
                &mut opt,
                &vars,
                cfg.max_grad_norm,
                lr,
                cache.as_mut().map(|c| (c, &batch_idx[..])),
            )
            .map_err(|e| match e {
                Error::Diverged(m) => Error::Diverged(format!(
                    "{m} at step {} (epoch {epoch}); try a lower --lr",
                    step + 1
                )),
                e => e,
            })?;
            step += 1;
            seen += b.lengths.len();
            loss_sum += loss_v * b.lengths.len() as f64;
            on_event(&TrainEvent::Step {
                step,
                epoch,
                loss: loss_v,
                lr,
                grad_norm,
                examples_seen: seen,
            });
        }
        let seconds = started.elapsed().as_secs_f64();
        let dev_metrics = if dev.is_empty() {
            None
        } else {
            Some(evaluate(model, dev, labels, cfg.batch_size * 2)?)
        };
        let score = dev_metrics
            .as_ref()
            .map(|m| m.macro_avg.f1)
            .unwrap_or(epoch as f64);
        let improved = best.as_ref().is_none_or(|(s, ..)| score > *s);
        if improved {
            best = Some((
                score,
                epoch,
                model.params.snapshot()?,
                dev_metrics
                    .clone()
                    .unwrap_or_else(|| Metrics::from_confusion(&Confusion::new(labels.names()))),
            ));
            since_best = 0;
        } else {
            since_best += 1;
        }
        let report = EpochReport {
            epoch,
            train_loss: loss_sum / seen.max(1) as f64,
            dev_macro_f1: dev_metrics.as_ref().map(|m| m.macro_avg.f1),
            dev_accuracy: dev_metrics.as_ref().map(|m| m.accuracy),
            seconds,
            train_sentences_per_second: seen as f64 / seconds.max(1e-9),
            best: improved,
        };
        on_event(&TrainEvent::Epoch(report.clone()));
        reports.push(report);
        if cfg.patience > 0 && since_best >= cfg.patience && epoch < cfg.epochs {
            on_event(&TrainEvent::EarlyStop {
                epoch,
                best_epoch: best.as_ref().map(|b| b.1).unwrap_or(epoch),
            });
            break;
        }
    }
    let (_, best_epoch, state, metrics) = best.expect("at least one epoch ran");
    let path = std::path::PathBuf::from("<best epoch snapshot>");
    model.load_tensors(&state, &path)?;
    Ok(TrainOutcome {
        epochs: reports,
        best_epoch,
        best_dev: if dev.is_empty() { None } else { Some(metrics) },
    })
}
