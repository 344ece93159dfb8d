//! BERT encoder + pooler + classifier, following transformers'
//! `modeling_bert.py` (BertEmbeddings, BertSelfAttention, BertSelfOutput,
//! BertIntermediate, BertOutput, BertPooler, BertForSequenceClassification).
//! Built from candle's differentiable ops only (composed softmax and layer
//! norm; candle's GELU), with real dropout when `forward_t(.., train)`.
//! This graph is the reference the inference engine and the native training
//! step are tested against; nothing in the product runs it.

use super::dropout::Mask;
use super::linear::Linear;
use super::spec::{Activation, DenseSpec, ModelSpec, NormSpec, RelativeBiasSpec, TensorKind};
use super::{BertConfig, Init, LayerNorm, ParamStore};
use crate::rng::Rng;
use crate::Result;
use candle_core::{DType, Device, Tensor};

struct Embeddings {
    word: Tensor,
    position: Tensor,
    token_type: Option<Tensor>,
    norm: LayerNorm,
    /// MPNet's `[buckets, heads]` relative-position table, read by every layer.
    relative_bias: Option<Tensor>,
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_norm: LayerNorm,
}

pub struct BertClassifier {
    pub config: BertConfig,
    /// The typed description every executor reads.
    pub spec: ModelSpec,
    pub params: ParamStore,
    embeddings: Embeddings,
    layers: Vec<Layer>,
    /// `None` for a token classifier.
    pooler: Option<Linear>,
    classifier: Linear,
    /// Dropout probabilities (the masks come from the caller's stream).
    hidden_dropout: f64,
    attn_dropout: f64,
    head_dropout: f64,
    /// Encoder layers (from the bottom, embeddings included) that are frozen:
    /// run without dropout or gradient even when training.
    frozen_layers: Option<usize>,
    lora: Option<LoraConfig>,
}

/// The model's modules, wired to the store's tensors (frozen ones detached).
fn modules(
    p: &ParamStore,
    spec: &ModelSpec,
    lora_scale: f64,
) -> (Embeddings, Vec<Layer>, Option<Linear>, Linear) {
    let eps = spec.eps;
    let e = &spec.embeddings;
    let embeddings = Embeddings {
        word: p.tensor(&e.word),
        position: p.tensor(&e.position),
        token_type: e.token_type.as_ref().map(|t| p.tensor(t)),
        norm: built_norm(p, &e.norm, eps),
        relative_bias: spec.relative_bias.as_ref().map(|r| p.tensor(&r.name)),
    };
    let layers = spec
        .layers
        .iter()
        .map(|l| Layer {
            query: built_linear(p, &l.query, lora_scale),
            key: built_linear(p, &l.key, lora_scale),
            value: built_linear(p, &l.value, lora_scale),
            attn_out: built_linear(p, &l.attn_out, lora_scale),
            attn_norm: built_norm(p, &l.attn_norm, eps),
            intermediate: built_linear(p, &l.intermediate, lora_scale),
            output: built_linear(p, &l.output, lora_scale),
            out_norm: built_norm(p, &l.out_norm, eps),
        })
        .collect();
    let pooler = spec
        .head
        .pooler
        .as_ref()
        .map(|d| built_linear(p, d, lora_scale));
    let classifier = built_linear(p, &spec.head.classifier, lora_scale);
    (embeddings, layers, pooler, classifier)
}

/// LoRA settings (PEFT's `r`, `lora_alpha`, `target_modules`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoraConfig {
    pub r: usize,
    pub alpha: f64,
    /// Module names as PEFT matches them: `query`, `key`, `value`, `dense`
    /// (every dense layer inside the encoder layers).
    pub targets: Vec<String>,
}

impl LoraConfig {
    fn targets_module(&self, name: &str) -> bool {
        let last = name.rsplit('.').next().unwrap_or(name);
        self.targets.iter().any(|t| t == last)
    }
}

