//! One typed description of the model, built once from `config.json`, that
//! every executor reads: candle's graph (`model/bert.rs`), the inference
//! engine (`engine/`), the native training step (`train/native/`), and the
//! loader. Weight names, sizes, the activation and the head live here and
//! nowhere else, so a new architecture or activation is a change to this
//! file followed by compile errors (exhaustive matches) at every place that
//! must handle it, rather than string edits that fail at run time.

use super::BertConfig;

/// The architecture family: it fixes the weight prefix, the head and how
/// positions are numbered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// transformers' `BertModel` / `BertForSequenceClassification`.
    Bert,
    /// `RobertaModel` / `RobertaForSequenceClassification`.
    Roberta,
    /// `XLMRobertaForSequenceClassification`: RoBERTa's layout and head.
    XlmRoberta,
    /// `MPNetModel` / `MPNetForSequenceClassification`: RoBERTa's head and
    /// positions, no token types, its own layer names (`attention.attn.q`),
    /// and a relative-position bias added to every layer's attention scores
    /// from one table shared by the layers ([`RelativeBiasSpec`]).
    Mpnet,
}

impl Family {
    pub fn from_config(c: &BertConfig) -> Result<Family, String> {
        match c.extra.get("model_type").and_then(|v| v.as_str()) {
            None | Some("bert") => Ok(Family::Bert),
            Some("roberta") => Ok(Family::Roberta),
            Some("xlm-roberta") => Ok(Family::XlmRoberta),
            Some("mpnet") => Ok(Family::Mpnet),
            Some(other) => Err(format!(
                "model_type {other:?} is not supported (bert, roberta, xlm-roberta, mpnet)"
            )),
        }
    }

    /// The prefix of the encoder's tensors in a task checkpoint.
    pub fn prefix(self) -> &'static str {
        match self {
            Family::Bert => "bert",
            Family::Roberta | Family::XlmRoberta => "roberta",
            Family::Mpnet => "mpnet",
        }
    }

    /// `model_type` in `config.json`.
    pub fn model_type(self) -> &'static str {
        match self {
            Family::Bert => "bert",
            Family::Roberta => "roberta",
            Family::XlmRoberta => "xlm-roberta",
            Family::Mpnet => "mpnet",
        }
    }

    /// The transformers class of a sequence classifier (`architectures`).
    pub fn classifier_class(self) -> &'static str {
        match self {
            Family::Bert => "BertForSequenceClassification",
            Family::Roberta => "RobertaForSequenceClassification",
            Family::XlmRoberta => "XLMRobertaForSequenceClassification",
            Family::Mpnet => "MPNetForSequenceClassification",
        }
    }

    /// The transformers class of a token classifier (`architectures`).
    pub fn token_classifier_class(self) -> &'static str {
        match self {
            Family::Bert => "BertForTokenClassification",
            Family::Roberta => "RobertaForTokenClassification",
            Family::XlmRoberta => "XLMRobertaForTokenClassification",
            Family::Mpnet => "MPNetForTokenClassification",
        }
    }

    /// The head of this family's model for `task`.
    pub fn head(self, task: Task) -> HeadKind {
        match (task, self) {
            (Task::Token, _) => HeadKind::Token,
            (Task::Sentence, Family::Bert) => HeadKind::Pooler,
            (Task::Sentence, Family::Roberta | Family::XlmRoberta | Family::Mpnet) => {
                HeadKind::Roberta
            }
        }
    }

    /// The position id of a sentence's first token: BERT counts from 0;
    /// RoBERTa counts after its pad id (`create_position_ids_from_input_ids`
    /// numbers real tokens `pad_token_id + 1, + 2, ...`); MPNet does the
    /// same with a padding index transformers fixes at 1, whatever the config.
    pub fn position_offset(self, pad_token_id: usize) -> usize {
        match self {
            Family::Bert => 0,
            Family::Roberta | Family::XlmRoberta => pad_token_id + 1,
            Family::Mpnet => MPNET_PADDING_IDX + 1,
        }
    }

    /// Whether the embeddings add a token-type table (MPNet has none and
    /// ignores `token_type_ids`).
    pub fn has_token_types(self) -> bool {
        match self {
            Family::Bert | Family::Roberta | Family::XlmRoberta => true,
            Family::Mpnet => false,
        }
    }
}

