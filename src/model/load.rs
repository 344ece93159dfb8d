//! Load pretrained weights into a freshly built model, explicitly: every
//! parameter is looked up under its Hugging Face name (with or without the
//! `bert.` prefix, and with the old `gamma` / `beta` LayerNorm names), shapes
//! must match, and the report lists what stayed freshly initialised and what
//! in the file went unused.

use super::BertClassifier;
use crate::{Error, Result};
use candle_core::{DType, Tensor};
use std::collections::HashMap;
use std::path::Path;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct LoadReport {
    pub loaded: Vec<String>,
    /// Parameters not in the file: they keep their random initialisation.
    pub fresh: Vec<String>,
    /// Tensors in the file the model has no use for (e.g. an MLM head).
    pub unused: Vec<String>,
}

impl LoadReport {
    pub fn summary(&self) -> String {
        let mut s = format!("loaded {} tensors", self.loaded.len());
        if !self.fresh.is_empty() {
            s += &format!("; freshly initialised: {}", self.fresh.join(", "));
        }
        if !self.unused.is_empty() {
            let shown: Vec<_> = self.unused.iter().take(6).cloned().collect();
            s += &format!("; unused in file: {}{}", shown.join(", "), if self.unused.len() > 6 { ", ..." } else { "" });
        }
        s
    }
}

fn candidates(name: &str) -> Vec<String> {
    let mut v = vec![name.to_string()];
    if let Some(rest) = name.strip_prefix("bert.") {
        v.push(rest.to_string());
    }
    for c in v.clone() {
        if let Some(stem) = c.strip_suffix("LayerNorm.weight") {
            v.push(format!("{stem}LayerNorm.gamma"));
        }
        if let Some(stem) = c.strip_suffix("LayerNorm.bias") {
            v.push(format!("{stem}LayerNorm.beta"));
        }
    }
    v
}

impl BertClassifier {
    /// Copy tensors from `path` (a safetensors file) into the model.
    pub fn load_weights(&mut self, path: &Path) -> Result<LoadReport> {
        let tensors = candle_core::safetensors::load(path, self.device()).map_err(|e| Error::file(path, format!("cannot read safetensors: {e}")))?;
        self.load_tensors(&tensors, path)
    }

    /// Copy tensors from a name -> tensor map; `origin` names it in errors.
    pub fn load_tensors(&mut self, tensors: &HashMap<String, Tensor>, origin: &Path) -> Result<LoadReport> {
        let mut report = LoadReport::default();
        let mut used = std::collections::HashSet::new();
        let names: Vec<String> = self.params.names().to_vec();
        for name in names {
            let Some((key, t)) = candidates(&name).into_iter().find_map(|k| tensors.get(&k).map(|t| (k, t))) else {
                report.fresh.push(name);
                continue;
            };
            let var = self.params.get(&name).expect("name from the store");
            if t.dims() != var.dims() {
                return Err(Error::file(origin, format!("tensor {key} has shape {:?}, the model expects {:?} for {name}", t.dims(), var.dims())));
            }
            var.set(&t.to_dtype(DType::F32)?)?;
            self.params.mark_loaded(&name);
            used.insert(key);
            report.loaded.push(name);
        }
        report.unused = tensors.keys().filter(|k| !used.contains(*k) && !k.ends_with("position_ids")).cloned().collect();
        report.unused.sort();
        Ok(report)
    }
}
