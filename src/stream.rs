//! Streaming `stance predict` over JSONL archives: bounded memory whatever
//! the input size, each article's output written (and flushed) as soon as
//! its batch is done, in input order.
//!
//! - Every input field passes through unchanged, types kept: with
//!   `--format articles` each output line is the input object plus
//!   `"sentences"`; with `--format jsonl` each sentence record's `"article"`
//!   is the input's `id` as given (a number stays a number).
//! - `--on-error skip` turns a bad line into an error record
//!   `{"id": ..., "line": N, "error": "..."}` and goes on.
//! - `--shard K/N` keeps every Nth line (or, by id, lines whose id hashes
//!   to K), and `--resume` skips ids already complete in the output, so a
//!   job array can split an archive and restart failed pieces.
//!
//! Articles are gathered until `chunk_sentences` sentences wait or the
//! input has nothing more buffered (an interactive pipe), then labelled.

use crate::checkpoint::Checkpoint;
use crate::engine::Precision;
use crate::input::article_from_json;
use crate::labeller::Labeller;
use crate::predict::{apply_threshold, Article, RenderOptions};
use crate::{Error, Result};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::io::{BufRead, Write};

/// What to do with a line that cannot be labelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    Fail,
    Skip,
}

/// Which lines a shard keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardKey {
    /// Line `n` (1-based) goes to shard `(n - 1) % N + 1`.
    Line,
    /// By a stable hash (FNV-1a) of the id as JSON.
    Id,
}

/// `--shard K/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub k: usize,
    pub n: usize,
    pub key: ShardKey,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?}: expected K/N, e.g. 3/8"))?;
        let k: usize = k
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: K must be a whole number"))?;
        let n: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("{s:?}: N must be a whole number"))?;
        if n == 0 || k == 0 || k > n {
            return Err(format!("{s:?}: need 1 <= K <= N"));
        }
        Ok(Shard {
            k,
            n,
            key: ShardKey::Line,
        })
    }
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

impl Shard {
    fn keeps_line(&self, line: usize) -> bool {
        self.key != ShardKey::Line || (line - 1) % self.n == self.k - 1
    }
    fn keeps_id(&self, id: &Value) -> bool {
        self.key != ShardKey::Id || (fnv1a(&id.to_string()) % self.n as u64) as usize == self.k - 1
    }
}

/// Output shape of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    /// One sentence per line (as `predict --format jsonl`).
    Sentences,
    /// One article per line: the input object plus `"sentences"`.
    Articles,
}

#[derive(Debug, Clone)]
pub struct StreamOptions {
    pub format: StreamFormat,
    pub render: RenderOptions,
    pub threshold: Option<f32>,
    pub on_error: OnError,
    pub shard: Option<Shard>,
    /// Ids (as JSON) already complete: skipped.
    pub done: HashSet<String>,
    pub chunk_sentences: usize,
    pub batch_size: usize,
    pub precision: Precision,
    /// Say who claims what with this attribution tagger (`None`: labels only).
    pub tagger: Option<std::sync::Arc<crate::attribution::tagger::Tagger>>,
}

/// What a stream did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StreamReport {
    pub articles: usize,
    pub sentences: usize,
    /// Bad lines skipped (`--on-error skip`).
    pub skipped: usize,
    /// Lines left to other shards.
    pub other_shards: usize,
    /// Ids skipped because the output already had them (`--resume`).
    pub resumed: usize,
}

struct Pending {
    id: Value,
    fields: serde_json::Map<String, Value>,
    article: Article,
    sentences: usize,
}

/// The ids (as JSON) of the articles complete in an earlier `--format
/// articles` output; a trailing partial line (a killed run) does not count.
pub fn completed_ids(bytes: &[u8]) -> HashSet<String> {
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    String::from_utf8_lossy(&bytes[..end])
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("sentences").is_some())
        .filter_map(|v| v.get("id").map(Value::to_string))
        .collect()
}

/// Label the JSONL stream `input` (named `name` in errors) into `out`;
/// error records go to `errors`, or in their place in `out` when it is
/// `None`. `progress` gets the sentence count so far.
#[allow(clippy::too_many_arguments)]
pub fn stream_jsonl(
    ckpt: &Checkpoint,
    name: &str,
    input: &mut std::io::BufReader<impl std::io::Read>,
    out: &mut dyn Write,
    mut errors: Option<&mut dyn Write>,
    opts: &StreamOptions,
    report: &mut StreamReport,
    progress: &mut dyn FnMut(usize),
) -> Result<()> {
    // The engines are built once for all of this stream's chunks.
    let labeller = Labeller::new(ckpt, opts.tagger.as_deref(), opts.precision)?;
    let mut pending: Vec<Pending> = Vec::new();
    let mut waiting = 0usize;
    let mut line = Vec::new();
    let mut n = 0usize;
    let io = |e: std::io::Error| Error::io(name, e);
    loop {
        line.clear();
        let got = input.read_until(b'\n', &mut line).map_err(io)?;
        if got == 0 {
            break;
        }
        n += 1;
        if opts.shard.is_some_and(|s| !s.keeps_line(n)) {
            report.other_shards += 1;
        } else if let Some(p) = parse_line(name, n, &line, opts, report).or_else(|e| {
            let (id, msg) = e;
            if opts.on_error == OnError::Fail {
                return Err(Error::data(name, n, msg));
            }
            report.skipped += 1;
            // Earlier articles first, so an inline record keeps its place.
            flush(&labeller, &mut pending, out, opts, report, progress)?;
            waiting = 0;
            let rec = json!({"id": id, "line": n, "error": format!("{name}:{n}: {msg}")});
            let w: &mut dyn Write = match errors.as_mut() {
                Some(e) => &mut **e,
                None => &mut *out,
            };
            writeln!(w, "{rec}").and_then(|_| w.flush()).map_err(io)?;
            Ok(None)
        })? {
            waiting += p.sentences;
            pending.push(p);
        }
        // Label when enough has gathered, or when the input has nothing more
        // buffered (a pipe written by hand or by a slow producer).
        if !pending.is_empty() && (waiting >= opts.chunk_sentences || input.buffer().is_empty()) {
            flush(&labeller, &mut pending, out, opts, report, progress)?;
            waiting = 0;
        }
    }
    flush(&labeller, &mut pending, out, opts, report, progress)
}

