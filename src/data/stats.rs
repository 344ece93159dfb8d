//! `stance data stats`: what is in a set of labelled sentences.

use super::{normalise, LabelledSentence};
use std::collections::{BTreeMap, HashMap};

/// Distribution of sentence lengths (in tokens, or words without a tokenizer).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LengthSummary {
    pub unit: String,
    pub min: usize,
    pub median: usize,
    pub p90: usize,
    pub p99: usize,
    pub max: usize,
    pub mean: f64,
}

impl LengthSummary {
    /// Nearest-rank percentiles of `lengths`.
    pub fn from_lengths(unit: &str, lengths: &[usize]) -> Self {
        let mut v = lengths.to_vec();
        v.sort_unstable();
        let rank = |p: f64| {
            if v.is_empty() {
                0
            } else {
                v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1]
            }
        };
        LengthSummary {
            unit: unit.to_string(),
            min: v.first().copied().unwrap_or(0),
            median: rank(0.5),
            p90: rank(0.9),
            p99: rank(0.99),
            max: v.last().copied().unwrap_or(0),
            mean: if v.is_empty() {
                0.0
            } else {
                v.iter().sum::<usize>() as f64 / v.len() as f64
            },
        }
    }
}

/// Sentences and articles of one domain.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DomainCount {
    pub sentences: usize,
    pub articles: usize,
}

/// A normalised sentence that occurs more than once.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Duplicate {
    pub text: String,
    pub count: usize,
}

/// What `stance data stats` reports (and `--json` prints, with these names).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    pub sentences: usize,
    pub articles: usize,
    pub per_label: BTreeMap<String, usize>,
    pub per_domain: BTreeMap<String, DomainCount>,
    pub length: LengthSummary,
    pub duplicates: Vec<Duplicate>,
}

impl Stats {
    /// `lengths[i]` is the length of `rows[i]` in `unit`s.
    pub fn compute(rows: &[LabelledSentence], lengths: &[usize], unit: &str) -> Self {
        let mut per_label = BTreeMap::new();
        let mut per_domain: BTreeMap<String, (usize, std::collections::BTreeSet<String>)> =
            BTreeMap::new();
        let mut texts: HashMap<String, usize> = HashMap::new();
        let mut articles = std::collections::HashSet::new();
        for r in rows {
            *per_label.entry(r.label.clone()).or_insert(0) += 1;
            if let Some(d) = &r.domain {
                let e = per_domain.entry(d.clone()).or_default();
                e.0 += 1;
                e.1.insert(r.article_key());
            }
            *texts.entry(normalise(&r.text)).or_insert(0) += 1;
            articles.insert(r.article_key());
        }
        let mut duplicates: Vec<Duplicate> = texts
            .into_iter()
            .filter(|(_, c)| *c > 1)
            .map(|(text, count)| Duplicate { text, count })
            .collect();
        duplicates.sort_by(|a, b| a.text.cmp(&b.text));
        Stats {
            sentences: rows.len(),
            articles: articles.len(),
            per_label,
            per_domain: per_domain
                .into_iter()
                .map(|(d, (n, a))| {
                    (
                        d,
                        DomainCount {
                            sentences: n,
                            articles: a.len(),
                        },
                    )
                })
                .collect(),
            length: LengthSummary::from_lengths(unit, lengths),
            duplicates,
        }
    }

    pub fn render(&self) -> String {
        let mut s = format!(
            "{} sentences in {} articles\n\nlabel          count  share\n",
            self.sentences, self.articles
        );
        let pct = |n: usize| 100.0 * n as f64 / self.sentences.max(1) as f64;
        for (l, n) in &self.per_label {
            s += &format!("{l:<14} {n:>5}  {:>5.1}%\n", pct(*n));
        }
        if !self.per_domain.is_empty() {
            s += "\ndomain                     sentences  share  articles\n";
            for (d, c) in &self.per_domain {
                let (n, a) = (c.sentences, c.articles);
                s += &format!("{d:<26} {n:>9}  {:>5.1}%  {a:>8}\n", pct(n));
            }
        }
        let l = &self.length;
        s += &format!(
            "\nlength in {}: min {}  median {}  mean {:.1}  p90 {}  p99 {}  max {}\n",
            l.unit, l.min, l.median, l.mean, l.p90, l.p99, l.max
        );
        s += &format!("duplicate sentences: {}\n", self.duplicates.len());
        for Duplicate { text: t, count: c } in self.duplicates.iter().take(20) {
            s += &format!("  {c}x {t}\n");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_hand() {
        // 1..=10: nearest rank median = ceil(5) -> 5th value = 5; p90 -> 9th = 9.
        let l = LengthSummary::from_lengths("words", &[10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!((l.min, l.median, l.p90, l.p99, l.max), (1, 5, 9, 10, 10));
        assert!((l.mean - 5.5).abs() < 1e-9);
    }

    #[test]
    fn counts_labels_domains_duplicates() {
        let mk = |a: &str, t: &str, l: &str| LabelledSentence {
            id: None,
            article: Some(a.into()),
            index: None,
            text: t.into(),
            label: l.into(),
            domain: Some("d".into()),
        };
        let rows = vec![
            mk("a", "One two.", "context"),
            mk("a", "one  TWO.", "denial"),
            mk("b", "Three.", "context"),
        ];
        let s = Stats::compute(&rows, &[2, 2, 1], "words");
        assert_eq!(s.articles, 2);
        assert_eq!(s.per_label["context"], 2);
        assert_eq!(
            s.per_domain["d"],
            DomainCount {
                sentences: 3,
                articles: 2
            }
        );
        assert_eq!(
            s.duplicates,
            vec![Duplicate {
                text: "one two.".into(),
                count: 2
            }]
        );
        // --json names every field.
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["per_domain"]["d"]["articles"], 2);
        assert_eq!(j["duplicates"][0]["count"], 2);
        assert!(s.render().contains("context            2   66.7%"));
    }
}
