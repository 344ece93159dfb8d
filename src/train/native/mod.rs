//! The native training step: forward and backward of the BERT classifier
//! written out by hand over packed sentences (no padding), on the `gemm`
//! crate and the engine's vectorised kernels, without candle's autograd.
//!
//! Why: profiled on a full fine-tuning step, candle's graph spent under a
//! third of its time in matrix products. Every backward node allocates a
//! zeroed gradient and adds into it, every bias add, residual and dropout
//! is a broadcast op with its own backward, padding costs a third of the
//! tokens, and frozen weights (LoRA) still get their gradient products
//! computed. Here each layer is a fixed list of products and fused passes,
//! frozen tensors get no gradient work, and dropout masks are hashed from
//! seeds drawn from the caller's dropout stream ([`crate::model::dropout`],
//! the definition candle's reference graph shares).
//!
//! It computes what the candle graph of [`BertClassifier::forward_t`]
//! computes in training mode; `tests/suite/native_step.rs` checks logits, loss
//! and every gradient against it, with dropout off and on (the same stream
//! gives both the same masks), and the attention kernel against finite
//! differences with dropout on.

mod attention;
mod frozen;
mod kernels;
mod linear;

pub use frozen::FrozenCache;

use crate::batch::Packed;
use crate::batch::IGNORE;
use crate::engine::attention::Packing;
use crate::engine::attention::RelativeBias;
use crate::engine::simd::{self, Activation};
use crate::model::dropout::Mask;
use crate::model::spec::{ModelSpec, Task};
use crate::model::BertClassifier;
use crate::rng::Rng;
use crate::{Error, Result};
use attention::{Dims, Extras};
use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, Storage, Tensor};
use rayon::prelude::*;
use std::collections::HashMap;

/// What one step computed.
pub struct StepOutput {
    pub loss: f64,
    /// `[batch, num_labels]`, row-major.
    pub logits: Vec<f32>,
    /// Gradients of the trainable parameters, keyed like candle's.
    pub grads: GradStore,
}

/// Forward in training mode (dropout on, its masks seeded from `dropout`),
/// class-weighted cross-entropy (as
/// [`crate::train::loss::weighted_cross_entropy`]), backward.
pub fn step(
    model: &BertClassifier,
    batch: &Packed,
    class_weights: &[f32],
    dropout: &mut Rng,
) -> Result<StepOutput> {
    step_cached(model, batch, class_weights, dropout, None)
}

/// [`step`], reading the frozen bottom layers' output of the examples
/// `idx` (the batch's sentences, in order) from `cache` where it holds all
/// of them, and keeping it there where it does not.
pub fn step_cached(
    model: &BertClassifier,
    batch: &Packed,
    class_weights: &[f32],
    dropout: &mut Rng,
    cache: Option<(&mut FrozenCache, &[usize])>,
) -> Result<StepOutput> {
    let labels = batch
        .labels
        .as_ref()
        .ok_or_else(|| Error::Invalid("training batch without labels".into()))?;
    let k = model.num_labels();
    let token = model.spec.task() == Task::Token;
    let expected = if token {
        batch.ids.len()
    } else {
        batch.lengths.len()
    };
    if labels.len() != expected {
        return Err(Error::Invalid(format!(
            "{} labels for a batch of {expected} {}",
            labels.len(),
            if token { "tokens" } else { "sentences" }
        )));
    }
    if class_weights.len() != k {
        return Err(Error::Invalid(format!(
            "{} class weights for {k} labels",
            class_weights.len()
        )));
    }
    if let Some(l) = labels
        .iter()
        .find(|&&l| l as usize >= k && !(token && l == IGNORE))
    {
        return Err(Error::Invalid(format!(
            "label id {l} out of range for {k} labels"
        )));
    }
    if let Some((_, idx)) = &cache {
        if idx.len() != batch.lengths.len() {
            return Err(Error::Invalid(format!(
                "{} example indices for a batch of {} sentences",
                idx.len(),
                batch.lengths.len()
            )));
        }
    }
    let w = Weights::new(model)?;
    let fwd = forward(model, &w, batch, dropout, cache)?;
    let (loss, dlogits) = if token {
        token_cross_entropy(&fwd.logits, labels, class_weights, k)?
    } else {
        weighted_cross_entropy(&fwd.logits, labels, class_weights, k)
    };
    let mut grads = Grads::default();
    backward(model, &w, batch, &fwd, &dlogits, &mut grads);
    let logits = fwd.logits.clone();
    drop(fwd);
    drop(w);
    Ok(StepOutput {
        loss,
        logits,
        grads: grads.into_store(model)?,
    })
}

/// Read access to every parameter's values for the duration of a step.
struct Weights<'a> {
    model: &'a BertClassifier,
    guards: HashMap<&'a str, (candle_core::StorageRef<'a>, usize, usize)>,
}

