//! The BERT-family encoder with a sequence-classification head, mirroring
//! Hugging Face's `BertForSequenceClassification` names and behaviour.

mod bert;
mod linear;
mod config;
mod dropout;
mod layer_norm;
mod load;
pub mod ops;
mod params;
pub mod preflight;

pub use bert::{BertClassifier, LoraConfig};
pub(crate) use bert::layer_linears;
pub use config::BertConfig;
pub use dropout::Dropout;
pub use layer_norm::LayerNorm;
pub use linear::{Linear, Lora};
pub use load::LoadReport;
pub(crate) use load::map_file;
pub use params::{Init, ParamStore};
