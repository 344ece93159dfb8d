//! A Hugging Face BERT `config.json`. Unknown fields are kept, so a config we
//! load and write back loses nothing a transformers user relies on.

use crate::labels::LabelSet;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}
fn default_dropout() -> f64 {
    0.1
}
fn default_type_vocab() -> usize {
    2
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier_dropout: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id2label: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label2id: Option<BTreeMap<String, usize>>,
    /// Everything else in the file, written back unchanged.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl BertConfig {
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg: BertConfig = serde_json::from_str(&text)
            .map_err(|e| Error::file(path, format!("not a BERT config.json: {e}")))?;
        cfg.validate().map_err(|m| Error::file(path, m))?;
        Ok(cfg)
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        super::preflight::check_config(self)?;
        if self.hidden_size == 0
            || self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if super::spec::Activation::from_hf(&self.hidden_act).is_none() {
            return Err(format!("unsupported hidden_act {:?}", self.hidden_act));
        }
        match self
            .extra
            .get("position_embedding_type")
            .and_then(|v| v.as_str())
        {
            None | Some("absolute") => {}
            Some(other) => return Err(format!("unsupported position_embedding_type {other:?}")),
        }
        super::spec::Family::from_config(self)?;
        Ok(())
    }

    pub fn labels(&self) -> Option<Result<LabelSet>> {
        self.id2label.as_ref().map(LabelSet::from_id2label)
    }

    /// The config of the classifier `spec` describes (a sequence or a token
    /// classifier) with these labels, as transformers writes it.
    pub fn for_classification(&self, spec: &super::spec::ModelSpec, labels: &LabelSet) -> Self {
        let mut c = self.clone();
        c.id2label = Some(labels.id2label());
        c.label2id = Some(labels.label2id());
        c.extra.insert(
            "architectures".into(),
            serde_json::json!([spec.architecture()]),
        );
        c.extra.insert(
            "model_type".into(),
            serde_json::json!(spec.family.model_type()),
        );
        match spec.task() {
            super::spec::Task::Sentence => c.extra.insert(
                "problem_type".into(),
                serde_json::json!("single_label_classification"),
            ),
            super::spec::Task::Token => c.extra.remove("problem_type"),
        };
        c.extra.remove("_name_or_path");
        // Written by stance, not by the transformers version that wrote the base.
        c.extra.remove("transformers_version");
        c
    }

    /// The longest sentence the position table can number: RoBERTa's
    /// positions start after its pad id ([`super::spec::Family::position_offset`]).
    pub fn max_tokens(&self) -> usize {
        let offset = super::spec::Family::from_config(self)
            .map(|f| f.position_offset(self.pad_token_id))
            .unwrap_or(0);
        self.max_position_embeddings.saturating_sub(offset)
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// The tiny random config the tests use (2 layers, hidden 32).
    pub fn tiny(vocab_size: usize) -> Self {
        BertConfig {
            vocab_size,
            hidden_size: 32,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            intermediate_size: 64,
            hidden_act: "gelu".into(),
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            max_position_embeddings: 128,
            type_vocab_size: 2,
            layer_norm_eps: 1e-12,
            pad_token_id: 0,
            classifier_dropout: None,
            id2label: None,
            label2id: None,
            extra: serde_json::Map::from_iter([(
                "model_type".to_string(),
                serde_json::json!("bert"),
            )]),
        }
    }
}
