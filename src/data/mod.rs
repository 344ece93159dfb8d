//! Labelled sentences: reading them from JSONL / CSV / TSV with precise error
//! messages, splitting them by article, and summarising them.

mod reader;
pub mod realnews;
mod split;
mod stats;

pub use reader::{jsonl_bytes, read_file, read_files, write_jsonl};
pub use split::{split_by_article, Split, SplitConfig};
pub use stats::{LengthSummary, Stats};

use serde::{Deserialize, Serialize};

/// One sentence with its gold label, as read from a data file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelledSentence {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub article: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub index: Option<usize>,
    pub text: String,
    pub label: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub domain: Option<String>,
}

impl LabelledSentence {
    /// The article this sentence belongs to; a sentence without one is an
    /// article of its own (keyed by its id or text).
    pub fn article_key(&self) -> String {
        match (&self.article, &self.id) {
            (Some(a), _) => a.clone(),
            (None, Some(id)) => format!("id:{id}"),
            (None, None) => format!("text:{}", self.text),
        }
    }
}

/// Lower-cased text with runs of whitespace collapsed: what "the same
/// sentence" means for duplicate reports.
pub fn normalise(text: &str) -> String {
    text.split_whitespace()
        .map(|w| w.to_lowercase())
        .collect::<Vec<_>>()
        .join(" ")
}
