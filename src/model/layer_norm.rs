//! Layer normalisation for the reference graph, composed from candle's
//! differentiable ops (mean, variance, scale, shift), in training and
//! inference alike. candle-nn's fused `layer_norm` has no backward: with it
//! gradients silently stop and only the head learns. The fast kernels live
//! in the engine and the native step, which are tested against this.

use candle_core::{Result, Tensor, D};

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

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        centred
            .broadcast_div(&(var + self.eps)?.sqrt()?)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn equals_candles_fused_kernel_and_has_gradients() {
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
        let a = ln.forward(x.as_tensor()).unwrap();
        let f =
            candle_nn::ops::layer_norm(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5).unwrap();
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
