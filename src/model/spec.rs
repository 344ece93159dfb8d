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
}

impl Family {
    pub fn from_config(c: &BertConfig) -> Result<Family, String> {
        match c.extra.get("model_type").and_then(|v| v.as_str()) {
            None | Some("bert") => Ok(Family::Bert),
            Some("roberta") => Ok(Family::Roberta),
            Some("xlm-roberta") => Ok(Family::XlmRoberta),
            Some(other) => Err(format!(
                "model_type {other:?} is not supported (bert, roberta, xlm-roberta)"
            )),
        }
    }

    /// The prefix of the encoder's tensors in a task checkpoint.
    pub fn prefix(self) -> &'static str {
        match self {
            Family::Bert => "bert",
            Family::Roberta | Family::XlmRoberta => "roberta",
        }
    }

    /// `model_type` in `config.json`.
    pub fn model_type(self) -> &'static str {
        match self {
            Family::Bert => "bert",
            Family::Roberta => "roberta",
            Family::XlmRoberta => "xlm-roberta",
        }
    }

    /// The transformers class of a sequence classifier (`architectures`).
    pub fn classifier_class(self) -> &'static str {
        match self {
            Family::Bert => "BertForSequenceClassification",
            Family::Roberta => "RobertaForSequenceClassification",
            Family::XlmRoberta => "XLMRobertaForSequenceClassification",
        }
    }

    pub fn head(self) -> HeadKind {
        match self {
            Family::Bert => HeadKind::Pooler,
            Family::Roberta | Family::XlmRoberta => HeadKind::Roberta,
        }
    }

    /// The position id of a sentence's first token: BERT counts from 0;
    /// RoBERTa counts after its pad id (`create_position_ids_from_input_ids`
    /// numbers real tokens `pad_token_id + 1, + 2, ...`).
    pub fn position_offset(self, pad_token_id: usize) -> usize {
        match self {
            Family::Bert => 0,
            Family::Roberta | Family::XlmRoberta => pad_token_id + 1,
        }
    }
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
}

impl HeadKind {
    /// Whether the first token is dropped out before the head's first dense layer.
    pub fn drops_input(self) -> bool {
        match self {
            HeadKind::Pooler => false,
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
    /// `[type_vocab, hidden]`.
    pub token_type: String,
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
    /// `classifier.dense`.
    pub pooler: DenseSpec,
    /// `[num_labels, hidden]`: BERT's `classifier`, RoBERTa's `classifier.out_proj`.
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
                LayerSpec {
                    query: DenseSpec::new(format!("{n}.attention.self.query"), h, h),
                    key: DenseSpec::new(format!("{n}.attention.self.key"), h, h),
                    value: DenseSpec::new(format!("{n}.attention.self.value"), h, h),
                    attn_out: DenseSpec::new(format!("{n}.attention.output.dense"), h, h),
                    attn_norm: norm(format!("{n}.attention.output.LayerNorm")),
                    intermediate: DenseSpec::new(format!("{n}.intermediate.dense"), m, h),
                    output: DenseSpec::new(format!("{n}.output.dense"), h, m),
                    out_norm: norm(format!("{n}.output.LayerNorm")),
                    prefix: n,
                }
            })
            .collect();
        let head = match family.head() {
            HeadKind::Pooler => HeadSpec {
                kind: HeadKind::Pooler,
                pooler: DenseSpec::new(format!("{p}.pooler.dense"), h, h),
                classifier: DenseSpec::new("classifier".into(), num_labels, h),
            },
            HeadKind::Roberta => HeadSpec {
                kind: HeadKind::Roberta,
                pooler: DenseSpec::new("classifier.dense".into(), h, h),
                classifier: DenseSpec::new("classifier.out_proj".into(), num_labels, h),
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
                token_type: format!("{p}.embeddings.token_type_embeddings.weight"),
                norm: norm(format!("{p}.embeddings.LayerNorm")),
            },
            layers,
            head,
        })
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
            (e.token_type.clone(), vec![self.type_vocab, h], Weight),
        ];
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
        match self.head.kind {
            HeadKind::Pooler | HeadKind::Roberta => {
                dense(&mut v, &self.head.pooler);
                dense(&mut v, &self.head.classifier);
            }
        }
        v
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
        assert_eq!(s.head.pooler.weight(), "classifier.dense.weight");
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