/// `MPNetEmbeddings.padding_idx`, hard-coded in transformers.
const MPNET_PADDING_IDX: usize = 1;

/// MPNet's relative-position attention bias: a `[buckets, heads]` table
/// (`{prefix}.encoder.relative_attention_bias.weight`) whose row for the
/// bucket of `key position - query position` is added to every layer's
/// scaled attention scores, head by head, before the softmax.
#[derive(Debug, Clone, PartialEq)]
pub struct RelativeBiasSpec {
    pub name: String,
    /// Rows of the table (`relative_attention_num_buckets`).
    pub buckets: usize,
}

impl RelativeBiasSpec {
    /// transformers' `MPNetEncoder.relative_position_bucket` with the
    /// arguments `compute_position_bias` passes (32 buckets, max distance
    /// 128, whatever the config says): distances below 8 get a bucket each,
    /// longer ones share logarithmically wider buckets up to 128, keys after
    /// the query in the upper half. The logarithm is taken in f32, as torch
    /// does, so that the truncation lands on the same side at exact powers.
    pub fn bucket(relative: isize) -> usize {
        const HALF: isize = 16;
        const EXACT: isize = 8;
        const MAX_DISTANCE: f32 = 128.0;
        let n = -relative;
        let base = if n < 0 { HALF } else { 0 };
        let n = n.abs();
        let within = if n < EXACT {
            n
        } else {
            let scale = (MAX_DISTANCE as f64 / EXACT as f64).ln() as f32;
            let log = (n as f32 / EXACT as f32).ln() / scale * (HALF - EXACT) as f32;
            (EXACT + log as isize).min(HALF - 1)
        };
        (base + within) as usize
    }

    /// The buckets [`Self::bucket`] can return.
    pub const USED_BUCKETS: usize = 32;
}

/// The hidden layer's activation (`hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// "gelu": `x * Phi(x)` with the exact (erf) normal CDF.
    GeluErf,
    /// "gelu_new", "gelu_pytorch_tanh": the tanh approximation.
    GeluTanh,
    Relu,
}

impl Activation {
    pub fn from_hf(name: &str) -> Option<Activation> {
        match name {
            "gelu" => Some(Activation::GeluErf),
            "gelu_new" | "gelu_pytorch_tanh" => Some(Activation::GeluTanh),
            "relu" => Some(Activation::Relu),
            _ => None,
        }
    }
}

/// What the model labels: whole sequences (stance's sentence labels) or
/// every token (the attribution tagger's BIO tags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// `*ForSequenceClassification`: one label per sequence.
    Sentence,
    /// `*ForTokenClassification`: one label per token.
    Token,
}

impl Task {
    /// From `architectures` in `config.json`: a `*ForTokenClassification`
    /// class makes a token classifier; anything else (a base encoder's
    /// `BertModel`, a sequence classifier, none) a sentence classifier.
    pub fn from_config(c: &BertConfig) -> Task {
        let token = c
            .extra
            .get("architectures")
            .and_then(|a| a.as_array())
            .and_then(|a| a.first())
            .and_then(|a| a.as_str())
            .is_some_and(|a| a.ends_with("ForTokenClassification"));
        if token {
            Task::Token
        } else {
            Task::Sentence
        }
    }
}

/// How the classifier reads the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadKind {
    /// BERT: `classifier(dropout(tanh(pooler.dense(first token))))`.
    Pooler,
    /// RoBERTa's `RobertaClassificationHead`:
    /// `classifier.out_proj(dropout(tanh(classifier.dense(dropout(first token)))))`,
    /// the same function as the pooler head with one more dropout, before the
    /// first dense layer.
    Roberta,
    /// Every family's `*ForTokenClassification`: `classifier(dropout(token))`
    /// on every token of the last hidden layer, no pooler.
    Token,
}

