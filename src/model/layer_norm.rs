//! Layer normalisation with two paths: for training, our custom op with a
//! hand-written backward ([`super::ops::layer_norm`]; candle-nn's fused
//! `layer_norm` has no backward, so with it gradients silently stop and only
//! the head learns), and candle's fused kernel for inference. Both compute
//! the same function (checked in the test below).

use candle_core::{Result, Tensor};

#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub fn new(weight: Tensor, bias: Tensor, eps: f64) -> Self {
        LayerNorm { weight, bias, eps }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        if !train {
            return candle_nn::ops::layer_norm(
                &x.contiguous()?,
                &self.weight,
                &self.bias,
                self.eps as f32,
            );
        }
        super::ops::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn paths_agree_and_training_path_has_gradients() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(
            &Tensor::arange(0f32, 24.0, &dev)
                .unwrap()
                .reshape((2, 3, 4))
                .unwrap()
                .sqr()
                .unwrap(),
        )
        .unwrap();
        let w = Var::from_tensor(&Tensor::new(&[1.0f32, 2.0, 0.5, -1.0], &dev).unwrap()).unwrap();
        let b = Var::from_tensor(&Tensor::new(&[0.1f32, 0.0, -0.2, 0.3], &dev).unwrap()).unwrap();
        let ln = LayerNorm::new(w.as_tensor().clone(), b.as_tensor().clone(), 1e-5);
        let a = ln.forward_t(x.as_tensor(), true).unwrap();
        let f = ln.forward_t(x.as_tensor(), false).unwrap();
        let diff = (a.clone() - f)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5, "{diff}");
        let loss = (a.sqr().unwrap()
            * Tensor::arange(0f32, 24.0, &dev)
                .unwrap()
                .reshape((2, 3, 4))
                .unwrap())
        .unwrap()
        .sum_all()
        .unwrap();
        let g = loss.backward().unwrap();
        for v in [&x, &w, &b] {
            let n = g
                .get(v.as_tensor())
                .unwrap()
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(n > 0.0);
        }
    }
}