fn built_linear(p: &ParamStore, d: &DenseSpec, lora_scale: f64) -> Linear {
    let mut l = Linear::new(p.tensor(&d.weight()), p.tensor(&d.bias()));
    if p.contains(&d.lora_a()) {
        l.lora = Some(super::linear::Lora {
            a: p.tensor(&d.lora_a()),
            b: p.tensor(&d.lora_b()),
            scale: lora_scale,
        });
    }
    l
}

fn built_norm(p: &ParamStore, n: &NormSpec, eps: f64) -> LayerNorm {
    LayerNorm::new(p.tensor(&n.weight()), p.tensor(&n.bias()), eps)
}

impl BertClassifier {
    /// A freshly initialised model (transformers' `_init_weights`: normal(0,
    /// initializer_range) for weights, zeros for biases, ones for LayerNorm
    /// scales), every draw from `seed`.
    pub fn new(config: &BertConfig, num_labels: usize, seed: u64, device: &Device) -> Result<Self> {
        Self::build(config, num_labels, seed, device, false)
    }

    /// The same model with its random draws deferred, for loading weights
    /// into: call `params.draw_pending()` after loading, and whatever the
    /// files lacked gets exactly the values [`BertClassifier::new`] gives.
    pub fn new_for_loading(
        config: &BertConfig,
        num_labels: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        Self::build(config, num_labels, seed, device, true)
    }

