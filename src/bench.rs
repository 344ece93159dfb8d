//! `stance bench`: throughput of inference and of training steps on fixed
//! batches, measured the same way as `scripts/bench/pytorch_ref.py` measures
//! PyTorch + transformers (same sentences in the same order, truncation to
//! `max_len`, batches padded to their longest member), so the two can be
//! compared in one run of `scripts/bench.sh`.

use crate::batch::{Encoded, Packed};
use crate::checkpoint::{load, load_base, Checkpoint};
use crate::engine::{Engine, Precision};
use crate::labels::LabelSet;
use crate::train::optim::AdamW;
use crate::train::train_step;
use crate::{Error, Result};
use candle_core::{Device, Tensor};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchMode {
    Infer,
    TrainFull,
    TrainLora,
}

#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub model: PathBuf,
    pub texts: Vec<String>,
    pub mode: BenchMode,
    pub batch_size: usize,
    pub max_len: usize,
    pub reps: usize,
    /// Training steps per repetition.
    pub steps: usize,
    /// Precision of the inference engine (infer mode).
    pub precision: Precision,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub tool: &'static str,
    pub mode: BenchMode,
    pub batch_size: usize,
    pub max_len: usize,
    pub sentences_per_second: f64,
    pub reps: Vec<f64>,
    pub precision: Precision,
    pub peak_rss_mb: f64,
}

/// A fine-tuned checkpoint, or a base encoder with a fresh 4-label head.
fn open(dir: &std::path::Path, max_len: usize) -> Result<Checkpoint> {
    if dir.join("config.json").is_file()
        && std::fs::read_to_string(dir.join("config.json"))
            .unwrap_or_default()
            .contains("id2label")
    {
        let mut c = load(dir, &Device::Cpu)?;
        c.encoder = crate::batch::TextEncoder::new(c.encoder.tokenizer().clone(), max_len, dir)?;
        Ok(c)
    } else {
        load_base(dir, &LabelSet::default_stance(), max_len, 0, &Device::Cpu)
    }
}

/// Training batches of `texts`, labelled round-robin.
fn batches(ckpt: &Checkpoint, texts: &[String], batch_size: usize) -> Result<Vec<Packed>> {
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let encs = ckpt.encoder.encode(&refs, None)?;
    let k = ckpt.labels.len() as u32;
    encs.chunks(batch_size)
        .enumerate()
        .map(|(bi, chunk)| {
            let items: Vec<&Encoded> = chunk.iter().collect();
            let ys: Vec<u32> = (0..chunk.len())
                .map(|i| ((bi * batch_size + i) as u32) % k)
                .collect();
            Packed::new(&items, Some(&ys))
        })
        .collect()
}

/// Peak resident memory of this process in MB (VmHWM), 0 where unknown.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        0.0
    } else if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    }
}

pub fn run(cfg: &BenchConfig) -> Result<BenchResult> {
    if cfg.texts.is_empty() || cfg.reps == 0 || cfg.batch_size == 0 {
        return Err(Error::Invalid(
            "bench needs sentences, --reps > 0 and --batch-size > 0".into(),
        ));
    }
    let mut ckpt = open(&cfg.model, cfg.max_len)?;
    let mut reps = Vec::new();
    match cfg.mode {
        BenchMode::Infer => {
            // The same sentences per batch as the reference (file order), but
            // packed without padding by the engine.
            let refs: Vec<&str> = cfg.texts.iter().map(String::as_str).collect();
            let encs = ckpt.encoder.encode(&refs, None)?;
            let chunks: Vec<Vec<&Encoded>> = encs
                .chunks(cfg.batch_size)
                .map(|c| c.iter().collect())
                .collect();
            let engine = Engine::new(&ckpt.model, cfg.precision)?;
            // One untimed pass warms caches and allocators, as in the reference.
            engine.logits(&chunks[0])?;
            for _ in 0..cfg.reps {
                let t = Instant::now();
                for c in &chunks {
                    engine.logits(c)?;
                }
                reps.push(cfg.texts.len() as f64 / t.elapsed().as_secs_f64());
            }
        }
        BenchMode::TrainFull | BenchMode::TrainLora => {
            if cfg.mode == BenchMode::TrainLora {
                ckpt.model.add_lora(&crate::model::LoraConfig {
                    r: 8,
                    alpha: 16.0,
                    targets: vec!["query".into(), "value".into()],
                })?;
            } else {
                ckpt.model.set_trainable_layers(None);
            }
            let need = cfg.batch_size * cfg.steps;
            let texts: Vec<String> = cfg.texts.iter().cycle().take(need).cloned().collect();
            let bs = batches(&ckpt, &texts, cfg.batch_size)?;
            let mut dropout = crate::rng::Rng::new(0);
            let vars = ckpt.model.params.trainable();
            let mut opt = AdamW::new(vars.clone(), 0.01)?;
            let weights = Tensor::ones(ckpt.labels.len(), candle_core::DType::F32, &Device::Cpu)?;
            let mut step = |b: &Packed| {
                train_step(
                    &ckpt.model,
                    b,
                    &weights,
                    &mut dropout,
                    &mut opt,
                    &vars,
                    1.0,
                    1e-5,
                    None,
                )
            };
            step(&bs[0])?;
            for _ in 0..cfg.reps {
                let t = Instant::now();
                for b in &bs {
                    step(b)?;
                }
                reps.push(need as f64 / t.elapsed().as_secs_f64());
            }
        }
    }
    Ok(BenchResult {
        tool: "stance",
        mode: cfg.mode,
        batch_size: cfg.batch_size,
        max_len: cfg.max_len,
        sentences_per_second: median(&reps),
        reps,
        precision: cfg.precision,
        peak_rss_mb: peak_rss_mb(),
    })
}

/// Logits of the inference engine for `texts`, for checking against
/// another implementation.
pub fn logits(
    model_dir: &std::path::Path,
    texts: &[String],
    max_len: usize,
    precision: Precision,
) -> Result<Vec<Vec<f32>>> {
    let ckpt = open(model_dir, max_len)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let encs = ckpt.encoder.encode(&refs, None)?;
    crate::infer::predict_logits(&ckpt.model, &encs, 16, precision, |_| {})
}

#[cfg(test)]
mod tests {
    #[test]
    fn median_by_hand() {
        assert_eq!(super::median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
