//! One worker thread owns the model; requests queue articles for it, and it
//! labels whatever has queued up together, so concurrent requests share
//! forward passes (sentences of several requests in one batch). With an
//! attribution tagger it also says who claims what, as `stance predict`
//! does.
//!
//! The queue is bounded: when it is full a request is refused at once
//! (the server answers 503) instead of piling up memory. The worker stops
//! when the last handle is dropped, after finishing the queued jobs.

use crate::attribution::tagger::Tagger;
use crate::checkpoint::Checkpoint;
use crate::engine::Precision;
use crate::labeller::Labeller;
use crate::predict::{Article, Prediction};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How the worker groups jobs.
#[derive(Debug, Clone, Copy)]
pub struct BatchOptions {
    /// Sentences per forward pass.
    pub batch_size: usize,
    /// Stop collecting jobs for one round once this many sentences wait.
    pub max_sentences: usize,
    /// How long the worker waits for more jobs after the first arrives.
    pub max_wait: Duration,
    /// Jobs that may wait in the queue.
    pub queue: usize,
    pub precision: Precision,
}

impl Default for BatchOptions {
    fn default() -> Self {
        Self {
            batch_size: 32,
            max_sentences: 256,
            max_wait: Duration::from_millis(3),
            queue: 1024,
            precision: Precision::F32,
        }
    }
}

/// The answer to one job: each article's sentences, in order.
pub type JobResult = Result<Vec<Vec<Prediction>>, String>;

struct Job {
    articles: Vec<Article>,
    sentences: usize,
    reply: oneshot::Sender<JobResult>,
}

/// A handle for submitting jobs; cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::SyncSender<Job>,
}

/// Why a job was not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue is full: try again later.
    Busy,
    /// The worker has stopped.
    Stopped,
}

impl Batcher {
    /// Start the worker thread. It runs until every `Batcher` is dropped.
    /// With a `tagger`, every sentence also gets its source and cue.
    pub fn start(
        ckpt: Checkpoint,
        tagger: Option<Tagger>,
        opts: BatchOptions,
    ) -> (Batcher, JoinHandle<()>) {
        let (tx, rx) = mpsc::sync_channel::<Job>(opts.queue.max(1));
        let worker = std::thread::Builder::new()
            .name("stance-model".into())
            .spawn(move || work(&ckpt, tagger.as_ref(), &rx, opts))
            .expect("spawning the model thread");
        (Batcher { tx }, worker)
    }

    /// Queue `articles` (each must have at least one sentence: see
    /// [`crate::splitter::split_sentences`]) and return where the answer
    /// will arrive.
    pub fn submit(
        &self,
        articles: Vec<Article>,
        sentences: usize,
    ) -> Result<oneshot::Receiver<JobResult>, SubmitError> {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            articles,
            sentences,
            reply,
        };
        match self.tx.try_send(job) {
            Ok(()) => Ok(rx),
            Err(mpsc::TrySendError::Full(_)) => Err(SubmitError::Busy),
            Err(mpsc::TrySendError::Disconnected(_)) => Err(SubmitError::Stopped),
        }
    }
}

fn work(ckpt: &Checkpoint, tagger: Option<&Tagger>, rx: &mpsc::Receiver<Job>, opts: BatchOptions) {
    // The engines are built once, for every batch the server will label.
    let labeller = match Labeller::new(ckpt, tagger, opts.precision) {
        Ok(l) => l,
        Err(e) => {
            let msg = format!("the model cannot run: {e}");
            while let Ok(j) = rx.recv() {
                let _ = j.reply.send(Err(msg.clone()));
            }
            return;
        }
    };
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let mut waiting = jobs[0].sentences;
        let deadline = Instant::now() + opts.max_wait;
        while waiting < opts.max_sentences {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(j) => {
                    waiting += j.sentences;
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        // Jobs whose client has gone (timed out, disconnected) are skipped.
        jobs.retain(|j| !j.reply.is_closed());
        if jobs.is_empty() {
            continue;
        }
        let all: Vec<Article> = jobs
            .iter()
            .flat_map(|j| j.articles.iter().cloned())
            .collect();
        match labeller.label(&all, opts.batch_size, |_| {}) {
            Ok(preds) => {
                let mut per_article = crate::predict::by_article(preds).into_iter();
                for j in jobs {
                    let mine: Vec<Vec<Prediction>> =
                        per_article.by_ref().take(j.articles.len()).collect();
                    let _ = j.reply.send(Ok(mine));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for j in jobs {
                    let _ = j.reply.send(Err(msg.clone()));
                }
            }
        }
    }
}
