//! Learning-rate schedule: linear warmup from 0 to the peak, then linear
//! decay to 0 at the last step (transformers' `get_linear_schedule_with_warmup`).

/// Learning rate for optimisation step `step` (0-based) of `total`.
pub fn lr_at(step: usize, total: usize, warmup: usize, peak: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let left = total.saturating_sub(step) as f64;
    let span = total.saturating_sub(warmup).max(1) as f64;
    peak * (left / span).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_decay() {
        // 10 steps, 2 warmup, peak 1: 0.5, 1.0, then (10-s)/8 for s = 2..9.
        let v: Vec<f64> = (0..10).map(|s| lr_at(s, 10, 2, 1.0)).collect();
        assert_eq!(v[0], 0.5);
        assert_eq!(v[1], 1.0);
        assert_eq!(v[2], 1.0);
        assert_eq!(v[6], 0.5);
        assert_eq!(v[9], 0.125);
        assert_eq!(lr_at(0, 5, 0, 2.0), 2.0);
    }
}
