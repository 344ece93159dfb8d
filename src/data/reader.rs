//! Read labelled sentences from JSONL (`{"text", "label"}` plus optional
//! `article`, `index`, `id`, `domain`) or from CSV / TSV with a header row.
//! Every problem is reported with the file and line; nothing is half-loaded.

use super::LabelledSentence;
use crate::labels::LabelSet;
use crate::{Error, Result};
use std::path::Path;

#[derive(serde::Deserialize)]
struct JsonRow {
    text: Option<serde_json::Value>,
    label: Option<serde_json::Value>,
    article: Option<serde_json::Value>,
    index: Option<serde_json::Value>,
    id: Option<serde_json::Value>,
    domain: Option<serde_json::Value>,
}

/// Read one file; with `labels`, every label must belong to the set.
pub fn read_file(path: &Path, labels: Option<&LabelSet>) -> Result<Vec<LabelledSentence>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = check_utf8(path, &bytes)?;
    // Editors on Windows save UTF-8 with a byte-order mark; it is not part of the data.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let rows = match ext.as_str() {
        "csv" => read_delimited(path, text, b',')?,
        "tsv" | "tab" => read_delimited(path, text, b'\t')?,
        _ => read_jsonl(path, text)?,
    };
    if rows.is_empty() {
        return Err(Error::file(path, "no labelled sentences in file"));
    }
    if let Some(set) = labels {
        for (line, s) in &rows {
            if set.id(&s.label).is_none() {
                return Err(Error::data(
                    path,
                    *line,
                    format!(
                        "unknown label {:?} (expected one of: {})",
                        s.label,
                        set.names().join(", ")
                    ),
                ));
            }
        }
    }
    Ok(rows.into_iter().map(|(_, s)| s).collect())
}

/// Read several files into one list, in order.
pub fn read_files(
    paths: &[impl AsRef<Path>],
    labels: Option<&LabelSet>,
) -> Result<Vec<LabelledSentence>> {
    let mut all = Vec::new();
    for p in paths {
        all.extend(read_file(p.as_ref(), labels)?);
    }
    Ok(all)
}

/// Write sentences as JSONL, atomically.
pub fn write_jsonl(path: &Path, rows: &[LabelledSentence]) -> Result<()> {
    crate::atomic::write_file(path, &jsonl_bytes(rows)?)
}

/// Rows as JSONL, one object per line.
pub fn jsonl_bytes(rows: &[LabelledSentence]) -> Result<Vec<u8>> {
    let mut out = String::new();
    for r in rows {
        out.push_str(&serde_json::to_string(r).map_err(|e| Error::Invalid(e.to_string()))?);
        out.push('\n');
    }
    Ok(out.into_bytes())
}

fn check_utf8<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        let line = bytes[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        Error::data(path, line, format!("invalid UTF-8 at byte {at}"))
    })
}

fn string_field(
    path: &Path,
    line: usize,
    name: &str,
    v: Option<serde_json::Value>,
    required: bool,
) -> Result<Option<String>> {
    match v {
        None | Some(serde_json::Value::Null) if required => {
            Err(Error::data(path, line, format!("missing field \"{name}\"")))
        }
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(serde_json::Value::Number(n)) if !required => Ok(Some(n.to_string())),
        Some(other) => Err(Error::data(
            path,
            line,
            format!("field \"{name}\" must be a string, got {other}"),
        )),
    }
}

fn sentence(path: &Path, line: usize, text: String, label: String) -> Result<(String, String)> {
    if text.trim().is_empty() {
        return Err(Error::data(path, line, "empty text"));
    }
    let label = label.trim().to_string();
    if label.is_empty() {
        return Err(Error::data(path, line, "empty label"));
    }
    Ok((text, label))
}

fn read_jsonl(path: &Path, text: &str) -> Result<Vec<(usize, LabelledSentence)>> {
    let mut rows = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let row: JsonRow = serde_json::from_str(raw)
            .map_err(|e| Error::data(path, line, format!("bad JSON: {e}")))?;
        let text = string_field(path, line, "text", row.text, true)?.unwrap_or_default();
        let label = string_field(path, line, "label", row.label, true)?.unwrap_or_default();
        let (text, label) = sentence(path, line, text, label)?;
        let index = match row.index {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                Error::data(
                    path,
                    line,
                    format!("field \"index\" must be a non-negative integer, got {v}"),
                )
            })? as usize),
        };
        rows.push((
            line,
            LabelledSentence {
                id: string_field(path, line, "id", row.id, false)?,
                article: string_field(path, line, "article", row.article, false)?,
                index,
                text,
                label,
                domain: string_field(path, line, "domain", row.domain, false)?,
            },
        ));
    }
    Ok(rows)
}

