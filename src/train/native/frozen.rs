//! The frozen bottom of the encoder, computed once per training example.
//!
//! With `--method top` the embeddings and the bottom layers never change
//! and run without dropout (no mask is drawn for them), so their output for
//! a sentence is the same at every step: the native step runs them the
//! first time it meets an example and keeps the result here; later epochs
//! start at the first trained layer. The output of each sentence depends
//! only on its own tokens (batches are packed, attention stays within a
//! sentence), so a kept result equals a recomputed one
//! (`tests/suite/frozen_cache.rs` checks the trained weights bit for bit).

use crate::model::BertClassifier;
use crate::{Error, Result};

/// The hidden states entering layer [`FrozenCache::layer`], per example.
pub struct FrozenCache {
    layer: usize,
    hidden: usize,
    rows: Vec<Option<Box<[f32]>>>,
}

impl FrozenCache {
    /// A cache for `examples` training examples, or `None` when the model
    /// has no frozen bottom to keep: no frozen layers, or a tensor below the
    /// trained layers (an embedding table, a shared relative-position
    /// table, an adapter) that learns.
    pub fn new(model: &BertClassifier, examples: usize) -> Option<Self> {
        let layer = cacheable_layers(model);
        (layer > 0).then(|| FrozenCache {
            layer,
            hidden: model.config.hidden_size,
            rows: vec![None; examples],
        })
    }

    /// The bytes that caching sentences with `tokens` tokens in all takes.
    pub fn bytes_for(model: &BertClassifier, tokens: usize) -> usize {
        tokens * model.config.hidden_size * std::mem::size_of::<f32>()
    }

    /// The first layer that runs on the kept states (the number of frozen
    /// layers).
    pub fn layer(&self) -> usize {
        self.layer
    }

    /// The kept states of examples `idx`, packed in that order, when every
    /// one of them is kept; their token counts must be `lengths`.
    pub(super) fn gather(&self, idx: &[usize], lengths: &[usize]) -> Result<Option<Vec<f32>>> {
        let h = self.hidden;
        let mut out = Vec::with_capacity(lengths.iter().sum::<usize>() * h);
        for (&i, &len) in idx.iter().zip(lengths) {
            let Some(kept) = self.slot(i)? else {
                return Ok(None);
            };
            if kept.len() != len * h {
                return Err(Error::Invalid(format!(
                    "frozen-layer cache: example {i} has {} tokens kept, the batch has {len}",
                    kept.len() / h
                )));
            }
            out.extend_from_slice(kept);
        }
        Ok(Some(out))
    }

    /// Keep the states `x` (examples `idx` packed with `lengths`) of those
    /// not kept yet.
    pub(super) fn store(&mut self, idx: &[usize], lengths: &[usize], x: &[f32]) -> Result<()> {
        let h = self.hidden;
        let mut start = 0;
        for (&i, &len) in idx.iter().zip(lengths) {
            let end = start + len * h;
            if self.slot(i)?.is_none() {
                self.rows[i] = Some(x[start..end].into());
            }
            start = end;
        }
        Ok(())
    }

    fn slot(&self, i: usize) -> Result<Option<&[f32]>> {
        self.rows.get(i).map(|r| r.as_deref()).ok_or_else(|| {
            Error::Invalid(format!(
                "frozen-layer cache: example {i} of {}",
                self.rows.len()
            ))
        })
    }
}

/// How many bottom layers' output is fixed during training: the frozen
/// layers, when backward reaches none of them nor the embeddings (no
/// embedding table, shared relative-position table or adapter below the
/// trained layers learns). 0 when nothing can be kept.
fn cacheable_layers(model: &BertClassifier) -> usize {
    let frozen = model.frozen_layers().unwrap_or(0);
    let reach = super::reach(model);
    if reach.embeddings || reach.lowest_layer < frozen {
        0
    } else {
        frozen
    }
}
