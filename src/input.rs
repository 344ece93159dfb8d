//! What `stance predict` and `stance serve` accept as an article: plain
//! text, HTML (markup stripped, paragraphs kept), or JSONL with one article
//! per line. `auto` decides from the file name, then from the content.
//!
//! HTML goes through html5ever (via `scraper`), the parser browsers'
//! behaviour is specified by, so entities, broken markup and implied tags
//! come out as a browser would read them. Script, style, navigation,
//! headers, footers, forms and asides are dropped; block elements
//! (paragraphs, headings, list items, table rows, `<br>`) become line or
//! paragraph breaks, which the sentence splitter treats as boundaries.
//! Offsets in the output are into the extracted text.

use crate::predict::Article;
use crate::{Error, Result};
use scraper::{Html, Node};

/// How an input is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    Auto,
    Text,
    Html,
    Jsonl,
}

impl std::str::FromStr for InputFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "text" => Ok(Self::Text),
            "html" => Ok(Self::Html),
            "jsonl" => Ok(Self::Jsonl),
            _ => Err(format!(
                "unknown input format {s:?}: expected auto, text, html or jsonl"
            )),
        }
    }
}

/// Resolve `Auto` for one input: by extension first (`.html`/`.htm`,
/// `.jsonl`/`.ndjson`, `.txt`), then by content: a document that starts
/// with a tag or has paragraph-level markup is HTML; one whose first line
/// is a JSON object with a `"text"` field is JSONL; anything else is text.
pub fn detect(name: &str, text: &str) -> InputFormat {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".html") || lower.ends_with(".htm") || lower.ends_with(".xhtml") {
        return InputFormat::Html;
    }
    if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
        return InputFormat::Jsonl;
    }
    if lower.ends_with(".txt") {
        return InputFormat::Text;
    }
    let head = text.trim_start();
    if let Some(first) = head.lines().next() {
        if first.starts_with('{') {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(first) {
                if v.get("text").is_some() {
                    return InputFormat::Jsonl;
                }
            }
        }
    }
    let start = head.get(..head.len().min(64)).unwrap_or("");
    let start = start.to_ascii_lowercase();
    if start.starts_with("<!doctype html") || start.starts_with("<html") {
        return InputFormat::Html;
    }
    let l = text.to_ascii_lowercase();
    let tags = [
        "<p>", "<p ", "</p>", "<br>", "<br/>", "<br />", "<div", "</h1>", "</li>",
    ];
    if head.starts_with('<') && tags.iter().any(|t| l.contains(t)) {
        return InputFormat::Html;
    }
    if tags.iter().filter(|t| l.contains(*t)).count() >= 2 {
        return InputFormat::Html;
    }
    InputFormat::Text
}

/// The articles of `predict`'s inputs: each file in turn, or standard input
/// when `files` is empty or just `-` (which may not be repeated or mixed
/// with files).
pub fn read_articles(files: &[std::path::PathBuf], format: InputFormat) -> Result<Vec<Article>> {
    let stdin = |f: &std::path::PathBuf| f.as_os_str() == "-";
    if files.iter().filter(|f| stdin(f)).count() > 1 {
        return Err(Error::Invalid(
            "standard input (\"-\") given more than once".into(),
        ));
    }
    if files.len() > 1 && files.iter().any(stdin) {
        return Err(Error::Invalid(
            "standard input (\"-\") cannot be combined with files; give either files or \"-\""
                .into(),
        ));
    }
    let mut articles = Vec::new();
    if files.is_empty() || files.len() == 1 && stdin(&files[0]) {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .map_err(|e| Error::io("<standard input>", e))?;
        articles.extend(parse_articles("-", &buf, format)?);
    } else {
        for f in files {
            let bytes = std::fs::read(f).map_err(|e| Error::io(f, e))?;
            articles.extend(parse_articles(&f.display().to_string(), &bytes, format)?);
        }
    }
    Ok(articles)
}

