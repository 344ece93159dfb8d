//! The model's parameters: named `Var`s in a fixed order, initialised from the
//! project's seeded RNG (candle's own CPU RNG cannot be seeded), each marked
//! trainable or frozen.

use crate::rng::Rng;
use crate::Result;
use candle_core::{DType, Device, Tensor, Var};
use std::collections::HashMap;

fn draw(rng: &mut Rng, init: Init, n: usize) -> Vec<f32> {
    match init {
        Init::Normal(std) => (0..n).map(|_| rng.normal() * std).collect(),
        Init::Uniform(b) => (0..n).map(|_| (rng.next_f32() * 2.0 - 1.0) * b).collect(),
        Init::Zeros => vec![0.0; n],
        Init::Ones => vec![1.0; n],
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Init {
    Normal(f32),
    /// Uniform in [-bound, bound].
    Uniform(f32),
    Zeros,
    Ones,
}

#[derive(Debug)]
pub struct ParamStore {
    names: Vec<String>,
    vars: HashMap<String, Var>,
    trainable: HashMap<String, bool>,
    rng: Rng,
    device: Device,
    /// While set, random initialisations are not drawn at creation but
    /// kept in `pending` with the parameter's own generator, so tensors that
    /// are then loaded cost nothing (drawing a normal sample takes a
    /// logarithm and a cosine: 22 M of them were half of a cold `stance
    /// predict`), and those drawn later get the values they would have had.
    defer: bool,
    pending: HashMap<String, (Rng, Init)>,
}

impl ParamStore {
    pub fn new(seed: u64, device: Device) -> Self {
        ParamStore {
            names: Vec::new(),
            vars: HashMap::new(),
            trainable: HashMap::new(),
            rng: Rng::new(seed),
            device,
            defer: false,
            pending: HashMap::new(),
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Create a parameter (names are unique; asking twice is a bug).
    pub fn add(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        assert!(
            !self.vars.contains_key(name),
            "parameter {name} created twice"
        );
        let n: usize = shape.iter().product();
        // Each parameter draws from its own stream, forked in creation order.
        let mut rng = self.rng.fork();
        let data = if self.defer && matches!(init, Init::Normal(_) | Init::Uniform(_)) {
            self.pending.insert(name.to_string(), (rng, init));
            vec![0.0; n]
        } else {
            draw(&mut rng, init, n)
        };
        let var = Var::from_tensor(&Tensor::from_vec(data, shape, &self.device)?)?;
        let t = var.as_tensor().clone();
        self.names.push(name.to_string());
        self.vars.insert(name.to_string(), var);
        self.trainable.insert(name.to_string(), true);
        Ok(t)
    }

    /// Defer random initialisation (see the `defer` field) until
    /// [`ParamStore::draw_pending`].
    pub fn defer_random_init(&mut self) {
        self.defer = true;
    }

    /// `name` got its values from elsewhere: it needs no random draw.
    pub fn mark_loaded(&mut self, name: &str) {
        self.pending.remove(name);
    }

    /// Draw the deferred initialisations still needed, each from the
    /// generator state it was created at, and stop deferring.
    pub fn draw_pending(&mut self) -> Result<()> {
        for name in self.names.clone() {
            if let Some((mut rng, init)) = self.pending.remove(&name) {
                let var = &self.vars[&name];
                let data = draw(&mut rng, init, var.elem_count());
                var.set(&Tensor::from_vec(data, var.shape(), &self.device)?)?;
            }
        }
        self.defer = false;
        Ok(())
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The tensor a module should use: the variable itself when trainable,
    /// a detached view of the same storage when frozen (so backward computes
    /// no gradient for it at all).
    pub fn tensor(&self, name: &str) -> Tensor {
        let v = &self.vars[name];
        if self.is_trainable(name) {
            v.as_tensor().clone()
        } else {
            v.as_tensor().detach()
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.vars.contains_key(name)
    }

    pub fn get(&self, name: &str) -> Option<&Var> {
        self.vars.get(name)
    }

    /// All parameters in creation order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.names.iter().map(|n| (n.as_str(), &self.vars[n]))
    }

    /// Trainable parameters in creation order.
    pub fn trainable(&self) -> Vec<(String, Var)> {
        self.names
            .iter()
            .filter(|n| self.trainable[*n])
            .map(|n| (n.clone(), self.vars[n].clone()))
            .collect()
    }

    pub fn set_trainable(&mut self, pred: impl Fn(&str) -> bool) {
        for n in &self.names {
            self.trainable.insert(n.clone(), pred(n));
        }
    }

    pub fn is_trainable(&self, name: &str) -> bool {
        self.trainable.get(name).copied().unwrap_or(false)
    }

    /// Copies of all tensors, for saving.
    /// The name of the first parameter holding NaN or an infinity (their
    /// sum is then not finite).
    pub fn check_finite(&self) -> std::result::Result<(), String> {
        for (n, v) in self.iter() {
            let finite = v
                .as_tensor()
                .to_dtype(DType::F32)
                .and_then(|t| t.sum_all())
                .and_then(|s| s.to_scalar::<f32>())
                .map(f32::is_finite)
                .unwrap_or(false);
            if !finite {
                return Err(n.to_string());
            }
        }
        Ok(())
    }

    pub fn snapshot(&self) -> Result<HashMap<String, Tensor>> {
        let mut m = HashMap::new();
        for (n, v) in self.iter() {
            m.insert(n.to_string(), v.as_tensor().to_dtype(DType::F32)?.copy()?);
        }
        Ok(m)
    }
}
