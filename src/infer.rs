//! Batched inference: run the [`Engine`] over tokenised examples in
//! length-sorted batches and return logits in the original order.

use crate::batch::{length_buckets, Encoded};
use crate::engine::{Engine, Precision};
use crate::model::BertClassifier;
use crate::Result;

/// Logits for every example, in input order, from an engine built for this
/// call: a sentence classifier's per sentence, a token classifier's
/// `[tokens * labels]` per sequence. `progress` receives the number of examples finished after each batch.
pub fn predict_logits(
    model: &BertClassifier,
    examples: &[Encoded],
    batch_size: usize,
    precision: Precision,
    progress: impl FnMut(usize),
) -> Result<Vec<Vec<f32>>> {
    engine_logits(
        &Engine::new(model, precision)?,
        examples,
        batch_size,
        progress,
    )
}

/// Logits for every example, in input order. Sentences of similar length
/// share a batch, so threads finish their sentences' attention together.
pub fn engine_logits(
    engine: &Engine,
    examples: &[Encoded],
    batch_size: usize,
    mut progress: impl FnMut(usize),
) -> Result<Vec<Vec<f32>>> {
    let lengths: Vec<usize> = examples.iter().map(|e| e.ids.len()).collect();
    let mut out = vec![Vec::new(); examples.len()];
    let mut done = 0;
    for bucket in length_buckets(&lengths, batch_size) {
        let items: Vec<&Encoded> = bucket.iter().map(|&i| &examples[i]).collect();
        let logits = if engine.is_token_classifier() {
            engine.token_logits(&items)?
        } else {
            engine.logits(&items)?
        };
        for (&i, row) in bucket.iter().zip(logits) {
            out[i] = row;
        }
        done += bucket.len();
        progress(done);
    }
    Ok(out)
}

/// Softmax of `logits / temperature`, per row.
pub fn probabilities(logits: &[f32], temperature: f32) -> Vec<f32> {
    calibrated(logits, temperature, &[])
}

/// Softmax of `logits / temperature + offsets` (no offsets: none added).
/// The offsets shift the label priors (fitted on dev, [`crate::calibrate`]);
/// the predicted label is the argmax of the result.
pub fn calibrated(logits: &[f32], temperature: f32, offsets: &[f32]) -> Vec<f32> {
    let t = if temperature > 0.0 { temperature } else { 1.0 };
    let z: Vec<f32> = logits
        .iter()
        .enumerate()
        .map(|(i, l)| l / t + offsets.get(i).copied().unwrap_or(0.0))
        .collect();
    let max = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = z.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

/// Index of the largest value.
pub fn argmax(xs: &[f32]) -> usize {
    xs.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_with_temperature() {
        let p = probabilities(&[0.0, 2f32.ln()], 1.0);
        assert!((p[0] - 1.0 / 3.0).abs() < 1e-6 && (p[1] - 2.0 / 3.0).abs() < 1e-6);
        // T = 2 halves the logits: weights 1 and sqrt(2).
        let q = probabilities(&[0.0, 2f32.ln()], 2.0);
        assert!((q[1] - 2f32.sqrt() / (1.0 + 2f32.sqrt())).abs() < 1e-6);
        assert_eq!(argmax(&[0.1, 0.7, 0.2]), 1);
    }
}
