//! Bylines, datelines, credits and boilerplate lines are `context` by the
//! guideline ("Headlines, datelines ... that carry no claim"; real-news
//! rule: bylines, captions, credits and boilerplate are `context`). The
//! model sees too few of them to learn that reliably ("By Ellen Marsh" came
//! out as a confident assertion), so `stance predict` recognises them by
//! their form and labels them `context` with `"rule": "boilerplate"`.
//!
//! A line counts only when the whole sentence has one of these forms:
//! - a byline: `By Ellen Marsh`, `By Ellen Marsh and Tom Lee`, `By ELLEN MARSH, Reuters`;
//! - a dateline alone: `WASHINGTON (Reuters) -`, `LONDON, Jan 5 (AP) —`;
//! - a credit: `(Reporting by ...; Editing by ...)`, `Photo: ...`, `Image credit: ...`;
//! - a release or web line: `FOR IMMEDIATE RELEASE`, `Advertisement`,
//!   `Read more: ...`, `Follow us on ...`, `Click here ...`, `Sign up ...`,
//!   `Subscribe ...`, `Share this article`.

use regex::Regex;
use std::sync::OnceLock;

fn patterns() -> &'static [Regex] {
    static P: OnceLock<Vec<Regex>> = OnceLock::new();
    P.get_or_init(|| {
        [
            r"^[Bb][Yy] [A-Z][\w.'’-]*( [A-Z][\w.'’-]*){0,3}(( and|,) [A-Z][\w.'’-]*( [A-Z][\w.'’-]*){0,3})*(,? [A-Z][\w ]{0,40})?$",
            r"^[A-Z][A-Z .'’-]{2,40}(, [A-Z][a-z]{2,8}\.? \d{1,2})?( \([A-Za-z .]{2,30}\))? ?[-—–]?$",
            r"^\(?((Additional )?[Rr]eporting|Writing|[Ee]diting|Compiled) by .{2,200}\)?\.?$",
            r"^(Photo|Image|Picture|Video)( credit)?: .{1,200}$",
            r"^(FOR IMMEDIATE RELEASE|Advertisement|ADVERTISEMENT|Share this article|Related:?)$",
            r"^(Read more|Follow us on|Click here|Sign up|Subscribe)\b.{0,200}$",
        ]
        .iter()
        .map(|p| Regex::new(p).expect("fixed pattern"))
        .collect()
    })
}

/// Whether `sentence` is a byline, dateline, credit or boilerplate line.
pub fn is_boilerplate(sentence: &str) -> bool {
    let s = sentence.trim();
    s.chars().count() <= 240 && patterns().iter().any(|p| p.is_match(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_the_forms_and_nothing_else() {
        for s in [
            "By Ellen Marsh",
            "By Ellen Marsh and Tom Lee",
            "By ELLEN MARSH, Reuters",
            "WASHINGTON (Reuters) -",
            "LONDON, Jan 5 (AP) —",
            "(Reporting by Jan Strupczewski; Editing by Alison Williams)",
            "FOR IMMEDIATE RELEASE",
            "Advertisement",
            "Read more: the full report",
            "Photo: Getty Images",
        ] {
            assert!(is_boilerplate(s), "{s}");
        }
        for s in [
            "By Monday the mayor had denied the report.",
            "Iran denies hacking claims",
            "The mayor denied the report.",
            "BREAKING NEWS: THE MAYOR RESIGNED AFTER THE REPORT",
            "Subscribers were told the claims were false, the company said.",
        ] {
            assert!(!is_boilerplate(s), "{s}");
        }
    }
}
