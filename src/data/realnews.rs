//! The real-news corpus, stored stand-off.
//!
//! The publishers own the articles (PolNeAR, NewsDiscourse, BBC News), so
//! the project's git holds no sentence text from them: `data/real/*.jsonl`
//! holds, per sentence, the document's path within its source, code-point
//! offsets, the SHA-1 of the sentence text and the labels. [`build`] reads
//! the documents from a directory laid out like `shared/realnews` (or clones
//! of the public repositories at the commits in the data card), slices every
//! sentence back out, verifies its hash and returns ordinary
//! [`LabelledSentence`]s.
//!
//! [`segment`] is how the sentences were cut in the first place: the
//! project's splitter, run over the parts of each document that are article
//! text (NewsDiscourse files carry `URL`/`DATE` lines and `H`/`S<n>` line
//! prefixes that are not).

use super::LabelledSentence;
use crate::splitter::{split_sentences, Sentence};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The three real collections; the name is also the folder in the root.
pub const SOURCES: &[&str] = &["polnear", "newsdiscourse", "bbc"];

/// One stand-off sentence: everything but its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandoffSentence {
    pub id: String,
    pub source: String,
    /// The document's path within its source folder.
    pub doc: String,
    pub index: usize,
    /// Offsets in code points into the document file.
    pub start: usize,
    pub end: usize,
    /// SHA-1 (hex) of the sentence text, UTF-8.
    pub sha1: String,
    pub label: String,
    pub label_a: String,
    pub label_b: String,
    pub split: String,
    /// How the final label was reached when it is not simply the agreed
    /// one: `adjudicated` (A and B differed) or `rechecked` (they agreed,
    /// and a rule settled in adjudication changed it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<String>,
    /// Annotation round: 1 made the train/dev/test splits; rounds 2 and 4
    /// added training articles and round 3 dev articles, so test stays fixed.
    #[serde(default = "first_round")]
    pub round: u32,
}

fn first_round() -> u32 {
    1
}

/// The article key of a document: `source/doc` without the extension.
pub fn article_id(source: &str, doc: &str) -> String {
    format!("{source}/{}", doc.strip_suffix(".txt").unwrap_or(doc))
}

/// SHA-1 of `text` as lower-case hex.
pub fn sha1_hex(text: &str) -> String {
    Sha1::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Split one document into sentences, offsets in code points of the whole
/// file.
pub fn segment(source: &str, text: &str) -> Vec<Sentence> {
    if source != "newsdiscourse" {
        return split_sentences(text);
    }
    // NewsDiscourse: `H headline` and `S<n> sentence...` lines are article
    // text; `URL` and `DATE/ AUTHOR` lines are metadata.
    let mut out = Vec::new();
    let mut offset = 0; // code points before the current line
    for line in text.split_inclusive('\n') {
        let prefix = line.split(' ').next().unwrap_or("");
        let is_text = prefix == "H"
            || (prefix.len() > 1
                && prefix.starts_with('S')
                && prefix[1..].chars().all(|c| c.is_ascii_digit()));
        if is_text {
            let skip = prefix.chars().count() + 1;
            let body: String = line.chars().skip(skip).collect();
            for s in split_sentences(&body) {
                out.push(Sentence {
                    start: offset + skip + s.start,
                    end: offset + skip + s.end,
                    text: s.text,
                });
            }
        }
        offset += line.chars().count();
    }
    out
}

/// Read the stand-off files (one JSON object per line).
pub fn read_standoff(files: &[PathBuf]) -> Result<Vec<StandoffSentence>> {
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let row: StandoffSentence =
                serde_json::from_str(line).map_err(|e| Error::data(path, i + 1, e.to_string()))?;
            if !SOURCES.contains(&row.source.as_str()) {
                return Err(Error::data(
                    path,
                    i + 1,
                    format!(
                        "unknown source {:?} (expected one of {SOURCES:?})",
                        row.source
                    ),
                ));
            }
            if row.doc.split('/').any(|p| p == ".." || p.is_empty()) || row.doc.starts_with('/') {
                return Err(Error::data(
                    path,
                    i + 1,
                    format!("document path {:?} must be relative, without '..'", row.doc),
                ));
            }
            out.push(row);
        }
    }
    Ok(out)
}

/// Rebuild the text of every stand-off sentence from the documents under
/// `root` (`root/<source>/<doc>`), verifying each hash. Returns the rows by
/// split name, articles and sentences in stand-off order.
pub fn build(
    rows: &[StandoffSentence],
    root: &Path,
) -> Result<BTreeMap<String, Vec<LabelledSentence>>> {
    let mut docs: HashMap<(String, String), Vec<char>> = HashMap::new();
    let mut out: BTreeMap<String, Vec<LabelledSentence>> = BTreeMap::new();
    for r in rows {
        let key = (r.source.clone(), r.doc.clone());
        if !docs.contains_key(&key) {
            let path = root.join(&r.source).join(&r.doc);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Error::file(&path, format!("document {}/{} of the real-news corpus cannot be read ({e}); pass --root pointing at a copy of shared/realnews", r.source, r.doc))
            })?;
            docs.insert(key.clone(), text.chars().collect());
        }
        let chars = &docs[&key];
        let path = root.join(&r.source).join(&r.doc);
        if r.start >= r.end || r.end > chars.len() {
            return Err(Error::file(
                &path,
                format!(
                    "sentence {}: offsets {}..{} outside the document ({} characters)",
                    r.id,
                    r.start,
                    r.end,
                    chars.len()
                ),
            ));
        }
        let text: String = chars[r.start..r.end].iter().collect();
        let got = sha1_hex(&text);
        if got != r.sha1 {
            return Err(Error::file(&path, format!("sentence {} ({}..{}): text hash {got} does not match the stored {}; the document differs from the pinned version", r.id, r.start, r.end, r.sha1)));
        }
        out.entry(r.split.clone())
            .or_default()
            .push(LabelledSentence {
                id: Some(r.id.clone()),
                article: Some(article_id(&r.source, &r.doc)),
                index: Some(r.index),
                text,
                label: r.label.clone(),
                domain: Some(r.source.clone()),
            });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_of_known_text() {
        // `printf abc | sha1sum`
        assert_eq!(sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    #[test]
    fn newsdiscourse_lines_skip_metadata_and_prefixes() {
        let text = "URL https://x\n\nDATE/ AUTHOR 2018\n\nH Headline here\n\nS1 First one. Second one.\nS2 Third.\n";
        let s = segment("newsdiscourse", text);
        let texts: Vec<&str> = s.iter().map(|x| x.text.as_str()).collect();
        assert_eq!(
            texts,
            ["Headline here", "First one.", "Second one.", "Third."]
        );
        let chars: Vec<char> = text.chars().collect();
        for x in &s {
            assert_eq!(chars[x.start..x.end].iter().collect::<String>(), x.text);
        }
    }
}