fn read_delimited(
    path: &Path,
    text: &str,
    delimiter: u8,
) -> Result<Vec<(usize, LabelledSentence)>> {
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .from_reader(text.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| Error::data(path, 1, format!("bad header row: {e}")))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let (Some(ti), Some(li)) = (col("text"), col("label")) else {
        return Err(Error::data(
            path,
            1,
            "header row must name a \"text\" and a \"label\" column",
        ));
    };
    let (ai, xi, ii, di) = (col("article"), col("index"), col("id"), col("domain"));
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
            Error::data(path, line, format!("bad row: {e}"))
        })?;
        let line = rec.position().map(|p| p.line() as usize).unwrap_or(0);
        let get = |i: Option<usize>| {
            i.and_then(|i| rec.get(i))
                .map(str::to_string)
                .filter(|s| !s.is_empty())
        };
        let (text, label) = sentence(
            path,
            line,
            get(Some(ti)).unwrap_or_default(),
            get(Some(li)).unwrap_or_default(),
        )?;
        let index = match get(xi) {
            None => None,
            Some(s) => Some(s.trim().parse().map_err(|_| {
                Error::data(
                    path,
                    line,
                    format!("index {s:?} is not a non-negative integer"),
                )
            })?),
        };
        rows.push((
            line,
            LabelledSentence {
                id: get(ii),
                article: get(ai),
                index,
                text,
                label,
                domain: get(di),
            },
        ));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn reads_jsonl_csv_tsv() {
        let t = tempfile::tempdir().unwrap();
        let j = write(t.path(), "a.jsonl", b"{\"text\":\"A b.\",\"label\":\"denial\",\"article\":\"x\",\"index\":0}\n\n{\"text\":\"C.\",\"label\":\"context\"}\n");
        let rows = read_file(&j, Some(&LabelSet::default_stance())).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].article.as_deref(), Some("x"));
        assert_eq!(rows[1].article_key(), "text:C.");
        let c = write(
            t.path(),
            "a.csv",
            b"label,text,article\ndenial,\"He said, \"\"no.\"\"\",a1\n",
        );
        let rows = read_file(&c, None).unwrap();
        assert_eq!(rows[0].text, "He said, \"no.\"");
        let s = write(t.path(), "a.tsv", b"text\tlabel\nHi there.\tcontext\n");
        assert_eq!(read_file(&s, None).unwrap()[0].label, "context");
    }

    #[test]
    fn errors_name_file_and_line() {
        let t = tempfile::tempdir().unwrap();
        let cases: Vec<(&str, &[u8], &str)> = vec![
            ("bad.jsonl", b"{\"text\":\"a\",\"label\":\"context\"}\n{oops\n", ":2: bad JSON"),
            ("miss.jsonl", b"{\"text\":\"a\"}\n", ":1: missing field \"label\""),
            ("unk.jsonl", b"{\"text\":\"a\",\"label\":\"context\"}\n{\"text\":\"b\",\"label\":\"rumour\"}\n", ":2: unknown label \"rumour\""),
            ("empty.jsonl", b"{\"text\":\"  \",\"label\":\"context\"}\n", ":1: empty text"),
            ("utf.jsonl", b"{\"text\":\"a\",\"label\":\"context\"}\n{\"text\":\"\xff\",\"label\":\"context\"}\n", ":2: invalid UTF-8"),
            ("hdr.csv", b"sentence,label\na,context\n", ":1: header row"),
            ("nothing.jsonl", b"\n", "no labelled sentences"),
            ("idx.jsonl", b"{\"text\":\"a\",\"label\":\"context\",\"index\":-1}\n", ":1: field \"index\""),
        ];
        for (name, bytes, want) in cases {
            let p = write(t.path(), name, bytes);
            let err = read_file(&p, Some(&LabelSet::default_stance()))
                .unwrap_err()
                .to_string();
            assert!(err.contains(name) && err.contains(want), "{name}: {err}");
        }
    }
}
