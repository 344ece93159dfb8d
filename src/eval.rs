//! `stance eval`: score a checkpoint on labelled sentences.

use crate::batch::Encoded;
use crate::checkpoint::Checkpoint;
use crate::data::LabelledSentence;
use crate::engine::Precision;
use crate::infer::{argmax, calibrated, predict_logits, probabilities};
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
    /// The per-label offsets the labels and probabilities were taken with.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub class_offsets: Vec<f32>,
}

impl EvalReport {
    pub fn render(&self) -> String {
        let offsets = if self.class_offsets.is_empty() {
            String::new()
        } else {
            let b: Vec<String> = self
                .class_offsets
                .iter()
                .map(|v| format!("{v:+.1}"))
                .collect();
            format!(" and class offsets [{}]", b.join(", "))
        };
        format!(
            "{}\nexpected calibration error (10 bins): {:.4} at temperature {:.3}{offsets} (uncalibrated: {:.4})\n",
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
pub struct Scoring<'a> {
    pub batch_size: usize,
    pub precision: Precision,
    /// Divides the logits before the softmax (calibration).
    pub temperature: f32,
    /// Added to `logits / temperature` (label priors; empty: none). The
    /// predicted label is the argmax after both.
    pub offsets: &'a [f32],
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
        offsets,
    } = how;
    let logits = predict_logits(model, encs, batch_size, precision, progress)?;
    let raw: Vec<Vec<f32>> = logits.iter().map(|l| probabilities(l, 1.0)).collect();
    let cal: Vec<Vec<f32>> = logits
        .iter()
        .map(|l| calibrated(l, temperature, offsets))
        .collect();
    let pred: Vec<usize> = cal.iter().map(|p| argmax(p)).collect();
    let metrics = Metrics::from_confusion(&Confusion::from_pairs(labels.names(), gold, &pred));
    let report = EvalReport {
        metrics,
        ece_uncalibrated: expected_calibration_error(&raw, gold, 10),
        ece: expected_calibration_error(&cal, gold, 10),
        temperature,
        class_offsets: offsets.to_vec(),
    };
    Ok((report, logits))
}

/// Token-level metrics of a token classifier: every labelled token (not
/// [`crate::batch::IGNORE`]) of `encs` against its gold tag, each tag a class.
pub fn score_tokens(
    model: &BertClassifier,
    encs: &[Encoded],
    gold: &[&[u32]],
    labels: &LabelSet,
    batch_size: usize,
) -> Result<Metrics> {
    let logits = predict_logits(model, encs, batch_size, Precision::F32, |_| {})?;
    let k = labels.len();
    let (mut g, mut p) = (Vec::new(), Vec::new());
    for (l, tags) in logits.iter().zip(gold) {
        for (row, &t) in l.chunks_exact(k).zip(tags.iter()) {
            if t != crate::batch::IGNORE {
                g.push(t as usize);
                p.push(argmax(row));
            }
        }
    }
    Ok(Metrics::from_confusion(&Confusion::from_pairs(
        labels.names(),
        &g,
        &p,
    )))
}

/// One scored sentence, as `eval --predictions` writes it.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction<'a> {
    pub article: String,
    pub text: &'a str,
    pub gold: &'a str,
    pub label: &'a str,
    /// Calibrated, in the checkpoint's label order.
    pub probabilities: Vec<f32>,
}

/// Per-sentence predictions from [`evaluate_checkpoint`]'s logits.
pub fn predictions<'a>(
    ckpt: &'a Checkpoint,
    rows: &'a [LabelledSentence],
    logits: &[Vec<f32>],
) -> Vec<Prediction<'a>> {
    rows.iter()
        .zip(logits)
        .map(|(r, l)| {
            let p = ckpt.settings.probabilities(l);
            Prediction {
                article: r.article_key(),
                text: &r.text,
                gold: &r.label,
                label: ckpt.labels.name(argmax(&p)),
                probabilities: p,
            }
        })
        .collect()
}

/// Evaluate a checkpoint on rows whose labels are in its label set; the
/// report and each sentence's logits.
pub fn evaluate_checkpoint(
    ckpt: &Checkpoint,
    rows: &[LabelledSentence],
    batch_size: usize,
    precision: Precision,
    progress: impl FnMut(usize),
) -> Result<(EvalReport, Vec<Vec<f32>>)> {
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
    score(
        &ckpt.model,
        &encs,
        &gold,
        &ckpt.labels,
        Scoring {
            batch_size,
            precision,
            temperature: ckpt.settings.temperature,
            offsets: &ckpt.settings.class_offsets,
        },
        progress,
    )
}
