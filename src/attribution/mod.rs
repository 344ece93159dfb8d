//! Who claims what: attribution relations in news text.
//!
//! An *attribution* is a passage where an article reports what someone said,
//! thought or intended. PolNeAR (Political News Attribution Relations)
//! annotates each one as up to three kinds of span:
//!
//! - the **source**, who the claim is attributed to (`the senator`, `he`);
//! - the **cue**, the words that signal the attribution (`said`, `according
//!   to`, `has learned`);
//! - the **content**, what is attributed (`that the bill would pass`), often
//!   in several discontinuous pieces around the source and cue.
//!
//! [`polnear`] reads the corpus's brat standoff files into [`Document`]s;
//! [`tags`] turns articles into the tagger's windows and BIO tags and its
//! logits back into spans; [`tagger`] runs a token-classification
//! checkpoint over articles; [`link`] groups spans into claims and gives
//! each sentence its source and cue; [`score`] compares predicted spans with
//! gold ones, per [`Role`]; [`evaluate`] is `stance eval --task attribution`.

pub mod evaluate;
pub mod link;
pub mod polnear;
pub mod score;
pub mod tagger;
pub mod tags;

/// The part a span plays in an attribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Who the attributed material comes from.
    Source,
    /// The words that introduce the attribution.
    Cue,
    /// What is attributed.
    Content,
}

impl Role {
    /// Every role, in report order.
    pub const ALL: [Role; 3] = [Role::Source, Role::Cue, Role::Content];

    /// The lowercase name used in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Cue => "cue",
            Role::Content => "content",
        }
    }
}

/// One contiguous annotated stretch of a document's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Span {
    pub role: Role,
    /// Byte offset of the first byte in [`Document::text`].
    pub start: usize,
    /// Byte offset one past the last byte (exclusive).
    pub end: usize,
}

/// One attribution: the spans that make it up, as indices into
/// [`Document::spans`], each list sorted and holding only spans of its role.
/// A span may take part in several relations (one source for many claims).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Relation {
    pub source: Vec<usize>,
    pub cue: Vec<usize>,
    pub content: Vec<usize>,
}

/// An article with its attribution annotation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Document {
    /// The text file's stem, e.g. `nyt_2016-04-18_for-news-outlets-feeling-the-squ`.
    pub name: String,
    pub text: String,
    /// Every source, cue and content span, sorted by start (then end, then
    /// role), without duplicates.
    pub spans: Vec<Span>,
    pub relations: Vec<Relation>,
}
