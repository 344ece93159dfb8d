//! BERT encoder + pooler + classifier, following transformers'
//! `modeling_bert.py` (BertEmbeddings, BertSelfAttention, BertSelfOutput,
//! BertIntermediate, BertOutput, BertPooler, BertForSequenceClassification).
//! `forward_t(.., train)` uses differentiable ops and real dropout when
//! training, and candle's fused no-backward kernels at inference. This graph
//! is the reference the inference engine and the native training step are
//! tested against, and the training path for models the native step does
//! not cover.

use super::linear::Linear;
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
    pub params: ParamStore,
    num_labels: usize,
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

fn add_linear(p: &mut ParamStore, name: &str, out: usize, inp: usize, std: f32) -> Result<()> {
    p.add(&format!("{name}.weight"), &[out, inp], Init::Normal(std))?;
    p.add(&format!("{name}.bias"), &[out], Init::Zeros)?;
    Ok(())
}

fn add_norm(p: &mut ParamStore, name: &str, h: usize) -> Result<()> {
    p.add(&format!("{name}.weight"), &[h], Init::Ones)?;
    p.add(&format!("{name}.bias"), &[h], Init::Zeros)?;
    Ok(())
}

/// The model's modules, wired to the store's tensors (frozen ones detached).
fn modules(
    p: &ParamStore,
    c: &BertConfig,
    lora_scale: f64,
) -> (Embeddings, Vec<Layer>, Linear, Linear) {
    let eps = c.layer_norm_eps;
    let embeddings = Embeddings {
        word: p.tensor("bert.embeddings.word_embeddings.weight"),
        position: p.tensor("bert.embeddings.position_embeddings.weight"),
        token_type: p.tensor("bert.embeddings.token_type_embeddings.weight"),
        norm: built_norm(p, "bert.embeddings.LayerNorm", eps),
    };
    let layers = (0..c.num_hidden_layers)
        .map(|i| {
            let names = layer_linears(c, i);
            let n = format!("bert.encoder.layer.{i}");
            Layer {
                query: built_linear(p, &names[0].0, lora_scale),
                key: built_linear(p, &names[1].0, lora_scale),
                value: built_linear(p, &names[2].0, lora_scale),
                attn_out: built_linear(p, &names[3].0, lora_scale),
                attn_norm: built_norm(p, &format!("{n}.attention.output.LayerNorm"), eps),
                intermediate: built_linear(p, &names[4].0, lora_scale),
                output: built_linear(p, &names[5].0, lora_scale),
                out_norm: built_norm(p, &format!("{n}.output.LayerNorm"), eps),
            }
        })
        .collect();
    (
        embeddings,
        layers,
        built_linear(p, "bert.pooler.dense", lora_scale),
        built_linear(p, "classifier", lora_scale),
    )
}

