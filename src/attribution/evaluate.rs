//! `stance eval --task attribution`: the tagger on PolNeAR-layout data,
//! scored span by span against the annotators' source, cue and content.

use super::score::{score, AttributionReport};
use super::tagger::Tagger;
use super::tags::sentence_bytes;
use super::Document;
use crate::engine::Precision;
use crate::Result;
use std::path::PathBuf;

/// Read every directory's documents, tag them as `stance predict` does
/// (the same sentences, windows and decoding) and score the spans.
pub fn evaluate(
    tagger: &Tagger,
    dirs: &[PathBuf],
    precision: Precision,
) -> Result<(AttributionReport, Vec<Document>, Vec<Vec<super::Span>>)> {
    let mut docs = Vec::new();
    for d in dirs {
        docs.extend(super::polnear::read_dir(d)?);
    }
    let inputs: Vec<(&str, Vec<std::ops::Range<usize>>)> = docs
        .iter()
        .map(|d| {
            let sentences = crate::splitter::split_sentences(&d.text);
            (d.text.as_str(), sentence_bytes(&d.text, &sentences))
        })
        .collect();
    let predicted = tagger.spans(&inputs, precision)?;
    let triples: Vec<(&str, &[super::Span], &[super::Span])> = docs
        .iter()
        .zip(&predicted)
        .map(|(d, p)| (d.text.as_str(), d.spans.as_slice(), p.as_slice()))
        .collect();
    let report = score(&triples);
    Ok((report, docs, predicted))
}
