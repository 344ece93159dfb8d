//! `stance predict`: split articles into sentences, label every sentence and
//! render the result as a table, JSONL or CSV.

use crate::checkpoint::Checkpoint;
use crate::engine::Engine;
use crate::infer::{argmax, engine_logits};
use crate::splitter::split_sentences;
use crate::{Error, Result};
use serde::Serialize;

/// An input article.
#[derive(Debug, Clone)]
pub struct Article {
    /// Where it came from (file name, JSONL id or "-").
    pub name: String,
    pub text: String,
}

/// One labelled sentence of the output.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    pub article: String,
    pub index: usize,
    /// Character offsets into the article text.
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub label: String,
    pub probability: f32,
    pub probabilities: Vec<(String, f32)>,
    /// Longer than the model's window: labelled from its first and last
    /// tokens (see `TextEncoder::encode_flagged`).
    pub truncated: bool,
    /// Set when a rule, not the model, decided the label (`boilerplate`:
    /// see [`crate::boilerplate`]).
    pub rule: Option<&'static str>,
    /// Who claims what, when the attribution tagger ran (`None`: it did not).
    pub attribution: Option<Attribution>,
}

/// The source and the cue of a sentence's claim, either or both absent when
/// the tagger found none. They may lie in a neighbouring sentence (a quote
/// whose "she said" follows it): see [`crate::attribution::link`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Attribution {
    pub source: Option<Attributed>,
    pub cue: Option<Attributed>,
}

/// A stretch of the article: character offsets into its text, as the
/// sentences' own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attributed {
    pub text: String,
    pub start: usize,
    pub end: usize,
}

/// Label every sentence of every article.
/// [`predict_articles`]' output, one list per article: it lists every
/// article's sentences in order, each article's indices from 0, and no
/// article is empty.
pub fn by_article(preds: Vec<Prediction>) -> Vec<Vec<Prediction>> {
    let ranges = article_ranges(&preds);
    let mut it = preds.into_iter();
    ranges
        .iter()
        .map(|r| it.by_ref().take(r.len()).collect())
        .collect()
}

/// Where each article's sentences lie in [`predict_articles`]' output, by
/// position (names can repeat): a new article starts at each index 0.
pub fn article_ranges(preds: &[Prediction]) -> Vec<std::ops::Range<usize>> {
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, p) in preds.iter().enumerate() {
        if p.index == 0 || out.is_empty() {
            out.push(i..i);
        }
        out.last_mut().expect("pushed above").end = i + 1;
    }
    out
}

/// Label every sentence of `articles` with `engine`, the engine of `ckpt`'s
/// model ([`crate::labeller::Labeller`] builds it once for many calls).
pub fn predict_articles(
    ckpt: &Checkpoint,
    engine: &Engine,
    articles: &[Article],
    batch_size: usize,
    progress: impl FnMut(usize),
) -> Result<Vec<Prediction>> {
    let mut spans = Vec::new();
    for a in articles {
        let sentences = split_sentences(&a.text);
        if sentences.is_empty() {
            return Err(Error::Invalid(format!("{}: no text to label", a.name)));
        }
        spans.push(sentences);
    }
    let mut texts: Vec<&str> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    for (a, ss) in articles.iter().zip(&spans) {
        for s in ss {
            texts.push(&s.text);
            keys.push(a.name.clone());
        }
    }
    let encs = if ckpt.settings.context > 0 {
        // Article names may repeat ("-" twice); key by position instead.
        let mut uniq = Vec::with_capacity(keys.len());
        for (n, ss) in spans.iter().enumerate() {
            uniq.extend(std::iter::repeat_n(n.to_string(), ss.len()));
        }
        let ctx = crate::context::contexts(&texts, &uniq, ckpt.settings.context);
        ckpt.encoder.encode_flagged(&texts, Some(&ctx))?
    } else {
        ckpt.encoder.encode_flagged(&texts, None)?
    };
    let (encs, long) = encs;
    let logits = engine_logits(engine, &encs, batch_size, progress)?;
    let mut out = Vec::with_capacity(texts.len());
    let mut k = 0;
    for (a, ss) in articles.iter().zip(&spans) {
        for (i, s) in ss.iter().enumerate() {
            let mut p = ckpt.settings.probabilities(&logits[k]);
            let mut best = argmax(&p);
            let rule = match ckpt.labels.id("context") {
                Some(c) if crate::boilerplate::is_boilerplate(&s.text) => {
                    // The rule decides: all the probability on `context`.
                    p.iter_mut()
                        .enumerate()
                        .for_each(|(j, v)| *v = if j == c { 1.0 } else { 0.0 });
                    best = c;
                    Some("boilerplate")
                }
                _ => None,
            };
            out.push(Prediction {
                article: a.name.clone(),
                index: i,
                start: s.start,
                end: s.end,
                text: s.text.clone(),
                label: ckpt.labels.name(best).to_string(),
                probability: p[best],
                probabilities: ckpt.labels.names().iter().cloned().zip(p).collect(),
                truncated: long[k],
                rule,
                attribution: None,
            });
            k += 1;
        }
    }
    Ok(out)
}

