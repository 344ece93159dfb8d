//! Temperature scaling (Guo et al., 2017): one scalar T that divides the
//! logits, fitted on dev data by minimising the negative log-likelihood.
//! It changes confidences, never the predicted label.

use crate::infer::probabilities;

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
}
