//! What `stance predict`, its streaming path and `stance serve` run: the
//! sentence model and, optionally, the attribution tagger, with their
//! engines built once (weights copied, adapters merged, matrices packed)
//! and reused for every batch of articles given to [`Labeller::label`].
//! A server's batches and a stream's chunks no longer pay for that
//! build each time.

use crate::attribution::tagger::Tagger;
use crate::checkpoint::Checkpoint;
use crate::engine::{Engine, Precision};
use crate::predict::{predict_articles, Article, Prediction};
use crate::Result;

/// A sentence model and an optional tagger, ready to label articles.
pub struct Labeller<'a> {
    ckpt: &'a Checkpoint,
    sentences: Engine,
    tagger: Option<(&'a Tagger, Engine)>,
}

impl<'a> Labeller<'a> {
    /// Build the engines of `ckpt` and of `tagger` in `precision`.
    pub fn new(
        ckpt: &'a Checkpoint,
        tagger: Option<&'a Tagger>,
        precision: Precision,
    ) -> Result<Self> {
        let tagger = match tagger {
            Some(t) => Some((t, t.engine(precision)?)),
            None => None,
        };
        Ok(Labeller {
            ckpt,
            sentences: Engine::new(&ckpt.model, precision)?,
            tagger,
        })
    }

    /// Label the sentences of `articles` ([`predict_articles`]) and, with a
    /// tagger, say who claims what in them. `progress` gets the number of
    /// sentences labelled so far.
    pub fn label(
        &self,
        articles: &[Article],
        batch_size: usize,
        progress: impl FnMut(usize),
    ) -> Result<Vec<Prediction>> {
        let mut preds =
            predict_articles(self.ckpt, &self.sentences, articles, batch_size, progress)?;
        if let Some((t, engine)) = &self.tagger {
            t.attribute(articles, &mut preds, engine)?;
        }
        Ok(preds)
    }
}
