//! Checks a model directory must pass before anything is allocated: every
//! size in `config.json` within sane bounds and equal to the tensor shapes
//! in the weights file's header, so a hostile or corrupt config (a
//! `vocab_size` of 1e12, 3 layers over 6-layer weights) is an error naming
//! the file and the key, never an allocation abort or a silently smaller
//! model. Reading a safetensors header costs microseconds: no tensor is
//! decoded here.

use super::BertConfig;
use crate::{Error, Result};
use std::path::Path;

/// Upper bounds far above any BERT-family encoder this project could run.
const LIMITS: &[(&str, usize)] = &[
    ("vocab_size", 1_000_000),
    ("hidden_size", 8192),
    ("num_hidden_layers", 96),
    ("num_attention_heads", 256),
    ("intermediate_size", 65_536),
    ("max_position_embeddings", 65_536),
    ("type_vocab_size", 1024),
];

/// Bounds and internal consistency of a config (no file needed).
pub fn check_config(cfg: &BertConfig) -> std::result::Result<(), String> {
    let values = [
        cfg.vocab_size,
        cfg.hidden_size,
        cfg.num_hidden_layers,
        cfg.num_attention_heads,
        cfg.intermediate_size,
        cfg.max_position_embeddings,
        cfg.type_vocab_size,
    ];
    for ((key, max), v) in LIMITS.iter().zip(values) {
        if v == 0 || v > *max {
            return Err(format!("{key} {v} is outside 1..={max}"));
        }
    }
    if !(cfg.layer_norm_eps.is_finite() && cfg.layer_norm_eps > 0.0 && cfg.layer_norm_eps < 1.0) {
        return Err(format!(
            "layer_norm_eps {} must be a small positive number",
            cfg.layer_norm_eps
        ));
    }
    for (key, p) in [
        ("hidden_dropout_prob", cfg.hidden_dropout_prob),
        (
            "attention_probs_dropout_prob",
            cfg.attention_probs_dropout_prob,
        ),
    ] {
        if !(0.0..1.0).contains(&p) {
            return Err(format!("{key} {p} must be in [0, 1)"));
        }
    }
    if let (Some(id2label), Some(label2id)) = (&cfg.id2label, &cfg.label2id) {
        for (id, label) in id2label {
            match label2id.get(label) {
                Some(i) if i.to_string() == *id => {}
                other => {
                    return Err(format!(
                    "label2id {label:?} is {other:?}, but id2label says {id}: the two contradict"
                ))
                }
            }
        }
        if label2id.len() != id2label.len() {
            return Err(format!(
                "label2id has {} labels, id2label {}",
                label2id.len(),
                id2label.len()
            ));
        }
    }
    Ok(())
}

/// The config's sizes against the tensor shapes recorded in `weights`
/// (tensors absent from the file, as in a delta checkpoint, are skipped).
pub fn check_against_weights(cfg: &BertConfig, config_path: &Path, weights: &Path) -> Result<()> {
    let map = super::map_file(weights)?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&map[..])
        .map_err(|e| Error::file(weights, format!("not a safetensors file: {e}")))?;
    let tensors = meta.tensors();
    let spec = super::spec::ModelSpec::new(cfg, 1).map_err(|m| Error::file(config_path, m))?;
    let prefix = spec.family.prefix();
    // A name as the spec writes it (`bert.embeddings...`), found in the file
    // with or without the encoder prefix.
    let shape = |name: &str| -> Option<Vec<usize>> {
        let bare = name.strip_prefix(&spec.prefix_dot()).unwrap_or(name);
        [name, bare]
            .iter()
            .find_map(|n| tensors.get(*n).map(|t| t.shape.clone()))
    };
    let h = cfg.hidden_size;
    let e = &spec.embeddings;
    let mut expect = vec![
        (e.word.clone(), vec![cfg.vocab_size, h], "vocab_size"),
        (
            e.position.clone(),
            vec![cfg.max_position_embeddings, h],
            "max_position_embeddings",
        ),
    ];
    if let Some(t) = &e.token_type {
        expect.push((t.clone(), vec![cfg.type_vocab_size, h], "type_vocab_size"));
    }
    if let Some(l) = spec.layers.first() {
        expect.push((
            l.intermediate.weight(),
            vec![cfg.intermediate_size, h],
            "intermediate_size",
        ));
        expect.push((l.query.weight(), vec![h, h], "hidden_size"));
    }
    if let Some(r) = &spec.relative_bias {
        expect.push((
            r.name.clone(),
            vec![r.buckets, cfg.num_attention_heads],
            "relative_attention_num_buckets",
        ));
    }
    for (name, want, key) in expect {
        if let Some(got) = shape(&name) {
            if got != want {
                return Err(Error::file(
                    config_path,
                    format!(
                        "{key} (with hidden_size {h}) says {name} is {want:?}, but {} has {got:?}",
                        weights.display()
                    ),
                ));
            }
        }
    }
    // Layers present in the file must be exactly 0..num_hidden_layers.
    let mut layers: Vec<usize> = tensors
        .keys()
        .filter_map(|k| {
            k.trim_start_matches(&format!("{prefix}."))
                .strip_prefix("encoder.layer.")?
                .split('.')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    layers.sort_unstable();
    layers.dedup();
    // A file with embeddings is a whole encoder and must hold every layer;
    // a delta holds only its trained top layers.
    let whole = shape(&e.word).is_some();
    if let Some(&max) = layers.last() {
        if max + 1 > cfg.num_hidden_layers || (whole && max + 1 != cfg.num_hidden_layers) {
            return Err(Error::file(
                config_path,
                format!(
                    "num_hidden_layers is {}, but {} holds layers up to {max}",
                    cfg.num_hidden_layers,
                    weights.display()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_label_maps() {
        let mut c = BertConfig::tiny(100);
        assert!(check_config(&c).is_ok());
        c.vocab_size = 1_000_000_000_000;
        assert!(check_config(&c).unwrap_err().contains("vocab_size"));
        let mut c = BertConfig::tiny(100);
        c.id2label = Some(
            [
                ("0".to_string(), "a".to_string()),
                ("1".to_string(), "b".to_string()),
            ]
            .into(),
        );
        c.label2id = Some([("a".to_string(), 1), ("b".to_string(), 0)].into());
        assert!(check_config(&c).unwrap_err().contains("contradict"));
    }
}
