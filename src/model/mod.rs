//! The BERT-family encoder with a sequence-classification head, mirroring
//! Hugging Face's `BertForSequenceClassification` names and behaviour.

mod bert;
mod config;
pub(crate) mod dropout;
mod layer_norm;
mod linear;
mod load;
mod params;
pub mod preflight;
pub mod spec;

pub use bert::{BertClassifier, LoraConfig};
pub use config::BertConfig;
pub use layer_norm::LayerNorm;
pub use linear::{Linear, Lora};
pub(crate) use load::map_file;
pub use load::LoadReport;
pub use params::{Init, ParamStore};
pub use spec::{Activation, ModelSpec};
