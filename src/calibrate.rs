//! Temperature scaling (Guo et al., 2017): one scalar T that divides the
//! logits, fitted on dev data by minimising the negative log-likelihood.
//! It changes confidences, never the predicted label. Optionally, per-label
//! offsets added after it (a prior correction, fitted on dev to maximise
//! macro-F1), which do move labels: a model trained with balanced class
//! weights over-predicts the rare labels on text with natural priors.

use crate::infer::{argmax, probabilities};
use crate::metrics::{Confusion, Metrics};

/// Mean negative log-likelihood of `gold` under softmax(logits / t).
pub fn nll(logits: &[Vec<f32>], gold: &[usize], t: f32) -> f64 {
    let n = logits.len().max(1) as f64;
    logits
        .iter()
        .zip(gold)
        .map(|(l, &g)| -(probabilities(l, t)[g].max(1e-12) as f64).ln())
        .sum::<f64>()
        / n
}

/// The temperature in [0.05, 20] minimising dev NLL (golden-section search
/// over log T; the NLL is unimodal in T).
pub fn fit_temperature(logits: &[Vec<f32>], gold: &[usize]) -> f32 {
    if logits.is_empty() {
        return 1.0;
    }
    let f = |x: f64| nll(logits, gold, x.exp() as f32);
    let (mut a, mut b) = (0.05f64.ln(), 20f64.ln());
    let r = (5f64.sqrt() - 1.0) / 2.0;
    let (mut c, mut d) = (b - r * (b - a), a + r * (b - a));
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..60 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - r * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + r * (b - a);
            fd = f(d);
        }
    }
    ((a + b) / 2.0).exp() as f32
}

/// Macro-F1 of `argmax(logits / t + offsets)` against `gold`, over as many
/// labels as there are offsets (the metrics of `stance eval`).
pub fn macro_f1_with(logits: &[Vec<f32>], gold: &[usize], t: f32, offsets: &[f32]) -> f64 {
    let names: Vec<String> = (0..offsets.len()).map(|i| i.to_string()).collect();
    let pred: Vec<usize> = logits
        .iter()
        .map(|l| argmax(&crate::infer::calibrated(l, t, offsets)))
        .collect();
    Metrics::from_confusion(&Confusion::from_pairs(&names, gold, &pred))
        .macro_avg
        .f1
}

/// Per-label offsets (the first fixed at 0: only differences matter) that
/// maximise dev macro-F1 of `argmax(logits / t + offsets)`: coordinate
/// search over a grid of -2..2 in steps of 0.1, smallest offsets first, a
/// move kept only when it gains more than 0.002 (so that dev noise does not
/// set them), up to 4 sweeps. All zeros when nothing gains.
pub fn fit_offsets(logits: &[Vec<f32>], gold: &[usize], t: f32, k: usize) -> Vec<f32> {
    let mut b = vec![0f32; k];
    if logits.is_empty() || k < 2 {
        return b;
    }
    let mut grid: Vec<f32> = (-20..=20).map(|i| i as f32 / 10.0).collect();
    grid.sort_by(|x, y| x.abs().total_cmp(&y.abs()));
    let mut best = macro_f1_with(logits, gold, t, &b);
    for _ in 0..4 {
        let mut moved = false;
        for c in 1..k {
            for &v in &grid {
                let mut cand = b.clone();
                cand[c] = v;
                let s = macro_f1_with(logits, gold, t, &cand);
                if s > best + 0.002 {
                    best = s;
                    b = cand;
                    moved = true;
                }
            }
        }
        if !moved {
            break;
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_the_temperature_of_overconfident_logits() {
        // Logits scaled by 3 from ones whose softmax is already calibrated:
        // true class probability 0.8 with logits [ln 4, 0] and 80% right.
        let mut logits = Vec::new();
        let mut gold = Vec::new();
        for i in 0..100 {
            logits.push(vec![3.0 * 4f32.ln(), 0.0]);
            gold.push(usize::from(i % 5 == 0));
        }
        let t = fit_temperature(&logits, &gold);
        assert!((t - 3.0).abs() < 0.01, "{t}");
        assert!(nll(&logits, &gold, t) < nll(&logits, &gold, 1.0));
    }

    #[test]
    fn offsets_undo_an_over_predicted_label_and_stay_zero_when_nothing_gains() {
        // Label 1 is favoured by +1 on every logit: half the label-0
        // sentences (margin 0.5) are called 1. An offset near -1 on label
        // 1 puts them back.
        let mut logits = Vec::new();
        let mut gold = Vec::new();
        for i in 0..200 {
            if i % 2 == 0 {
                let m = if i % 4 == 0 { 0.5 } else { 2.0 };
                logits.push(vec![m, 1.0]);
                gold.push(0);
            } else {
                logits.push(vec![0.0, 2.5]);
                gold.push(1);
            }
        }
        let before = macro_f1_with(&logits, &gold, 1.0, &[0.0, 0.0]);
        let b = fit_offsets(&logits, &gold, 1.0, 2);
        assert_eq!(b[0], 0.0);
        assert!(b[1] < -0.5 && b[1] > -2.5, "{b:?}");
        let after = macro_f1_with(&logits, &gold, 1.0, &b);
        assert!(before < 0.8 && after > 0.99, "{before} -> {after}");
        // Already right: no offset moves.
        let clean: Vec<Vec<f32>> = gold
            .iter()
            .map(|&g| {
                if g == 0 {
                    vec![2.0, 0.0]
                } else {
                    vec![0.0, 2.0]
                }
            })
            .collect();
        assert_eq!(fit_offsets(&clean, &gold, 1.0, 2), vec![0.0, 0.0]);
    }
}