impl<'a> Weights<'a> {
    fn new(model: &'a BertClassifier) -> Result<Self> {
        let mut guards = HashMap::new();
        for (name, var) in model.params.iter() {
            let (s, l) = var.as_tensor().storage_and_layout();
            match (&*s, l.contiguous_offsets()) {
                (Storage::Cpu(CpuStorage::F32(_)), Some((a, b))) => {
                    guards.insert(name, (s, a, b));
                }
                _ => {
                    return Err(Error::Invalid(format!(
                        "parameter {name} is not a contiguous f32 CPU tensor"
                    )))
                }
            }
        }
        Ok(Weights { model, guards })
    }

    fn get(&self, name: &str) -> &[f32] {
        let (s, a, b) = self
            .guards
            .get(name)
            .unwrap_or_else(|| panic!("the model has no parameter {name}"));
        match &**s {
            Storage::Cpu(CpuStorage::F32(v)) => &v[*a..*b],
            _ => unreachable!("checked in Weights::new"),
        }
    }

    fn trainable(&self, name: &str) -> bool {
        self.model.params.is_trainable(name)
    }
}

/// Gradients as they are produced, turned into a `GradStore` at the end.
#[derive(Default)]
struct Grads(Vec<(String, Vec<f32>)>);

impl Grads {
    fn add(&mut self, name: String, g: Vec<f32>) {
        self.0.push((name, g));
    }

    fn into_store(self, model: &BertClassifier) -> Result<GradStore> {
        let mut store = GradStore::default();
        for (name, g) in self.0 {
            let var = model
                .params
                .get(&name)
                .ok_or_else(|| Error::Invalid(format!("gradient for unknown parameter {name}")))?;
            let t = Tensor::from_vec(g, var.shape(), var.device())?;
            store.insert(var.as_tensor(), t);
        }
        Ok(store)
    }
}

/// A dense layer's parameters, with its LoRA adapter if it has one.
struct Dense<'w> {
    name: String,
    w: &'w [f32],
    b: &'w [f32],
    /// `A [r, in]`, `B [out, r]`, r, alpha / r.
    lora: Option<(&'w [f32], &'w [f32], usize, f32)>,
    out: usize,
    inp: usize,
}

impl<'w> Dense<'w> {
    fn new(wts: &'w Weights, name: &str, out: usize, inp: usize) -> Self {
        let lora = wts
            .model
            .lora()
            .filter(|_| {
                wts.guards
                    .contains_key(format!("{name}.lora_A.weight").as_str())
            })
            .map(|cfg| {
                (
                    wts.get(&format!("{name}.lora_A.weight")),
                    wts.get(&format!("{name}.lora_B.weight")),
                    cfg.r,
                    (cfg.alpha / cfg.r as f64) as f32,
                )
            });
        Dense {
            name: name.to_string(),
            w: wts.get(&format!("{name}.weight")),
            b: wts.get(&format!("{name}.bias")),
            lora,
            out,
            inp,
        }
    }

    /// `y = x W^T + b (+ alpha/r (x A^T) B^T)`, and `x A^T` for backward.
    fn forward(&self, x: &[f32], rows: usize) -> (Vec<f32>, Option<Vec<f32>>) {
        let mut y = vec![0f32; rows * self.out];
        linear::forward(x, self.w, Some(self.b), &mut y, rows, self.out, self.inp);
        let z = self.lora.map(|(a, b, r, s)| {
            let mut z = vec![0f32; rows * r];
            linear::forward(x, a, None, &mut z, rows, r, self.inp);
            linear::forward_add(&z, b, &mut y, s, rows, self.out, r);
            z
        });
        (y, z)
    }

    /// Gradients of the trainable tensors from `dy`, and `dx` (overwritten,
    /// or added into when `accumulate`) when asked for.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        wts: &Weights,
        x: &[f32],
        z: Option<&[f32]>,
        dy: &[f32],
        rows: usize,
        dx: Option<(&mut [f32], bool)>,
        grads: &mut Grads,
    ) {
        let (out, inp) = (self.out, self.inp);
        let wname = format!("{}.weight", self.name);
        if wts.trainable(&wname) {
            let mut dw = vec![0f32; out * inp];
            linear::backward_weight(dy, x, &mut dw, 1.0, rows, out, inp);
            grads.add(wname, dw);
        }
        let bname = format!("{}.bias", self.name);
        if wts.trainable(&bname) {
            grads.add(bname, linear::backward_bias(dy, out));
        }
        let dz = match (self.lora, z) {
            (Some((_, b, r, s)), Some(z)) => {
                let mut dz = vec![0f32; rows * r];
                linear::backward_input(dy, b, &mut dz, false, s, rows, out, r);
                let bname = format!("{}.lora_B.weight", self.name);
                if wts.trainable(&bname) {
                    let mut db = vec![0f32; out * r];
                    linear::backward_weight(dy, z, &mut db, s, rows, out, r);
                    grads.add(bname, db);
                }
                let aname = format!("{}.lora_A.weight", self.name);
                if wts.trainable(&aname) {
                    let mut da = vec![0f32; r * inp];
                    linear::backward_weight(&dz, x, &mut da, 1.0, rows, r, inp);
                    grads.add(aname, da);
                }
                Some(dz)
            }
            _ => None,
        };
        if let Some((dx, accumulate)) = dx {
            linear::backward_input(dy, self.w, dx, accumulate, 1.0, rows, out, inp);
            if let (Some((a, _, r, _)), Some(dz)) = (self.lora, &dz) {
                linear::backward_input(dz, a, dx, true, 1.0, rows, r, inp);
            }
        }
    }
}

