//! A dense layer `y = x W^T + b` with Hugging Face's weight layout
//! (`weight` is `[out, in]`).

use candle_core::{Result, Tensor};

#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Tensor) -> Self {
        Linear { weight, bias }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let w = self.weight.t()?;
        let y = match x.dims() {
            [b, t, k] => x.reshape((b * t, *k))?.matmul(&w)?.reshape((*b, *t, ()))?,
            _ => x.matmul(&w)?,
        };
        y.broadcast_add(&self.bias)
    }
}
