//! Dropout driven by the project's seeded RNG, active only when training.
//! (candle-transformers' BERT has a no-op dropout; candle's own RNG cannot be
//! seeded, so masks are drawn here and uploaded.)

use crate::rng::Rng;
use candle_core::{Result, Tensor};
use std::sync::Mutex;

#[derive(Debug)]
pub struct Dropout {
    p: f32,
}

impl Dropout {
    pub fn new(p: f64) -> Self {
        Dropout { p: p as f32 }
    }

    /// Inverted dropout: zero each element with probability `p` and scale the
    /// rest by 1 / (1 - p), so inference needs no rescaling.
    pub fn forward_t(&self, xs: &Tensor, rng: &Mutex<Rng>, train: bool) -> Result<Tensor> {
        if !train || self.p <= 0.0 {
            return Ok(xs.clone());
        }
        let n = xs.elem_count();
        let keep = 1.0 - self.p;
        let scale = 1.0 / keep;
        let mask: Vec<f32> = {
            let mut rng = rng.lock().unwrap_or_else(|e| e.into_inner());
            (0..n)
                .map(|_| if rng.next_f32() < keep { scale } else { 0.0 })
                .collect()
        };
        let mask = Tensor::from_vec(mask, xs.shape(), xs.device())?.to_dtype(xs.dtype())?;
        xs.mul(&mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn drops_about_p_and_rescales() {
        let rng = Mutex::new(Rng::new(5));
        let x = Tensor::ones((100, 100), candle_core::DType::F32, &Device::Cpu).unwrap();
        let d = Dropout::new(0.25);
        let y: Vec<f32> = d
            .forward_t(&x, &rng, true)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let zeros = y.iter().filter(|v| **v == 0.0).count() as f32 / y.len() as f32;
        assert!((zeros - 0.25).abs() < 0.02, "{zeros}");
        assert!(y
            .iter()
            .all(|v| *v == 0.0 || (*v - 1.0 / 0.75).abs() < 1e-6));
        let z: Vec<f32> = d
            .forward_t(&x, &rng, false)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(z.iter().all(|v| *v == 1.0));
    }
}
