//! A dense layer `y = x W^T + b` with Hugging Face's weight layout
//! (`weight` is `[out, in]`), optionally with a LoRA adapter (Hu et al.,
//! 2021): `y += (x A^T) B^T * alpha / r`, where only A and B train.

use candle_core::{Result, Tensor};

/// Low-rank adapter matrices: `a` is `[r, in]`, `b` is `[out, r]`.
#[derive(Debug, Clone)]
pub struct Lora {
    pub a: Tensor,
    pub b: Tensor,
    pub scale: f64,
}

#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
    pub lora: Option<Lora>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Tensor) -> Self {
        Linear {
            weight,
            bias,
            lora: None,
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (x2, dims) = match x.dims() {
            [b, t, k] => (x.reshape((b * t, *k))?, Some((*b, *t))),
            _ => (x.clone(), None),
        };
        let mut y = x2.matmul(&self.weight.t()?)?;
        if let Some(l) = &self.lora {
            y = (y + (x2.matmul(&l.a.t()?)?.matmul(&l.b.t()?)? * l.scale)?)?;
        }
        let y = y.broadcast_add(&self.bias)?;
        match dims {
            Some((b, t)) => y.reshape((b, t, ())),
            None => Ok(y),
        }
    }
}
