//! Reader of PolNeAR's brat standoff annotation.
//!
//! A compartment directory (`train/`, `dev/`) holds `text/NAME.txt` and
//! `attributions/NAME_XXXX.ann`, where `XXXX` is the annotator's hex id. The
//! `.ann` lines this reader understands:
//!
//! - `T3\tContent 120 211\tthat the ...`: a text-bound annotation. Offsets
//!   count Unicode scalar values; a discontinuous span lists fragments
//!   separated by `;` (`Content 10 20;25 30`), not always in text order, and
//!   its text column joins the fragments with a space. brat writes the text
//!   verbatim, so a span containing newlines continues on the following lines.
//! - `E1\tAttribution:T4 Content:T3 Cue:T2 Source:T1`: an attribution,
//!   triggered by an `Attribution` (or `Attribution-no-source`) annotation.
//!
//! `Source`, `Cue` and `Content` annotations become [`Span`]s, one per
//! fragment. The trigger types only repeat (or slightly misplace) the cue and
//! `Discuss` / `Discard` are annotators' flags, so those are skipped; any other
//! type is an error. Notes (`#`) and the other brat kinds (`A`, `R`, `M`, `N`,
//! `*`) carry no spans and are skipped.

use super::tags::CharBytes;
use super::{Document, Relation, Role, Span};
use crate::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Text-bound types that carry no span of their own.
const SKIPPED_TYPES: &[&str] = &["Attribution", "Attribution-no-source", "Discuss", "Discard"];

/// Line kinds (first character) that carry no spans.
const SKIPPED_KINDS: &[char] = &['#', 'A', 'R', 'M', 'N', '*'];