/// The names of the dense layers of encoder layer `i`, with their shapes
/// `(out, in)`, in the order modules are built.
pub(crate) fn layer_linears(c: &BertConfig, i: usize) -> Vec<(String, usize, usize)> {
    let (h, m) = (c.hidden_size, c.intermediate_size);
    let n = format!("bert.encoder.layer.{i}");
    vec![
        (format!("{n}.attention.self.query"), h, h),
        (format!("{n}.attention.self.key"), h, h),
        (format!("{n}.attention.self.value"), h, h),
        (format!("{n}.attention.output.dense"), h, h),
        (format!("{n}.intermediate.dense"), m, h),
        (format!("{n}.output.dense"), h, m),
    ]
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

fn built_linear(p: &ParamStore, name: &str, lora_scale: f64) -> Linear {
    let mut l = Linear::new(
        p.tensor(&format!("{name}.weight")),
        p.tensor(&format!("{name}.bias")),
    );
    if p.contains(&format!("{name}.lora_A.weight")) {
        l.lora = Some(super::linear::Lora {
            a: p.tensor(&format!("{name}.lora_A.weight")),
            b: p.tensor(&format!("{name}.lora_B.weight")),
            scale: lora_scale,
        });
    }
    l
}

fn built_norm(p: &ParamStore, name: &str, eps: f64) -> LayerNorm {
    LayerNorm::new(
        p.tensor(&format!("{name}.weight")),
        p.tensor(&format!("{name}.bias")),
        eps,
    )
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
        let h = c.hidden_size;
        let mut rng = Rng::new(seed);
        let mut p = ParamStore::new(rng.next_u64(), device.clone());
        if defer {
            p.defer_random_init();
        }
        p.add(
            "bert.embeddings.word_embeddings.weight",
            &[c.vocab_size, h],
            Init::Normal(std),
        )?;
        p.add(
            "bert.embeddings.position_embeddings.weight",
            &[c.max_position_embeddings, h],
            Init::Normal(std),
        )?;
        p.add(
            "bert.embeddings.token_type_embeddings.weight",
            &[c.type_vocab_size, h],
            Init::Normal(std),
        )?;
        add_norm(&mut p, "bert.embeddings.LayerNorm", h)?;
        for i in 0..c.num_hidden_layers {
            let n = format!("bert.encoder.layer.{i}");
            let dense = layer_linears(c, i);
            for (name, out, inp) in &dense[..4] {
                add_linear(&mut p, name, *out, *inp, std)?;
            }
            add_norm(&mut p, &format!("{n}.attention.output.LayerNorm"), h)?;
            for (name, out, inp) in &dense[4..] {
                add_linear(&mut p, name, *out, *inp, std)?;
            }
            add_norm(&mut p, &format!("{n}.output.LayerNorm"), h)?;
        }
        add_linear(&mut p, "bert.pooler.dense", h, h, std)?;
        add_linear(&mut p, "classifier", num_labels, h, std)?;
        let (embeddings, layers, pooler, classifier) = modules(&p, c, 1.0);
        Ok(BertClassifier {
            config: config.clone(),
            params: p,
            num_labels,
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
        let c = &self.config;
        let scale = self
            .lora
            .as_ref()
            .map(|l| l.alpha / l.r as f64)
            .unwrap_or(1.0);
        (self.embeddings, self.layers, self.pooler, self.classifier) = modules(p, c, scale);
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
        for i in 0..self.config.num_hidden_layers {
            for (name, out, inp) in layer_linears(&self.config, i) {
                if cfg.targets_module(&name) {
                    self.params.add(
                        &format!("{name}.lora_A.weight"),
                        &[cfg.r, inp],
                        Init::Uniform(1.0 / (inp as f32).sqrt()),
                    )?;
                    self.params.add(
                        &format!("{name}.lora_B.weight"),
                        &[out, cfg.r],
                        Init::Zeros,
                    )?;
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
        self.num_labels
    }

    pub fn device(&self) -> &Device {
        self.params.device()
    }

    /// Train only the top `k` encoder layers, the pooler and the classifier
    /// (`None`: everything). The frozen bottom runs as at inference and its
    /// output is detached, so backward stops there and costs nothing.
    pub fn set_trainable_layers(&mut self, k: Option<usize>) {
        let n = self.config.num_hidden_layers;
        self.frozen_layers = k.map(|k| n.saturating_sub(k));
        let frozen = self.frozen_layers;
        self.params.set_trainable(|name| match frozen {
            None => true,
            Some(f) => match name.strip_prefix("bert.encoder.layer.") {
                Some(rest) => rest
                    .split('.')
                    .next()
                    .and_then(|i| i.parse::<usize>().ok())
                    .is_some_and(|i| i >= f),
                None => !name.starts_with("bert.embeddings."),
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
        let cls = hidden.narrow(1, 0, 1)?.squeeze(1)?;
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
        if t > self.config.max_position_embeddings {
            return Err(crate::Error::Invalid(format!(
                "sequence of {t} tokens exceeds max_position_embeddings {}",
                self.config.max_position_embeddings
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
        let pos = e.position.narrow(0, 0, t)?;
        let x = words.add(&types)?.broadcast_add(&pos)?;
        let frozen = if train {
            self.frozen_layers.unwrap_or(0)
        } else {
            0
        };
        let embed_train = train && self.frozen_layers.is_none();
        let x = e.norm.forward_t(&x, embed_train)?;
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
        let probs = if train {
            super::ops::softmax_last_dim(&scores)?
        } else {
            candle_nn::ops::softmax_last_dim(&scores)?
        };
        let probs = self
            .attn_dropout
            .forward_t(&probs, &self.dropout_rng, train)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, h))?;
        let attn =
            self.hidden_dropout
                .forward_t(&l.attn_out.forward(&ctx)?, &self.dropout_rng, train)?;
        let x = l.attn_norm.forward_t(&(attn + x)?, train)?;
        let inter = self.activation(&l.intermediate.forward(&x)?, train)?;
        let out =
            self.hidden_dropout
                .forward_t(&l.output.forward(&inter)?, &self.dropout_rng, train)?;
        Ok(l.out_norm.forward_t(&(out + x)?, train)?)
    }

    fn activation(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        match self.config.hidden_act.as_str() {
            "gelu" if train => super::ops::gelu_erf(x),
            "gelu" => x.gelu_erf(),
            "relu" => x.relu(),
            _ => x.gelu(), // gelu_new / gelu_pytorch_tanh: the tanh approximation
        }
    }
}
