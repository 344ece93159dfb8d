//! AdamW (Loshchilov & Hutter) with decoupled weight decay that is skipped
//! for biases and LayerNorm parameters (as transformers' Trainer does), and
//! global gradient-norm clipping.

use crate::engine::simd::simd_fn;
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, InplaceOp2, Layout, Result, Storage, Tensor, Var};
use std::sync::Mutex;

/// A parameter with its moment estimates, kept as plain buffers: one fused
/// pass per parameter updates them and the weights in place (the tensor-op
/// composition allocated ten tensors of each parameter's size per step,
/// about a quarter of a full fine-tuning step).
struct Slot {
    var: Var,
    decay: bool,
    m: Vec<f32>,
    v: Vec<f32>,
}

pub struct AdamW {
    slots: Vec<Slot>,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    step: i32,
}

/// Whether a parameter name gets weight decay.
pub fn decays(name: &str) -> bool {
    !(name.ends_with(".bias") || name.contains("LayerNorm"))
}

/// The contiguous f32 data of a CPU tensor, handed to `f`.
pub(crate) fn with_data<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match (&*storage, layout.contiguous_offsets()) {
        (Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) => Ok(f(&v[a..b])),
        _ => candle_core::bail!("expected a contiguous f32 CPU tensor"),
    }
}

/// Values per parallel task of the update and the norm.
const CHUNK: usize = 1 << 16;

/// One AdamW update of a parameter, run by candle on the parameter's own
/// storage (`dst`) with the gradient as source.
struct Update<'a> {
    m: Mutex<&'a mut [f32]>,
    v: Mutex<&'a mut [f32]>,
    h: Hyper,
}

/// The constants of one update.
struct Hyper {
    lr: f32,
    decay: f32,
    grad_scale: f32,
    beta1: f32,
    beta2: f32,
    bc1: f32,
    bc2: f32,
    eps: f32,
}

impl InplaceOp2 for Update<'_> {
    fn name(&self) -> &'static str {
        "adamw-update"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dl: &Layout,
        src: &CpuStorage,
        sl: &Layout,
    ) -> Result<()> {
        let (CpuStorage::F32(theta), CpuStorage::F32(grad)) = (dst, src) else {
            candle_core::bail!("adamw: f32 tensors only")
        };
        let (Some((ta, tb)), Some((ga, gb))) = (dl.contiguous_offsets(), sl.contiguous_offsets())
        else {
            candle_core::bail!("adamw: contiguous tensors only")
        };
        let (theta, grad) = (&mut theta[ta..tb], &grad[ga..gb]);
        let mut m = self.m.lock().unwrap_or_else(|e| e.into_inner());
        let mut v = self.v.lock().unwrap_or_else(|e| e.into_inner());
        if theta.len() != grad.len() || m.len() != grad.len() {
            candle_core::bail!(
                "adamw: gradient of {} values for a parameter of {}",
                grad.len(),
                theta.len()
            );
        }
        use rayon::prelude::*;
        // In chunks across threads: the word embeddings alone are half of
        // the model, so splitting by parameter leaves one thread with most of it.
        theta
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .for_each(|(((theta, grad), m), v)| update_chunk(theta, grad, m, v, &self.h));
        Ok(())
    }
}

simd_fn! {
    /// AdamW on a chunk of a parameter, compiled for the widest vectors the
    /// CPU has (square roots and divisions dominate once the data is in
    /// cache; IEEE-exact in every width, so the results are the same bits).
    fn update_chunk(theta: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], h: &Hyper) {
        let keep = 1.0 - h.lr * h.decay;
        for (((w, &g), m), v) in theta.iter_mut().zip(grad).zip(m.iter_mut()).zip(v.iter_mut()) {
            let g = g * h.grad_scale;
            *m = h.beta1 * *m + (1.0 - h.beta1) * g;
            *v = h.beta2 * *v + (1.0 - h.beta2) * g * g;
            let update = (*m / h.bc1) / ((*v / h.bc2).sqrt() + h.eps);
            *w = *w * keep - h.lr * update;
        }
    }
}

impl AdamW {
    pub fn new(params: Vec<(String, Var)>, weight_decay: f64) -> Result<Self> {
        let slots = params
            .into_iter()
            .map(|(n, var)| {
                let len = var.elem_count();
                Slot {
                    decay: decays(&n),
                    m: vec![0.0; len],
                    v: vec![0.0; len],
                    var,
                }
            })
            .collect();
        Ok(AdamW {
            slots,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            step: 0,
        })
    }

