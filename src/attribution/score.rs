//! Span scores of predicted attribution spans against gold ones, per role,
//! micro-averaged over documents (counts summed over all documents before
//! any ratio is taken), two ways:
//!
//! - **exact**: a predicted span counts when a gold span of its role has the
//!   same byte range once surrounding whitespace is trimmed from both; each
//!   gold span matches at most one prediction.
//! - **word overlap**: words are maximal runs of alphanumeric characters, and
//!   a word belongs to a span when it lies wholly inside it. Precision is the
//!   share of the words inside predicted spans of the role that are also
//!   inside gold ones, recall the converse; a word counts once per role
//!   however many spans hold it.

use super::{Role, Span};
use serde::Serialize;
use std::collections::HashMap;

/// Precision, recall and F1 with the counts behind them. Every ratio whose
/// denominator is zero is 0, never NaN.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prf {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Predicted units (spans, or words inside predicted spans).
    pub predicted: usize,
    /// Gold units.
    pub gold: usize,
    /// Units both predicted and gold.
    pub matched: usize,
}

impl Prf {
    fn new(predicted: usize, gold: usize, matched: usize) -> Prf {
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let (precision, recall) = (ratio(matched, predicted), ratio(matched, gold));
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Prf {
            precision,
            recall,
            f1,
            predicted,
            gold,
            matched,
        }
    }
}

/// One role's scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RoleScore {
    pub role: Role,
    /// Spans with the same trimmed boundaries.
    pub exact: Prf,
    /// Words inside spans.
    pub overlap: Prf,
}

/// The scores of a set of documents, as [`score`] computes them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttributionReport {
    pub documents: usize,
    /// Source, cue and content, in that order ([`Role::ALL`]).
    pub roles: Vec<RoleScore>,
}

impl AttributionReport {
    /// The scores of role `r`.
    ///
    /// # Panics
    /// If the report lacks the role, which only a hand-built one can.
    pub fn role(&self, r: Role) -> &RoleScore {
        self.roles
            .iter()
            .find(|s| s.role == r)
            .expect("a scored report holds every role")
    }

    /// A text table: per role, exact and word-overlap P/R/F1 and the gold
    /// and predicted span counts.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{} documents\n{:<8} {:>7} {:>6} {:>6}   {:>7} {:>6} {:>6}   {:>6} {:>9}\n",
            self.documents, "role", "exact P", "R", "F1", "words P", "R", "F1", "gold", "predicted"
        );
        for r in &self.roles {
            s += &format!(
                "{:<8} {:>7.3} {:>6.3} {:>6.3}   {:>7.3} {:>6.3} {:>6.3}   {:>6} {:>9}\n",
                r.role.name(),
                r.exact.precision,
                r.exact.recall,
                r.exact.f1,
                r.overlap.precision,
                r.overlap.recall,
                r.overlap.f1,
                r.exact.gold,
                r.exact.predicted
            );
        }
        s
    }
}

/// Score every document's predicted spans against its gold spans; each
/// entry is (text, gold, predicted). Spans that fall outside their text or
/// off its character boundaries are compared untrimmed and never panic.
pub fn score(docs: &[(&str, &[Span], &[Span])]) -> AttributionReport {
    let mut exact = [Counts::default(); 3];
    let mut overlap = [Counts::default(); 3];
    for &(text, gold, predicted) in docs {
        let words = words(text);
        for (i, role) in Role::ALL.into_iter().enumerate() {
            let of_role = |spans: &[Span]| -> Vec<Span> {
                spans.iter().filter(|s| s.role == role).copied().collect()
            };
            let (gold, predicted) = (of_role(gold), of_role(predicted));
            exact[i].add(exact_counts(text, &gold, &predicted));
            overlap[i].add(overlap_counts(&words, &gold, &predicted));
        }
    }
    let roles = Role::ALL
        .into_iter()
        .enumerate()
        .map(|(i, role)| RoleScore {
            role,
            exact: exact[i].prf(),
            overlap: overlap[i].prf(),
        })
        .collect();
    AttributionReport {
        documents: docs.len(),
        roles,
    }
}

/// Predicted, gold and matched units, summed over documents.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    predicted: usize,
    gold: usize,
    matched: usize,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.predicted += other.predicted;
        self.gold += other.gold;
        self.matched += other.matched;
    }

    fn prf(self) -> Prf {
        Prf::new(self.predicted, self.gold, self.matched)
    }
}

/// Exact matches of one role's spans in one document.
fn exact_counts(text: &str, gold: &[Span], predicted: &[Span]) -> Counts {
    let mut unmatched: HashMap<(usize, usize), usize> = HashMap::new();
    for s in gold {
        *unmatched.entry(trimmed(text, s)).or_default() += 1;
    }
    let mut matched = 0;
    for s in predicted {
        if let Some(n) = unmatched.get_mut(&trimmed(text, s)).filter(|n| **n > 0) {
            *n -= 1;
            matched += 1;
        }
    }
    Counts {
        predicted: predicted.len(),
        gold: gold.len(),
        matched,
    }
}

/// Word-overlap counts of one role's spans in one document.
fn overlap_counts(words: &[(usize, usize)], gold: &[Span], predicted: &[Span]) -> Counts {
    let (in_gold, in_predicted) = (inside(words, gold), inside(words, predicted));
    let count = |v: &[bool]| v.iter().filter(|&&x| x).count();
    Counts {
        predicted: count(&in_predicted),
        gold: count(&in_gold),
        matched: in_gold
            .iter()
            .zip(&in_predicted)
            .filter(|(g, p)| **g && **p)
            .count(),
    }
}

