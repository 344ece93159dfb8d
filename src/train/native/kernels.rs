//! The native step's element-wise kernels with their backward: GELU with
//! the exact normal CDF (transformers' "gelu": forward `x Phi(x)`, backward
//! `Phi(x) + x phi(x)`), and layer norm's backward (x^ = (x - mean) r,
//! dy^ = dy w): `dx = r (dy^ - mean(dy^) - x^ mean(dy^ x^))`,
//! `dw = sum dy x^`, `db = sum dy` over rows. Checked through the whole step
//! against candle's autograd graph (`tests/suite/native_step.rs`) and
//! against PyTorch (`tests/suite/roberta.rs`).

use crate::engine::simd::{dot, erf, exp, simd_fn, sum};

pub mod gelu {
    use super::*;

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
}

pub mod layer_norm {
    use super::*;

    simd_fn! {
        /// Rows of `x` (`h` wide): `dx`, and this chunk's contributions to
        /// `dw` and `db` added into them.
        pub(crate) fn backward(x: &[f32], dy: &[f32], w: &[f32], eps: f32, dx: &mut [f32], dw: &mut [f32], db: &mut [f32], xhat: &mut [f32], dyh: &mut [f32]) {
            let h = w.len();
            let n = h as f32;
            for ((x, g), d) in x.chunks_exact(h).zip(dy.chunks_exact(h)).zip(dx.chunks_exact_mut(h)) {
                let mean = sum(x) / n;
                xhat.iter_mut().zip(x).for_each(|(o, v)| *o = v - mean);
                let r = 1.0 / (dot(xhat, xhat) / n + eps).sqrt();
                xhat.iter_mut().for_each(|v| *v *= r);
                dyh.iter_mut().zip(g.iter().zip(w)).for_each(|(o, (g, w))| *o = g * w);
                let m1 = sum(dyh) / n;
                let m2 = dot(dyh, xhat) / n;
                d.iter_mut().zip(dyh.iter().zip(xhat.iter())).for_each(|(d, (a, xh))| *d = r * (a - m1 - xh * m2));
                dw.iter_mut().zip(g.iter().zip(xhat.iter())).for_each(|(o, (g, xh))| *o += g * xh);
                db.iter_mut().zip(g).for_each(|(o, g)| *o += g);
            }
        }
    }
}
