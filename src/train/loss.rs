//! Class-weighted cross-entropy, as PyTorch's `CrossEntropyLoss(weight=w)`
//! computes it: sum_i w[y_i] * -log p_i[y_i] / sum_i w[y_i]. Built from
//! differentiable ops only.

use candle_core::{Result, Tensor, D};

pub fn weighted_cross_entropy(
    logits: &Tensor,
    labels: &Tensor,
    weights: &Tensor,
) -> Result<Tensor> {
    let log_probs = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    let picked = log_probs.gather(&labels.unsqueeze(1)?, 1)?.squeeze(1)?;
    let w = weights.index_select(labels, 0)?;
    (picked * &w)?.sum_all()?.neg()? / w.sum_all()?.to_scalar::<f32>()? as f64
}

/// "Balanced" class weights: n / (k * n_c); 1 for a class that never occurs.
pub fn balanced_weights(labels: &[u32], k: usize) -> Vec<f32> {
    let mut counts = vec![0usize; k];
    for &l in labels {
        counts[l as usize] += 1;
    }
    counts
        .iter()
        .map(|&c| {
            if c == 0 {
                1.0
            } else {
                labels.len() as f32 / (k as f32 * c as f32)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn matches_hand_computation() {
        // logits [0, ln 3] -> p = [1/4, 3/4]; [0, 0] -> [1/2, 1/2].
        // labels [1, 0], weights [2, 1]: (1 * -ln(3/4) + 2 * -ln(1/2)) / 3.
        let dev = Device::Cpu;
        let logits = Tensor::new(&[[0.0f32, 3f32.ln()], [0.0, 0.0]], &dev).unwrap();
        let labels = Tensor::new(&[1u32, 0], &dev).unwrap();
        let w = Tensor::new(&[2.0f32, 1.0], &dev).unwrap();
        let l = weighted_cross_entropy(&logits, &labels, &w)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let want = (-(0.75f32).ln() + 2.0 * -(0.5f32).ln()) / 3.0;
        assert!((l - want).abs() < 1e-6, "{l} vs {want}");
        // 6 examples, 3 classes, counts [3, 2, 1]: 6/9, 6/6, 6/3
        assert_eq!(
            balanced_weights(&[0, 0, 0, 1, 1, 2], 3),
            vec![6.0 / 9.0, 1.0, 2.0]
        );
    }
}