/// The byte range of `span` with surrounding whitespace trimmed off; the
/// range as it is when it does not slice `text`.
fn trimmed(text: &str, span: &Span) -> (usize, usize) {
    match text.get(span.start..span.end) {
        Some(t) => {
            let start = span.start + (t.len() - t.trim_start().len());
            (start, start + t.trim().len())
        }
        None => (span.start, span.end),
    }
}

/// The byte ranges of the words of `text`, in order.
fn words(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(a)) => {
                out.push((a, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(a) = start {
        out.push((a, text.len()));
    }
    out
}

/// For each word, whether it lies wholly inside one of `spans`.
fn inside(words: &[(usize, usize)], spans: &[Span]) -> Vec<bool> {
    let mut marked = vec![false; words.len()];
    for s in spans {
        // Words are sorted and disjoint: those inside `s` are a run starting
        // at the first word that begins at or after `s.start`.
        let first = words.partition_point(|&(a, _)| a < s.start);
        for (i, &(_, b)) in words.iter().enumerate().skip(first) {
            if b > s.end {
                break;
            }
            marked[i] = true;
        }
    }
    marked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(role: Role, start: usize, end: usize) -> Span {
        Span { role, start, end }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    //          0         1         2         3
    //          0123456789012345678901234567890123456
    const TEXT: &str = "The senior senator said it was over.";

    #[test]
    fn exact_match_ignores_surrounding_whitespace() {
        let gold = [sp(Role::Cue, 19, 23)];
        let pred = [sp(Role::Cue, 18, 24)]; // " said "
        let r = score(&[(TEXT, &gold, &pred)]);
        let c = r.role(Role::Cue);
        assert_eq!(
            (c.exact.matched, c.exact.predicted, c.exact.gold),
            (1, 1, 1)
        );
        assert_eq!(
            (c.exact.precision, c.exact.recall, c.exact.f1),
            (1.0, 1.0, 1.0)
        );
        assert_eq!(
            (c.overlap.matched, c.overlap.predicted, c.overlap.gold),
            (1, 1, 1)
        );
    }

    #[test]
    fn off_by_one_boundary_is_not_exact_and_loses_the_cut_word() {
        // Gold "The senior senator"; predicted "he senior senator".
        let gold = [sp(Role::Source, 0, 18)];
        let pred = [sp(Role::Source, 1, 18)];
        let s = *score(&[(TEXT, &gold, &pred)]).role(Role::Source);
        assert_eq!(s.exact.matched, 0);
        assert_eq!(
            (s.exact.precision, s.exact.recall, s.exact.f1),
            (0.0, 0.0, 0.0)
        );
        // "The" is cut, so not inside the prediction: words {senior, senator}.
        assert_eq!(
            (s.overlap.matched, s.overlap.predicted, s.overlap.gold),
            (2, 2, 3)
        );
        assert_eq!(s.overlap.precision, 1.0);
        assert!(close(s.overlap.recall, 2.0 / 3.0));
        assert!(close(s.overlap.f1, 0.8));
    }

    #[test]
    fn partial_overlap_is_micro_averaged_over_documents() {
        // Document 1: gold "it was over", predicted "said it" -> 1 of 2
        // predicted words, 1 of 3 gold words.
        let gold1 = [sp(Role::Content, 24, 35)];
        let pred1 = [sp(Role::Content, 19, 26)];
        // Document 2: gold "a b", predicted "a b" twice -> exact 1 of 2,
        // words 2 of 2 both ways (each word once).
        let gold2 = [sp(Role::Content, 0, 3)];
        let pred2 = [sp(Role::Content, 0, 3), sp(Role::Content, 0, 3)];
        let r = score(&[(TEXT, &gold1, &pred1), ("a b", &gold2, &pred2)]);
        assert_eq!(r.documents, 2);
        let c = r.role(Role::Content);
        assert_eq!(
            (c.exact.matched, c.exact.predicted, c.exact.gold),
            (1, 3, 2)
        );
        assert!(close(c.exact.precision, 1.0 / 3.0));
        assert_eq!(c.exact.recall, 0.5);
        assert!(close(c.exact.f1, 0.4));
        assert_eq!(
            (c.overlap.matched, c.overlap.predicted, c.overlap.gold),
            (3, 4, 5)
        );
        assert_eq!(c.overlap.precision, 0.75);
        assert_eq!(c.overlap.recall, 0.6);
        assert!(close(c.overlap.f1, 2.0 * 0.75 * 0.6 / 1.35));
    }

    #[test]
    fn no_predictions_score_zero_not_nan() {
        let gold = [sp(Role::Source, 0, 18)];
        let r = score(&[(TEXT, &gold, &[])]);
        for role in Role::ALL {
            let s = r.role(role);
            for p in [s.exact, s.overlap] {
                assert_eq!((p.precision, p.recall, p.f1), (0.0, 0.0, 0.0));
            }
        }
        assert_eq!(r.role(Role::Source).exact.gold, 1);
        let empty = score(&[]);
        assert_eq!(empty.documents, 0);
        assert_eq!(empty.role(Role::Cue).overlap.f1, 0.0);
        assert!(r.render().lines().any(|l| l.starts_with("source")));
    }

    #[test]
    fn spans_outside_the_text_do_not_panic() {
        let gold = [sp(Role::Cue, 19, 23)];
        let pred = [sp(Role::Cue, 30, 99), sp(Role::Cue, 5, 2)];
        let c = *score(&[("“x” is multibyte", &gold, &pred)]).role(Role::Cue);
        assert_eq!((c.exact.matched, c.exact.predicted), (0, 2));
    }
}