/// Rows per parallel task of the element-wise passes.
const ROWS_PER_TASK: usize = 32;

fn layer_norm(x: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    x.par_chunks_mut(ROWS_PER_TASK * w.len())
        .for_each(|c| simd::layer_norm(c, w, b, eps));
}

/// `(dx, dw, db)` of `y = LayerNorm(x) * w + b` from `dy`.
fn layer_norm_backward(
    x: &[f32],
    dy: &[f32],
    w: &[f32],
    eps: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let h = w.len();
    let c = ROWS_PER_TASK * h;
    let mut dx = vec![0f32; x.len()];
    let partial: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(c)
        .enumerate()
        .map(|(i, d)| {
            let r = i * c..i * c + d.len();
            let (mut dw, mut db, mut xh, mut dyh) =
                (vec![0f32; h], vec![0f32; h], vec![0f32; h], vec![0f32; h]);
            kernels::layer_norm::backward(
                &x[r.clone()],
                &dy[r],
                w,
                eps,
                d,
                &mut dw,
                &mut db,
                &mut xh,
                &mut dyh,
            );
            (dw, db)
        })
        .collect();
    let (mut dw, mut db) = (vec![0f32; h], vec![0f32; h]);
    for (pw, pb) in partial {
        dw.iter_mut().zip(pw).for_each(|(a, v)| *a += v);
        db.iter_mut().zip(pb).for_each(|(a, v)| *a += v);
    }
    (dx, dw, db)
}

/// A dropout mask over `y`: all its rows, or, where `y` holds only each
/// sentence's first token (a first-tokens-only layer), those rows of the
/// site, numbered by their packed rows `first`.
fn apply_mask(mask: &Mask, y: &mut [f32], first: Option<&[usize]>, width: usize) {
    match first {
        Some(rows) => mask.apply_at(y, rows, width),
        None => mask.apply(y),
    }
}

fn add_into(x: &mut [f32], y: &[f32]) {
    x.par_chunks_mut(16384)
        .zip(y.par_chunks(16384))
        .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a += b));
}

fn activate(u: &[f32], act: Activation) -> Vec<f32> {
    let mut g = vec![0f32; u.len()];
    g.par_chunks_mut(16384)
        .zip(u.par_chunks(16384))
        .for_each(|(g, u)| match act {
            Activation::Relu => g.iter_mut().zip(u).for_each(|(g, u)| *g = u.max(0.0)),
            Activation::GeluErf => kernels::gelu::forward(u, g),
            Activation::GeluTanh => g
                .iter_mut()
                .zip(u)
                .for_each(|(g, u)| *g = simd::gelu_tanh(*u)),
        });
    g
}

/// d/dx of `0.5 x (1 + tanh(c (x + 0.044715 x^3)))`.
fn gelu_tanh_grad(x: f32) -> f32 {
    const C: f32 = 0.797_884_6; // sqrt(2 / pi)
    let th = (C * (x + 0.044_715 * x * x * x)).tanh();
    0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * C * (1.0 + 3.0 * 0.044_715 * x * x)
}

fn activate_backward(u: &[f32], dg: &[f32], act: Activation) -> Vec<f32> {
    let mut du = vec![0f32; u.len()];
    du.par_chunks_mut(16384)
        .zip(u.par_chunks(16384).zip(dg.par_chunks(16384)))
        .for_each(|(d, (u, g))| match act {
            Activation::Relu => d
                .iter_mut()
                .zip(u.iter().zip(g))
                .for_each(|(d, (u, g))| *d = if *u > 0.0 { *g } else { 0.0 }),
            Activation::GeluErf => kernels::gelu::backward(u, g, d),
            Activation::GeluTanh => d
                .iter_mut()
                .zip(u.iter().zip(g))
                .for_each(|(d, (u, g))| *d = g * gelu_tanh_grad(*u)),
        });
    du
}

