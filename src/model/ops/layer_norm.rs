//! Layer norm over the last dimension with weight and bias: forward through
//! the engine's row kernel, backward (x^ = (x - mean) r, dy^ = dy w)
//! `dx = r (dy^ - mean(dy^) - x^ mean(dy^ x^))`, `dw = sum dy x^`,
//! `db = sum dy` over rows.

use super::{data, par_chunks_mut, values, ROWS_PER_TASK};
use crate::engine::simd::{self, dot, simd_fn, sum};
use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

struct LayerNormOp {
    eps: f32,
}

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

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, b) = (
            data(s1, l1, self.name())?,
            data(s2, l2, self.name())?,
            data(s3, l3, self.name())?,
        );
        let h = w.len();
        if h == 0 || b.len() != h || l1.dims().last() != Some(&h) {
            candle_core::bail!(
                "layer-norm: input {:?} with weight of {} and bias of {}",
                l1.dims(),
                h,
                b.len()
            );
        }
        let mut y = x.to_vec();
        par_chunks_mut(&mut y, ROWS_PER_TASK * h, |_, c| {
            simd::layer_norm(c, w, b, self.eps)
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (xv, wv, dy) = (values(x)?, values(w)?, values(grad)?);
        let h = wv.len();
        let c = ROWS_PER_TASK * h;
        let mut dx = vec![0f32; xv.len()];
        // Each chunk's sums for dw and db, side by side, added up after.
        let chunks = xv.len().div_ceil(c);
        let partial: Vec<std::sync::Mutex<Vec<f32>>> = (0..chunks)
            .map(|_| std::sync::Mutex::new(vec![0f32; 2 * h]))
            .collect();
        par_chunks_mut(&mut dx, c, |i, d| {
            let r = i * c..i * c + d.len();
            let mut p = partial[i].lock().unwrap_or_else(|e| e.into_inner());
            let (dw, db) = p.split_at_mut(h);
            let (mut xh, mut dyh) = (vec![0f32; h], vec![0f32; h]);
            backward(
                &xv[r.clone()],
                &dy[r],
                &wv,
                self.eps,
                d,
                dw,
                db,
                &mut xh,
                &mut dyh,
            );
        });
        let (mut dw, mut db) = (vec![0f32; h], vec![0f32; h]);
        for p in partial {
            let p = p.into_inner().unwrap_or_else(|e| e.into_inner());
            dw.iter_mut().zip(&p[..h]).for_each(|(a, v)| *a += v);
            db.iter_mut().zip(&p[h..]).for_each(|(a, v)| *a += v);
        }
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), x.device())?),
            Some(Tensor::from_vec(dw, w.shape(), w.device())?),
            Some(Tensor::from_vec(db, b.shape(), b.device())?),
        ))
    }
}

/// Layer norm of the last dimension with a backward pass for `x`, `weight`
/// and `bias`.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op3(
        &weight.contiguous()?,
        &bias.contiguous()?,
        LayerNormOp { eps: eps as f32 },
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::{close, input, weighting};
    use candle_core::{Device, Tensor, Var, D};

    #[test]
    fn matches_the_composition_in_value_and_gradient() {
        let h = 37;
        let x = input(h);
        let w = Var::from_tensor(
            &Tensor::from_vec(
                (0..h).map(|i| 0.5 + i as f32 / 20.0).collect::<Vec<_>>(),
                h,
                &Device::Cpu,
            )
            .unwrap(),
        )
        .unwrap();
        let b = Var::from_tensor(
            &Tensor::from_vec(
                (0..h).map(|i| i as f32 / 50.0 - 0.3).collect::<Vec<_>>(),
                h,
                &Device::Cpu,
            )
            .unwrap(),
        )
        .unwrap();
        let k = weighting(h);
        let ours = super::layer_norm(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-12).unwrap();
        // The composition the training path used before.
        let xt = x.as_tensor();
        let mean = xt.mean_keepdim(D::Minus1).unwrap();
        let centred = xt.broadcast_sub(&mean).unwrap();
        let var = centred.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        let normed = centred
            .broadcast_div(&(var + 1e-12).unwrap().sqrt().unwrap())
            .unwrap();
        let theirs = normed
            .broadcast_mul(w.as_tensor())
            .unwrap()
            .broadcast_add(b.as_tensor())
            .unwrap();
        close(&ours, &theirs, 1e-5);
        let g1 = (ours * &k).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (theirs * &k)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [&x, &w, &b] {
            close(
                g1.get(v.as_tensor()).unwrap(),
                g2.get(v.as_tensor()).unwrap(),
                1e-4,
            );
        }
    }
}