    /// One update with learning rate `lr`; parameters without a gradient are
    /// left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.step_scaled(grads, lr, 1.0)
    }

    /// One update with every gradient multiplied by `grad_scale` first (how
    /// clipping is applied without rewriting the gradients).
    pub fn step_scaled(&mut self, grads: &GradStore, lr: f64, grad_scale: f64) -> Result<()> {
        use rayon::prelude::*;
        self.step += 1;
        let (beta1, beta2, eps, wd) = (self.beta1, self.beta2, self.eps, self.weight_decay);
        let bc1 = 1.0 - beta1.powi(self.step);
        let bc2 = 1.0 - beta2.powi(self.step);
        self.slots.par_iter_mut().try_for_each(|s| -> Result<()> {
            let Some(g) = grads.get(s.var.as_tensor()) else {
                return Ok(());
            };
            let g = g.contiguous()?;
            let op = Update {
                m: Mutex::new(&mut s.m),
                v: Mutex::new(&mut s.v),
                h: Hyper {
                    lr: lr as f32,
                    decay: if s.decay { wd as f32 } else { 0.0 },
                    grad_scale: grad_scale as f32,
                    beta1: beta1 as f32,
                    beta2: beta2 as f32,
                    bc1: bc1 as f32,
                    bc2: bc2 as f32,
                    eps: eps as f32,
                },
            };
            s.var.as_tensor().inplace_op2(&g, &op)
        })
    }
}

/// Global L2 norm of the gradients of `vars`.
pub fn grad_norm(grads: &GradStore, vars: &[(String, Var)]) -> Result<f64> {
    let mut sq = 0f64;
    for (_, v) in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            let g = g.contiguous()?;
            sq += with_data(&g, |d| {
                use rayon::prelude::*;
                // Partial sums in a fixed order, so the norm is the same bits on every run.
                let parts: Vec<f64> = d
                    .par_chunks(CHUNK)
                    .map(|c| {
                        c.chunks(4096)
                            .map(|c| c.iter().map(|x| x * x).sum::<f32>() as f64)
                            .sum::<f64>()
                    })
                    .collect();
                parts.iter().sum::<f64>()
            })?;
        }
    }
    Ok(sq.sqrt())
}

/// The factor that brings a gradient norm down to `max_norm` (1 when it is
/// already within it, or when `max_norm` is 0: no clipping).
pub fn clip_scale(norm: f64, max_norm: f64) -> f64 {
    if max_norm > 0.0 && norm > max_norm {
        max_norm / (norm + 1e-6)
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn first_step_by_hand() {
        // Adam's first step moves each weight by lr * sign(g) (m/sqrt(v) = g/|g|);
        // decay multiplies the weight by (1 - lr * wd) first.
        let dev = Device::Cpu;
        let w = Var::new(&[1.0f32, -2.0], &dev).unwrap();
        let b = Var::new(&[0.5f32], &dev).unwrap();
        let loss = ((w.as_tensor() * 3.0).unwrap().sum_all().unwrap()
            + b.as_tensor().sum_all().unwrap())
        .unwrap();
        let grads = loss.backward().unwrap();
        let mut opt = AdamW::new(
            vec![("x.weight".into(), w.clone()), ("x.bias".into(), b.clone())],
            0.5,
        )
        .unwrap();
        opt.step(&grads, 0.1).unwrap();
        let wv = w.as_tensor().to_vec1::<f32>().unwrap();
        assert!((wv[0] - (1.0 * 0.95 - 0.1)).abs() < 1e-5, "{wv:?}");
        assert!((wv[1] - (-2.0 * 0.95 - 0.1)).abs() < 1e-5, "{wv:?}");
        let bv = b.as_tensor().to_vec1::<f32>().unwrap();
        assert!((bv[0] - 0.4).abs() < 1e-5, "bias is not decayed: {bv:?}");
    }

    #[test]
    fn clipping_scales_to_max_norm() {
        let dev = Device::Cpu;
        let w = Var::new(&[0.0f32, 0.0], &dev).unwrap();
        let loss = (w.as_tensor() * Tensor::new(&[3.0f32, 4.0], &dev).unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        let vars = vec![("w".to_string(), w.clone())];
        let norm = grad_norm(&grads, &vars).unwrap();
        assert!((norm - 5.0).abs() < 1e-6);
        // Scaled to norm 1: (0.6, 0.8); under the limit: untouched.
        assert!((clip_scale(norm, 1.0) - 0.2).abs() < 1e-6);
        assert_eq!(clip_scale(norm, 10.0), 1.0);
    }
}