/// What one encoder layer keeps for backward.
struct LayerSaved {
    x: Vec<f32>,
    /// With only each sentence's first token past the keys and values (a
    /// sentence head's last layer): `x` at those rows. Everything from `q`
    /// on but `k` and `v` then has one row per sentence.
    x_first: Option<Vec<f32>>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    /// `x A^T` of each adapted dense layer, in [`layer_linears`] order.
    z: Vec<Option<Vec<f32>>>,
    probs: attention::Saved,
    ctx: Vec<f32>,
    r1: Vec<f32>,
    h1: Vec<f32>,
    u: Vec<f32>,
    g: Vec<f32>,
    r2: Vec<f32>,
    attn_mask: Mask,
    mask1: Mask,
    mask2: Mask,
}

struct Forward {
    packing: Packing,
    /// MPNet's relative-position bias by distance, for every layer.
    relative_bias: Option<RelativeBias>,
    /// Embeddings before their layer norm.
    emb: Vec<f32>,
    emb_mask: Mask,
    layers: Vec<Option<LayerSaved>>,
    cls: Vec<f32>,
    pooled: Vec<f32>,
    dropped: Vec<f32>,
    /// RoBERTa's dropout of the first token before the head (off for BERT).
    cls_in_mask: Mask,
    cls_mask: Mask,
    logits: Vec<f32>,
}

/// Which parts of the model backward must reach.
struct Reach {
    embeddings: bool,
    /// The lowest encoder layer with a trainable tensor.
    lowest_layer: usize,
}

fn reach(model: &BertClassifier) -> Reach {
    let spec = &model.spec;
    let n = spec.layers.len();
    let p = &model.params;
    let embeddings = p
        .names()
        .iter()
        .any(|name| spec.is_shared_input(name) && p.is_trainable(name));
    let lowest_layer = (0..n)
        .find(|&i| {
            let layer = format!("{}.", spec.layers[i].prefix);
            p.names()
                .iter()
                .any(|name| name.starts_with(&layer) && p.is_trainable(name))
        })
        .unwrap_or(n);
    Reach {
        embeddings,
        lowest_layer: if embeddings { 0 } else { lowest_layer },
    }
}

