//! The attribution tagger as `stance predict` and `stance eval --task
//! attribution` run it: a token-classification checkpoint over
//! [`super::tags::TAGS`], run over windows of whole sentences, its logits
//! decoded into source, cue and content spans.

use super::link::{claims, per_sentence};
use super::tags::{decode, snap_to_words, windows, CharBytes, TAGS};
use super::Span;
use crate::checkpoint::Checkpoint;
use crate::engine::{Engine, Precision};
use crate::model::spec::Task;
use crate::predict::{Article, Attributed, Attribution, Prediction};
use crate::{Error, Result};
use std::ops::Range;
use std::path::Path;

/// A loaded tagger.
pub struct Tagger {
    pub ckpt: Checkpoint,
}

impl std::fmt::Debug for Tagger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tagger")
            .field("dir", &self.ckpt.dir)
            .finish()
    }
}

/// Windows per forward pass.
const BATCH: usize = 16;

impl Tagger {
    /// Load a tagger checkpoint, refusing a sentence classifier or one with
    /// other tags.
    pub fn load(dir: &Path) -> Result<Tagger> {
        let ckpt = crate::checkpoint::load(dir, &candle_core::Device::Cpu)?;
        Tagger::new(ckpt)
    }

    pub fn new(ckpt: Checkpoint) -> Result<Tagger> {
        if ckpt.model.spec.task() != Task::Token {
            return Err(Error::model(
                &ckpt.dir,
                "is a sentence classifier, not an attribution tagger (a *ForTokenClassification checkpoint)",
            ));
        }
        if ckpt.labels.names() != TAGS {
            return Err(Error::model(
                &ckpt.dir,
                format!(
                    "tags {} are not the attribution tagger's ({})",
                    ckpt.labels.names().join(", "),
                    TAGS.join(", ")
                ),
            ));
        }
        Ok(Tagger { ckpt })
    }

    /// This tagger's engine in `precision`, for [`Tagger::spans`] and
    /// [`Tagger::attribute`].
    pub fn engine(&self, precision: Precision) -> Result<Engine> {
        Engine::new(&self.ckpt.model, precision)
    }

    /// The spans of each article (`text`, its sentences' byte ranges), in
    /// article byte offsets, sorted by start. Windows of all articles share
    /// batches.
    /// `engine` is this tagger's ([`Tagger::engine`]).
    pub fn spans(
        &self,
        articles: &[(&str, Vec<Range<usize>>)],
        engine: &Engine,
    ) -> Result<Vec<Vec<Span>>> {
        let max_len = self.ckpt.settings.max_len;
        let mut all = Vec::new();
        let mut owner = Vec::new();
        for (i, (text, sentences)) in articles.iter().enumerate() {
            for w in windows(&self.ckpt.encoder, text, sentences, max_len)? {
                all.push(w);
                owner.push(i);
            }
        }
        let encs: Vec<_> = all.iter().map(|w| w.enc.clone()).collect();
        let logits = crate::infer::engine_logits(engine, &encs, BATCH, |_| {})?;
        let mut out = vec![Vec::new(); articles.len()];
        for ((w, l), &i) in all.iter().zip(&logits).zip(&owner) {
            out[i].extend(decode(w, l).into_iter().map(|mut s| {
                snap_to_words(articles[i].0, &mut s);
                s
            }));
        }
        for spans in &mut out {
            spans.sort_by_key(|s| (s.start, s.end));
            // Two pieces of one word tagged apart become the same span.
            spans.dedup();
        }
        Ok(out)
    }
}

impl Tagger {
    /// Fill in every prediction's [`Attribution`]: tag each article, group
    /// the spans into claims ([`super::link`]) and give each sentence the
    /// source and cue of the claim it reports. `preds` are
    /// [`crate::predict::predict_articles`]' output for `articles`.
    pub fn attribute(
        &self,
        articles: &[Article],
        preds: &mut [Prediction],
        engine: &Engine,
    ) -> Result<()> {
        let groups = crate::predict::article_ranges(preds);
        if groups.len() != articles.len() {
            return Err(Error::Invalid(format!(
                "{} articles but predictions for {}",
                articles.len(),
                groups.len()
            )));
        }
        let offsets: Vec<CharBytes> = articles.iter().map(|a| CharBytes::new(&a.text)).collect();
        let inputs: Vec<(&str, Vec<Range<usize>>)> = articles
            .iter()
            .zip(&groups)
            .zip(&offsets)
            .map(|((a, g), o)| {
                let ranges = preds[g.clone()]
                    .iter()
                    .map(|p| o.byte(p.start)..o.byte(p.end))
                    .collect();
                (a.text.as_str(), ranges)
            })
            .collect();
        let spans = self.spans(&inputs, engine)?;
        for (((a, g), o), (spans, (_, ranges))) in articles
            .iter()
            .zip(&groups)
            .zip(&offsets)
            .zip(spans.iter().zip(&inputs))
        {
            let claims = claims(spans, ranges);
            let which = per_sentence(&claims, ranges);
            let part = |s: &Span| Attributed {
                text: a.text[s.start..s.end].to_string(),
                start: o.char(s.start),
                end: o.char(s.end),
            };
            for (p, w) in preds[g.clone()].iter_mut().zip(which) {
                let c = w.map(|i| &claims[i]);
                p.attribution = Some(Attribution {
                    source: c.and_then(|c| c.source.as_ref()).map(part),
                    cue: c.and_then(|c| c.cue.as_ref()).map(part),
                });
            }
        }
        Ok(())
    }
}
