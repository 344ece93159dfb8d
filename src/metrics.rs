//! Classification metrics from a confusion matrix: per-class precision,
//! recall, F1 and support, macro and weighted averages, accuracy; and the
//! expected calibration error of predicted probabilities.

use serde::Serialize;

/// `counts[gold][predicted]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Confusion {
    pub labels: Vec<String>,
    pub counts: Vec<Vec<usize>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassMetrics {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Averages {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    pub accuracy: f64,
    pub per_class: Vec<ClassMetrics>,
    pub macro_avg: Averages,
    pub weighted_avg: Averages,
    pub support: usize,
    pub confusion: Confusion,
}

impl Confusion {
    pub fn new(labels: &[String]) -> Self {
        Confusion {
            labels: labels.to_vec(),
            counts: vec![vec![0; labels.len()]; labels.len()],
        }
    }

    pub fn from_pairs(labels: &[String], gold: &[usize], predicted: &[usize]) -> Self {
        let mut c = Self::new(labels);
        for (&g, &p) in gold.iter().zip(predicted) {
            c.counts[g][p] += 1;
        }
        c
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

impl Metrics {
    /// Precision / recall / F1 as scikit-learn's `classification_report`
    /// computes them (0 where undefined).
    pub fn from_confusion(c: &Confusion) -> Self {
        let k = c.labels.len();
        let total: usize = c.counts.iter().flatten().sum();
        let correct: usize = (0..k).map(|i| c.counts[i][i]).sum();
        let per_class: Vec<ClassMetrics> = (0..k)
            .map(|i| {
                let tp = c.counts[i][i];
                let support: usize = c.counts[i].iter().sum();
                let predicted: usize = (0..k).map(|g| c.counts[g][i]).sum();
                let (p, r) = (ratio(tp, predicted), ratio(tp, support));
                let f1 = if p + r == 0.0 {
                    0.0
                } else {
                    2.0 * p * r / (p + r)
                };
                ClassMetrics {
                    label: c.labels[i].clone(),
                    precision: p,
                    recall: r,
                    f1,
                    support,
                }
            })
            .collect();
        let avg = |w: &dyn Fn(&ClassMetrics) -> f64| {
            let norm: f64 = per_class.iter().map(w).sum();
            let f = |g: &dyn Fn(&ClassMetrics) -> f64| {
                if norm == 0.0 {
                    0.0
                } else {
                    per_class.iter().map(|m| w(m) * g(m)).sum::<f64>() / norm
                }
            };
            Averages {
                precision: f(&|m| m.precision),
                recall: f(&|m| m.recall),
                f1: f(&|m| m.f1),
            }
        };
        Metrics {
            accuracy: ratio(correct, total),
            macro_avg: avg(&|_| 1.0),
            weighted_avg: avg(&|m| m.support as f64),
            per_class,
            support: total,
            confusion: c.clone(),
        }
    }

    /// The text report `stance eval` prints.
    pub fn render(&self) -> String {
        let w = self
            .confusion
            .labels
            .iter()
            .map(|l| l.len())
            .max()
            .unwrap_or(5)
            .max(12);
        let mut s = format!("{:>w$}  precision  recall  f1-score  support\n\n", "");
        for m in &self.per_class {
            s += &format!(
                "{:>w$}  {:>9.3}  {:>6.3}  {:>8.3}  {:>7}\n",
                m.label, m.precision, m.recall, m.f1, m.support
            );
        }
        s += &format!(
            "\n{:>w$}  {:>9}  {:>6}  {:>8.3}  {:>7}\n",
            "accuracy", "", "", self.accuracy, self.support
        );
        for (name, a) in [
            ("macro avg", &self.macro_avg),
            ("weighted avg", &self.weighted_avg),
        ] {
            s += &format!(
                "{:>w$}  {:>9.3}  {:>6.3}  {:>8.3}  {:>7}\n",
                name, a.precision, a.recall, a.f1, self.support
            );
        }
        let cw = self
            .confusion
            .labels
            .iter()
            .map(|l| l.len())
            .max()
            .unwrap_or(5)
            .max(6);
        s += &format!(
            "\nconfusion matrix (rows: gold, columns: predicted)\n{:>w$}",
            ""
        );
        for l in &self.confusion.labels {
            s += &format!("  {l:>cw$}");
        }
        s.push('\n');
        for (l, row) in self.confusion.labels.iter().zip(&self.confusion.counts) {
            s += &format!("{l:>w$}");
            for n in row {
                s += &format!("  {n:>cw$}");
            }
            s.push('\n');
        }
        s
    }
}

/// Expected calibration error with `bins` equal-width confidence bins: the
/// support-weighted mean of |accuracy - mean confidence| per bin (Guo et al.,
/// 2017). `probs[i]` is the probability vector of example i.
pub fn expected_calibration_error(probs: &[Vec<f32>], gold: &[usize], bins: usize) -> f64 {
    let mut acc = vec![0.0f64; bins];
    let mut conf = vec![0.0f64; bins];
    let mut n = vec![0usize; bins];
    for (p, &g) in probs.iter().zip(gold) {
        let (arg, &c) = p
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap_or((0, &0.0));
        let b = ((c as f64 * bins as f64).ceil() as usize).clamp(1, bins) - 1;
        n[b] += 1;
        conf[b] += c as f64;
        acc[b] += f64::from(u8::from(arg == g));
    }
    let total = probs.len().max(1) as f64;
    (0..bins)
        .filter(|&b| n[b] > 0)
        .map(|b| (n[b] as f64 / total) * (acc[b] / n[b] as f64 - conf[b] / n[b] as f64).abs())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    #[test]
    fn hand_computed_report() {
        // gold:      a a a a b b c c c c
        // predicted: a a b c b b c c a c
        // a: tp 2, predicted 3 (2 + one c->a), support 4 -> p 2/3, r 1/2, f1 4/7
        // b: tp 2, predicted 3, support 2 -> p 2/3, r 1, f1 0.8
        // c: tp 3, predicted 4, support 4 -> p 3/4, r 3/4, f1 3/4
        let gold = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2];
        let pred = [0, 0, 1, 2, 1, 1, 2, 2, 0, 2];
        let m = Metrics::from_confusion(&Confusion::from_pairs(&labels(), &gold, &pred));
        let close = |x: f64, y: f64| assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        close(m.accuracy, 0.7);
        close(m.per_class[0].precision, 2.0 / 3.0);
        close(m.per_class[0].recall, 0.5);
        close(m.per_class[0].f1, 4.0 / 7.0);
        close(m.per_class[1].f1, 0.8);
        close(m.per_class[2].f1, 0.75);
        close(m.macro_avg.f1, (4.0 / 7.0 + 0.8 + 0.75) / 3.0);
        close(
            m.weighted_avg.f1,
            (4.0 * 4.0 / 7.0 + 2.0 * 0.8 + 4.0 * 0.75) / 10.0,
        );
        close(m.macro_avg.precision, (2.0 / 3.0 + 2.0 / 3.0 + 0.75) / 3.0);
        assert_eq!(m.confusion.counts[2], vec![1, 0, 3]);
        assert_eq!(m.per_class[1].support, 2);
        let text = m.render();
        assert!(
            text.contains("macro avg") && text.contains("confusion matrix"),
            "{text}"
        );
    }

    #[test]
    fn undefined_precision_is_zero() {
        let m = Metrics::from_confusion(&Confusion::from_pairs(&labels(), &[0, 1], &[0, 0]));
        assert_eq!(m.per_class[1].precision, 0.0);
        assert_eq!(m.per_class[1].f1, 0.0);
        assert_eq!(m.per_class[2].support, 0);
    }

    #[test]
    fn calibration_error_by_hand() {
        // Bin (0.8, 0.9]: confidences 0.85 and 0.82, one right:
        // |0.5 - 0.835| = 0.335, weight 2/3. Bin (0.6, 0.7]: 0.65, right:
        // |1 - 0.65| = 0.35, weight 1/3.
        let probs = vec![vec![0.85, 0.15], vec![0.18, 0.82], vec![0.65, 0.35]];
        let ece = expected_calibration_error(&probs, &[0, 0, 0], 10);
        assert!(
            (ece - (2.0 / 3.0 * 0.335 + 1.0 / 3.0 * 0.35)).abs() < 1e-6,
            "{ece}"
        );
    }
}