/// Read every article of a PolNeAR compartment: one [`Document`] per
/// `text/*.txt`, sorted by name.
///
/// A few articles were annotated by several annotators; the annotation used
/// is the alphabetically first `attributions/{stem}_{hex}.ann`, i.e. the one
/// with the smallest annotator id, so the choice is stable and needs no
/// metadata. An article without any `.ann`, or an `.ann` without its article,
/// is an error. Files in either directory with other extensions are ignored.
pub fn read_dir(dir: &Path) -> Result<Vec<Document>> {
    let text_dir = dir.join("text");
    let ann_dir = dir.join("attributions");
    let texts = list(&text_dir, ".txt")?;
    let mut anns: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in list(&ann_dir, ".ann")? {
        let stem = name
            .rsplit_once('_')
            .filter(|(_, hex)| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(|(stem, _)| stem.to_string())
            .ok_or_else(|| {
                Error::file(
                    ann_dir.join(format!("{name}.ann")),
                    "not named ARTICLE_ANNOTATOR.ann with a hex annotator id",
                )
            })?;
        anns.entry(stem).or_default().push(name);
    }
    if let Some(orphan) = anns.keys().find(|stem| texts.binary_search(stem).is_err()) {
        let path = ann_dir.join(format!("{}.ann", anns[orphan][0]));
        return Err(Error::file(path, format!("no text/{orphan}.txt for it")));
    }
    texts
        .into_iter()
        .map(|stem| {
            let text_path = text_dir.join(format!("{stem}.txt"));
            // `list` sorted the names, so the first is the alphabetical first.
            let ann_name = anns
                .get(&stem)
                .and_then(|names| names.first())
                .ok_or_else(|| {
                    Error::file(
                        &text_path,
                        format!("no attributions/{stem}_XXXX.ann for it"),
                    )
                })?;
            let ann_path = ann_dir.join(format!("{ann_name}.ann"));
            let text = read(&text_path)?;
            let ann = read(&ann_path)?;
            let (spans, relations) = parse_ann(&ann_path, &text, &ann)?;
            Ok(Document {
                name: stem,
                text,
                spans,
                relations,
            })
        })
        .collect()
}

/// Parse one `.ann` file against its article text. `path` only names the
/// file in errors. Returns the spans (byte offsets, sorted by start, then end,
/// then role, exact duplicates dropped) and the relations indexing them.
///
/// A relation's lists are filled by each referenced span's own role, so an
/// argument labelled `Content:` that points at a `Source` annotation (a few
/// do) lands in `source`. Arguments pointing at skipped types are dropped,
/// as are relations left with no span at all (brat's empty event stubs).
pub fn parse_ann(path: &Path, text: &str, ann: &str) -> Result<(Vec<Span>, Vec<Relation>)> {
    let offsets = CharBytes::new(text);
    // Text-bound id -> its spans (empty for skipped types).
    let mut entities: HashMap<&str, Vec<Span>> = HashMap::new();
    let mut events = Vec::new();
    let mut lines = ann.lines().enumerate().map(|(i, l)| (i + 1, l));
    while let Some((no, line)) = lines.next() {
        match line.chars().next() {
            None => {}
            Some('T') => {
                let (id, spans) = text_bound(path, no, line, &mut lines, text, &offsets)?;
                if entities.insert(id, spans).is_some() {
                    return Err(Error::data(
                        path,
                        no,
                        format!("annotation {id} defined twice"),
                    ));
                }
            }
            Some('E') => events.push((no, event(path, no, line)?)),
            Some(c) if SKIPPED_KINDS.contains(&c) => {}
            Some(_) => {
                return Err(Error::data(
                    path,
                    no,
                    format!("not a brat annotation line: {}", preview(line)),
                ))
            }
        }
    }

    let key = |s: &Span| (s.start, s.end, s.role);
    let mut spans: Vec<Span> = entities.values().flatten().copied().collect();
    spans.sort_by_key(key);
    spans.dedup();

    let mut relations = Vec::new();
    for (no, args) in events {
        let mut rel = Relation {
            source: Vec::new(),
            cue: Vec::new(),
            content: Vec::new(),
        };
        for id in args {
            let members = entities.get(id).ok_or_else(|| {
                Error::data(path, no, format!("refers to undefined annotation {id}"))
            })?;
            for span in members {
                // Every entity span is in `spans`, so the search succeeds.
                let Ok(index) = spans.binary_search_by_key(&key(span), key) else {
                    continue;
                };
                match span.role {
                    Role::Source => rel.source.push(index),
                    Role::Cue => rel.cue.push(index),
                    Role::Content => rel.content.push(index),
                }
            }
        }
        for list in [&mut rel.source, &mut rel.cue, &mut rel.content] {
            list.sort_unstable();
            list.dedup();
        }
        if !(rel.source.is_empty() && rel.cue.is_empty() && rel.content.is_empty()) {
            relations.push(rel);
        }
    }
    Ok((spans, relations))
}

/// The stems of the files in `dir` ending in `ext`, sorted.
fn list(dir: &Path, ext: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let name = name
            .to_str()
            .ok_or_else(|| Error::file(entry.path(), "file name is not UTF-8"))?;
        if let Some(stem) = name.strip_suffix(ext) {
            names.push(stem.to_string());
        }
    }
    names.sort();
    Ok(names)
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// Parse a `T` line (and the continuation lines of a text with newlines) into
/// its id and spans.
fn text_bound<'a>(
    path: &Path,
    no: usize,
    line: &'a str,
    rest: &mut impl Iterator<Item = (usize, &'a str)>,
    text: &str,
    offsets: &CharBytes,
) -> Result<(&'a str, Vec<Span>)> {
    let bad = |message: String| Error::data(path, no, message);
    let mut fields = line.splitn(3, '\t');
    let (Some(id), Some(body), Some(written)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(bad(format!(
            "expected ID<tab>TYPE OFFSETS<tab>TEXT, got {}",
            preview(line)
        )));
    };
    let (kind, ranges) = body
        .split_once(' ')
        .ok_or_else(|| bad(format!("expected TYPE OFFSETS, got {body:?}")))?;
    let role = match kind {
        "Source" => Some(Role::Source),
        "Cue" => Some(Role::Cue),
        "Content" => Some(Role::Content),
        _ if SKIPPED_TYPES.contains(&kind) => None,
        _ => return Err(bad(format!("unknown annotation type {kind:?}"))),
    };

    let mut fragments = Vec::new();
    for range in ranges.split(';') {
        let parsed: Vec<Option<usize>> = range.split(' ').map(|n| n.parse().ok()).collect();
        let [Some(start), Some(end)] = parsed[..] else {
            return Err(bad(format!("expected START END offsets, got {range:?}")));
        };
        if start >= end {
            return Err(bad(format!("empty or reversed span {start}..{end}")));
        }
        let (Some(start), Some(end)) = (offsets.checked_byte(start), offsets.checked_byte(end))
        else {
            return Err(bad(format!(
                "span {start}..{end} runs past the end of the text ({} characters)",
                offsets.chars()
            )));
        };
        fragments.push((start, end));
    }

    let expected = fragments
        .iter()
        .map(|&(start, end)| &text[start..end])
        .collect::<Vec<_>>()
        .join(" ");
    let mut found = written.to_string();
    for _ in 0..expected.matches('\n').count() {
        found.push('\n');
        found.push_str(rest.next().map_or("", |(_, l)| l));
    }
    if found != expected {
        return Err(bad(format!(
            "{id}'s text {} differs from the article's {}",
            preview(&found),
            preview(&expected)
        )));
    }

    let spans = role.map_or_else(Vec::new, |role| {
        fragments
            .into_iter()
            .map(|(start, end)| Span { role, start, end })
            .collect()
    });
    Ok((id, spans))
}

/// Parse an `E` line into the ids of its arguments (trigger included).
fn event<'a>(path: &Path, no: usize, line: &'a str) -> Result<Vec<&'a str>> {
    let bad = |message: String| Error::data(path, no, message);
    let (_, args) = line
        .split_once('\t')
        .ok_or_else(|| bad(format!("expected ID<tab>ARGUMENTS, got {}", preview(line))))?;
    let ids = args
        .split_whitespace()
        .map(|arg| match arg.split_once(':') {
            Some((role, id)) if !role.is_empty() && !id.is_empty() => Ok(id),
            _ => Err(bad(format!("expected ROLE:ID, got {arg:?}"))),
        })
        .collect::<Result<Vec<_>>>()?;
    if ids.is_empty() {
        return Err(bad("attribution without a trigger".to_string()));
    }
    Ok(ids)
}