/// The label of a sentence whose top probability is below the threshold.
pub const UNCERTAIN: &str = "uncertain";

/// Relabel sentences whose top probability is below `threshold` as
/// [`UNCERTAIN`]; their probabilities stay as they were.
pub fn apply_threshold(preds: &mut [Prediction], threshold: f32) {
    for p in preds {
        if p.probability < threshold {
            p.label = UNCERTAIN.to_string();
        }
    }
}

/// Output formats of `stance predict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Jsonl,
    Csv,
}

impl Prediction {
    /// The `k` most probable labels, most probable first (ties keep the
    /// label order).
    pub fn top_k(&self, k: usize) -> Vec<(&str, f32)> {
        let mut v: Vec<(&str, f32)> = self
            .probabilities
            .iter()
            .map(|(l, p)| (l.as_str(), *p))
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v.truncate(k);
        v
    }

    /// The sentence as one JSON object (the JSONL format and the server's
    /// sentence records).
    pub fn to_json(&self, top_k: usize) -> serde_json::Value {
        let probs: serde_json::Map<String, serde_json::Value> = self
            .probabilities
            .iter()
            .map(|(l, v)| (l.clone(), serde_json::json!(round4(*v))))
            .collect();
        let mut v = serde_json::json!({"article": self.article, "index": self.index, "start": self.start, "end": self.end, "text": self.text,
            "label": self.label, "probability": round4(self.probability), "probabilities": probs, "truncated": self.truncated, "rule": self.rule});
        if let Some(a) = &self.attribution {
            v["source"] = serde_json::json!(a.source);
            v["cue"] = serde_json::json!(a.cue);
        }
        if top_k > 0 {
            v["top_k"] = self
                .top_k(top_k)
                .into_iter()
                .map(|(l, p)| serde_json::json!({"label": l, "probability": round4(p)}))
                .collect();
        }
        v
    }
}

/// How `render` lays its output out.
#[derive(Debug, Clone, Copy)]
pub struct RenderOptions {
    /// Table columns (`usize::MAX`: whole sentences).
    pub width: usize,
    /// Also list the K most probable labels (0: only the label).
    pub top_k: usize,
}