fn forward(
    model: &BertClassifier,
    wts: &Weights,
    batch: &Packed,
    rng: &mut Rng,
    mut cache: Option<(&mut FrozenCache, &[usize])>,
) -> Result<Forward> {
    let c = &model.config;
    let (h, inter, eps) = (c.hidden_size, c.intermediate_size, c.layer_norm_eps as f32);
    let rows = batch.ids.len();
    let packing = Packing::new(batch.lengths.iter().copied());
    if batch.lengths.is_empty()
        || batch.lengths.contains(&0)
        || packing.rows() != rows
        || batch.type_ids.len() != rows
    {
        return Err(Error::Invalid(
            "malformed packed batch (empty sentence or mismatched lengths)".into(),
        ));
    }
    if let Some(&l) = batch.lengths.iter().find(|&&l| l > model.spec.max_tokens()) {
        return Err(Error::Invalid(format!(
            "sequence of {l} tokens exceeds the {} positions of max_position_embeddings",
            model.spec.max_tokens()
        )));
    }
    if let Some(&id) = batch.ids.iter().find(|&&id| id as usize >= c.vocab_size) {
        return Err(Error::Invalid(format!(
            "token id {id} out of range for a vocabulary of {}",
            c.vocab_size
        )));
    }
    let types = model.spec.embeddings.token_type.is_some();
    if let Some(&t) = batch
        .type_ids
        .iter()
        .find(|&&t| types && t as usize >= c.type_vocab_size)
    {
        return Err(Error::Invalid(format!(
            "token type id {t} out of range ({} types)",
            c.type_vocab_size
        )));
    }
    let frozen = model.frozen_layers().unwrap_or(0);
    let reach = reach(model);
    let spec: &ModelSpec = &model.spec;
    let act = spec.activation;
    // Sites draw their seeds in the graph's order: embeddings, then per
    // trained layer attention, attention output, output; then the head.
    let mut mask = |p: f64, train: bool| Mask::draw(p, train.then_some(&mut *rng));

    // The frozen bottom's output, when the cache holds every sentence's
    // (no mask is drawn below the trained layers, so skipping them leaves
    // the dropout stream as it was).
    let kept = match &cache {
        Some((c, idx)) => c.gather(idx, &batch.lengths)?.map(|x| (c.layer(), x)),
        None => None,
    };
    let first_layer = kept.as_ref().map_or(0, |(l, _)| *l);
    let (emb, emb_mask, mut x) = if let Some((_, x)) = kept {
        (Vec::new(), Mask::draw(0.0, None), x)
    } else {
        // Embeddings, then their dropout (off when layers are frozen).
        let (emb, mut x) = embed(model, wts, batch, &packing);
        let emb_mask = mask(c.hidden_dropout_prob, model.frozen_layers().is_none());
        emb_mask.apply(&mut x);
        (emb, emb_mask, x)
    };

    let dims = Dims {
        hidden: h,
        heads: c.num_attention_heads,
        rows,
        first_only: false,
    };
    let relative_bias = relative_bias(spec, wts);
    let b = packing.sentences();
    let starts = &packing.starts[..b];
    // A sentence head reads only the first token of the last layer, so that
    // layer runs past its keys and values for those rows alone (unless the
    // cache keeps the last layer's every row).
    let last = spec.layers.len().saturating_sub(1);
    let first_only_last = spec.head.pooler.is_some()
        && cache
            .as_ref()
            .is_none_or(|(c, _)| c.layer() != spec.layers.len());
    let mut x_is_first = false;
    let mut layers = Vec::with_capacity(c.num_hidden_layers);
    for (i, l) in spec.layers.iter().enumerate() {
        if i < first_layer {
            layers.push(None);
            continue;
        }
        let train = i >= frozen;
        let first = first_only_last && i == last;
        let d = l.denses().map(|s| Dense::new(wts, &s.name, s.out, s.inp));
        let x_first = first.then(|| packing.first_rows(&x, h));
        let (q_in, qrows) = match &x_first {
            Some(xf) => (&xf[..], b),
            None => (&x[..], rows),
        };
        let first_rows = first.then_some(starts);
        let (q, zq) = d[0].forward(q_in, qrows);
        let (k, zk) = d[1].forward(&x, rows);
        let (v, zv) = d[2].forward(&x, rows);
        let attn_mask = mask(c.attention_probs_dropout_prob, train);
        let mut ctx = vec![0f32; qrows * h];
        let extras = Extras {
            mask: &attn_mask,
            bias: relative_bias.as_ref(),
        };
        let dims = Dims {
            first_only: first,
            ..dims
        };
        let probs = attention::forward(&q, &k, &v, &mut ctx, &packing, dims, extras);
        let (mut r1, za) = d[3].forward(&ctx, qrows);
        let mask1 = mask(c.hidden_dropout_prob, train);
        apply_mask(&mask1, &mut r1, first_rows, h);
        add_into(&mut r1, q_in);
        let mut h1 = r1.clone();
        layer_norm(
            &mut h1,
            wts.get(&l.attn_norm.weight()),
            wts.get(&l.attn_norm.bias()),
            eps,
        );
        let (u, zi) = d[4].forward(&h1, qrows);
        let g = activate(&u, act);
        let (mut r2, zo) = d[5].forward(&g, qrows);
        let mask2 = mask(c.hidden_dropout_prob, train);
        apply_mask(&mask2, &mut r2, first_rows, h);
        add_into(&mut r2, &h1);
        let mut out = r2.clone();
        layer_norm(
            &mut out,
            wts.get(&l.out_norm.weight()),
            wts.get(&l.out_norm.bias()),
            eps,
        );
        debug_assert_eq!(u.len(), qrows * inter);
        let keep = i >= reach.lowest_layer;
        layers.push(keep.then(|| LayerSaved {
            x: std::mem::take(&mut x),
            x_first,
            q,
            k,
            v,
            z: vec![zq, zk, zv, za, zi, zo],
            probs,
            ctx,
            r1,
            h1,
            u,
            g,
            r2,
            attn_mask,
            mask1,
            mask2,
        }));
        x = out;
        x_is_first = first;
        if let Some((c, idx)) = cache.as_mut().filter(|(c, _)| c.layer() == i + 1) {
            c.store(idx, &batch.lengths, &x)?;
        }
    }

    let hd = &spec.head;
    let head_dropout = model.head_dropout();
    let Some(pooler) = &hd.pooler else {
        // A token head: dropout, then the classifier on every token.
        let mut dropped = x;
        let cls_mask = mask(head_dropout, true);
        cls_mask.apply(&mut dropped);
        let (logits, _) =
            Dense::new(wts, &hd.classifier.name, hd.classifier.out, h).forward(&dropped, rows);
        return Ok(Forward {
            packing,
            relative_bias,
            emb,
            emb_mask,
            layers,
            cls: Vec::new(),
            cls_in_mask: Mask::draw(0.0, None),
            pooled: Vec::new(),
            dropped,
            cls_mask,
            logits,
        });
    };
    // Pooler (tanh of a dense layer on each sentence's first token), dropout, classifier.
    let mut cls = if x_is_first {
        x
    } else {
        packing.first_rows(&x, h)
    };
    // RoBERTa's head drops the first token out before its dense layer (the
    // mask's seed is drawn first, as the graph draws it).
    let cls_in_mask = mask(head_dropout, hd.kind.drops_input());
    cls_in_mask.apply(&mut cls);
    let (mut pooled, _) = Dense::new(wts, &pooler.name, h, h).forward(&cls, b);
    pooled.iter_mut().for_each(|v| *v = v.tanh());
    let mut dropped = pooled.clone();
    let cls_mask = mask(head_dropout, true);
    cls_mask.apply(&mut dropped);
    let (logits, _) =
        Dense::new(wts, &hd.classifier.name, hd.classifier.out, h).forward(&dropped, b);
    Ok(Forward {
        packing,
        relative_bias,
        emb,
        emb_mask,
        layers,
        cls,
        cls_in_mask,
        pooled,
        dropped,
        cls_mask,
        logits,
    })
}