/// A line or span text, shortened for an error message.
fn preview(s: &str) -> String {
    const MAX: usize = 60;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}...", &s[..cut]),
        None => format!("{s:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, ann: &str) -> Result<(Vec<Span>, Vec<Relation>)> {
        parse_ann(Path::new("x_ab12.ann"), text, ann)
    }

    fn span(role: Role, start: usize, end: usize) -> Span {
        Span { role, start, end }
    }

    #[test]
    fn char_offsets_become_byte_offsets() {
        // The curly quote is three bytes but one brat character.
        let text = "\u{201c}Hi,\u{201d} we said.";
        let ann = "T1\tSource 6 8\twe\nT2\tCue 9 13\tsaid\nT3\tContent 0 5\t\u{201c}Hi,\u{201d}\n\
                   T4\tAttribution 9 13\tsaid\nE1\tAttribution:T4 Content:T3 Cue:T2 Source:T1\n";
        let (spans, relations) = parse(text, ann).unwrap();
        assert_eq!(
            spans,
            [
                span(Role::Content, 0, 9),
                span(Role::Source, 10, 12),
                span(Role::Cue, 13, 17)
            ]
        );
        assert_eq!(&text[10..12], "we");
        assert_eq!(
            relations,
            [Relation {
                source: vec![1],
                cue: vec![2],
                content: vec![0]
            }]
        );
    }

    #[test]
    fn discontinuous_spans_become_fragments_of_one_relation() {
        let text = "Taxes, he said, will rise.";
        let ann = "T1\tContent 16 26;0 5\twill rise. Taxes\nT2\tSource 7 9\the\n\
                   T3\tCue 10 14\tsaid\nE1\tAttribution:T3 Source:T2 Cue:T3 Content:T1\n\
                   T4\tAttribution 10 14\tsaid\nT5\tSource 7 9\the\n#1\tAnnotatorNotes T1\tok\n";
        let (spans, relations) = parse(text, ann).unwrap();
        // T5 duplicates T2 exactly and is dropped.
        assert_eq!(
            spans,
            [
                span(Role::Content, 0, 5),
                span(Role::Source, 7, 9),
                span(Role::Cue, 10, 14),
                span(Role::Content, 16, 26)
            ]
        );
        assert_eq!(relations[0].content, [0, 3]);
        assert_eq!(relations[0].source, [1]);
    }

    #[test]
    fn span_text_with_newlines_continues_on_the_next_lines() {
        let text = "3.\n\nThe number, they said.";
        let ann = "T1\tContent 0 14\t3.\n\nThe number\nT2\tSource 16 20\tthey\n";
        let (spans, _) = parse(text, ann).unwrap();
        assert_eq!(
            spans,
            [span(Role::Content, 0, 14), span(Role::Source, 16, 20)]
        );
    }

    #[test]
    fn malformed_line_names_its_line() {
        let text = "he said";
        let ann = "T1\tSource 0 2\the\nT2\tCue 3 x\tsaid\n";
        let err = parse(text, ann).unwrap_err().to_string();
        assert!(err.starts_with("x_ab12.ann:2: "), "{err}");
        let err = parse(text, "T1\tSource 0 2\the\n\nE1 Cue:T1\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x_ab12.ann:3: "), "{err}");
        let err = parse(text, "T1\tSource 0 99\the\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("past the end"), "{err}");
        let err = parse(text, "E1\tAttribution:T9\n").unwrap_err().to_string();
        assert!(err.contains("undefined annotation T9"), "{err}");
    }

    #[test]
    fn span_text_mismatch_is_an_error() {
        let err = parse("he said", "T1\tSource 0 2\tshe\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("x_ab12.ann:1: "), "{err}");
        assert!(err.contains("\"she\"") && err.contains("\"he\""), "{err}");
    }

    #[test]
    fn reads_the_dev_compartment() {
        let dir = Path::new("/work/shared/realnews/polnear/dev");
        if !dir.is_dir() {
            return;
        }
        let docs = read_dir(dir).unwrap();
        assert_eq!(docs.len(), 84);
        assert!(docs.windows(2).all(|w| w[0].name < w[1].name));
        for role in Role::ALL {
            let n: usize = docs
                .iter()
                .map(|d| d.spans.iter().filter(|s| s.role == role).count())
                .sum();
            assert!((1000..10_000).contains(&n), "{} {role:?} spans", n);
        }
        let relations: usize = docs.iter().map(|d| d.relations.len()).sum();
        assert!(relations > 2000, "{relations} relations");
        for d in &docs {
            assert!(d.spans.windows(2).all(|w| w[0].start <= w[1].start));
            for s in &d.spans {
                assert!(s.start < s.end && s.end <= d.text.len());
                assert!(d.text.is_char_boundary(s.start) && d.text.is_char_boundary(s.end));
            }
            for r in &d.relations {
                for (list, role) in [
                    (&r.source, Role::Source),
                    (&r.cue, Role::Cue),
                    (&r.content, Role::Content),
                ] {
                    assert!(list.iter().all(|&i| d.spans[i].role == role));
                }
            }
        }
    }
}
