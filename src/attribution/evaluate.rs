//! `stance eval --task attribution`: the tagger on PolNeAR-layout data,
//! scored span by span against the annotators' source, cue and content.

use super::score::{score, AttributionReport};
use super::tagger::Tagger;
use super::tags::{sentence_bytes, CharBytes};
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
    let predicted = tagger.spans(&inputs, &tagger.engine(precision)?)?;
    let triples: Vec<(&str, &[super::Span], &[super::Span])> = docs
        .iter()
        .zip(&predicted)
        .map(|(d, p)| (d.text.as_str(), d.spans.as_slice(), p.as_slice()))
        .collect();
    let report = score(&triples);
    Ok((report, docs, predicted))
}

/// One span of `eval --task attribution --predictions`: gold or predicted,
/// and whether the other side has the same span.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SpanRow<'a> {
    pub document: &'a str,
    pub role: super::Role,
    pub start: usize,
    pub end: usize,
    pub text: &'a str,
    pub gold: bool,
    pub predicted: bool,
}

/// Every gold and every predicted span of every document, in text order; a
/// span both sides have is one row. Offsets count characters (Unicode
/// scalar values), as brat's `.ann` files and `stance predict` do.
pub fn span_rows<'a>(docs: &'a [Document], predicted: &'a [Vec<super::Span>]) -> Vec<SpanRow<'a>> {
    let mut out = Vec::new();
    for (d, p) in docs.iter().zip(predicted) {
        let mut all: Vec<(super::Span, bool, bool)> = Vec::new();
        for s in &d.spans {
            all.push((*s, true, p.contains(s)));
        }
        for s in p.iter().filter(|s| !d.spans.contains(s)) {
            all.push((*s, false, true));
        }
        all.sort_by_key(|(s, ..)| (s.start, s.end));
        let offsets = CharBytes::new(&d.text);
        out.extend(all.into_iter().map(|(s, gold, predicted)| SpanRow {
            document: &d.name,
            role: s.role,
            start: offsets.char(s.start),
            end: offsets.char(s.end),
            text: &d.text[s.start..s.end],
            gold,
            predicted,
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::{Role, Span};

    #[test]
    fn rows_count_characters_as_brat_does() {
        // "“" is three bytes but one character.
        let text = "“No,” Ann said.";
        let said = text.find("said").unwrap();
        let cue = Span {
            role: Role::Cue,
            start: said,
            end: said + 4,
        };
        let doc = Document {
            name: "d".into(),
            text: text.into(),
            spans: vec![cue],
            relations: vec![],
        };
        let ann = text.find("Ann").unwrap();
        let source = Span {
            role: Role::Source,
            start: ann,
            end: ann + 3,
        };
        let predicted = vec![vec![source, cue]];
        let rows = span_rows(std::slice::from_ref(&doc), &predicted);
        let got: Vec<_> = rows
            .iter()
            .map(|r| (r.text, r.start, r.end, r.gold, r.predicted))
            .collect();
        assert_eq!(
            got,
            [("Ann", 6, 9, false, true), ("said", 10, 14, true, true)]
        );
        let chars: Vec<char> = text.chars().collect();
        assert_eq!(chars[10..14].iter().collect::<String>(), "said");
    }
}
