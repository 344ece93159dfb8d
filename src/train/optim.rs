//! AdamW (Loshchilov & Hutter) with decoupled weight decay that is skipped
//! for biases and LayerNorm parameters (as transformers' Trainer does), and
//! global gradient-norm clipping.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

struct Slot {
    var: Var,
    decay: bool,
    m: Tensor,
    v: Tensor,
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

impl AdamW {
    pub fn new(params: Vec<(String, Var)>, weight_decay: f64) -> Result<Self> {
        let slots = params
            .into_iter()
            .map(|(n, var)| Ok(Slot { decay: decays(&n), m: var.zeros_like()?, v: var.zeros_like()?, var }))
            .collect::<Result<Vec<_>>>()?;
        Ok(AdamW { slots, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay, step: 0 })
    }

    /// One update with learning rate `lr`; parameters without a gradient are
    /// left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        self.step += 1;
        let bc1 = 1.0 - self.beta1.powi(self.step);
        let bc2 = 1.0 - self.beta2.powi(self.step);
        for s in &mut self.slots {
            let Some(g) = grads.get(s.var.as_tensor()) else { continue };
            s.m = ((&s.m * self.beta1)? + (g * (1.0 - self.beta1))?)?;
            s.v = ((&s.v * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let update = ((&s.m / bc1)? / ((&s.v / bc2)?.sqrt()? + self.eps)?)?;
            let mut theta = s.var.as_tensor().clone();
            if s.decay && self.weight_decay > 0.0 {
                theta = (theta * (1.0 - lr * self.weight_decay))?;
            }
            s.var.set(&(theta - (update * lr)?)?)?;
        }
        Ok(())
    }
}

/// Scale all gradients so their global L2 norm is at most `max_norm`;
/// returns the norm before clipping.
pub fn clip_grad_norm(grads: &mut GradStore, vars: &[(String, Var)], max_norm: f64) -> Result<f64> {
    let mut sq = 0f64;
    for (_, v) in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
    }
    let norm = sq.sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for (_, v) in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * scale)?);
            }
        }
    }
    Ok(norm)
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
        let loss = ((w.as_tensor() * 3.0).unwrap().sum_all().unwrap() + b.as_tensor().sum_all().unwrap()).unwrap();
        let grads = loss.backward().unwrap();
        let mut opt = AdamW::new(vec![("x.weight".into(), w.clone()), ("x.bias".into(), b.clone())], 0.5).unwrap();
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
        let loss = (w.as_tensor() * Tensor::new(&[3.0f32, 4.0], &dev).unwrap()).unwrap().sum_all().unwrap();
        let mut grads = loss.backward().unwrap();
        let vars = vec![("w".to_string(), w.clone())];
        let norm = clip_grad_norm(&mut grads, &vars, 1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-6);
        let g = grads.get(w.as_tensor()).unwrap().to_vec1::<f32>().unwrap();
        assert!((g[0] - 0.6).abs() < 1e-5 && (g[1] - 0.8).abs() < 1e-5, "{g:?}");
    }
}