/// Word + token type (none for MPNet) + position embeddings, before and
/// after their layer norm.
fn embed(
    model: &BertClassifier,
    wts: &Weights,
    batch: &Packed,
    packing: &Packing,
) -> (Vec<f32>, Vec<f32>) {
    let c = &model.config;
    let (h, eps) = (c.hidden_size, c.layer_norm_eps as f32);
    let spec = &model.spec;
    let rows = batch.ids.len();
    let e = &spec.embeddings;
    let (word, typ, pos) = (
        wts.get(&e.word),
        e.token_type.as_deref().map(|t| wts.get(t)),
        wts.get(&e.position),
    );
    let mut emb = vec![0f32; rows * h];
    let offset = spec.position_offset;
    for s in 0..packing.sentences() {
        for (p, r) in (packing.starts[s]..packing.starts[s + 1]).enumerate() {
            let p = p + offset;
            let (id, ty) = (batch.ids[r] as usize, batch.type_ids[r] as usize);
            let out = &mut emb[r * h..(r + 1) * h];
            let (w, ps) = (&word[id * h..(id + 1) * h], &pos[p * h..(p + 1) * h]);
            // Summed as word + type + position, in that order (the engine's
            // and the graph's order, and what earlier runs' bits depend on).
            match typ {
                Some(typ) => out
                    .iter_mut()
                    .zip(w)
                    .zip(&typ[ty * h..(ty + 1) * h])
                    .zip(ps)
                    .for_each(|(((o, a), b), c)| *o = a + b + c),
                None => out
                    .iter_mut()
                    .zip(w)
                    .zip(ps)
                    .for_each(|((o, a), c)| *o = a + c),
            }
        }
    }
    let mut x = emb.clone();
    layer_norm(
        &mut x,
        wts.get(&e.norm.weight()),
        wts.get(&e.norm.bias()),
        eps,
    );
    (emb, x)
}

fn relative_bias(spec: &ModelSpec, wts: &Weights) -> Option<RelativeBias> {
    let r = spec.relative_bias.as_ref()?;
    Some(RelativeBias::new(
        wts.get(&r.name),
        spec.heads,
        spec.max_tokens(),
    ))
}

/// Class-weighted cross-entropy and its gradient with respect to the logits:
/// `loss = sum_i w[y_i] (logsumexp_i - z_i[y_i]) / sum_i w[y_i]`,
/// `dz_i = w[y_i] / sum w (softmax(z_i) - onehot(y_i))`.
fn weighted_cross_entropy(
    logits: &[f32],
    labels: &[u32],
    weights: &[f32],
    k: usize,
) -> (f64, Vec<f32>) {
    let total: f64 = labels.iter().map(|&y| weights[y as usize] as f64).sum();
    let mut loss = 0f64;
    let mut grad = vec![0f32; logits.len()];
    for ((z, g), &y) in logits
        .chunks_exact(k)
        .zip(grad.chunks_exact_mut(k))
        .zip(labels)
    {
        let max = z.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
        let sum: f64 = z.iter().map(|v| ((v - max) as f64).exp()).sum();
        let w = weights[y as usize] as f64;
        loss += w * (sum.ln() + max as f64 - z[y as usize] as f64);
        for (j, (g, v)) in g.iter_mut().zip(z).enumerate() {
            let p = ((v - max) as f64).exp() / sum;
            *g = (w / total * (p - if j == y as usize { 1.0 } else { 0.0 })) as f32;
        }
    }
    (loss / total, grad)
}

/// [`weighted_cross_entropy`] over the tokens that carry a label (those
/// marked [`IGNORE`], such as `[CLS]` and `[SEP]`, get no loss and no
/// gradient), as transformers' token classifiers compute it with -100.
fn token_cross_entropy(
    logits: &[f32],
    labels: &[u32],
    weights: &[f32],
    k: usize,
) -> Result<(f64, Vec<f32>)> {
    let rows: Vec<usize> = (0..labels.len()).filter(|&r| labels[r] != IGNORE).collect();
    if rows.is_empty() {
        return Err(Error::Invalid(
            "a training batch without labelled tokens".into(),
        ));
    }
    let picked: Vec<f32> = rows
        .iter()
        .flat_map(|&r| logits[r * k..(r + 1) * k].iter().copied())
        .collect();
    let ys: Vec<u32> = rows.iter().map(|&r| labels[r]).collect();
    let (loss, g) = weighted_cross_entropy(&picked, &ys, weights, k);
    let mut grad = vec![0f32; logits.len()];
    for (i, &r) in rows.iter().enumerate() {
        grad[r * k..(r + 1) * k].copy_from_slice(&g[i * k..(i + 1) * k]);
    }
    Ok((loss, grad))
}