/// The articles in one input (a file, standard input or a request body)
/// named `name`, read as `format`. Errors name the input and, for JSONL,
/// the line.
pub fn parse_articles(name: &str, bytes: &[u8], format: InputFormat) -> Result<Vec<Article>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        Error::data(
            name,
            line,
            format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        )
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let format = match format {
        InputFormat::Auto => detect(name, text),
        f => f,
    };
    if format != InputFormat::Jsonl {
        return Ok(vec![one_article(
            name.to_string(),
            text,
            format == InputFormat::Html,
            name,
        )?]);
    }
    let mut articles = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| Error::data(name, i + 1, format!("bad JSON: {e}")))?;
        let id = v
            .get("id")
            .cloned()
            .unwrap_or_else(|| serde_json::json!(format!("{name}:{}", i + 1)));
        let Some(obj) = v.as_object() else {
            return Err(Error::data(
                name,
                i + 1,
                "expected a JSON object {\"id\": ..., \"text\": ...}",
            ));
        };
        let (article, _) = article_from_json(obj, &id).map_err(|m| Error::data(name, i + 1, m))?;
        articles.push(article);
    }
    if articles.is_empty() {
        return Err(Error::file(name, "no articles in JSONL input"));
    }
    Ok(articles)
}

/// One article object of a JSONL line or a server request: `text`, and
/// optionally `format` (`text`, `html` or `auto`, the default: decided by
/// content). `id` names it. Returns the article and its sentence count, or
/// what is wrong (the caller adds where).
pub fn article_from_json(
    item: &serde_json::Map<String, serde_json::Value>,
    id: &serde_json::Value,
) -> std::result::Result<(Article, usize), String> {
    use serde_json::Value;
    let Some(text) = item.get("text").and_then(Value::as_str) else {
        return Err("missing string field \"text\"".into());
    };
    let format = match item.get("format") {
        None | Some(Value::Null) => InputFormat::Auto,
        Some(Value::String(f)) => match f.parse::<InputFormat>() {
            Ok(InputFormat::Jsonl) | Err(_) => {
                return Err(format!(
                    "\"format\" must be \"text\", \"html\" or \"auto\", not {f:?}"
                ))
            }
            Ok(f) => f,
        },
        Some(f) => return Err(format!("\"format\" must be a string, not {f}")),
    };
    let html = match format {
        InputFormat::Html => true,
        InputFormat::Auto => detect("", text) == InputFormat::Html,
        _ => false,
    };
    let name = match id {
        Value::String(s) => s.clone(),
        Value::Null => "article".to_string(),
        other => other.to_string(),
    };
    let article = one_article(name, text, html, "\"text\"")
        .map_err(|e| e.to_string().replace("invalid argument: ", ""))?;
    let n = crate::splitter::split_sentences(&article.text).len();
    if n == 0 {
        return Err("no text to label".into());
    }
    Ok((article, n))
}

/// One article from its text (HTML stripped when `html`); `place` names it
/// in errors.
pub fn one_article(name: String, text: &str, html: bool, place: &str) -> Result<Article> {
    let text = if html {
        html_to_text(text)
    } else {
        text.to_string()
    };
    if text.trim().is_empty() {
        return Err(Error::Invalid(format!(
            "{place}: empty input, nothing to label{}",
            if html {
                " (no text outside markup)"
            } else {
                ""
            }
        )));
    }
    Ok(Article { name, text })
}

/// Elements whose content is not article text.
const DROPPED: &[&str] = &[
    "script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form",
    "button", "select", "svg", "iframe", "object", "head", "figure",
];

/// Elements that end a paragraph (blank line before and after).
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "article",
    "section",
    "main",
    "ul",
    "ol",
    "dl",
    "table",
    "pre",
    "hr",
    "address",
    "figcaption",
    "body",
];

/// Elements that end a line (a list item, a table row, a definition).
const LINES: &[&str] = &["li", "tr", "dt", "dd", "caption", "br"];

