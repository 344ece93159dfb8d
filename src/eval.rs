//! `stance eval`: score a checkpoint on labelled sentences.

use crate::batch::Encoded;
use crate::checkpoint::Checkpoint;
use crate::data::LabelledSentence;
use crate::engine::Precision;
use crate::infer::{argmax, predict_logits, probabilities};
use crate::labels::LabelSet;
use crate::metrics::{expected_calibration_error, Confusion, Metrics};
use crate::model::BertClassifier;
use crate::Result;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub metrics: Metrics,
    /// Expected calibration error (10 bins) of the raw softmax.
    pub ece_uncalibrated: f64,
    /// Expected calibration error with the checkpoint's temperature.
    pub ece: f64,
    pub temperature: f32,
}

impl EvalReport {
    pub fn render(&self) -> String {
        format!(
            "{}\nexpected calibration error (10 bins): {:.4} at temperature {:.3} (uncalibrated: {:.4})\n",
            self.metrics.render(),
            self.ece,
            self.temperature,
            self.ece_uncalibrated
        )
    }
}

/// Tokenise sentences the way the checkpoint expects (with article context
/// when it was trained with it).
pub fn encode_rows(ckpt: &Checkpoint, rows: &[LabelledSentence]) -> Result<Vec<Encoded>> {
    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
    if ckpt.settings.context == 0 {
        return ckpt.encoder.encode(&texts, None);
    }
    let keys: Vec<String> = rows.iter().map(|r| r.article_key()).collect();
    let ctx = crate::context::contexts(&texts, &keys, ckpt.settings.context);
    ckpt.encoder.encode(&texts, Some(&ctx))
}

/// How [`score`] runs the model.
#[derive(Debug, Clone, Copy)]
pub struct Scoring {
    pub batch_size: usize,
    pub precision: Precision,
    /// Divides the logits before the softmax (calibration).
    pub temperature: f32,
}

/// Metrics of `model` on tokenised examples with gold ids.
pub fn score(
    model: &BertClassifier,
    encs: &[Encoded],
    gold: &[usize],
    labels: &LabelSet,
    how: Scoring,
    progress: impl FnMut(usize),
) -> Result<(EvalReport, Vec<Vec<f32>>)> {
    let Scoring {
        batch_size,
        precision,
        temperature,
    } = how;
    let logits = predict_logits(model, encs, batch_size, precision, progress)?;
    let pred: Vec<usize> = logits.iter().map(|l| argmax(l)).collect();
    let metrics = Metrics::from_confusion(&Confusion::from_pairs(labels.names(), gold, &pred));
    let raw: Vec<Vec<f32>> = logits.iter().map(|l| probabilities(l, 1.0)).collect();
    let cal: Vec<Vec<f32>> = logits
        .iter()
        .map(|l| probabilities(l, temperature))
        .collect();
    let report = EvalReport {
        metrics,
        ece_uncalibrated: expected_calibration_error(&raw, gold, 10),
        ece: expected_calibration_error(&cal, gold, 10),
        temperature,
    };
    Ok((report, logits))
}

/// Evaluate a checkpoint on rows whose labels are in its label set.
pub fn evaluate_checkpoint(
    ckpt: &Checkpoint,
    rows: &[LabelledSentence],
    batch_size: usize,
    precision: Precision,
    progress: impl FnMut(usize),
) -> Result<EvalReport> {
    let encs = encode_rows(ckpt, rows)?;
    let gold: Vec<usize> = rows
        .iter()
        .map(|r| {
            ckpt.labels.id(&r.label).ok_or_else(|| {
                crate::Error::Invalid(format!(
                    "label {:?} is not one of the model's labels",
                    r.label
                ))
            })
        })
        .collect::<Result<_>>()?;
    Ok(score(
        &ckpt.model,
        &encs,
        &gold,
        &ckpt.labels,
        Scoring {
            batch_size,
            precision,
            temperature: ckpt.settings.temperature,
        },
        progress,
    )?
    .0)
}
