//! Load pretrained weights into a freshly built model, explicitly: every
//! parameter is looked up under its Hugging Face name (with or without the
//! `bert.` prefix, and with the old `gamma` / `beta` LayerNorm names), shapes
//! must match, and the report lists what stayed freshly initialised and what
//! in the file went unused.

use super::BertClassifier;
use crate::{Error, Result};
use candle_core::{DType, Tensor, Var};
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
            s += &format!(
                "; unused in file: {}{}",
                shown.join(", "),
                if self.unused.len() > 6 { ", ..." } else { "" }
            );
        }
        s
    }
}

/// The names a tensor may have in a file: as in a task checkpoint, without
/// the encoder prefix (a bare encoder such as sentence-transformers'), and
/// with TF-era `gamma`/`beta` for layer norms.
fn candidates(name: &str, prefix_dot: &str) -> Vec<String> {
    let mut v = vec![name.to_string()];
    if let Some(rest) = name.strip_prefix(prefix_dot) {
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

/// Where tensors come from: a safetensors file mapped into memory, or
/// tensors already in memory.
enum Source<'a> {
    File(safetensors::SafeTensors<'a>),
    Tensors(&'a HashMap<String, Tensor>),
}

impl Source<'_> {
    fn names(&self) -> Vec<String> {
        match self {
            Source::File(st) => st.names().into_iter().map(str::to_string).collect(),
            Source::Tensors(m) => m.keys().cloned().collect(),
        }
    }

    fn shape(&self, key: &str) -> Option<Vec<usize>> {
        match self {
            Source::File(st) => st.tensor(key).ok().map(|v| v.shape().to_vec()),
            Source::Tensors(m) => m.get(key).map(|t| t.dims().to_vec()),
        }
    }

    /// Copy tensor `key` into `var` (same shape, checked by the caller).
    fn fill(&self, key: &str, var: &Var, origin: &Path) -> Result<()> {
        match self {
            Source::File(st) => {
                let view = st
                    .tensor(key)
                    .map_err(|e| Error::file(origin, format!("tensor {key}: {e}")))?;
                let width = match view.dtype() {
                    safetensors::Dtype::F32 => 4,
                    safetensors::Dtype::F16 | safetensors::Dtype::BF16 => 2,
                    other => {
                        return Err(Error::file(
                            origin,
                            format!("tensor {key} has dtype {other:?}; f32, f16 or bf16 expected"),
                        ))
                    }
                };
                if view.data().len() != var.elem_count() * width {
                    return Err(Error::file(
                        origin,
                        format!(
                            "tensor {key} holds {} bytes for {} values",
                            view.data().len(),
                            var.elem_count()
                        ),
                    ));
                }
                var.as_tensor().inplace_op1(&Fill {
                    bytes: view.data(),
                    dtype: view.dtype(),
                })?;
            }
            Source::Tensors(m) => var.set(&m[key].to_dtype(DType::F32)?)?,
        }
        Ok(())
    }
}

/// Decode little-endian f32 / f16 / bf16 bytes straight into a parameter's
/// storage: one pass, where reading the file into memory, making a tensor
/// of it and copying that into the parameter were three.
struct Fill<'a> {
    bytes: &'a [u8],
    dtype: safetensors::Dtype,
}

impl candle_core::InplaceOp1 for Fill<'_> {
    fn name(&self) -> &'static str {
        "fill-from-safetensors"
    }

    fn cpu_fwd(
        &self,
        storage: &mut candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<()> {
        use rayon::prelude::*;
        let (candle_core::CpuStorage::F32(v), Some((a, b))) =
            (storage, layout.contiguous_offsets())
        else {
            candle_core::bail!("fill: a contiguous f32 parameter expected")
        };
        const CHUNK: usize = 1 << 16;
        let out = &mut v[a..b];
        match self.dtype {
            safetensors::Dtype::F32 => out
                .par_chunks_mut(CHUNK)
                .zip(self.bytes.par_chunks(4 * CHUNK))
                .for_each(|(o, b)| {
                    o.iter_mut()
                        .zip(b.chunks_exact(4))
                        .for_each(|(o, b)| *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                }),
            safetensors::Dtype::F16 => out
                .par_chunks_mut(CHUNK)
                .zip(self.bytes.par_chunks(2 * CHUNK))
                .for_each(|(o, b)| {
                    o.iter_mut()
                        .zip(b.chunks_exact(2))
                        .for_each(|(o, b)| *o = half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                }),
            _ => out
                .par_chunks_mut(CHUNK)
                .zip(self.bytes.par_chunks(2 * CHUNK))
                .for_each(|(o, b)| {
                    o.iter_mut()
                        .zip(b.chunks_exact(2))
                        .for_each(|(o, b)| *o = half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                }),
        }
        Ok(())
    }
}

/// A file mapped read-only into memory.
pub(crate) fn map_file(path: &Path) -> Result<memmap2::Mmap> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the mapping is only read. Like every memory-mapped model
    // loader (candle's included), it assumes no one truncates the file while
    // it is open.
    unsafe { memmap2::MmapOptions::new().populate().map(&file) }.map_err(|e| Error::io(path, e))
}

impl BertClassifier {
    /// Copy tensors from `path` (a safetensors file) into the model.
    pub fn load_weights(&mut self, path: &Path) -> Result<LoadReport> {
        let map = map_file(path)?;
        let st = safetensors::SafeTensors::deserialize(&map)
            .map_err(|e| Error::file(path, format!("cannot read safetensors: {e}")))?;
        self.load_from(&Source::File(st), path)
    }

    /// Copy tensors from a name -> tensor map; `origin` names it in errors.
    pub fn load_tensors(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        origin: &Path,
    ) -> Result<LoadReport> {
        self.load_from(&Source::Tensors(tensors), origin)
    }

    fn load_from(&mut self, source: &Source, origin: &Path) -> Result<LoadReport> {
        let mut report = LoadReport::default();
        let mut used = std::collections::HashSet::new();
        let names: Vec<String> = self.params.names().to_vec();
        let prefix_dot = self.spec.prefix_dot();
        for name in names {
            let Some((key, shape)) = candidates(&name, &prefix_dot)
                .into_iter()
                .find_map(|k| source.shape(&k).map(|s| (k, s)))
            else {
                report.fresh.push(name);
                continue;
            };
            let var = self.params.get(&name).expect("name from the store");
            if shape != var.dims() {
                return Err(Error::file(
                    origin,
                    format!(
                        "tensor {key} has shape {shape:?}, the model expects {:?} for {name}",
                        var.dims()
                    ),
                ));
            }
            source.fill(&key, var, origin)?;
            self.params.mark_loaded(&name);
            used.insert(key);
            report.loaded.push(name);
        }
        report.unused = source
            .names()
            .into_iter()
            .filter(|k| !used.contains(k) && !k.ends_with("position_ids"))
            .collect();
        report.unused.sort();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::BertConfig;
    use candle_core::Device;

    fn model(seed: u64) -> BertClassifier {
        BertClassifier::new(&BertConfig::tiny(50), 3, seed, &Device::Cpu).unwrap()
    }

    #[test]
    fn reads_f32_f16_and_bf16_files_straight_into_the_parameters() {
        let t = tempfile::tempdir().unwrap();
        let src = model(1);
        let tensors = src.params.snapshot().unwrap();
        for (dtype, tol) in [(DType::F32, 0.0), (DType::F16, 1e-3), (DType::BF16, 1e-2)] {
            let path = t.path().join(format!("{dtype:?}.safetensors"));
            let cast: HashMap<String, Tensor> = tensors
                .iter()
                .map(|(k, v)| (k.clone(), v.to_dtype(dtype).unwrap()))
                .collect();
            candle_core::safetensors::save(&cast, &path).unwrap();
            let mut dst = model(2);
            let report = dst.load_weights(&path).unwrap();
            assert!(
                report.fresh.is_empty() && report.unused.is_empty(),
                "{report:?}"
            );
            for (name, var) in dst.params.iter() {
                let want = &tensors[name];
                let diff = (var.as_tensor() - want)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .max(0)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                let scale = want
                    .abs()
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .max(0)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
                    .max(1e-6);
                assert!(diff <= tol * scale, "{dtype:?} {name}: {diff}");
            }
        }
    }

    #[test]
    fn truncated_files_and_integer_tensors_are_errors_naming_the_file() {
        let t = tempfile::tempdir().unwrap();
        let good = t.path().join("good.safetensors");
        candle_core::safetensors::save(&model(1).params.snapshot().unwrap(), &good).unwrap();
        let bytes = std::fs::read(&good).unwrap();
        let cut = t.path().join("cut.safetensors");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let err = model(2).load_weights(&cut).err().unwrap().to_string();
        assert!(
            err.contains("cut.safetensors") && err.contains("safetensors"),
            "{err}"
        );
        let ints = t.path().join("ints.safetensors");
        let m = model(1);
        let var = m.params.get("classifier.bias").unwrap();
        let t64 = HashMap::from([(
            "classifier.bias".to_string(),
            Tensor::zeros(var.shape(), DType::I64, &Device::Cpu).unwrap(),
        )]);
        candle_core::safetensors::save(&t64, &ints).unwrap();
        let err = model(2).load_weights(&ints).err().unwrap().to_string();
        assert!(
            err.contains("ints.safetensors") && err.contains("dtype"),
            "{err}"
        );
    }
}
