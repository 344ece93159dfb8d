//! `stance predict --format html`: one self-contained page (no external
//! assets) that shows each article as it reads, every sentence highlighted
//! by its label, with a legend, per-label counts, a strip showing where the
//! allegations and denials sit, and low-confidence sentences marked.
//!
//! Colour is never the only cue: each label also has its own underline
//! style and a letter mark, and every sentence carries an `aria-label`
//! with its label and probability, shown on hover and on keyboard focus.
//! All article text is escaped.

use crate::predict::{Article, Prediction};
use std::fmt::Write;

/// What each label means, as the guideline says it (shown in the legend).
pub const LABEL_DEFINITIONS: &[(&str, &str, &str)] = &[
    (
        "assertion",
        "A",
        "states a specific fact that advances the story",
    ),
    (
        "denial",
        "D",
        "someone rejects, disputes or denies a claim or accusation",
    ),
    (
        "allegation",
        "L",
        "a source accuses, blames or suspects someone, without the sentence establishing it",
    ),
    (
        "context",
        "C",
        "background: history, earlier events, descriptions, what happens next",
    ),
];

/// Escape text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn mark(label: &str) -> &'static str {
    LABEL_DEFINITIONS
        .iter()
        .find(|(l, ..)| *l == label)
        .map(|(_, m, _)| *m)
        .unwrap_or("?")
}

