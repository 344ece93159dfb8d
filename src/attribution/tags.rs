//! The tagger's view of an article: windows of whole sentences as token
//! sequences, BIO tags from gold spans for training, and spans back from
//! the tagger's logits by constrained (Viterbi) decoding.

use super::{Role, Span};
use crate::batch::{Encoded, TextEncoder, IGNORE};
use crate::Result;
use std::ops::Range;

/// The tagger's labels, in class-id order (its `id2label`).
pub const TAGS: [&str; 7] = [
    "O",
    "B-SOURCE",
    "I-SOURCE",
    "B-CUE",
    "I-CUE",
    "B-CONTENT",
    "I-CONTENT",
];

/// The tag of a token that begins (`inside == false`) or continues a span.
pub fn tag(role: Role, inside: bool) -> u32 {
    let base = match role {
        Role::Source => 1,
        Role::Cue => 3,
        Role::Content => 5,
    };
    base + inside as u32
}

/// The role and the inside flag of a tag (`None` for `O`).
pub fn untag(tag: usize) -> Option<(Role, bool)> {
    match tag {
        1 | 2 => Some((Role::Source, tag == 2)),
        3 | 4 => Some((Role::Cue, tag == 4)),
        5 | 6 => Some((Role::Content, tag == 6)),
        _ => None,
    }
}

/// The longest stretch of one sentence the tagger reads (about 16 windows).
pub const MAX_SENTENCE_BYTES: usize = 8192;

/// Consecutive whole sentences of an article as one token sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub enc: Encoded,
    /// Each token's byte range in the article; `None` for the start and end tokens.
    pub offsets: Vec<Option<(usize, usize)>>,
}