type LineError = (Value, String);

fn parse_line(
    name: &str,
    n: usize,
    line: &[u8],
    opts: &StreamOptions,
    report: &mut StreamReport,
) -> std::result::Result<Option<Pending>, LineError> {
    let text = std::str::from_utf8(line).map_err(|e| {
        (
            Value::Null,
            format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        )
    })?;
    let text = if n == 1 {
        text.strip_prefix('\u{feff}').unwrap_or(text)
    } else {
        text
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    let v: Value =
        serde_json::from_str(text).map_err(|e| (Value::Null, format!("bad JSON: {e}")))?;
    let Value::Object(mut fields) = v else {
        return Err((
            Value::Null,
            "expected a JSON object {\"id\": ..., \"text\": ...}".into(),
        ));
    };
    let id = fields
        .get("id")
        .cloned()
        .unwrap_or_else(|| json!(format!("{name}:{n}")));
    if opts.shard.is_some_and(|s| !s.keeps_id(&id)) {
        report.other_shards += 1;
        return Ok(None);
    }
    if opts.done.contains(&id.to_string()) {
        report.resumed += 1;
        return Ok(None);
    }
    let (article, sentences) = article_from_json(&fields, &id).map_err(|m| (id.clone(), m))?;
    if opts.format == StreamFormat::Articles {
        fields.remove("text");
    }
    Ok(Some(Pending {
        id,
        fields,
        article,
        sentences,
    }))
}

fn flush(
    labeller: &Labeller,
    pending: &mut Vec<Pending>,
    out: &mut dyn Write,
    opts: &StreamOptions,
    report: &mut StreamReport,
    progress: &mut dyn FnMut(usize),
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let articles: Vec<Article> = pending.iter().map(|p| p.article.clone()).collect();
    let base = report.sentences;
    let mut preds = labeller.label(&articles, opts.batch_size, |k| progress(base + k))?;
    if let Some(t) = opts.threshold {
        apply_threshold(&mut preds, t);
    }
    let per_article = crate::predict::by_article(preds);
    let mut buf = String::new();
    for (p, preds) in pending.drain(..).zip(per_article) {
        report.articles += 1;
        report.sentences += preds.len();
        let records = preds.iter().map(|s| {
            let mut v = s.to_json(opts.render.top_k);
            if opts.format == StreamFormat::Articles {
                if let Some(o) = v.as_object_mut() {
                    o.remove("article");
                }
            } else {
                v["article"] = p.id.clone();
            }
            v
        });
        match opts.format {
            StreamFormat::Sentences => records.for_each(|r| {
                buf += &r.to_string();
                buf.push('\n');
            }),
            StreamFormat::Articles => {
                let mut o = p.fields;
                o.insert("sentences".into(), Value::Array(records.collect()));
                buf += &Value::Object(o).to_string();
                buf.push('\n');
            }
        }
    }
    match out.write_all(buf.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(|e| Error::io("output", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_lines_and_ids() {
        let s: Shard = "2/3".parse().unwrap();
        assert_eq!(
            (1..=7).filter(|&n| s.keeps_line(n)).collect::<Vec<_>>(),
            [2, 5]
        );
        for bad in ["0/3", "4/3", "1/0", "x/2", "3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let ids: Vec<Value> = (0..300).map(|i| json!(i)).collect();
        let mut seen = 0;
        for k in 1..=4 {
            let s = Shard {
                k,
                n: 4,
                key: ShardKey::Id,
            };
            let mine = ids.iter().filter(|id| s.keeps_id(id)).count();
            assert!(mine > 40, "shard {k} got {mine} of 300");
            seen += mine;
        }
        assert_eq!(seen, 300, "every id in exactly one shard");
    }

    #[test]
    fn completed_ids_ignore_a_partial_last_line() {
        let out = b"{\"id\": 1, \"sentences\": []}\n{\"id\": \"a\", \"sentences\": []}\n{\"id\": 9, \"sent";
        let done = completed_ids(out);
        assert_eq!(done, HashSet::from(["1".to_string(), "\"a\"".to_string()]));
    }
}