fn backward(
    model: &BertClassifier,
    wts: &Weights,
    batch: &Packed,
    fwd: &Forward,
    dlogits: &[f32],
    grads: &mut Grads,
) {
    let h = model.config.hidden_size;
    let rows = batch.ids.len();
    let hd = &model.spec.head;
    let mut dx = vec![0f32; rows * h];
    match &hd.pooler {
        None => {
            // Token head: classifier on every token, then its dropout.
            Dense::new(wts, &hd.classifier.name, hd.classifier.out, h).backward(
                wts,
                &fwd.dropped,
                None,
                dlogits,
                rows,
                Some((&mut dx, false)),
                grads,
            );
            fwd.cls_mask.apply(&mut dx);
        }
        Some(pooler) => {
            let dcls = sentence_head_backward(wts, pooler, hd, fwd, dlogits, h, grads);
            // The last layer's gradient: one row per sentence when that layer
            // ran for the first tokens only, else at their packed rows.
            let last = fwd.layers.last().and_then(Option::as_ref);
            if last.is_some_and(|l| l.x_first.is_some()) {
                dx = dcls;
            } else {
                fwd.packing.add_to_first_rows(&dcls, h, &mut dx);
            }
        }
    }
    encoder_backward(model, wts, batch, fwd, dx, grads);
}

/// Classifier, dropout, tanh, pooler and the head's input dropout: the
/// gradient of each sentence's first token, `[sentences, hidden]`.
fn sentence_head_backward(
    wts: &Weights,
    pooler: &crate::model::spec::DenseSpec,
    hd: &crate::model::spec::HeadSpec,
    fwd: &Forward,
    dlogits: &[f32],
    h: usize,
    grads: &mut Grads,
) -> Vec<f32> {
    let b = fwd.packing.sentences();
    let mut dpooled = vec![0f32; b * h];
    Dense::new(wts, &hd.classifier.name, hd.classifier.out, h).backward(
        wts,
        &fwd.dropped,
        None,
        dlogits,
        b,
        Some((&mut dpooled, false)),
        grads,
    );
    fwd.cls_mask.apply(&mut dpooled);
    dpooled
        .iter_mut()
        .zip(&fwd.pooled)
        .for_each(|(d, t)| *d *= 1.0 - t * t);
    let mut dcls = vec![0f32; b * h];
    Dense::new(wts, &pooler.name, h, h).backward(
        wts,
        &fwd.cls,
        None,
        &dpooled,
        b,
        Some((&mut dcls, false)),
        grads,
    );
    // The head's input dropout, applied to `cls` in sentence order.
    fwd.cls_in_mask.apply(&mut dcls);
    dcls
}