impl HeadKind {
    /// Whether the first token is dropped out before the head's first dense
    /// layer (sentence heads only).
    pub fn drops_input(self) -> bool {
        match self {
            HeadKind::Pooler | HeadKind::Token => false,
            HeadKind::Roberta => true,
        }
    }
}

/// A dense layer `y = x W^T + b`: `W` is `[out, inp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseSpec {
    pub name: String,
    pub out: usize,
    pub inp: usize,
}

impl DenseSpec {
    fn new(name: String, out: usize, inp: usize) -> DenseSpec {
        DenseSpec { name, out, inp }
    }
    pub fn weight(&self) -> String {
        format!("{}.weight", self.name)
    }
    pub fn bias(&self) -> String {
        format!("{}.bias", self.name)
    }
    /// LoRA's `A` (`[r, inp]`) and `B` (`[out, r]`), PEFT's names.
    pub fn lora_a(&self) -> String {
        format!("{}.lora_A.weight", self.name)
    }
    pub fn lora_b(&self) -> String {
        format!("{}.lora_B.weight", self.name)
    }
}

/// What a tensor is, which decides its initialisation (transformers'
/// `_init_weights`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorKind {
    /// An embedding table or a dense weight: normal(0, initializer_range).
    Weight,
    /// A dense bias or a layer norm's shift: zeros.
    Bias,
    /// A layer norm's scale: ones.
    Scale,
}

/// A layer norm over the hidden size.
#[derive(Debug, Clone, PartialEq)]
pub struct NormSpec {
    pub name: String,
}

