//! stance: fine-tune a small BERT-family encoder to label every sentence of a
//! news article as `assertion`, `denial`, `allegation` or `context`.
//!
//! Data flows one way: file -> [`data::LabelledSentence`] -> tokenised
//! [`batch::Batch`] -> [`model::BertClassifier`] -> logits -> [`metrics`] /
//! [`predict`] output.

pub mod atomic;
pub mod attribution;
pub mod batch;
pub mod bench;
pub(crate) mod boilerplate;
pub(crate) mod calibrate;
pub mod checkpoint;
pub(crate) mod context;
pub mod data;
pub mod download;
pub mod engine;
pub(crate) mod error;
pub mod eval;
pub mod guard;
pub mod hash_cache;
pub mod html;
pub mod hub;
pub mod infer;
pub mod input;
pub mod labeller;
pub mod labels;
pub mod memory;
pub(crate) mod metrics;
pub mod model;
pub mod predict;
pub mod progress;
pub mod rng;
pub mod serve;
pub mod splitter;
pub mod stream;
pub mod train;

pub use error::{Error, Result};
