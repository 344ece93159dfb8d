//! GELU with the exact normal CDF (transformers' "gelu"): forward
//! `x Phi(x)`, backward `Phi(x) + x phi(x)`.

use super::{data, par_chunks_mut, values, ROWS_PER_TASK};
use crate::engine::simd::{erf, exp, simd_fn};
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

struct Gelu;

const CHUNK: usize = ROWS_PER_TASK * 256;

simd_fn! {
    pub(crate) fn forward(x: &[f32], y: &mut [f32]) {
        y.iter_mut().zip(x).for_each(|(y, &x)| *y = crate::engine::simd::gelu_erf(x));
    }
}

simd_fn! {
    /// `dx = dy (Phi(x) + x phi(x))`.
    pub(crate) fn backward(x: &[f32], dy: &[f32], dx: &mut [f32]) {
        const INV_SQRT_2PI: f32 = 0.398_942_3;
        for ((d, &x), &g) in dx.iter_mut().zip(x).zip(dy) {
            let cdf = 0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
            let pdf = INV_SQRT_2PI * exp(-0.5 * x * x);
            *d = g * (cdf + x * pdf);
        }
    }
}

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = data(s, l, self.name())?;
        let mut y = vec![0f32; x.len()];
        par_chunks_mut(&mut y, CHUNK, |i, y| {
            forward(&x[i * CHUNK..i * CHUNK + y.len()], y)
        });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (x, dy) = (values(arg)?, values(grad)?);
        let mut dx = vec![0f32; x.len()];
        par_chunks_mut(&mut dx, CHUNK, |i, d| {
            let r = i * CHUNK..i * CHUNK + d.len();
            backward(&x[r.clone()], &dy[r], d)
        });
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

/// GELU (erf form) with a backward pass.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Gelu)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{close, input, weighting};

    #[test]
    fn matches_candle_in_value_and_gradient() {
        let x = input(40);
        let w = weighting(40);
        let ours = super::gelu_erf(x.as_tensor()).unwrap();
        let theirs = x.as_tensor().gelu_erf().unwrap();
        close(&ours, &theirs, 1e-5);
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
            1e-5,
        );
    }
}
