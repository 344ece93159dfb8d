//! Who claims what: the tagger's spans of an article grouped into claims
//! (a cue, its source and what is claimed), and for each sentence the claim
//! it reports, across sentence boundaries: a quote whose "he said" comes in
//! the next sentence gets that sentence's source and cue.

use super::{Role, Span};
use std::ops::Range;

/// One attribution: who (`source`), how (`cue`) and what (`content`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub source: Option<Span>,
    pub cue: Option<Span>,
    pub content: Vec<Span>,
}

/// How far apart two spans are: sentences between them first, then bytes.
fn distance(a: &Span, b: &Span, sentences: &[Range<usize>]) -> (usize, usize) {
    let ((a0, a1), (b0, b1)) = (sentences_of(a, sentences), sentences_of(b, sentences));
    let sent = if a1 < b0 {
        b0 - a1
    } else {
        a0.saturating_sub(b1)
    };
    let bytes = if a.end <= b.start {
        b.start - a.end
    } else {
        a.start.saturating_sub(b.end)
    };
    (sent, bytes)
}

/// The first and the last sentence a span touches.
fn sentences_of(s: &Span, sentences: &[Range<usize>]) -> (usize, usize) {
    let first = sentence_of(s.start, sentences);
    let last = sentence_of(s.end.saturating_sub(1).max(s.start), sentences);
    (first, last)
}

/// The index of the sentence holding byte `pos` (the last one starting at
/// or before it).
fn sentence_of(pos: usize, sentences: &[Range<usize>]) -> usize {
    sentences
        .partition_point(|r| r.start <= pos)
        .saturating_sub(1)
}

/// Group an article's spans into claims. Each cue takes the nearest source
/// in its own sentence; a cue with none there takes the nearest source of a
/// neighbouring sentence that no cue of that sentence took (a passive "is
/// viewed" does not steal the next sentence's speaker); a source no cue
/// took stands as a claim of its own; each content span joins the nearest
/// claim within one sentence of it. `spans` sorted by start.
pub fn claims(spans: &[Span], sentences: &[Range<usize>]) -> Vec<Claim> {
    let of = |role: Role| spans.iter().filter(move |s| s.role == role);
    let sources: Vec<&Span> = of(Role::Source).collect();
    let cues: Vec<&Span> = of(Role::Cue).collect();
    let mut taken = vec![false; sources.len()];
    let nearest = |cue: &Span, taken: &[bool], max_sent: usize| {
        sources
            .iter()
            .enumerate()
            .filter(|(i, _)| !taken[*i] || max_sent == 0)
            .map(|(i, s)| (distance(cue, s, sentences), i))
            .filter(|((sent, _), _)| *sent <= max_sent)
            .min()
            .map(|(_, i)| i)
    };
    // Own sentence first, for every cue; then the neighbours' leftovers.
    let mut chosen: Vec<Option<usize>> = cues.iter().map(|c| nearest(c, &taken, 0)).collect();
    chosen.iter().flatten().for_each(|&i| taken[i] = true);
    let own = taken.clone();
    for (c, slot) in cues.iter().zip(chosen.iter_mut()) {
        if slot.is_none() {
            *slot = nearest(c, &own, 1);
            if let Some(i) = *slot {
                taken[i] = true;
            }
        }
    }
    let mut out: Vec<Claim> = cues
        .iter()
        .zip(&chosen)
        .map(|(c, s)| Claim {
            source: s.map(|i| *sources[i]),
            cue: Some(**c),
            content: Vec::new(),
        })
        .collect();
    for (i, s) in sources.iter().enumerate() {
        if !taken[i] {
            out.push(Claim {
                source: Some(**s),
                cue: None,
                content: Vec::new(),
            });
        }
    }
    for content in of(Role::Content) {
        let best = out
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let anchor = c.cue.or(c.source)?;
                Some((distance(content, &anchor, sentences), i))
            })
            .filter(|((sent, _), _)| *sent <= 1)
            .min();
        if let Some((_, i)) = best {
            out[i].content.push(*content);
        }
    }
    out.sort_by_key(|c| c.cue.or(c.source).map(|s| s.start));
    out
}