    fn build(
        config: &BertConfig,
        num_labels: usize,
        seed: u64,
        device: &Device,
        defer: bool,
    ) -> Result<Self> {
        config.validate().map_err(crate::Error::Invalid)?;
        let c = config;
        let std = c
            .extra
            .get("initializer_range")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.02) as f32;
        let spec = ModelSpec::new(c, num_labels).map_err(crate::Error::Invalid)?;
        let mut rng = Rng::new(seed);
        let mut p = ParamStore::new(rng.next_u64(), device.clone());
        if defer {
            p.defer_random_init();
        }
        for (name, shape, kind) in spec.tensors() {
            let init = match kind {
                TensorKind::Weight => Init::Normal(std),
                TensorKind::Bias => Init::Zeros,
                TensorKind::Scale => Init::Ones,
            };
            p.add(&name, &shape, init)?;
        }
        let (embeddings, layers, pooler, classifier) = modules(&p, &spec, 1.0);
        Ok(BertClassifier {
            config: config.clone(),
            spec,
            params: p,
            embeddings,
            layers,
            pooler,
            classifier,
            hidden_dropout: c.hidden_dropout_prob,
            attn_dropout: c.attention_probs_dropout_prob,
            head_dropout: c.classifier_dropout.unwrap_or(c.hidden_dropout_prob),
            frozen_layers: None,
            lora: None,
        })
    }

    /// Rebuild the modules from the parameter store, so that frozen tensors
    /// are used detached and new adapter tensors are wired in.
    fn rebuild(&mut self) {
        let p = &self.params;
        let scale = self
            .lora
            .as_ref()
            .map(|l| l.alpha / l.r as f64)
            .unwrap_or(1.0);
        (self.embeddings, self.layers, self.pooler, self.classifier) =
            modules(p, &self.spec, scale);
    }

    /// Add LoRA adapters to the targeted dense layers of every encoder layer
    /// and train only them and the classifier (PEFT's LoRA with
    /// `modules_to_save=["classifier"]`). A starts uniform in +-1/sqrt(in)
    /// (PEFT's Kaiming-uniform bound), B at zero, so the model's output is
    /// unchanged until training moves B.
    pub fn add_lora(&mut self, cfg: &LoraConfig) -> Result<()> {
        if cfg.r == 0 || cfg.targets.is_empty() {
            return Err(crate::Error::Invalid(
                "LoRA needs --lora-r > 0 and at least one target module".into(),
            ));
        }
        let mut hit = 0;
        for l in &self.spec.layers {
            for d in l.denses() {
                if cfg.targets_module(&d.name) {
                    self.params.add(
                        &d.lora_a(),
                        &[cfg.r, d.inp],
                        Init::Uniform(1.0 / (d.inp as f32).sqrt()),
                    )?;
                    self.params.add(&d.lora_b(), &[d.out, cfg.r], Init::Zeros)?;
                    hit += 1;
                }
            }
        }
        if hit == 0 {
            let mut names: Vec<&str> = Vec::new();
            for d in self.spec.layers.iter().flat_map(|l| l.denses()) {
                let last = d.name.rsplit('.').next().unwrap_or(&d.name);
                if !names.contains(&last) {
                    names.push(last);
                }
            }
            return Err(crate::Error::Invalid(format!(
                "--lora-targets {} match no module of this {} model (its modules: {})",
                cfg.targets.join(","),
                self.spec.family.model_type(),
                names.join(", ")
            )));
        }
        self.lora = Some(cfg.clone());
        self.frozen_layers = None;
        self.params
            .set_trainable(|n| n.contains(".lora_") || n.starts_with("classifier."));
        self.rebuild();
        Ok(())
    }

    pub fn lora(&self) -> Option<&LoraConfig> {
        self.lora.as_ref()
    }

    pub fn num_labels(&self) -> usize {
        self.spec.num_labels
    }

    pub fn device(&self) -> &Device {
        self.params.device()
    }

    /// Train only the top `k` encoder layers, the pooler and the classifier
    /// (`None`: everything). The frozen bottom runs as at inference and its
    /// output is detached, so backward stops there and costs nothing.
    pub fn set_trainable_layers(&mut self, k: Option<usize>) {
        let n = self.spec.layers.len();
        self.frozen_layers = k.map(|k| n.saturating_sub(k));
        let frozen = self.frozen_layers;
        let spec = &self.spec;
        let in_layer = |name: &str, l: &super::spec::LayerSpec| {
            name.strip_prefix(&l.prefix)
                .is_some_and(|rest| rest.starts_with('.'))
        };
        self.params.set_trainable(|name| match frozen {
            None => true,
            Some(f) => match spec.layers.iter().position(|l| in_layer(name, l)) {
                Some(i) => i >= f,
                None => !spec.is_shared_input(name),
            },
        });
        self.rebuild();
    }

    pub fn frozen_layers(&self) -> Option<usize> {
        self.frozen_layers
    }

    /// The head's dropout probability (`classifier_dropout`, else the hidden one).
    pub(crate) fn head_dropout(&self) -> f64 {
        self.head_dropout
    }

    /// Logits for token ids, token type ids and attention mask, all
    /// `[batch, seq]` u32 with padding on the right: `[batch, num_labels]`
    /// for a sentence classifier, `[batch, seq, num_labels]` for a token
    /// classifier (rows past a sequence's length are padding).
    /// `dropout`: `None` for inference; in training, the stream the masks'
    /// seeds are drawn from, in the native step's order of sites and with
    /// its element numbering ([`crate::model::dropout`]), so the same stream
    /// drops the same elements in both.
    pub fn forward_t(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
        mut dropout: Option<&mut Rng>,
    ) -> Result<Tensor> {
        let lens: Vec<usize> = mask
            .to_vec2::<u32>()?
            .iter()
            .map(|r| r.iter().filter(|&&m| m == 1).count())
            .collect();
        let hidden = self.encode(ids, type_ids, mask, &lens, dropout.as_deref_mut())?;
        let Some(pooler) = &self.pooler else {
            // A token head: every token, dropped out as the layers' outputs are.
            let x = Mask::draw(self.head_dropout, dropout).apply_padded(&hidden, &lens)?;
            return Ok(self.classifier.forward(&x)?);
        };
        let mut cls = hidden.narrow(1, 0, 1)?.squeeze(1)?;
        if self.spec.head.kind.drops_input() {
            cls = Mask::draw(self.head_dropout, dropout.as_deref_mut()).apply_rows(&cls)?;
        }
        let pooled = pooler.forward(&cls)?.tanh()?;
        let pooled = Mask::draw(self.head_dropout, dropout).apply_rows(&pooled)?;
        Ok(self.classifier.forward(&pooled)?)
    }

    /// Last hidden states `[batch, seq, hidden]`.
    fn encode(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
        lens: &[usize],
        mut dropout: Option<&mut Rng>,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if t > self.spec.max_tokens() {
            return Err(crate::Error::Invalid(format!(
                "sequence of {t} tokens exceeds the {} positions of max_position_embeddings",
                self.spec.max_tokens()
            )));
        }
        let train = dropout.is_some();
        let h = self.config.hidden_size;
        let e = &self.embeddings;
        let words = e
            .word
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, h))?;
        let pos = e.position.narrow(0, self.spec.position_offset, t)?;
        // word + type + position, in the engine's and the native step's order.
        let x = match &e.token_type {
            Some(table) => words.add(
                &table
                    .index_select(&type_ids.flatten_all()?, 0)?
                    .reshape((b, t, h))?,
            )?,
            None => words,
        }
        .broadcast_add(&pos)?;
        let frozen = if train {
            self.frozen_layers.unwrap_or(0)
        } else {
            0
        };
        let x = e.norm.forward(&x)?;
        let embed_train = self.frozen_layers.is_none();
        let mut x = Mask::draw(
            self.hidden_dropout,
            dropout.as_deref_mut().filter(|_| embed_train),
        )
        .apply_padded(&x, lens)?;
        // Additive mask: 0 where attended, a large negative number on padding.
        let mut bias = ((mask.to_dtype(DType::F32)? - 1.0)? * 1e9)?.reshape((b, 1, 1, t))?;
        if let Some(table) = &e.relative_bias {
            // [1, heads, t, t]: row (bucket of key - query) of the table, per head.
            let buckets: Vec<u32> = (0..t)
                .flat_map(|i| {
                    (0..t).map(move |j| RelativeBiasSpec::bucket(j as isize - i as isize) as u32)
                })
                .collect();
            let idx = Tensor::from_vec(buckets, t * t, table.device())?;
            let rel = table
                .index_select(&idx, 0)?
                .reshape((t, t, self.spec.heads))?
                .permute((2, 0, 1))?
                .unsqueeze(0)?;
            bias = rel.broadcast_add(&bias)?;
        }
        if train && self.frozen_layers == Some(0) {
            x = x.detach(); // only the embeddings are frozen
        }
        for (i, layer) in self.layers.iter().enumerate() {
            let rng = dropout.as_deref_mut().filter(|_| i >= frozen);
            x = self.layer_forward(layer, &x, &bias, lens, rng)?;
            if train && i + 1 == frozen {
                x = x.detach();
            }
        }
        Ok(x)
    }

    fn layer_forward(
        &self,
        l: &Layer,
        x: &Tensor,
        bias: &Tensor,
        lens: &[usize],
        mut dropout: Option<&mut Rng>,
    ) -> Result<Tensor> {
        let (b, t, h) = x.dims3()?;
        let heads = self.config.num_attention_heads;
        let d = self.config.head_dim();
        let split = |y: Tensor| -> candle_core::Result<Tensor> {
            y.reshape((b, t, heads, d))?.transpose(1, 2)?.contiguous()
        };
        let q = split(l.query.forward(x)?)?;
        let k = split(l.key.forward(x)?)?;
        let v = split(l.value.forward(x)?)?;
        let scores = (q.matmul(&k.t()?)? / (d as f64).sqrt())?.broadcast_add(bias)?;
        // candle's composed softmax: it has a backward (the fused one has none).
        let probs = candle_nn::ops::softmax(&scores, candle_core::D::Minus1)?;
        let probs =
            Mask::draw(self.attn_dropout, dropout.as_deref_mut()).apply_attention(&probs, lens)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, h))?;
        let attn = Mask::draw(self.hidden_dropout, dropout.as_deref_mut())
            .apply_padded(&l.attn_out.forward(&ctx)?, lens)?;
        let x = l.attn_norm.forward(&(attn + x)?)?;
        let inter = self.activation(&l.intermediate.forward(&x)?)?;
        let out = Mask::draw(self.hidden_dropout, dropout)
            .apply_padded(&l.output.forward(&inter)?, lens)?;
        Ok(l.out_norm.forward(&(out + x)?)?)
    }

    fn activation(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self.spec.activation {
            Activation::GeluErf => x.gelu_erf(),
            Activation::Relu => x.relu(),
            Activation::GeluTanh => x.gelu(),
        }
    }
}