impl NormSpec {
    pub fn weight(&self) -> String {
        format!("{}.weight", self.name)
    }
    pub fn bias(&self) -> String {
        format!("{}.bias", self.name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingsSpec {
    /// `[vocab, hidden]`.
    pub word: String,
    /// `[max_positions, hidden]`.
    pub position: String,
    /// `[type_vocab, hidden]`; `None` for MPNet, which has no token types.
    pub token_type: Option<String>,
    pub norm: NormSpec,
}

/// One encoder layer, in transformers' order.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSpec {
    /// `{prefix}.encoder.layer.{i}`: every tensor of the layer starts so.
    pub prefix: String,
    pub query: DenseSpec,
    pub key: DenseSpec,
    pub value: DenseSpec,
    pub attn_out: DenseSpec,
    pub attn_norm: NormSpec,
    pub intermediate: DenseSpec,
    pub output: DenseSpec,
    pub out_norm: NormSpec,
}

impl LayerSpec {
    /// The dense layers in the order they run.
    pub fn denses(&self) -> [&DenseSpec; 6] {
        [
            &self.query,
            &self.key,
            &self.value,
            &self.attn_out,
            &self.intermediate,
            &self.output,
        ]
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeadSpec {
    pub kind: HeadKind,
    /// `[hidden, hidden]`, then tanh: BERT's `pooler.dense`, RoBERTa's
    /// `classifier.dense`; `None` for a token head.
    pub pooler: Option<DenseSpec>,
    /// `[num_labels, hidden]`: BERT's and every token head's `classifier`,
    /// RoBERTa's `classifier.out_proj`.
    pub classifier: DenseSpec,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub family: Family,
    pub activation: Activation,
    pub hidden: usize,
    pub heads: usize,
    pub vocab: usize,
    pub max_positions: usize,
    /// The position id of each sentence's first token ([`Family::position_offset`]).
    pub position_offset: usize,
    pub type_vocab: usize,
    pub eps: f64,
    pub num_labels: usize,
    pub embeddings: EmbeddingsSpec,
    pub layers: Vec<LayerSpec>,
    /// MPNet's shared relative-position bias (`None` elsewhere).
    pub relative_bias: Option<RelativeBiasSpec>,
    pub head: HeadSpec,
}

impl ModelSpec {
    pub fn new(c: &BertConfig, num_labels: usize) -> Result<ModelSpec, String> {
        let family = Family::from_config(c)?;
        let activation = Activation::from_hf(&c.hidden_act)
            .ok_or_else(|| format!("unsupported hidden_act {:?}", c.hidden_act))?;
        let p = family.prefix();
        let (h, m) = (c.hidden_size, c.intermediate_size);
        let norm = |name: String| NormSpec { name };
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let n = format!("{p}.encoder.layer.{i}");
                let dense = |name: &str, out, inp| DenseSpec::new(format!("{n}.{name}"), out, inp);
                let norm = |name: &str| norm(format!("{n}.{name}"));
                match family {
                    Family::Bert | Family::Roberta | Family::XlmRoberta => LayerSpec {
                        query: dense("attention.self.query", h, h),
                        key: dense("attention.self.key", h, h),
                        value: dense("attention.self.value", h, h),
                        attn_out: dense("attention.output.dense", h, h),
                        attn_norm: norm("attention.output.LayerNorm"),
                        intermediate: dense("intermediate.dense", m, h),
                        output: dense("output.dense", h, m),
                        out_norm: norm("output.LayerNorm"),
                        prefix: n.clone(),
                    },
                    Family::Mpnet => LayerSpec {
                        query: dense("attention.attn.q", h, h),
                        key: dense("attention.attn.k", h, h),
                        value: dense("attention.attn.v", h, h),
                        attn_out: dense("attention.attn.o", h, h),
                        attn_norm: norm("attention.LayerNorm"),
                        intermediate: dense("intermediate.dense", m, h),
                        output: dense("output.dense", h, m),
                        out_norm: norm("output.LayerNorm"),
                        prefix: n.clone(),
                    },
                }
            })
            .collect();
        let relative_bias = match family {
            Family::Bert | Family::Roberta | Family::XlmRoberta => None,
            Family::Mpnet => {
                let buckets = c
                    .extra
                    .get("relative_attention_num_buckets")
                    .and_then(|v| v.as_u64())
                    .unwrap_or(32) as usize;
                if buckets < RelativeBiasSpec::USED_BUCKETS {
                    return Err(format!(
                        "relative_attention_num_buckets {buckets} is below the {} buckets MPNet's attention uses",
                        RelativeBiasSpec::USED_BUCKETS
                    ));
                }
                Some(RelativeBiasSpec {
                    name: format!("{p}.encoder.relative_attention_bias.weight"),
                    buckets,
                })
            }
        };
        let kind = family.head(Task::from_config(c));
        let head = match kind {
            HeadKind::Pooler => HeadSpec {
                kind,
                pooler: Some(DenseSpec::new(format!("{p}.pooler.dense"), h, h)),
                classifier: DenseSpec::new("classifier".into(), num_labels, h),
            },
            HeadKind::Roberta => HeadSpec {
                kind,
                pooler: Some(DenseSpec::new("classifier.dense".into(), h, h)),
                classifier: DenseSpec::new("classifier.out_proj".into(), num_labels, h),
            },
            HeadKind::Token => HeadSpec {
                kind,
                pooler: None,
                classifier: DenseSpec::new("classifier".into(), num_labels, h),
            },
        };
        let position_offset = family.position_offset(c.pad_token_id);
        if position_offset >= c.max_position_embeddings {
            return Err(format!(
                "pad_token_id {} leaves no positions of max_position_embeddings {}",
                c.pad_token_id, c.max_position_embeddings
            ));
        }
        Ok(ModelSpec {
            family,
            activation,
            hidden: h,
            heads: c.num_attention_heads,
            vocab: c.vocab_size,
            max_positions: c.max_position_embeddings,
            position_offset,
            type_vocab: c.type_vocab_size,
            eps: c.layer_norm_eps,
            num_labels,
            embeddings: EmbeddingsSpec {
                word: format!("{p}.embeddings.word_embeddings.weight"),
                position: format!("{p}.embeddings.position_embeddings.weight"),
                token_type: family
                    .has_token_types()
                    .then(|| format!("{p}.embeddings.token_type_embeddings.weight")),
                norm: norm(format!("{p}.embeddings.LayerNorm")),
            },
            layers,
            relative_bias,
            head,
        })
    }

    /// Whether `name` is read below the first encoder layer or by every
    /// layer (the embeddings, MPNet's relative-position table): frozen
    /// whenever the embeddings are.
    pub fn is_shared_input(&self, name: &str) -> bool {
        name.strip_prefix(&self.prefix_dot())
            .is_some_and(|rest| rest.starts_with("embeddings."))
            || self.relative_bias.as_ref().is_some_and(|r| r.name == name)
    }

    /// The encoder's prefix with its dot: `bert.`.
    pub fn prefix_dot(&self) -> String {
        format!("{}.", self.family.prefix())
    }

    /// Every tensor of the model with its shape and kind, in the order the
    /// parameter store creates them (which fixes the random draws).
    pub fn tensors(&self) -> Vec<(String, Vec<usize>, TensorKind)> {
        use TensorKind::*;
        let h = self.hidden;
        let e = &self.embeddings;
        let mut v = vec![
            (e.word.clone(), vec![self.vocab, h], Weight),
            (e.position.clone(), vec![self.max_positions, h], Weight),
        ];
        if let Some(t) = &e.token_type {
            v.push((t.clone(), vec![self.type_vocab, h], Weight));
        }
        type List = Vec<(String, Vec<usize>, TensorKind)>;
        let norm = |v: &mut List, n: &NormSpec| {
            v.push((n.weight(), vec![h], Scale));
            v.push((n.bias(), vec![h], Bias));
        };
        let dense = |v: &mut List, d: &DenseSpec| {
            v.push((d.weight(), vec![d.out, d.inp], Weight));
            v.push((d.bias(), vec![d.out], Bias));
        };
        norm(&mut v, &e.norm);
        for l in &self.layers {
            for d in [&l.query, &l.key, &l.value, &l.attn_out] {
                dense(&mut v, d);
            }
            norm(&mut v, &l.attn_norm);
            dense(&mut v, &l.intermediate);
            dense(&mut v, &l.output);
            norm(&mut v, &l.out_norm);
        }
        if let Some(r) = &self.relative_bias {
            v.push((r.name.clone(), vec![r.buckets, self.heads], Weight));
        }
        if let Some(pooler) = &self.head.pooler {
            dense(&mut v, pooler);
        }
        dense(&mut v, &self.head.classifier);
        v
    }

    /// What the model labels.
    pub fn task(&self) -> Task {
        match self.head.kind {
            HeadKind::Pooler | HeadKind::Roberta => Task::Sentence,
            HeadKind::Token => Task::Token,
        }
    }

    /// The transformers class of this model (`architectures`).
    pub fn architecture(&self) -> &'static str {
        match self.task() {
            Task::Sentence => self.family.classifier_class(),
            Task::Token => self.family.token_classifier_class(),
        }
    }

    /// The longest sentence the position table can number.
    pub fn max_tokens(&self) -> usize {
        self.max_positions - self.position_offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bert_names_and_shapes_are_transformers() {
        let c = BertConfig::tiny(50);
        let s = ModelSpec::new(&c, 4).unwrap();
        assert_eq!(s.family, Family::Bert);
        assert_eq!(s.activation, Activation::GeluErf);
        assert_eq!(s.layers.len(), 2);
        assert_eq!(s.layers[1].output.name, "bert.encoder.layer.1.output.dense");
        assert_eq!((s.layers[1].output.out, s.layers[1].output.inp), (32, 64));
        assert_eq!(
            s.embeddings.norm.weight(),
            "bert.embeddings.LayerNorm.weight"
        );
        let t = s.tensors();
        // 3 tables + 2 norm, 16 per layer, 4 head tensors.
        assert_eq!(t.len(), 5 + 16 * 2 + 4);
        assert_eq!(
            t.last().unwrap(),
            &("classifier.bias".to_string(), vec![4], TensorKind::Bias)
        );
    }

    #[test]
    fn roberta_names_head_and_positions_are_transformers() {
        let mut c = BertConfig::tiny(50);
        c.extra
            .insert("model_type".into(), serde_json::json!("roberta"));
        c.pad_token_id = 1;
        let s = ModelSpec::new(&c, 3).unwrap();
        assert_eq!(s.family, Family::Roberta);
        assert_eq!(s.head.kind, HeadKind::Roberta);
        assert_eq!(s.position_offset, 2);
        assert_eq!(s.max_tokens(), 126);
        assert_eq!(
            s.embeddings.word,
            "roberta.embeddings.word_embeddings.weight"
        );
        assert_eq!(
            s.head.pooler.as_ref().unwrap().weight(),
            "classifier.dense.weight"
        );
        assert_eq!(s.head.classifier.bias(), "classifier.out_proj.bias");
        assert_eq!(
            s.family.classifier_class(),
            "RobertaForSequenceClassification"
        );
        c.extra
            .insert("model_type".into(), serde_json::json!("xlm-roberta"));
        let s = ModelSpec::new(&c, 3).unwrap();
        assert_eq!(
            s.family.classifier_class(),
            "XLMRobertaForSequenceClassification"
        );
        assert_eq!(s.family.prefix(), "roberta");
        c.pad_token_id = 127;
        assert!(ModelSpec::new(&c, 3).unwrap_err().contains("pad_token_id"));
    }

    #[test]
    fn mpnet_names_positions_and_relative_table_are_transformers() {
        let mut c = BertConfig::tiny(50);
        c.extra
            .insert("model_type".into(), serde_json::json!("mpnet"));
        let s = ModelSpec::new(&c, 4).unwrap();
        assert_eq!(s.family, Family::Mpnet);
        assert_eq!(s.head.kind, HeadKind::Roberta);
        assert_eq!(
            s.position_offset, 2,
            "padding_idx 1 whatever pad_token_id says"
        );
        assert!(s.embeddings.token_type.is_none());
        let l = &s.layers[0];
        assert_eq!(l.query.name, "mpnet.encoder.layer.0.attention.attn.q");
        assert_eq!(l.attn_out.name, "mpnet.encoder.layer.0.attention.attn.o");
        assert_eq!(
            l.attn_norm.name,
            "mpnet.encoder.layer.0.attention.LayerNorm"
        );
        let r = s.relative_bias.as_ref().unwrap();
        assert_eq!(r.name, "mpnet.encoder.relative_attention_bias.weight");
        assert!(s.is_shared_input(&r.name));
        assert!(s.is_shared_input("mpnet.embeddings.LayerNorm.weight"));
        assert!(!s.is_shared_input("mpnet.encoder.layer.0.output.dense.weight"));
        let t = s.tensors();
        // 2 tables + 2 norm, 16 per layer, the relative table, 4 head tensors.
        assert_eq!(t.len(), 4 + 16 * 2 + 1 + 4);
        assert!(t.iter().all(|(n, _, _)| !n.contains("token_type")));
        // Distances below 8 get a bucket each; keys after the query the upper half.
        assert_eq!(RelativeBiasSpec::bucket(0), 0);
        assert_eq!(RelativeBiasSpec::bucket(-3), 3);
        assert_eq!(RelativeBiasSpec::bucket(3), 19);
        assert_eq!(RelativeBiasSpec::bucket(-1000), 15);
        assert_eq!(RelativeBiasSpec::bucket(1000), 31);
        c.extra.insert(
            "relative_attention_num_buckets".into(),
            serde_json::json!(16),
        );
        assert!(ModelSpec::new(&c, 4)
            .unwrap_err()
            .contains("relative_attention_num_buckets"));
    }

    #[test]
    fn unknown_values_are_refused() {
        let mut c = BertConfig::tiny(50);
        c.hidden_act = "swish".into();
        assert!(ModelSpec::new(&c, 2).unwrap_err().contains("hidden_act"));
        let mut c = BertConfig::tiny(50);
        c.extra
            .insert("model_type".into(), serde_json::json!("gpt2"));
        assert!(ModelSpec::new(&c, 2).unwrap_err().contains("model_type"));
    }
}
