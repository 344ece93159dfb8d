//! Softmax over the last dimension: forward in one pass per row, backward
//! `dx = y (dy - sum(dy y))` per row.

use super::{data, par_chunks_mut, values, ROWS_PER_TASK};
use crate::engine::simd::{dot, simd_fn, softmax_rows};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

struct Softmax;

simd_fn! {
    fn backward(y: &[f32], dy: &[f32], dx: &mut [f32], n: usize) {
        for ((d, y), g) in dx.chunks_exact_mut(n).zip(y.chunks_exact(n)).zip(dy.chunks_exact(n)) {
            let s = dot(y, g);
            d.iter_mut().zip(y.iter().zip(g)).for_each(|(d, (y, g))| *d = y * (g - s));
        }
    }
}

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "softmax-last-dim"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = data(s, l, self.name())?;
        let n = l.dims().last().copied().unwrap_or(1).max(1);
        let mut y = x.to_vec();
        par_chunks_mut(&mut y, ROWS_PER_TASK * n, |_, c| softmax_rows(c, n));
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let n = res.dims().last().copied().unwrap_or(1).max(1);
        let (y, dy) = (values(res)?, values(grad)?);
        let mut dx = vec![0f32; y.len()];
        let c = ROWS_PER_TASK * n;
        par_chunks_mut(&mut dx, c, |i, d| {
            let r = i * c..i * c + d.len();
            backward(&y[r.clone()], &dy[r], d, n)
        });
        Ok(Some(Tensor::from_vec(dx, res.shape(), res.device())?))
    }
}

/// Softmax over the last dimension, with a backward pass.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Softmax)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{close, input, weighting};

    #[test]
    fn matches_the_composition_in_value_and_gradient() {
        let x = input(13);
        let w = weighting(13);
        let ours = super::softmax_last_dim(x.as_tensor()).unwrap();
        let theirs = candle_nn::ops::softmax(x.as_tensor(), candle_core::D::Minus1).unwrap();
        close(&ours, &theirs, 1e-6);
        let g1 = (ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        close(
            g1.get(x.as_tensor()).unwrap(),
            g2.get(x.as_tensor()).unwrap(),
            1e-6,
        );
    }
}