/// For each sentence, the claim it reports: the claim of the first cue in
/// it, else of the first content span it overlaps, else of a source in it.
pub fn per_sentence(claims: &[Claim], sentences: &[Range<usize>]) -> Vec<Option<usize>> {
    let inside = |s: &Span, r: &Range<usize>| s.start < r.end && s.end > r.start;
    sentences
        .iter()
        .map(|r| {
            let first = |pick: &dyn Fn(&Claim) -> Option<usize>| {
                claims
                    .iter()
                    .enumerate()
                    .filter_map(|(i, c)| pick(c).map(|start| (start, i)))
                    .min()
                    .map(|(_, i)| i)
            };
            first(&|c| c.cue.filter(|s| inside(s, r)).map(|s| s.start))
                .or_else(|| {
                    first(&|c| {
                        c.content
                            .iter()
                            .filter(|s| inside(s, r))
                            .map(|s| s.start.max(r.start))
                            .min()
                    })
                })
                .or_else(|| first(&|c| c.source.filter(|s| inside(s, r)).map(|s| s.start)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(role: Role, start: usize, end: usize) -> Span {
        Span { role, start, end }
    }

    #[test]
    fn a_quote_gets_the_source_of_the_next_sentence() {
        // 0: "“We will win. 1: We always do,” she said. 2: The vote is Monday."
        let sentences = vec![0..14, 15..42, 43..62];
        let spans = vec![
            span(Role::Content, 0, 30),
            span(Role::Source, 32, 35),
            span(Role::Cue, 36, 40),
        ];
        let cs = claims(&spans, &sentences);
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].source, Some(spans[1]));
        assert_eq!(cs[0].content, vec![spans[0]]);
        assert_eq!(per_sentence(&cs, &sentences), vec![Some(0), Some(0), None]);
    }

    #[test]
    fn each_cue_takes_its_own_sentences_source() {
        let sentences = vec![0..30, 31..60];
        let spans = vec![
            span(Role::Source, 0, 5),
            span(Role::Cue, 6, 10),
            span(Role::Content, 11, 29),
            span(Role::Source, 31, 36),
            span(Role::Cue, 37, 43),
            span(Role::Content, 44, 59),
        ];
        let cs = claims(&spans, &sentences);
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[0].source, Some(spans[0]));
        assert_eq!(cs[1].source, Some(spans[3]));
        assert_eq!(cs[1].content, vec![spans[5]]);
        assert_eq!(per_sentence(&cs, &sentences), vec![Some(0), Some(1)]);
    }

    #[test]
    fn a_cue_without_a_source_does_not_take_the_next_sentences_speaker() {
        // 0: "It is viewed as a threat." 1: "The FBI said it acted."
        let sentences = vec![0..25, 26..48];
        let spans = vec![
            span(Role::Cue, 3, 12),
            span(Role::Source, 26, 33),
            span(Role::Cue, 34, 38),
        ];
        let cs = claims(&spans, &sentences);
        let passive = cs.iter().find(|c| c.cue == Some(spans[0])).unwrap();
        assert_eq!(passive.source, None);
        let said = cs.iter().find(|c| c.cue == Some(spans[2])).unwrap();
        assert_eq!(said.source, Some(spans[1]));
        // Without its own cue, the next sentence's source is free to take.
        let cs = claims(&spans[..2], &sentences);
        assert_eq!(cs[0].source, Some(spans[1]));
    }

    #[test]
    fn far_spans_are_not_linked() {
        // A source three sentences away from the cue is not its source.
        let sentences = vec![0..10, 11..20, 21..30, 31..40];
        let spans = vec![span(Role::Source, 0, 3), span(Role::Cue, 32, 35)];
        let cs = claims(&spans, &sentences);
        let cue_claim = cs.iter().find(|c| c.cue.is_some()).unwrap();
        assert_eq!(cue_claim.source, None);
        assert_eq!(cs.len(), 2, "the lone source stands as its own claim");
        assert_eq!(per_sentence(&cs, &sentences)[1], None);
    }
}
