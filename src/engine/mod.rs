//! The inference engine: the same BERT classifier as
//! [`crate::model::BertClassifier`]'s inference path, run over plain buffers
//! with the work arranged for a CPU:
//!
//! - sentences are packed back to back with no padding (dense layers see
//!   only real tokens; attention runs per sentence, [`attention`]);
//! - query, key and value are one matrix product; LoRA adapters are merged
//!   into their weights once;
//! - a sentence classifier's last layer runs past its keys and values only
//!   for each sentence's first token, the one the head reads (the rest of
//!   a layer is three quarters of its work: 6% of a 12-layer model's, 12%
//!   of a 6-layer one's);
//! - bias + GELU and residual + layer norm are single passes ([`simd`]);
//! - matrix products in f32, or in bf16 with f32 sums ([`dense`], [`bf16`]).
//!
//! The candle model stays the reference: the tests check that the two
//! agree (training has its own hand-written pass, `crate::train::native`,
//! checked against the same candle model).

mod amx;
pub(crate) mod attention;
pub(crate) mod bf16;
mod dense;
mod f32_kernel;
pub(crate) mod head_matmul;
pub(crate) mod simd;
mod tiles;

pub use attention::{Packing, RelativeBias};
pub use dense::{gemm_f32, gemm_strided, Dense, Precision, View};

use crate::batch::Encoded;
use crate::model::spec::{DenseSpec, HeadKind, NormSpec};
use crate::model::BertClassifier;
use crate::{Error, Result};
use rayon::prelude::*;
use simd::Activation;

struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

struct Layer {
    qkv: Dense,
    attn_out: Dense,
    attn_norm: Norm,
    intermediate: Dense,
    output: Dense,
    out_norm: Norm,
}

pub struct Engine {
    hidden: usize,
    heads: usize,
    eps: f32,
    act: Activation,
    /// The longest sentence the position table numbers (offset deducted).
    max_positions: usize,
    position_offset: usize,
    type_vocab: usize,
    vocab: usize,
    word: Vec<f32>,
    position: Vec<f32>,
    /// `None` for MPNet: token types are ignored.
    token_type: Option<Vec<f32>>,
    relative_bias: Option<RelativeBias>,
    embed_norm: Norm,
    layers: Vec<Layer>,
    head: HeadKind,
    /// `None` for a token classifier.
    pooler: Option<Dense>,
    classifier: Dense,
    precision: Precision,
}

/// Which rows of the last layer [`Engine::encode`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rows {
    /// Every token's (a token classifier).
    All,
    /// Each sentence's first token's (a sentence classifier reads only its
    /// `[CLS]`).
    FirstOfEach,
}

/// Rows per task of the element-wise passes.
const ROWS_PER_TASK: usize = 32;

