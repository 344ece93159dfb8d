//! Progress of long work on stderr: a live bar on a terminal, and where
//! stderr is a file or a pipe (`stance train ... 2> train.log`, a CI log, a
//! job scheduler) a plain line every half minute, so a run of an hour never
//! sits silent. `STANCE_PROGRESS_SECS` sets the interval of the plain lines.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Seconds between plain progress lines unless `STANCE_PROGRESS_SECS` says.
pub const DEFAULT_PLAIN_SECS: u64 = 30;

pub struct Progress {
    bar: ProgressBar,
    /// The plain-line state where the bar cannot draw.
    plain: Option<Mutex<Plain>>,
}

struct Plain {
    /// What is counted ("steps", "sentences").
    unit: String,
    started: Instant,
    /// When the last line was written (`None`: not yet; the first is due
    /// one interval after the start).
    last: Option<Instant>,
    every: Duration,
    pos: u64,
    msg: String,
}

impl Progress {
    /// A bar of `len` items (0: unknown) drawn with the indicatif
    /// `template` on a terminal; elsewhere lines of `pos/len unit`.
    pub fn new(len: u64, template: &str, unit: &str) -> Progress {
        let bar =
            ProgressBar::with_draw_target((len > 0).then_some(len), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        let plain = bar.is_hidden().then(|| {
            Mutex::new(Plain {
                unit: unit.to_string(),
                started: Instant::now(),
                last: None,
                every: Duration::from_secs(plain_secs()),
                pos: 0,
                msg: String::new(),
            })
        });
        Progress { bar, plain }
    }

    pub fn set_position(&self, pos: u64) {
        self.bar.set_position(pos);
        self.plain_line(|p| p.pos = pos);
    }

    /// Text after the count ("epoch 2  loss 0.41 ..."); shown from the next
    /// position on.
    pub fn set_message(&self, msg: String) {
        self.bar.set_message(msg.clone());
        if let Some(p) = &self.plain {
            p.lock().unwrap_or_else(|e| e.into_inner()).msg = msg;
        }
    }

    /// A line that stays above the bar (or, without one, a plain line).
    pub fn println(&self, line: &str) {
        if self.plain.is_some() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    pub fn finish_and_clear(&self) {
        self.bar.finish_and_clear();
    }

    /// Update the plain state and write a line when one is due.
    fn plain_line(&self, update: impl FnOnce(&mut Plain)) {
        let Some(p) = &self.plain else { return };
        let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
        update(&mut p);
        let now = Instant::now();
        if now.duration_since(p.last.unwrap_or(p.started)) < p.every {
            return;
        }
        p.last = Some(now);
        let len = self.bar.length().unwrap_or(0);
        let count = if len > 0 {
            format!(
                "{}/{len} {} ({:.0}%)",
                p.pos,
                p.unit,
                100.0 * p.pos as f64 / len as f64
            )
        } else {
            format!("{} {}", p.pos, p.unit)
        };
        let secs = now.duration_since(p.started).as_secs();
        let msg = if p.msg.is_empty() {
            String::new()
        } else {
            format!("  {}", p.msg)
        };
        eprintln!(
            "[{:02}:{:02}:{:02}] {count}{msg}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        );
    }
}

fn plain_secs() -> u64 {
    std::env::var("STANCE_PROGRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_PLAIN_SECS)
}