const STYLE: &str = r#"
:root { --assertion: #cfe3ff; --denial: #ffd0cc; --allegation: #ffe7a8; --context: #e6e6e6; --uncertain: #f4f4f4; }
body { font: 17px/1.6 Georgia, "Times New Roman", serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #1a1a1a; background: #fff; }
h1 { font: 600 1.4rem system-ui, sans-serif; } h2 { font: 600 1.15rem system-ui, sans-serif; margin-top: 2.5rem; border-top: 1px solid #ccc; padding-top: 1rem; }
.legend, .summary, .strip-wrap { font: 0.9rem system-ui, sans-serif; }
.legend ul { list-style: none; padding: 0; display: grid; gap: .3rem; }
.legend li span.s { cursor: default; }
table.counts { border-collapse: collapse; margin: .5rem 0 1rem; } table.counts td, table.counts th { border: 1px solid #bbb; padding: .15rem .6rem; text-align: right; } table.counts th:first-child, table.counts td:first-child { text-align: left; }
.strip { display: flex; height: 1.4rem; border: 1px solid #999; margin: .3rem 0 1rem; }
.strip a { flex: 1; min-width: 2px; background: #f7f7f7; border-right: 1px solid #fff; }
.strip a.l-denial { background: #d9402f; } .strip a.l-allegation { background: #c98a00; }
.strip a:focus, .strip a:hover { outline: 2px solid #000; }
span.s { padding: .05rem .1rem; border-radius: 3px; position: relative; text-decoration-thickness: 2px; text-underline-offset: 4px; }
span.s::before { content: attr(data-mark); font: 700 .62rem system-ui, sans-serif; vertical-align: super; margin-right: .15rem; color: #333; }
span.l-assertion { background: var(--assertion); text-decoration: underline solid #1d5fbf; }
span.l-denial { background: var(--denial); text-decoration: underline double #b3261e; }
span.l-allegation { background: var(--allegation); text-decoration: underline wavy #8a6000; }
span.l-context { background: var(--context); text-decoration: underline dotted #666; }
span.l-uncertain { background: var(--uncertain); text-decoration: underline dashed #999; }
span.low { outline: 1px dashed #555; }
mark.who-source { background: none; color: inherit; font-weight: 700; border-bottom: 3px solid #5b2a86; }
mark.who-cue { background: none; color: inherit; font-style: italic; border-bottom: 2px dotted #5b2a86; }
span.low::after { content: "?"; font: 700 .7rem system-ui, sans-serif; vertical-align: super; margin-left: .1rem; }
span.s:hover, span.s:focus { outline: 2px solid #000; }
span.s:hover > .tip, span.s:focus > .tip { display: block; }
.tip { display: none; position: absolute; left: 0; top: 1.7rem; z-index: 2; background: #111; color: #fff; font: .8rem/1.3 system-ui, sans-serif; padding: .3rem .5rem; border-radius: 4px; white-space: nowrap; }
@media print { .tip { display: none !important; } }
"#;

/// The page for `articles` and their sentence predictions (in article
/// order, as `predict_articles` returns them). Sentences whose probability
/// is below `low` are marked as low-confidence.
pub fn render_html(articles: &[Article], preds: &[Prediction], low: f32) -> String {
    let mut s = String::new();
    let title = if articles.len() == 1 {
        articles[0].name.clone()
    } else {
        format!("{} articles", articles.len())
    };
    let _ = write!(s, "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>stance: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n", escape(&title));
    let _ = writeln!(s, "<h1>Who claims what: {}</h1>", escape(&title));
    s += "<section class=\"legend\" aria-label=\"legend\">\n<ul>\n";
    for (label, m, def) in LABEL_DEFINITIONS {
        let _ = writeln!(
            s,
            "<li><span class=\"s l-{label}\" data-mark=\"{m}\">{label}</span> {}</li>",
            escape(def)
        );
    }
    let _ = writeln!(s, "<li><span class=\"s l-context low\" data-mark=\"C\">low confidence</span> probability below {low:.2}: read it yourself</li>");
    if preds.iter().any(|p| p.attribution.is_some()) {
        s += "<li><mark class=\"who-source\">source</mark> who makes the claim; <mark class=\"who-cue\">cue</mark> the words that attribute it (found by the attribution tagger)</li>\n";
    }
    s += "</ul>\n<p>Hover over or tab to a sentence for its label and probability.</p>\n</section>\n";
    // Article n's sentences, by position (names can repeat).
    let ranges = crate::predict::article_ranges(preds);
    for (n, a) in articles.iter().enumerate() {
        let r = ranges.get(n).cloned().unwrap_or(preds.len()..preds.len());
        render_article(&mut s, n, a, &preds[r], low);
    }
    s += "</body>\n</html>\n";
    s
}

fn render_article(s: &mut String, n: usize, a: &Article, preds: &[Prediction], low: f32) {
    let _ = writeln!(
        s,
        "<section class=\"article\" id=\"article-{n}\" aria-label=\"{}\">",
        escape(&a.name)
    );
    let _ = writeln!(s, "<h2>{}</h2>", escape(&a.name));
    // Summary: counts per label.
    s.push_str("<div class=\"summary\"><table class=\"counts\"><tr><th>label</th><th>sentences</th></tr>\n");
    let mut labels: Vec<&str> = LABEL_DEFINITIONS.iter().map(|(l, ..)| *l).collect();
    for p in preds {
        if !labels.contains(&p.label.as_str()) {
            labels.push(&p.label);
        }
    }
    for l in &labels {
        let c = preds.iter().filter(|p| p.label == *l).count();
        let _ = writeln!(
            s,
            "<tr><td><span class=\"s l-{}\" data-mark=\"{}\">{}</span></td><td>{c}</td></tr>",
            escape(l),
            mark(l),
            escape(l)
        );
    }
    let lows = preds.iter().filter(|p| p.probability < low).count();
    let _ = writeln!(
        s,
        "<tr><td>low confidence</td><td>{lows}</td></tr></table></div>"
    );
    // Strip: one cell per sentence; allegations and denials stand out.
    let _ = writeln!(s, "<div class=\"strip-wrap\">Where the allegations (amber) and denials (red) sit, from the first sentence to the last:<nav class=\"strip\" aria-label=\"sentence map\">");
    for p in preds {
        let _ = write!(s, "<a href=\"#a{n}-s{}\" class=\"l-{}\" title=\"sentence {}: {}\" aria-label=\"sentence {}: {}\"></a>", p.index, escape(&p.label), p.index + 1, escape(&p.label), p.index + 1, escape(&p.label));
    }
    s.push_str("</nav></div>\n<div class=\"text\"><p>");
    let chars: Vec<char> = a.text.chars().collect();
    let mut at = 0;
    for p in preds {
        gap(s, &chars[at.min(p.start)..p.start]);
        let is_low = p.probability < low;
        let tip = format!(
            "{} {:.2}{}{}",
            p.label,
            p.probability,
            if is_low { " (low confidence)" } else { "" },
            if p.truncated {
                " (long: labelled from its start and end)"
            } else {
                ""
            }
        );
        let mut probs: Vec<String> = p
            .probabilities
            .iter()
            .map(|(l, v)| format!("{l} {v:.2}"))
            .collect();
        if let Some(who) = who_line(p) {
            probs.push(who);
        }
        let _ = write!(
            s,
            "<span class=\"s l-{label}{lowc}\" id=\"a{n}-s{i}\" tabindex=\"0\" data-index=\"{i}\" data-label=\"{label}\" data-probability=\"{prob:.4}\" data-mark=\"{m}\" aria-label=\"sentence {num}: {tipe}\">{text}<span class=\"tip\" aria-hidden=\"true\">{tipe}<br>{probs}</span></span>",
            label = escape(&p.label),
            lowc = if is_low { " low" } else { "" },
            i = p.index,
            prob = p.probability,
            m = mark(&p.label),
            num = p.index + 1,
            tipe = escape(&tip),
            text = sentence_html(&chars, p),
            probs = escape(&probs.join(", ")),
        );
        at = p.end;
    }
    gap(s, &chars[at.min(chars.len())..]);
    s.push_str("</p></div>\n</section>\n");
}

/// The sentence's text, escaped, its claim's source and cue marked where
/// they lie inside it (`<mark class="who-source">`, `<mark class="who-cue">`).
fn sentence_html(chars: &[char], p: &Prediction) -> String {
    let mut marks: Vec<(usize, usize, &str)> = Vec::new();
    if let Some(a) = &p.attribution {
        for (span, class) in [(&a.source, "who-source"), (&a.cue, "who-cue")] {
            if let Some(x) = span {
                let (from, to) = (x.start.max(p.start), x.end.min(p.end));
                if from < to {
                    marks.push((from, to, class));
                }
            }
        }
    }
    marks.sort();
    let text = |a: usize, b: usize| escape(&chars[a..b].iter().collect::<String>());
    let mut out = String::new();
    let mut at = p.start;
    for (from, to, class) in marks {
        if from < at {
            continue; // overlapping marks: the first wins
        }
        out += &text(at, from);
        let title = if class == "who-source" {
            "source"
        } else {
            "cue"
        };
        let _ = write!(
            out,
            "<mark class=\"{class}\" title=\"{title}\">{}</mark>",
            text(from, to)
        );
        at = to;
    }
    out += &text(at, p.end);
    out
}

/// "source: X (cue: said)" for the tooltip, naming where the source sits
/// when it is outside the sentence.
fn who_line(p: &Prediction) -> Option<String> {
    let a = p.attribution.as_ref()?;
    let outside = |x: &crate::predict::Attributed| {
        if x.end <= p.start {
            " (earlier)"
        } else if x.start >= p.end {
            " (later)"
        } else {
            ""
        }
    };
    match (&a.source, &a.cue) {
        (None, None) => None,
        (Some(s), Some(c)) => Some(format!(
            "source: {}{} (cue: {})",
            s.text,
            outside(s),
            c.text
        )),
        (Some(s), None) => Some(format!("source: {}{}", s.text, outside(s))),
        (None, Some(c)) => Some(format!("cue: {}{}", c.text, outside(c))),
    }
}

/// Text between sentences: blank lines become paragraph breaks, single
/// line breaks become `<br>`.
fn gap(s: &mut String, between: &[char]) {
    let text: String = between.iter().collect();
    let newlines = text.matches('\n').count();
    if newlines >= 2 {
        s.push_str("</p>\n<p>");
    } else if newlines == 1 {
        s.push_str("<br>\n");
    } else if !text.is_empty() {
        s.push_str(&escape(&text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pred(i: usize, start: usize, end: usize, text: &str, label: &str, p: f32) -> Prediction {
        Prediction {
            article: "a".into(),
            index: i,
            start,
            end,
            text: text.into(),
            label: label.into(),
            probability: p,
            probabilities: vec![(label.into(), p)],
            truncated: false,
            rule: None,
            attribution: None,
        }
    }

    #[test]
    fn escapes_text_and_marks_each_sentence() {
        let text = "He said <script>alert(1)</script>.\n\nShe denied it.";
        let a = Article {
            name: "x<y>".into(),
            text: text.into(),
        };
        let preds = vec![
            pred(
                0,
                0,
                34,
                "He said <script>alert(1)</script>.",
                "assertion",
                0.9,
            ),
            pred(1, 36, 50, "She denied it.", "denial", 0.4),
        ];
        let html = render_html(&[a], &preds, 0.5);
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("x&lt;y&gt;"));
        assert_eq!(html.matches("tabindex=\"0\" data-index=").count(), 2);
        assert!(html.contains("data-label=\"denial\""));
        assert!(
            html.contains("class=\"s l-denial low\""),
            "low-confidence mark"
        );
        assert!(html.contains("</p>\n<p>"), "paragraph break kept");
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external assets"
        );
    }
}