impl Engine {
    /// Copy (and for bf16, round and pack) the model's weights.
    pub fn new(model: &BertClassifier, precision: Precision) -> Result<Self> {
        let spec = &model.spec;
        let h = spec.hidden;
        let p = &model.params;
        let lora_scale = model.lora().map(|l| l.alpha / l.r as f64);
        // A dense layer's weight with any LoRA adapter merged: W + s * B A.
        let weight = |d: &DenseSpec| -> Result<Vec<f32>> {
            let mut w = p.tensor(&d.weight());
            if let (Some(s), true) = (lora_scale, p.contains(&d.lora_a())) {
                let a = p.tensor(&d.lora_a());
                let b = p.tensor(&d.lora_b());
                w = (w + (b.matmul(&a)? * s)?)?;
            }
            Ok(w.flatten_all()?.to_vec1::<f32>()?)
        };
        let vec = |name: &str| -> Result<Vec<f32>> {
            Ok(p.tensor(name).flatten_all()?.to_vec1::<f32>()?)
        };
        let norm = |n: &NormSpec| -> Result<Norm> {
            Ok(Norm {
                weight: vec(&n.weight())?,
                bias: vec(&n.bias())?,
            })
        };
        let dense = |d: &DenseSpec, prec: Precision| -> Result<Dense> {
            Ok(Dense::new(weight(d)?, vec(&d.bias())?, d.out, d.inp, prec))
        };
        let mut layers = Vec::with_capacity(spec.layers.len());
        for l in &spec.layers {
            // Query, key and value as one [3h, h] product.
            let mut qkv_w = weight(&l.query)?;
            qkv_w.extend(weight(&l.key)?);
            qkv_w.extend(weight(&l.value)?);
            let mut qkv_b = vec(&l.query.bias())?;
            qkv_b.extend(vec(&l.key.bias())?);
            qkv_b.extend(vec(&l.value.bias())?);
            layers.push(Layer {
                qkv: Dense::new(qkv_w, qkv_b, 3 * h, h, precision),
                attn_out: dense(&l.attn_out, precision)?,
                attn_norm: norm(&l.attn_norm)?,
                intermediate: dense(&l.intermediate, precision)?,
                output: dense(&l.output, precision)?,
                out_norm: norm(&l.out_norm)?,
            });
        }
        let e = &spec.embeddings;
        // The head is a few thousand multiply-adds a sentence (a token head
        // a few hundred a token): kept in f32.
        let pooler = spec
            .head
            .pooler
            .as_ref()
            .map(|d| dense(d, Precision::F32))
            .transpose()?;
        let classifier = dense(&spec.head.classifier, Precision::F32)?;
        Ok(Engine {
            hidden: h,
            heads: spec.heads,
            eps: spec.eps as f32,
            act: spec.activation,
            max_positions: spec.max_tokens(),
            position_offset: spec.position_offset,
            type_vocab: spec.type_vocab,
            vocab: spec.vocab,
            word: vec(&e.word)?,
            position: vec(&e.position)?,
            token_type: e.token_type.as_deref().map(vec).transpose()?,
            relative_bias: match &spec.relative_bias {
                Some(r) => Some(RelativeBias::new(
                    &vec(&r.name)?,
                    spec.heads,
                    spec.max_tokens(),
                )),
                None => None,
            },
            embed_norm: norm(&e.norm)?,
            layers,
            head: spec.head.kind,
            pooler,
            classifier,
            precision,
        })
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Whether this model labels tokens ([`Engine::token_logits`]) rather
    /// than sentences ([`Engine::logits`]).
    pub fn is_token_classifier(&self) -> bool {
        self.head == HeadKind::Token
    }

    /// Logits `[sentences][labels]` for a batch of tokenised sentences (of
    /// any lengths: nothing is padded). A sentence classifier only.
    pub fn logits(&self, items: &[&Encoded]) -> Result<Vec<Vec<f32>>> {
        let h = self.hidden;
        let Some(pooler) = &self.pooler else {
            return Err(Error::Invalid(
                "this is a token classifier: it labels tokens, not sentences".into(),
            ));
        };
        // [CLS] of each sentence -> pooler (tanh) -> classifier.
        let (cls, _) = self.encode(items, Rows::FirstOfEach)?;
        let b = items.len();
        let mut pooled = vec![0f32; b * h];
        pooler.forward(&cls, b, &mut pooled, true);
        pooled.iter_mut().for_each(|v| *v = v.tanh());
        let k = self.classifier.n;
        let mut logits = vec![0f32; b * k];
        self.classifier.forward(&pooled, b, &mut logits, true);
        Ok(logits.chunks_exact(k).map(<[f32]>::to_vec).collect())
    }

    /// Logits of every token, `[sentence][token * labels]` (row-major), for a
    /// token classifier.
    pub fn token_logits(&self, items: &[&Encoded]) -> Result<Vec<Vec<f32>>> {
        if self.head != HeadKind::Token {
            return Err(Error::Invalid(
                "this is a sentence classifier: it has no token head".into(),
            ));
        }
        let (x, packing) = self.encode(items, Rows::All)?;
        let k = self.classifier.n;
        let rows = packing.rows();
        let mut logits = vec![0f32; rows * k];
        self.classifier.forward(&x, rows, &mut logits, true);
        Ok((0..items.len())
            .map(|s| logits[packing.starts[s] * k..packing.starts[s + 1] * k].to_vec())
            .collect())
    }

    /// The last hidden layer of sentences packed back to back: `[rows,
    /// hidden]` for [`Rows::All`], `[sentences, hidden]` for
    /// [`Rows::FirstOfEach`].
    fn encode(&self, items: &[&Encoded], out: Rows) -> Result<(Vec<f32>, Packing)> {
        let h = self.hidden;
        for e in items {
            if e.ids.is_empty() {
                return Err(Error::Invalid("empty token sequence".into()));
            }
            if e.ids.len() > self.max_positions {
                return Err(Error::Invalid(format!(
                    "sequence of {} tokens exceeds the {} positions of max_position_embeddings",
                    e.ids.len(),
                    self.max_positions
                )));
            }
            if let Some(id) = e.ids.iter().find(|&&id| id as usize >= self.vocab) {
                return Err(Error::Invalid(format!(
                    "token id {id} is outside the vocabulary of {}",
                    self.vocab
                )));
            }
            if let Some(t) = e
                .type_ids
                .iter()
                .find(|&&t| self.token_type.is_some() && t as usize >= self.type_vocab)
            {
                return Err(Error::Invalid(format!(
                    "token type {t} is outside the model's {} types",
                    self.type_vocab
                )));
            }
        }
        let packing = Packing::new(items.iter().map(|e| e.ids.len()));
        let rows = packing.rows();
        let mut x = self.embed(items, rows);
        let m = self.layers.first().map_or(0, |l| l.intermediate.n);
        let mut qkv = vec![0f32; rows * 3 * h];
        let mut ctx = vec![0f32; rows * h];
        let mut y = vec![0f32; rows * h];
        let mut inter = vec![0f32; rows * m];
        let bias = self.relative_bias.as_ref();
        let last = self.layers.len().saturating_sub(1);
        for (i, l) in self.layers.iter().enumerate() {
            l.qkv.forward(&x, rows, &mut qkv, true);
            if i == last && out == Rows::FirstOfEach {
                // Only the first token's output is read: every token's key
                // and value still count, but the rest of the layer runs on
                // one row per sentence.
                let b = packing.sentences();
                let ctx = &mut ctx[..b * h];
                attention::attention_first(&qkv, ctx, &packing, h, self.heads, bias);
                let mut first = packing.first_rows(&x, h);
                self.finish_layer(l, ctx, &mut first, &mut y[..b * h], &mut inter[..b * m]);
                return Ok((first, packing));
            }
            attention::attention(&qkv, &mut ctx, &packing, h, self.heads, bias);
            self.finish_layer(l, &ctx, &mut x, &mut y, &mut inter);
        }
        if out == Rows::FirstOfEach {
            // No layers: the embeddings' first rows.
            x = packing.first_rows(&x, h);
        }
        Ok((x, packing))
    }

    /// A layer after its attention: `x <- LN(h + FFN(h))` with
    /// `h = LN(x + ctx W_o)`, over the rows of `x` (`y` and `inter` are
    /// scratch of the same rows).
    fn finish_layer(
        &self,
        l: &Layer,
        ctx: &[f32],
        x: &mut [f32],
        y: &mut [f32],
        inter: &mut [f32],
    ) {
        let rows = x.len() / self.hidden;
        let m = l.intermediate.n;
        l.attn_out.forward(ctx, rows, y, true);
        self.add_norm(y, x, &l.attn_norm);
        l.intermediate.forward(y, rows, inter, false);
        inter
            .par_chunks_mut(ROWS_PER_TASK * m)
            .for_each(|c| simd::bias_activation(c, &l.intermediate.bias, self.act));
        l.output.forward(inter, rows, x, true);
        self.add_norm(x, y, &l.out_norm);
    }

    /// Word + position (+ token-type) embeddings, layer-normed: `[rows, hidden]`.
    fn embed(&self, items: &[&Encoded], rows: usize) -> Vec<f32> {
        let h = self.hidden;
        let mut x = vec![0f32; rows * h];
        let mut r = 0;
        for e in items {
            for (pos, (&id, &ty)) in e.ids.iter().zip(&e.type_ids).enumerate() {
                let dst = &mut x[r * h..(r + 1) * h];
                let w = &self.word[id as usize * h..(id as usize + 1) * h];
                let pos = pos + self.position_offset;
                let p = &self.position[pos * h..(pos + 1) * h];
                match &self.token_type {
                    Some(types) => {
                        let t = &types[ty as usize * h..(ty as usize + 1) * h];
                        for i in 0..h {
                            dst[i] = w[i] + t[i] + p[i];
                        }
                    }
                    None => {
                        for i in 0..h {
                            dst[i] = w[i] + p[i];
                        }
                    }
                }
                r += 1;
            }
        }
        x.par_chunks_mut(ROWS_PER_TASK * h).for_each(|c| {
            simd::layer_norm(c, &self.embed_norm.weight, &self.embed_norm.bias, self.eps)
        });
        x
    }

    /// `y <- LayerNorm(y + x)`.
    fn add_norm(&self, y: &mut [f32], x: &[f32], n: &Norm) {
        let h = self.hidden;
        y.par_chunks_mut(ROWS_PER_TASK * h)
            .zip(x.par_chunks(ROWS_PER_TASK * h))
            .for_each(|(a, b)| simd::add_layer_norm(a, b, &n.weight, &n.bias, self.eps));
    }
}
