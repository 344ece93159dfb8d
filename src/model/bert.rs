//! BERT encoder + pooler + classifier, following transformers'
//! `modeling_bert.py` (BertEmbeddings, BertSelfAttention, BertSelfOutput,
//! BertIntermediate, BertOutput, BertPooler, BertForSequenceClassification).
//! Built from candle's differentiable ops only (composed softmax and layer
//! norm; candle's GELU), with real dropout when `forward_t(.., train)`.
//! This graph is the reference the inference engine and the native training
//! step are tested against; nothing in the product runs it.

use super::linear::Linear;
use super::spec::{Activation, DenseSpec, HeadKind, ModelSpec, NormSpec, TensorKind};
use super::{BertConfig, Dropout, Init, LayerNorm, ParamStore};
use crate::rng::Rng;
use crate::Result;
use candle_core::{DType, Device, Tensor};
use std::sync::Mutex;

struct Embeddings {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    norm: LayerNorm,
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
    pooler: Linear,
    classifier: Linear,
    hidden_dropout: Dropout,
    attn_dropout: Dropout,
    classifier_dropout: Dropout,
    dropout_rng: Mutex<Rng>,
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
) -> (Embeddings, Vec<Layer>, Linear, Linear) {
    let eps = spec.eps;
    let e = &spec.embeddings;
    let embeddings = Embeddings {
        word: p.tensor(&e.word),
        position: p.tensor(&e.position),
        token_type: p.tensor(&e.token_type),
        norm: built_norm(p, &e.norm, eps),
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
    let (pooler, classifier) = match spec.head.kind {
        HeadKind::Pooler | HeadKind::Roberta => (
            built_linear(p, &spec.head.pooler, lora_scale),
            built_linear(p, &spec.head.classifier, lora_scale),
        ),
    };
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
            hidden_dropout: Dropout::new(c.hidden_dropout_prob),
            attn_dropout: Dropout::new(c.attention_probs_dropout_prob),
            classifier_dropout: Dropout::new(c.classifier_dropout.unwrap_or(c.hidden_dropout_prob)),
            dropout_rng: Mutex::new(rng.fork()),
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
            return Err(crate::Error::Invalid(format!(
                "LoRA targets {:?} match no module (use query, key, value, dense)",
                cfg.targets
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
        let embeddings = format!("{}embeddings.", spec.prefix_dot());
        self.params.set_trainable(|name| match frozen {
            None => true,
            Some(f) => match spec.layers.iter().position(|l| in_layer(name, l)) {
                Some(i) => i >= f,
                None => !name.starts_with(&embeddings),
            },
        });
        self.rebuild();
    }

    pub fn frozen_layers(&self) -> Option<usize> {
        self.frozen_layers
    }

    /// A seed for one dropout mask, the next draw of the dropout stream
    /// (the native training step's masks are hashed from such seeds).
    pub(crate) fn next_dropout_seed(&self) -> u64 {
        self.dropout_rng
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_u64()
    }

    /// Restart the dropout mask stream (the trainer does this from `--seed`).
    pub fn reseed_dropout(&self, seed: u64) {
        *self.dropout_rng.lock().unwrap_or_else(|e| e.into_inner()) = Rng::new(seed);
    }

    /// Logits `[batch, num_labels]` for token ids, token type ids and
    /// attention mask, all `[batch, seq]` u32.
    pub fn forward_t(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let hidden = self.encode(ids, type_ids, mask, train)?;
        let mut cls = hidden.narrow(1, 0, 1)?.squeeze(1)?;
        if self.spec.head.kind.drops_input() {
            cls = self
                .classifier_dropout
                .forward_t(&cls, &self.dropout_rng, train)?;
        }
        let pooled = self.pooler.forward(&cls)?.tanh()?;
        let pooled = self
            .classifier_dropout
            .forward_t(&pooled, &self.dropout_rng, train)?;
        Ok(self.classifier.forward(&pooled)?)
    }

    /// Last hidden states `[batch, seq, hidden]`.
    pub fn encode(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
        train: bool,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        if t > self.spec.max_tokens() {
            return Err(crate::Error::Invalid(format!(
                "sequence of {t} tokens exceeds the {} positions of max_position_embeddings",
                self.spec.max_tokens()
            )));
        }
        let h = self.config.hidden_size;
        let e = &self.embeddings;
        let words = e
            .word
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, h))?;
        let types = e
            .token_type
            .index_select(&type_ids.flatten_all()?, 0)?
            .reshape((b, t, h))?;
        let pos = e.position.narrow(0, self.spec.position_offset, t)?;
        let x = words.add(&types)?.broadcast_add(&pos)?;
        let frozen = if train {
            self.frozen_layers.unwrap_or(0)
        } else {
            0
        };
        let embed_train = train && self.frozen_layers.is_none();
        let x = e.norm.forward(&x)?;
        let mut x = self
            .hidden_dropout
            .forward_t(&x, &self.dropout_rng, embed_train)?;
        // Additive mask: 0 where attended, a large negative number on padding.
        let bias = ((mask.to_dtype(DType::F32)? - 1.0)? * 1e9)?.reshape((b, 1, 1, t))?;
        if train && self.frozen_layers == Some(0) {
            x = x.detach(); // only the embeddings are frozen
        }
        for (i, layer) in self.layers.iter().enumerate() {
            x = self.layer_forward(layer, &x, &bias, train && i >= frozen)?;
            if train && i + 1 == frozen {
                x = x.detach();
            }
        }
        Ok(x)
    }

    fn layer_forward(&self, l: &Layer, x: &Tensor, bias: &Tensor, train: bool) -> Result<Tensor> {
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
        let probs = self
            .attn_dropout
            .forward_t(&probs, &self.dropout_rng, train)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, h))?;
        let attn =
            self.hidden_dropout
                .forward_t(&l.attn_out.forward(&ctx)?, &self.dropout_rng, train)?;
        let x = l.attn_norm.forward(&(attn + x)?)?;
        let inter = self.activation(&l.intermediate.forward(&x)?)?;
        let out =
            self.hidden_dropout
                .forward_t(&l.output.forward(&inter)?, &self.dropout_rng, train)?;
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