/// Cut an article into windows of at most `max_len` tokens (start and end
/// tokens included): whole sentences, greedily, a sentence longer than a
/// window on its own cut into window-sized pieces. `sentences` are byte
/// ranges of `text`, in order.
pub fn windows(
    encoder: &TextEncoder,
    text: &str,
    sentences: &[Range<usize>],
    max_len: usize,
) -> Result<Vec<Window>> {
    let room = max_len.saturating_sub(2).max(1);
    let (first, last) = encoder.bounds()?;
    let mut out = Vec::new();
    let mut ids: Vec<u32> = Vec::new();
    let mut offs: Vec<(usize, usize)> = Vec::new();
    let mut flush = |ids: &mut Vec<u32>, offs: &mut Vec<(usize, usize)>| {
        if ids.is_empty() {
            return;
        }
        let mut all = Vec::with_capacity(ids.len() + 2);
        all.push(first);
        all.append(ids);
        all.push(last);
        let mut o = Vec::with_capacity(all.len());
        o.push(None);
        o.extend(offs.drain(..).map(Some));
        o.push(None);
        out.push(Window {
            enc: Encoded {
                type_ids: vec![0; all.len()],
                ids: all,
            },
            offsets: o,
        });
    };
    for r in sentences {
        // A "sentence" of megabytes (a table, a dump) is tagged on its first
        // MAX_SENTENCE_BYTES only, so time and memory stay bounded.
        let mut end = r.end.min(r.start + MAX_SENTENCE_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let r = &(r.start..end);
        let (sid, soff) = encoder.pieces(&text[r.clone()])?;
        if ids.len() + sid.len() > room {
            flush(&mut ids, &mut offs);
        }
        for (chunk, chunk_off) in sid.chunks(room).zip(soff.chunks(room)) {
            if ids.len() + chunk.len() > room {
                flush(&mut ids, &mut offs);
            }
            ids.extend_from_slice(chunk);
            offs.extend(chunk_off.iter().map(|&(a, b)| (a + r.start, b + r.start)));
        }
    }
    flush(&mut ids, &mut offs);
    Ok(out)
}

/// The gold tag of every token of `w` (`IGNORE` for its start and end
/// tokens): a token inside a span takes its role, `B-` on the span's first
/// token in the window. `spans` must be sorted by start and not overlap
/// (PolNeAR's annotation is univocal).
pub fn gold_tags(w: &Window, spans: &[Span]) -> Vec<u32> {
    let mut prev: Option<usize> = None;
    w.offsets
        .iter()
        .map(|o| {
            let Some((a, b)) = *o else {
                prev = None;
                return IGNORE;
            };
            // The last span starting before the token's end.
            let i = spans.partition_point(|s| s.start < b);
            let hit = i.checked_sub(1).filter(|&i| spans[i].end > a);
            let t = match hit {
                Some(i) => tag(spans[i].role, prev == Some(i)),
                None => 0,
            };
            prev = hit;
            t
        })
        .collect()
}

/// The best tag sequence of `w` under BIO's constraint (an `I-` tag only
/// after the same role's `B-` or `I-`), from the tagger's logits
/// `[tokens * TAGS]`, as spans with byte offsets into the article.
pub fn decode(w: &Window, logits: &[f32]) -> Vec<Span> {
    let k = TAGS.len();
    let rows: Vec<usize> = (0..w.offsets.len())
        .filter(|&i| w.offsets[i].is_some())
        .collect();
    if rows.is_empty() {
        return Vec::new();
    }
    let log_softmax = |r: usize| -> Vec<f32> {
        let z = &logits[r * k..(r + 1) * k];
        let max = z.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
        let lse = z.iter().map(|v| (v - max).exp()).sum::<f32>().ln() + max;
        z.iter().map(|v| v - lse).collect()
    };
    let allowed = |from: Option<usize>, to: usize| match untag(to) {
        Some((role, true)) => from.and_then(untag).is_some_and(|(r, _)| r == role),
        _ => true,
    };
    let mut score = log_softmax(rows[0]);
    for (t, s) in score.iter_mut().enumerate() {
        if !allowed(None, t) {
            *s = f32::NEG_INFINITY;
        }
    }
    let mut back: Vec<Vec<usize>> = Vec::with_capacity(rows.len());
    for &r in &rows[1..] {
        let emit = log_softmax(r);
        let mut next = vec![f32::NEG_INFINITY; k];
        let mut from = vec![0usize; k];
        for to in 0..k {
            for (f, &s) in score.iter().enumerate() {
                if allowed(Some(f), to) && s > next[to] {
                    next[to] = s;
                    from[to] = f;
                }
            }
            next[to] += emit[to];
        }
        back.push(from);
        score = next;
    }
    let mut best = (0..k)
        .max_by(|&a, &b| score[a].total_cmp(&score[b]))
        .unwrap_or(0);
    let mut tags = vec![best; rows.len()];
    for (i, from) in back.iter().enumerate().rev() {
        best = from[best];
        tags[i] = best;
    }
    let mut spans: Vec<Span> = Vec::new();
    for (i, &t) in tags.iter().enumerate() {
        let (a, b) = w.offsets[rows[i]].expect("rows have offsets");
        match untag(t) {
            Some((role, true)) => {
                if let Some(last) = spans.last_mut().filter(|s| s.role == role) {
                    last.end = b;
                }
            }
            Some((role, false)) => spans.push(Span {
                role,
                start: a,
                end: b,
            }),
            None => {}
        }
    }
    spans
}

/// Widen `span` (byte offsets into `text`) to whole words: a span that
/// starts or ends inside a word (its tokens' word pieces tagged apart, as
/// `per` of `persuading`) takes in the rest of that word. Annotators mark
/// whole words, and a reader should never see half of one highlighted.
pub fn snap_to_words(text: &str, span: &mut Span) {
    let word = |c: char| c.is_alphanumeric();
    while let (Some(before), Some(first)) = (
        text[..span.start].chars().next_back(),
        text[span.start..].chars().next(),
    ) {
        if !(word(before) && word(first)) {
            break;
        }
        span.start -= before.len_utf8();
    }
    while let (Some(last), Some(after)) = (
        text[..span.end].chars().next_back(),
        text[span.end..].chars().next(),
    ) {
        if !(word(last) && word(after)) {
            break;
        }
        span.end += after.len_utf8();
    }
}

/// Character offsets to byte offsets of one text, and back.
pub struct CharBytes {
    /// The byte offset of each character, then the text's length.
    bytes: Vec<usize>,
}

impl CharBytes {
    pub fn new(text: &str) -> CharBytes {
        let mut bytes: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
        bytes.push(text.len());
        CharBytes { bytes }
    }

    /// The byte offset of character `char` (the text's end past it).
    pub fn byte(&self, char: usize) -> usize {
        self.bytes[char.min(self.bytes.len() - 1)]
    }

    /// The byte offset of character `char`, if it is within the text (its
    /// end included).
    pub fn checked_byte(&self, char: usize) -> Option<usize> {
        self.bytes.get(char).copied()
    }

    /// The text's length in characters.
    pub fn chars(&self) -> usize {
        self.bytes.len() - 1
    }

    pub fn char(&self, byte: usize) -> usize {
        self.bytes.partition_point(|&b| b < byte)
    }
}

/// The byte range of each sentence (the splitter counts characters).
pub fn sentence_bytes(text: &str, sentences: &[crate::splitter::Sentence]) -> Vec<Range<usize>> {
    let o = CharBytes::new(text);
    sentences
        .iter()
        .map(|s| o.byte(s.start)..o.byte(s.end))
        .collect()
}

/// A document's training windows (as `stance predict` cuts the article)
/// with their gold tags.
pub fn examples(
    encoder: &TextEncoder,
    doc: &super::Document,
    max_len: usize,
) -> Result<Vec<(Encoded, Vec<u32>)>> {
    let sentences = crate::splitter::split_sentences(&doc.text);
    let ranges = sentence_bytes(&doc.text, &sentences);
    Ok(windows(encoder, &doc.text, &ranges, max_len)?
        .into_iter()
        .map(|w| {
            let t = gold_tags(&w, &doc.spans);
            (w.enc, t)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapped(text: &str, piece: &str, role: Role) -> String {
        let start = text.find(piece).unwrap();
        let mut s = Span {
            role,
            start,
            end: start + piece.len(),
        };
        snap_to_words(text, &mut s);
        text[s.start..s.end].to_string()
    }

    #[test]
    fn spans_widen_to_whole_words() {
        let text = "Critics, however, persuading “Müller”ś aides, said so.";
        // A word's first piece, its last piece, a middle piece.
        assert_eq!(snapped(text, "per", Role::Cue), "persuading");
        assert_eq!(snapped(text, "ading", Role::Cue), "persuading");
        assert_eq!(snapped(text, "suad", Role::Cue), "persuading");
        // Multibyte letters are letters; quotes and commas end a word.
        assert_eq!(snapped(text, "Mü", Role::Source), "Müller");
        assert_eq!(snapped(text, "ller", Role::Source), "Müller");
        // Whole words and spans over several words stay as they are.
        assert_eq!(snapped(text, "said", Role::Cue), "said");
        assert_eq!(
            snapped(text, "Critics, however", Role::Source),
            "Critics, however"
        );
        assert_eq!(snapped(text, "aides, sa", Role::Content), "aides, said");
    }
}