/// Backward through the encoder layers and the embeddings from `dx`, the
/// gradient of the last hidden layer.
fn encoder_backward(
    model: &BertClassifier,
    wts: &Weights,
    batch: &Packed,
    fwd: &Forward,
    mut dx: Vec<f32>,
    grads: &mut Grads,
) {
    let c = &model.config;
    let (h, inter, eps) = (c.hidden_size, c.intermediate_size, c.layer_norm_eps as f32);
    let rows = batch.ids.len();
    let b = fwd.packing.sentences();
    let reach = reach(model);
    let spec: &ModelSpec = &model.spec;
    let act = spec.activation;
    let dims = Dims {
        hidden: h,
        heads: c.num_attention_heads,
        rows,
        first_only: false,
    };
    let starts = &fwd.packing.starts[..b];
    // The shared relative-position table's gradient, summed over the layers
    // (by distance until the end).
    let bias_spec = spec
        .relative_bias
        .as_ref()
        .filter(|r| wts.trainable(&r.name));
    let mut bias_grad: Option<Vec<f32>> = None;
    for i in (reach.lowest_layer..c.num_hidden_layers).rev() {
        let Some(s) = &fwd.layers[i] else { break };
        let l = &spec.layers[i];
        let d = l.denses().map(|s| Dense::new(wts, &s.name, s.out, s.inp));
        let need_dx = reach.embeddings || i > reach.lowest_layer;
        // Rows from the queries on: one per sentence in a first-tokens-only layer.
        let first = s.x_first.is_some();
        let qrows = if first { b } else { rows };
        let first_rows = first.then_some(starts);
        let dims = Dims {
            first_only: first,
            ..dims
        };
        let norm_grads = |grads: &mut Grads, name: &str, dw: Vec<f32>, db: Vec<f32>| {
            for (suffix, g) in [("weight", dw), ("bias", db)] {
                let full = format!("{name}.{suffix}");
                if wts.trainable(&full) {
                    grads.add(full, g);
                }
            }
        };
        // Output layer norm, residual, dropout, dense, activation, dense.
        let ln2 = &l.out_norm;
        let (dr2, dw, db) = layer_norm_backward(&s.r2, &dx, wts.get(&ln2.weight()), eps);
        norm_grads(grads, &ln2.name, dw, db);
        let mut dh1 = dr2.clone();
        let mut dout = dr2;
        apply_mask(&s.mask2, &mut dout, first_rows, h);
        let mut dg = vec![0f32; qrows * inter];
        d[5].backward(
            wts,
            &s.g,
            s.z[5].as_deref(),
            &dout,
            qrows,
            Some((&mut dg, false)),
            grads,
        );
        let du = activate_backward(&s.u, &dg, act);
        d[4].backward(
            wts,
            &s.h1,
            s.z[4].as_deref(),
            &du,
            qrows,
            Some((&mut dh1, true)),
            grads,
        );
        // Attention output layer norm, residual, dropout, dense.
        let ln1 = &l.attn_norm;
        let (dr1, dw, db) = layer_norm_backward(&s.r1, &dh1, wts.get(&ln1.weight()), eps);
        norm_grads(grads, &ln1.name, dw, db);
        // The residual's share of the input gradient (the queries' rows).
        let mut dquery_in = if need_dx { dr1.clone() } else { Vec::new() };
        let mut da = dr1;
        apply_mask(&s.mask1, &mut da, first_rows, h);
        let mut dctx = vec![0f32; qrows * h];
        d[3].backward(
            wts,
            &s.ctx,
            s.z[3].as_deref(),
            &da,
            qrows,
            Some((&mut dctx, false)),
            grads,
        );
        let (mut dq, mut dk, mut dv) = (
            vec![0f32; qrows * h],
            vec![0f32; rows * h],
            vec![0f32; rows * h],
        );
        let extras = Extras {
            mask: &s.attn_mask,
            bias: fwd.relative_bias.as_ref().filter(|_| bias_spec.is_some()),
        };
        let layer_bias_grad = attention::backward(
            &s.q,
            &s.k,
            &s.v,
            &s.probs,
            &dctx,
            &mut dq,
            &mut dk,
            &mut dv,
            &fwd.packing,
            dims,
            extras,
        );
        if let Some(g) = layer_bias_grad {
            match &mut bias_grad {
                Some(acc) => acc.iter_mut().zip(g).for_each(|(a, v)| *a += v),
                None => bias_grad = Some(g),
            }
        }
        let query_x = s.x_first.as_deref().unwrap_or(&s.x);
        let dxs = need_dx.then_some((&mut dquery_in[..], true));
        d[0].backward(wts, query_x, s.z[0].as_deref(), &dq, qrows, dxs, grads);
        let mut dinput = match (need_dx, first) {
            (true, true) => {
                let mut all = vec![0f32; rows * h];
                fwd.packing.add_to_first_rows(&dquery_in, h, &mut all);
                all
            }
            _ => dquery_in,
        };
        for (j, dy) in [(1, &dk), (2, &dv)] {
            let dxs = need_dx.then_some((&mut dinput[..], true));
            d[j].backward(wts, &s.x, s.z[j].as_deref(), dy, rows, dxs, grads);
        }
        dx = dinput;
    }
    if let (Some(r), Some(b), Some(g)) = (bias_spec, &fwd.relative_bias, bias_grad) {
        grads.add(r.name.clone(), b.table_grad(&g, r.buckets));
    }

    if !reach.embeddings {
        return;
    }
    // Embedding dropout, layer norm, then the three tables.
    fwd.emb_mask.apply(&mut dx);
    let e = &spec.embeddings;
    let (de, dw, db) = layer_norm_backward(&fwd.emb, &dx, wts.get(&e.norm.weight()), eps);
    for (name, g) in [(e.norm.weight(), dw), (e.norm.bias(), db)] {
        if wts.trainable(&name) {
            grads.add(name, g);
        }
    }
    let mut tables = vec![(&e.word, spec.vocab, &batch.ids)];
    if let Some(t) = &e.token_type {
        tables.push((t, spec.type_vocab, &batch.type_ids));
    }
    for (name, n, ids) in tables {
        if wts.trainable(name) {
            let mut g = vec![0f32; n * h];
            for (r, &id) in ids.iter().enumerate() {
                g[id as usize * h..(id as usize + 1) * h]
                    .iter_mut()
                    .zip(&de[r * h..(r + 1) * h])
                    .for_each(|(a, v)| *a += v);
            }
            grads.add(name.to_string(), g);
        }
    }
    let name = &e.position;
    if wts.trainable(name) {
        let mut g = vec![0f32; spec.max_positions * h];
        for s in 0..b {
            for (p, r) in (fwd.packing.starts[s]..fwd.packing.starts[s + 1]).enumerate() {
                let p = p + spec.position_offset;
                g[p * h..(p + 1) * h]
                    .iter_mut()
                    .zip(&de[r * h..(r + 1) * h])
                    .for_each(|(a, v)| *a += v);
            }
        }
        grads.add(name.to_string(), g);
    }
}