/// The readable text of an HTML document or fragment: entities decoded
/// (a no-break space becomes a plain one),
/// whitespace inside paragraphs collapsed, one blank line between
/// paragraphs, one line per list item, table row or `<br>`.
pub fn html_to_text(html: &str) -> String {
    let doc = Html::parse_document(html);
    let mut out = Text::default();
    walk(doc.tree.root(), &mut out);
    out.finish()
}

#[derive(Default)]
struct Text {
    buf: String,
    /// Breaks owed before the next word: 0 none, 1 a space, 2 a line, 3 a paragraph.
    pending: u8,
}

impl Text {
    fn brk(&mut self, level: u8) {
        self.pending = self.pending.max(level);
    }
    fn word(&mut self, w: &str) {
        if !self.buf.is_empty() {
            self.buf.push_str(match self.pending {
                0 => "",
                1 => " ",
                2 => "\n",
                _ => "\n\n",
            });
        }
        self.pending = 0;
        self.buf.push_str(w);
    }
    fn text(&mut self, t: &str) {
        if t.starts_with(char::is_whitespace) {
            self.brk(1);
        }
        let mut words = t.split_whitespace().peekable();
        while let Some(w) = words.next() {
            self.word(w);
            if words.peek().is_some() {
                self.brk(1);
            }
        }
        if t.ends_with(char::is_whitespace) && !t.trim().is_empty() {
            self.brk(1);
        }
    }
    fn finish(self) -> String {
        self.buf
    }
}

fn walk(node: ego_tree::NodeRef<'_, Node>, out: &mut Text) {
    match node.value() {
        Node::Text(t) => out.text(t),
        Node::Element(e) => {
            let name = e.name();
            if DROPPED.contains(&name)
                || e.attr("hidden").is_some()
                || e.attr("aria-hidden") == Some("true")
            {
                return;
            }
            let level = if BLOCKS.contains(&name) {
                3
            } else if LINES.contains(&name) {
                2
            } else {
                0
            };
            out.brk(level);
            if name == "td" || name == "th" {
                out.brk(1);
            }
            for c in node.children() {
                walk(c, out);
            }
            out.brk(level);
        }
        _ => {
            for c in node.children() {
                walk(c, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_entities_and_dropped_parts() {
        let html = r#"<!doctype html><html><head><title>T</title><style>p{}</style></head>
<body><nav><a href="/">Home</a> | <a>World</a></nav>
<h1>Minister denies &quot;leak&quot;</h1>
<p>The minister   denied the <b>report</b> on Monday.
It was, she said, &ldquo;false&rdquo;.</p>
<script>var x = "<p>not text</p>";</script>
<ul><li>First point</li><li>Second&nbsp;point</li></ul>
<p>Line one<br>Line two</p>
<footer>Copyright 2026</footer></body></html>"#;
        assert_eq!(
            html_to_text(html),
            "Minister denies \"leak\"\n\nThe minister denied the report on Monday. It was, she said, \u{201c}false\u{201d}.\n\nFirst point\nSecond point\n\nLine one\nLine two"
        );
    }

    #[test]
    fn inline_markup_keeps_word_boundaries() {
        assert_eq!(html_to_text("<p>a<i>b</i> c <b> d</b>e</p>"), "ab c de");
    }

    #[test]
    fn detection() {
        assert_eq!(detect("a.html", "plain"), InputFormat::Html);
        assert_eq!(detect("a.txt", "<p>x</p>"), InputFormat::Text);
        assert_eq!(detect("a.jsonl", "x"), InputFormat::Jsonl);
        assert_eq!(detect("-", "<!DOCTYPE html><p>x"), InputFormat::Html);
        assert_eq!(detect("-", "<p>One.</p><p>Two.</p>"), InputFormat::Html);
        assert_eq!(detect("-", "{\"text\": \"x\"}\n"), InputFormat::Jsonl);
        assert_eq!(detect("-", "{not json}\nmore"), InputFormat::Text);
        assert_eq!(detect("-", "He said 3 < 4 and 5 > 2."), InputFormat::Text);
        assert_eq!(detect("-", "Use <br> tags, she said."), InputFormat::Text);
    }
}
