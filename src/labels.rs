//! The label set: an ordered list of names whose positions are the class ids
//! the model predicts. Stored in checkpoints as Hugging Face `id2label`.

use crate::{Error, Result};
use std::collections::BTreeMap;

/// The four stance labels of `data/README.md`, in class-id order.
pub const DEFAULT_LABELS: [&str; 4] = ["assertion", "denial", "allegation", "context"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelSet {
    names: Vec<String>,
}

impl LabelSet {
    pub fn new(names: Vec<String>) -> Result<Self> {
        if names.len() < 2 {
            return Err(Error::Invalid(format!(
                "need at least two labels, got {names:?}"
            )));
        }
        for (i, n) in names.iter().enumerate() {
            if n.trim().is_empty() || n.trim() != n {
                return Err(Error::Invalid(format!(
                    "label {i} is empty or has surrounding spaces: {n:?}"
                )));
            }
            if names[..i].contains(n) {
                return Err(Error::Invalid(format!("label {n:?} is listed twice")));
            }
        }
        Ok(LabelSet { names })
    }

    pub fn default_stance() -> Self {
        LabelSet {
            names: DEFAULT_LABELS.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Parse a comma-separated list such as `--labels a,b,c`.
    pub fn parse(list: &str) -> Result<Self> {
        Self::new(list.split(',').map(|s| s.trim().to_string()).collect())
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
    pub fn names(&self) -> &[String] {
        &self.names
    }
    pub fn name(&self, id: usize) -> &str {
        &self.names[id]
    }
    pub fn id(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// `id2label` as Hugging Face writes it: string keys "0", "1", ...
    pub fn id2label(&self) -> BTreeMap<String, String> {
        self.names
            .iter()
            .enumerate()
            .map(|(i, n)| (i.to_string(), n.clone()))
            .collect()
    }

    pub fn label2id(&self) -> BTreeMap<String, usize> {
        self.names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect()
    }

    /// Rebuild from a Hugging Face `id2label` map; ids must be 0..n-1.
    pub fn from_id2label(map: &BTreeMap<String, String>) -> Result<Self> {
        let mut pairs: Vec<(usize, String)> = Vec::with_capacity(map.len());
        for (k, v) in map {
            let id: usize = k
                .parse()
                .map_err(|_| Error::Invalid(format!("id2label key {k:?} is not an integer")))?;
            pairs.push((id, v.clone()));
        }
        pairs.sort();
        if pairs.iter().enumerate().any(|(i, (id, _))| *id != i) {
            return Err(Error::Invalid("id2label ids are not 0..n-1".into()));
        }
        Self::new(pairs.into_iter().map(|(_, v)| v).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_validation() {
        let l = LabelSet::default_stance();
        assert_eq!(l.id("denial"), Some(1));
        assert_eq!(LabelSet::from_id2label(&l.id2label()).unwrap(), l);
        assert!(LabelSet::parse("a,a").is_err());
        assert!(LabelSet::parse("a").is_err());
        assert!(LabelSet::parse("a, ,b").is_err());
        assert_eq!(LabelSet::parse("x, y").unwrap().names(), ["x", "y"]);
    }
}