pub fn render(preds: &[Prediction], format: Format, opts: RenderOptions) -> String {
    let RenderOptions { width, top_k } = opts;
    match format {
        Format::Jsonl => preds
            .iter()
            .map(|p| p.to_json(top_k).to_string() + "\n")
            .collect(),
        Format::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            let mut header = vec![
                "article".to_string(),
                "index".into(),
                "start".into(),
                "end".into(),
                "label".into(),
                "probability".into(),
            ];
            if let Some(p) = preds.first() {
                header.extend(p.probabilities.iter().map(|(l, _)| format!("p_{l}")));
            }
            if top_k > 0 {
                header.push("top_k".into());
            }
            header.push("truncated".into());
            let who = preds.iter().any(|p| p.attribution.is_some());
            if who {
                header.extend(["source".into(), "cue".into()]);
            }
            header.push("text".into());
            let _ = w.write_record(&header);
            for p in preds {
                let mut row = vec![
                    p.article.clone(),
                    p.index.to_string(),
                    p.start.to_string(),
                    p.end.to_string(),
                    p.label.clone(),
                    format!("{:.4}", p.probability),
                ];
                row.extend(p.probabilities.iter().map(|(_, v)| format!("{v:.4}")));
                if top_k > 0 {
                    row.push(
                        p.top_k(top_k)
                            .iter()
                            .map(|(l, v)| format!("{l}:{v:.4}"))
                            .collect::<Vec<_>>()
                            .join(";"),
                    );
                }
                row.push(p.truncated.to_string());
                if who {
                    let a = p.attribution.clone().unwrap_or_default();
                    row.push(a.source.map(|s| s.text).unwrap_or_default());
                    row.push(a.cue.map(|s| s.text).unwrap_or_default());
                }
                row.push(p.text.clone());
                let _ = w.write_record(&row);
            }
            String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
        }
        Format::Table => {
            // With --top-k, the runners-up follow the label: "context .31 allegation .08".
            let extra = top_k.saturating_sub(1) * 16;
            // With attribution, a "who" column: the source (else the cue) of the claim.
            let who = preds.iter().any(|p| p.attribution.is_some());
            let who_w = if who { WHO_WIDTH + 2 } else { 0 };
            // At least 30 columns of sentence (16 beside a who column).
            let min_text = if who { 16 } else { 30 };
            let text_w = width.saturating_sub(24 + extra + who_w).max(min_text);
            let mut s = String::new();
            let mut last = None;
            for p in preds {
                if last != Some(&p.article) {
                    if last.is_some() {
                        s.push('\n');
                    }
                    s += &format!("== {}\n", p.article);
                    last = Some(&p.article);
                }
                // One row per sentence: line breaks inside a sentence print as spaces.
                let flat: String = p
                    .text
                    .chars()
                    .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
                    .collect();
                let text: String = if width != usize::MAX && flat.chars().count() > text_w {
                    flat.chars().take(text_w - 1).collect::<String>() + "…"
                } else {
                    flat
                };
                let runners: String = p
                    .top_k(top_k)
                    .iter()
                    .skip(1)
                    .map(|(l, v)| format!("{l:<10} {v:>4.2} "))
                    .collect();
                let who_cell = if who {
                    format!("{:<WHO_WIDTH$}  ", who_of(p))
                } else {
                    String::new()
                };
                s += &format!(
                    "{:>3}  {:<10} {:>5.2}  {runners}{who_cell}{}\n",
                    p.index + 1,
                    p.label,
                    p.probability,
                    text
                );
            }
            s
        }
    }
}

/// Columns of the table's "who" cell.
const WHO_WIDTH: usize = 18;

/// The table's "who" cell: the claim's source, else its cue in brackets,
/// cut to [`WHO_WIDTH`]; "-" when there is no claim.
fn who_of(p: &Prediction) -> String {
    let a = p.attribution.clone().unwrap_or_default();
    let cell = match (a.source, a.cue) {
        (Some(s), _) => s.text,
        (None, Some(c)) => format!("({})", c.text),
        (None, None) => "-".into(),
    };
    let flat: String = cell.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > WHO_WIDTH {
        flat.chars().take(WHO_WIDTH - 1).collect::<String>() + "…"
    } else {
        flat
    }
}

fn round4(x: f32) -> f64 {
    (x as f64 * 10000.0).round() / 10000.0
}
