//! The `stance` command line: parse flags into typed configs, call one
//! library function per command, print errors with their whole chain.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use stance::engine::Precision;
use stance::input::InputFormat;
use stance::predict::Format;
use stance::progress::Progress;
use stance::train::{ClassWeights, LabelSource, TrainConfig, TrainEvent, TrainJob};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// The model `predict` and `eval` use when no --model is given.
const DEFAULT_MODEL: &str = "models/stance-mpnet";
const DEFAULT_TAGGER: &str = "models/stance-tagger";

#[derive(Parser)]
#[command(
    name = "stance",
    version,
    args_override_self = true,
    about = "Label every sentence of a news article as assertion, denial, allegation or context"
)]
struct Cli {
    /// Threads for the CPU kernels, 1..=256 (default: all cores).
    #[arg(long, global = true, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fine-tune a pretrained BERT-family encoder on labelled sentences.
    Train(TrainArgs),
    /// Split articles into sentences and label each one.
    #[command(long_about = "Split articles into sentences and label each one.\n\n\
Labels (what the sentence does in the story, not whether it is true):\n  \
assertion   states a specific fact that advances the story (events, figures, decisions, findings)\n  \
denial      someone rejects, disputes or denies a claim or accusation, or disclaims responsibility\n  \
allegation  a source accuses, blames or suspects someone, without the sentence establishing it\n  \
context     background: history, earlier events, descriptions of people, what happens next\n  \
uncertain   (only with --threshold) the top probability is below the threshold")]
    Predict(PredictArgs),
    /// Score a checkpoint on labelled sentences.
    Eval(EvalArgs),
    /// Fetch a pretrained encoder from the Hugging Face Hub.
    Download(DownloadArgs),
    /// Inspect and split labelled data.
    #[command(subcommand)]
    Data(DataCommand),
    /// Measure inference or training throughput (see scripts/bench.sh), or load-test a server.
    Bench(BenchArgs),
    /// Serve the model over HTTP: a page to paste articles into, and a JSON / NDJSON API.
    #[command(
        long_about = "Serve the model over HTTP on a local address. The model is loaded once; \
concurrent requests are labelled together.\n\n\
  GET  /             a page: paste an article (text or HTML), see it highlighted\n\
  POST /v1/predict   {\"text\": ...} or {\"articles\": [{\"id\": ..., \"text\": ...}]} -> JSON;\n\
                     with Content-Type: application/x-ndjson, one article per line in and out, streamed\n\
  POST /v1/view      the same body -> the HTML view of `predict --format html`\n\
  GET  /v1/model     labels, base, version, window\n\
  GET  /healthz\n\n\
SIGTERM or Ctrl-C stops taking connections and finishes the requests in flight."
    )]
    Serve(ServeArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Checkpoint directory, or a hub model as org/name[@revision]: read from the hub cache (HF_HUB_CACHE), downloaded there when missing unless HF_HUB_OFFLINE=1.
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: PathBuf,
    /// Address to listen on (port 0: any free port, printed on stderr).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: std::net::SocketAddr,
    /// Largest request body in bytes (for NDJSON: largest line); larger ones get 413.
    #[arg(long, default_value_t = 1 << 20, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=(1u64 << 32)))]
    max_body: usize,
    /// Seconds a request may take before it gets 504.
    #[arg(long, default_value_t = 60.0, value_parser = seconds, allow_negative_numbers = true)]
    timeout: f64,
    /// Sentences per forward pass.
    #[arg(long, default_value_t = 32, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=4096))]
    batch_size: usize,
    /// Milliseconds the model thread waits for more requests to batch with the first.
    #[arg(long, default_value_t = 3, value_parser = clap::builder::RangedU64ValueParser::<u64>::new().range(0..=1000))]
    batch_wait_ms: u64,
    /// Matrix products in f32 or bf16 (see predict --help).
    #[arg(long, default_value = "f32")]
    precision: Precision,
    #[command(flatten)]
    who: WhoArgs,
}

#[derive(Args)]
struct BenchArgs {
    /// A checkpoint, or a base encoder (then with a fresh 4-label head).
    #[arg(long, default_value = "models/all-MiniLM-L6-v2")]
    model: PathBuf,
    /// Sentences (JSONL / CSV / TSV with a text column).
    #[arg(long)]
    data: PathBuf,
    /// What to measure: inference, a training step (full or LoRA), or a running server.
    #[arg(long, value_enum, default_value_t = BenchModeArg::Infer)]
    mode: BenchModeArg,
    /// Sentences per batch.
    #[arg(long, default_value_t = 16, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=4096))]
    batch_size: usize,
    /// Maximum tokens per sentence.
    #[arg(long, default_value_t = 48, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(4..=512))]
    max_len: usize,
    /// Timed repetitions (the median is reported).
    #[arg(long, default_value_t = 5, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000))]
    reps: usize,
    /// Training steps per repetition.
    #[arg(long, default_value_t = 8, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
    steps: usize,
    /// Use only the first N sentences.
    #[arg(long)]
    limit: Option<usize>,
    /// Write the logits of the (first --limit) sentences here as JSON instead of timing.
    #[arg(long)]
    logits_out: Option<PathBuf>,
    /// Precision of the inference engine's matrix products (infer, logits).
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// --mode serve: the server, e.g. http://127.0.0.1:8080.
    #[arg(long, required_if_eq("mode", "serve"))]
    url: Option<String>,
    /// --mode serve: concurrent clients.
    #[arg(long, default_value_t = 20, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    clients: usize,
    /// --mode serve: requests per client.
    #[arg(long, default_value_t = 200, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    requests: usize,
}

#[derive(Clone, Copy, ValueEnum)]
enum BenchModeArg {
    Infer,
    TrainFull,
    TrainLora,
    /// Load-test a running `stance serve` at --url: --clients threads each send
    /// --requests POSTs of the first article in --data.
    Serve,
}

#[derive(Clone, Copy, ValueEnum)]
enum TaskArg {
    Stance,
    Attribution,
}

#[derive(Args)]
struct TrainArgs {
    /// What to learn: stance labels of sentences, or the attribution tagger (source, cue and content spans; --train and --dev are then PolNeAR-layout directories holding text/ and attributions/, and --labels is not used).
    #[arg(long, value_enum, default_value_t = TaskArg::Stance)]
    task: TaskArg,
    /// Training data (JSONL, CSV or TSV; with --task attribution, directories); repeat for several.
    #[arg(long, required = true, num_args = 1..)]
    train: Vec<PathBuf>,
    /// Dev data for model selection and early stopping.
    #[arg(long, num_args = 1..)]
    dev: Vec<PathBuf>,
    /// Pretrained encoder directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    base: PathBuf,
    /// Output checkpoint directory: new, or (with --overwrite) one stance wrote.
    #[arg(long)]
    out: PathBuf,
    /// Replace --out when it holds an earlier stance checkpoint (nothing else is ever replaced).
    #[arg(long)]
    overwrite: bool,
    /// Comma-separated label list, or "auto" to take the labels from the data.
    #[arg(long, default_value = "assertion,denial,allegation,context")]
    labels: String,
    /// Passes over the training data (at most; see --patience).
    #[arg(long, default_value_t = 4, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000))]
    epochs: usize,
    /// Sentences per optimiser step.
    #[arg(long, default_value_t = 16, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=4096))]
    batch_size: usize,
    /// Peak learning rate (AdamW), after warm-up; linear decay to 0.
    #[arg(long, default_value_t = 5e-5, value_parser = positive, allow_negative_numbers = true)]
    lr: f64,
    /// AdamW weight decay (decoupled), >= 0.
    #[arg(long, default_value_t = 0.01, value_parser = non_negative, allow_negative_numbers = true)]
    weight_decay: f64,
    /// Fraction of steps spent warming the learning rate up, in [0, 1).
    #[arg(long, default_value_t = 0.1, value_parser = fraction, allow_negative_numbers = true)]
    warmup: f64,
    /// Clip the gradient's global norm to this (> 0).
    #[arg(long, default_value_t = 1.0, value_parser = positive, allow_negative_numbers = true)]
    max_grad_norm: f64,
    /// Maximum tokens per sentence (with context: per sentence + context), 8..=512.
    #[arg(long, default_value_t = 128, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(8..=512))]
    max_len: usize,
    /// Seed for initialisation, shuffling and dropout: the same seed gives the same model.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Stop after this many epochs without a better dev macro-F1 (0: never).
    #[arg(long, default_value_t = 2)]
    patience: usize,
    /// Memory (MiB) for keeping the frozen layers' output between epochs (--method top: later epochs skip the frozen layers); 0 turns it off.
    #[arg(long, default_value_t = stance::train::DEFAULT_FROZEN_CACHE_MB)]
    frozen_cache_mb: usize,
    /// Class weights in the loss: auto ("balanced", n / (k * n_class)), or none (natural priors).
    #[arg(long, value_enum, default_value_t = WeightsArg::Auto)]
    class_weights: WeightsArg,
    /// Feed this many neighbouring sentences on each side as a second segment.
    #[arg(long, default_value_t = 0)]
    context: usize,
    /// What to train: every tensor, the top --train-layers encoder layers plus head (the shipped recipe; embeddings frozen), the head alone, or LoRA adapters plus classifier.
    #[arg(long, value_enum, default_value_t = MethodArg::Top)]
    method: MethodArg,
    /// Encoder layers trained by --method top, counted from the top (default: all of them, as the shipped recipe trains MiniLM's 6).
    #[arg(long)]
    train_layers: Option<usize>,
    /// LoRA rank (--method lora), at most the model's hidden size.
    #[arg(long, default_value_t = 8, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=4096))]
    lora_r: usize,
    /// LoRA alpha; adapters are scaled by alpha / r.
    #[arg(long, default_value_t = 16.0, value_parser = positive, allow_negative_numbers = true)]
    lora_alpha: f64,
    /// Comma-separated modules that get adapters: query, key, value, dense (MPNet: q, k, v, o, dense).
    #[arg(long, default_value = "query,value")]
    lora_targets: String,
    /// Save only the trained tensors (f16) and a reference to the base (with --method top|head; LoRA always does).
    #[arg(long)]
    delta: bool,
    /// After the temperature, fit per-label offsets on --dev that maximise its macro-F1 (a prior correction, saved in config.json and applied by predict and eval).
    #[arg(long, requires = "dev")]
    fit_offsets: bool,
    /// Hub id of the base, recorded with --delta.
    #[arg(long, default_value = "sentence-transformers/all-MiniLM-L6-v2")]
    base_id: String,
    /// Revision of the base, recorded with --delta.
    #[arg(long, default_value = "main")]
    base_revision: String,
}

/// A finite number > 0.
fn positive(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(_) => Err(format!("{s} is not a finite number greater than 0")),
        Err(e) => Err(e.to_string()),
    }
}

/// A time limit in seconds: more than 0, at most a day.
fn seconds(s: &str) -> std::result::Result<f64, String> {
    match positive(s)? {
        v if v <= 86_400.0 => Ok(v),
        _ => Err(format!("{s} seconds is more than a day (86400)")),
    }
}

/// A finite number >= 0.
fn non_negative(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Ok(_) => Err(format!("{s} is not a finite number of at least 0")),
        Err(e) => Err(e.to_string()),
    }
}

/// A number in [0, 1).
fn fraction(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        Ok(_) => Err(format!("{s} is not a fraction in [0, 1)")),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum MethodArg {
    Full,
    Top,
    Head,
    Lora,
}

#[derive(Clone, Copy, ValueEnum)]
enum WeightsArg {
    Auto,
    None,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Table,
    Jsonl,
    Csv,
    /// One self-contained page: the article with every sentence highlighted by its label.
    Html,
    /// JSONL input only: one line per article, the input object (every field kept) plus "sentences".
    Articles,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum OnErrorArg {
    Fail,
    Skip,
}

#[derive(Clone, Copy, ValueEnum)]
enum ShardByArg {
    Line,
    Id,
}

#[derive(Args)]
struct PredictArgs {
    /// Checkpoint directory, or a hub model as org/name[@revision]: read from the hub cache (HF_HUB_CACHE), downloaded there when missing unless HF_HUB_OFFLINE=1.
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: PathBuf,
    /// Plain-text articles ("-" or nothing: standard input).
    files: Vec<PathBuf>,
    /// How to read the inputs: plain text; HTML (markup, script, style and navigation
    /// stripped, paragraphs kept, entities decoded); JSONL, one article per line
    /// ({"id": ..., "text": ..., optional "format": "text"|"html"|"auto", default auto}); or auto: by file
    /// extension (.html/.htm, .jsonl/.ndjson, .txt), else by content.
    #[arg(long, default_value = "auto", value_name = "auto|text|html|jsonl")]
    input_format: InputFormat,
    /// Same as --input-format jsonl.
    #[arg(long, conflicts_with = "input_format")]
    jsonl: bool,
    /// JSONL input: stop at the first bad line (fail), or write an error record
    /// {"id", "line", "error"} for it and go on (skip; the exit status is then 3).
    #[arg(long, value_enum, default_value_t = OnErrorArg::Fail)]
    on_error: OnErrorArg,
    /// JSONL input with --on-error skip: error records go to this file instead of the output.
    #[arg(long)]
    errors: Option<PathBuf>,
    /// JSONL input: label only shard K of N (1 <= K <= N), e.g. a job array's index.
    #[arg(long, value_name = "K/N")]
    shard: Option<stance::stream::Shard>,
    /// How --shard assigns lines: by line number, or by a stable hash of the id.
    #[arg(long, value_enum, default_value_t = ShardByArg::Line)]
    shard_by: ShardByArg,
    /// JSONL input with --format articles and -o FILE: skip ids already complete in FILE and append the rest.
    #[arg(long)]
    resume: bool,
    /// Output format (default: table on a terminal, JSONL otherwise).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Write the output here instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Table: print whole sentences instead of cutting them at the terminal's width.
    #[arg(long)]
    wide: bool,
    /// Label a sentence `uncertain` when its top probability is below P (0..1; in every format).
    #[arg(long, value_parser = fraction, allow_negative_numbers = true)]
    threshold: Option<f64>,
    /// Also list the K most probable labels of each sentence with their probabilities
    /// (JSONL "top_k", a CSV column, table columns after the label; the HTML tooltip lists every label).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=64))]
    top_k: usize,
    /// Sentences per forward pass.
    #[arg(long, default_value_t = 32, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=4096))]
    batch_size: usize,
    /// Matrix products in f32 (the reference: logits match transformers'), or in bf16 with f32 sums:
    /// about 1.6x faster on whole articles on CPUs with AMX or AVX512-BF16, the same test-split
    /// accuracy for the shipped model (emulated, and slower, on other CPUs).
    #[arg(long, default_value = "f32")]
    precision: Precision,
    #[command(flatten)]
    who: WhoArgs,
}

/// Who claims what: the attribution tagger's flags (predict and serve).
#[derive(Args)]
struct WhoArgs {
    /// The attribution tagger that says who claims what (each sentence's source and cue); used when the directory exists.
    #[arg(long, default_value = DEFAULT_TAGGER)]
    tagger: PathBuf,
    /// Label sentences only: do not run the attribution tagger.
    #[arg(long)]
    no_attribution: bool,
}

#[derive(Args)]
struct EvalArgs {
    /// What to score: the stance labels of sentences, or the attribution tagger's source, cue and content spans (--data: PolNeAR-layout directories with text/ and attributions/; --model defaults to the shipped tagger).
    #[arg(long, value_enum, default_value_t = TaskArg::Stance)]
    task: TaskArg,
    /// Checkpoint directory to evaluate.
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: PathBuf,
    /// Labelled sentences (JSONL, CSV or TSV), or with --task attribution directories.
    #[arg(long, required = true, num_args = 1..)]
    data: Vec<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Sentences per forward pass.
    #[arg(long, default_value_t = 64, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=4096))]
    batch_size: usize,
    /// Matrix products in f32, or in bf16 with f32 sums.
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// Also write every sentence's gold label, predicted label and calibrated probabilities here (JSONL), for error analysis; with --task attribution, every gold and predicted span.
    #[arg(long)]
    predictions: Option<PathBuf>,
}

#[derive(Args)]
struct DownloadArgs {
    /// Hub model id, e.g. sentence-transformers/all-MiniLM-L6-v2.
    model_id: String,
    /// Branch, tag or commit of the repository.
    #[arg(long, default_value = "main")]
    revision: String,
    /// Output directory (default: models/<name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Use only the local hub cache (HF_HUB_CACHE, else HF_HOME/hub); no network. HF_HUB_OFFLINE=1 does the same.
    #[arg(long)]
    offline: bool,
    /// Replace --out when it holds an earlier stance download (nothing else is ever replaced).
    #[arg(long)]
    overwrite: bool,
    /// Seconds to wait for a connection or for more data before giving up.
    #[arg(long, default_value_t = 30.0, value_parser = seconds, allow_negative_numbers = true)]
    timeout: f64,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Counts per label and domain, sentence lengths, duplicates, articles.
    Stats {
        /// Labelled data files (JSONL, CSV or TSV).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Measure lengths in this model's tokens (default: words).
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// Print the statistics as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Split by article into train / dev / test files.
    Split {
        /// Labelled data files (JSONL, CSV or TSV) to split by article.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Fraction of articles for the dev split.
        #[arg(long, default_value_t = 0.1)]
        dev: f64,
        /// Fraction of articles for the test split.
        #[arg(long, default_value_t = 0.1)]
        test: f64,
        /// Seed of the split.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Directory for <prefix>.train.jsonl, .dev.jsonl and .test.jsonl.
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
        /// File name prefix: PREFIX.train.jsonl, PREFIX.dev.jsonl, PREFIX.test.jsonl.
        #[arg(long, default_value = "split")]
        prefix: String,
    },
    /// Rebuild the real-news corpus text from its stand-off labels
    /// (data/real/*.jsonl) and the documents, verifying every hash.
    RealBuild {
        /// Stand-off files (default: data/real/*.jsonl).
        files: Vec<PathBuf>,
        /// A directory laid out like shared/realnews (polnear/, newsdiscourse/, bbc/).
        #[arg(long, default_value = "../shared/realnews")]
        root: PathBuf,
        /// Where real.train.jsonl, real.dev.jsonl and real.test.jsonl go (git-ignored).
        #[arg(long, default_value = "data/real/build")]
        out_dir: PathBuf,
        /// Only the annotation rounds up to this one (1 made the splits, 2 and
        /// 4 added train articles, 3 dev articles); e.g. 2 rebuilds the corpus
        /// as the shipped model was chosen on it (default: every round).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        max_round: Option<u32>,
    },
    /// Cut real-news documents into sentences (JSONL with offsets, hash and
    /// text), as the stand-off corpus was cut; for annotation.
    RealSegment {
        /// Documents as SOURCE/PATH, e.g. bbc/politics/001.txt.
        #[arg(required = true)]
        docs: Vec<String>,
        /// The real-news sources (../shared/realnews, with PolNeAR, NewsDiscourse, BBC).
        #[arg(long, default_value = "../shared/realnews")]
        root: PathBuf,
    },
}

fn main() {
    stance::memory::keep_freed_memory();
    let cli = Cli::parse();
    if let Some(n) = cli.threads {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
    if let Err(e) = run(cli.command) {
        eprintln!("error: {e:#}");
        // Exit 3: the run finished, but some input lines were skipped.
        let code = if e.downcast_ref::<SkippedLines>().is_some() {
            3
        } else {
            1
        };
        std::process::exit(code);
    }
}

/// `predict --on-error skip` finished with this many lines skipped.
#[derive(Debug)]
struct SkippedLines(usize);

impl std::fmt::Display for SkippedLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} input line(s) skipped (see the error records); the rest was labelled",
            self.0
        )
    }
}

impl std::error::Error for SkippedLines {}

fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Train(a) => train(a),
        Command::Predict(a) => predict(a),
        Command::Eval(a) => eval(a),
        Command::Download(a) => download(a),
        Command::Data(d) => data(d),
        Command::Bench(a) => bench(a),
        Command::Serve(a) => serve(a),
    }
}

fn serve(a: ServeArgs) -> Result<()> {
    let ckpt = load_model(&a.model)?;
    let config = stance::serve::ServeConfig {
        addr: a.addr,
        max_body: a.max_body,
        timeout: std::time::Duration::from_secs_f64(a.timeout),
        batch: stance::serve::batcher::BatchOptions {
            batch_size: a.batch_size,
            max_wait: std::time::Duration::from_millis(a.batch_wait_ms),
            precision: a.precision,
            ..Default::default()
        },
    };
    let tagger = load_tagger(&a.who)?;
    let model = a.model.display().to_string();
    let who = match &tagger {
        Some(_) => format!(", who claims what by {}", a.who.tagger.display()),
        None => String::new(),
    };
    stance::serve::run(ckpt, tagger, config, |addr| {
        eprintln!("stance serve: {model}{who} on http://{addr}/ (Ctrl-C to stop)")
    })?;
    Ok(())
}

fn train(a: TrainArgs) -> Result<()> {
    let labels = if matches!(a.task, TaskArg::Attribution) {
        // The tagger's tags are fixed; --labels is for stance labels.
        LabelSource::Fixed(stance::attribution::tags::TAGS.map(String::from).to_vec())
    } else if a.labels == "auto" {
        LabelSource::FromData
    } else {
        LabelSource::Fixed(stance::labels::LabelSet::parse(&a.labels)?.names().to_vec())
    };
    let job = TrainJob {
        task: match a.task {
            TaskArg::Stance => stance::train::TrainTask::Stance,
            TaskArg::Attribution => stance::train::TrainTask::Attribution,
        },
        train_files: a.train,
        dev_files: a.dev,
        base: a.base,
        out: a.out,
        overwrite: a.overwrite,
        labels,
        max_len: a.max_len,
        context: a.context,
        method: match a.method {
            MethodArg::Full => stance::train::Method::Full,
            MethodArg::Top => stance::train::Method::Top(a.train_layers),
            MethodArg::Head => stance::train::Method::Head,
            MethodArg::Lora => stance::train::Method::Lora(stance::model::LoraConfig {
                r: a.lora_r,
                alpha: a.lora_alpha,
                targets: a
                    .lora_targets
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
            }),
        },
        delta: (a.delta || matches!(a.method, MethodArg::Lora)).then(|| stance::train::DeltaOf {
            id: a.base_id.clone(),
            revision: a.base_revision.clone(),
        }),
        train: TrainConfig {
            epochs: a.epochs,
            batch_size: a.batch_size,
            lr: a.lr,
            weight_decay: a.weight_decay,
            warmup_ratio: a.warmup,
            max_grad_norm: a.max_grad_norm,
            class_weights: match a.class_weights {
                WeightsArg::Auto => ClassWeights::Auto,
                WeightsArg::None => ClassWeights::None,
            },
            seed: a.seed,
            patience: a.patience,
            frozen_cache_mb: a.frozen_cache_mb,
        },
        fit_offsets: a.fit_offsets,
    };
    let mut pb: Option<Progress> = None;
    let started = std::time::Instant::now();
    let mut on_event =
        |e: &TrainEvent| match e {
            TrainEvent::Info(s) => eprintln!("{s}"),
            TrainEvent::Start { steps, .. } => {
                pb = Some(Progress::new(
                    *steps as u64,
                    "{elapsed_precise} [{bar:30}] {pos}/{len} steps  {msg}",
                    "steps",
                ));
            }
            TrainEvent::Step {
                step,
                epoch,
                loss,
                lr,
                ..
            } => {
                if let Some(b) = &pb {
                    let rate = (*step as f64 * job.train.batch_size as f64)
                        / started.elapsed().as_secs_f64().max(1e-9);
                    b.set_position(*step as u64);
                    b.set_message(format!(
                        "epoch {epoch}  loss {loss:.4}  lr {lr:.2e}  {rate:.1} sent/s"
                    ));
                }
            }
            TrainEvent::Epoch(r) => {
                let msg =
                    format!(
                "epoch {}: train loss {:.4}, dev macro-F1 {}, dev accuracy {}, {:.1} sent/s{}",
                r.epoch,
                r.train_loss,
                r.dev_macro_f1.map(|f| format!("{f:.4}")).unwrap_or("-".into()),
                r.dev_accuracy.map(|f| format!("{f:.4}")).unwrap_or("-".into()),
                r.train_sentences_per_second,
                if r.best { " (best so far)" } else { "" }
            );
                match &pb {
                    Some(b) => b.println(&msg),
                    None => eprintln!("{msg}"),
                }
            }
            TrainEvent::EarlyStop { epoch, best_epoch } => {
                eprintln!("early stop after epoch {epoch}; keeping epoch {best_epoch}")
            }
        };
    let summary = stance::train::run(&job, &mut on_event)?;
    if let Some(b) = &pb {
        b.finish_and_clear();
    }
    println!(
        "saved {} (best epoch {})",
        summary.out.display(),
        summary.best_epoch
    );
    if let Some(m) = summary.best_dev {
        println!(
            "dev macro-F1 {:.4}, accuracy {:.4}",
            m.macro_avg.f1, m.accuracy
        );
    }
    Ok(())
}

fn load_model(dir: &Path) -> Result<stance::checkpoint::Checkpoint> {
    if !dir.exists() && dir == Path::new(DEFAULT_MODEL) {
        bail!("no --model given and the default model {DEFAULT_MODEL} is not there (run from the project root, or pass --model DIR)");
    }
    let dir = model_dir(dir)?;
    Ok(stance::checkpoint::load(&dir, &candle_core::Device::Cpu)?)
}

/// The attribution tagger of `--tagger`: none with `--no-attribution`, or
/// when the default is absent (a tagger named explicitly must be there).
fn load_tagger(who: &WhoArgs) -> Result<Option<stance::attribution::tagger::Tagger>> {
    let dir = who.tagger.as_path();
    if who.no_attribution || (dir == Path::new(DEFAULT_TAGGER) && !dir.exists()) {
        return Ok(None);
    }
    if !dir.exists() {
        bail!("--tagger {}: no such directory", dir.display());
    }
    Ok(Some(stance::attribution::tagger::Tagger::load(dir)?))
}

/// `--model`: a directory as given, or, when no such path exists and it
/// reads as `org/name[@revision]`, that model's snapshot in the hub cache.
fn model_dir(arg: &Path) -> Result<PathBuf> {
    if arg.exists() {
        return Ok(arg.to_path_buf());
    }
    let name = arg.to_string_lossy();
    let id = name.split_once('@').map_or(&*name, |(id, _)| id);
    if id.split('/').count() == 2 && stance::download::validate_model_id(id).is_ok() {
        eprintln!("--model {name}: no such directory; looking in the hub cache");
        return Ok(stance::download::resolve_model(
            &name,
            false,
            std::time::Duration::from_secs(30),
        )?);
    }
    Ok(arg.to_path_buf())
}

fn predict(a: PredictArgs) -> Result<()> {
    if let Some(out) = &a.output {
        stance::guard::output_file(out, "--output", &a.files)?;
    }
    if let Some(e) = &a.errors {
        stance::guard::output_file(e, "--errors", &a.files)?;
        if a.output.as_ref().is_some_and(|o| o == e) {
            bail!(
                "--errors {} is also --output; give it its own file",
                e.display()
            );
        }
    }
    let format = if a.jsonl {
        InputFormat::Jsonl
    } else {
        a.input_format
    };
    if jsonl_input(&a.files, format)? {
        let to_terminal = a.output.is_none() && std::io::stdout().is_terminal();
        match a.format {
            Some(FormatArg::Jsonl) | Some(FormatArg::Articles) => return predict_stream(a),
            None if !to_terminal => return predict_stream(a),
            _ => {}
        }
    }
    let streaming_only = [
        (a.on_error == OnErrorArg::Skip, "--on-error skip"),
        (a.errors.is_some(), "--errors"),
        (a.shard.is_some(), "--shard"),
        (a.resume, "--resume"),
        (
            matches!(a.format, Some(FormatArg::Articles)),
            "--format articles",
        ),
    ];
    if let Some((_, flag)) = streaming_only.iter().find(|(on, _)| *on) {
        bail!("{flag} needs JSONL input (--input-format jsonl, or .jsonl files) and --format jsonl or articles");
    }
    let articles = stance::input::read_articles(&a.files, format)?;
    let ckpt = load_model(&a.model)?;
    let pb = Progress::new(0, "{elapsed_precise} labelled {pos} sentences", "sentences");
    let tagger = load_tagger(&a.who)?;
    let mut preds = stance::labeller::Labeller::new(&ckpt, tagger.as_ref(), a.precision)?.label(
        &articles,
        a.batch_size,
        |n| pb.set_position(n as u64),
    )?;
    pb.finish_and_clear();
    if let Some(t) = a.threshold {
        stance::predict::apply_threshold(&mut preds, t as f32);
    }
    let long = preds.iter().filter(|p| p.truncated).count();
    if long > 0 {
        eprintln!(
            "warning: {long} sentence(s) longer than the model's {}-token window were labelled from their first and last tokens (\"truncated\": true in JSONL and CSV)",
            ckpt.settings.max_len
        );
    }

    let to_terminal = a.output.is_none() && std::io::stdout().is_terminal();
    let format = match a.format {
        Some(FormatArg::Table) => Format::Table,
        Some(FormatArg::Jsonl) => Format::Jsonl,
        Some(FormatArg::Csv) => Format::Csv,
        Some(FormatArg::Articles) => unreachable!("refused above for non-JSONL input"),
        Some(FormatArg::Html) => {
            let html = stance::html::render_html(
                &articles,
                &preds,
                a.threshold.map(|t| t as f32).unwrap_or(0.5),
            );
            return write_output(a.output.as_deref(), &html);
        }
        None if to_terminal => Format::Table,
        None => Format::Jsonl,
    };
    let width = if a.wide {
        usize::MAX
    } else {
        table_width(to_terminal)
    };
    let opts = stance::predict::RenderOptions {
        width,
        top_k: a.top_k,
    };
    let out = stance::predict::render(&preds, format, opts);
    write_output(a.output.as_deref(), &out)
}

/// Whether every input is JSONL (by flag, extension or content; peeking
/// at standard input does not consume it).
fn jsonl_input(files: &[PathBuf], format: InputFormat) -> Result<bool> {
    match format {
        InputFormat::Jsonl => return Ok(true),
        InputFormat::Text | InputFormat::Html => return Ok(false),
        InputFormat::Auto => {}
    }
    if files.is_empty() || files.iter().any(|f| f.as_os_str() == "-") {
        // Standard input is read whole unless it is declared JSONL: a
        // terminal or pipe cannot be peeked at without consuming it.
        return Ok(false);
    }
    for f in files {
        let mut head = vec![0u8; 64 << 10];
        let n = std::fs::File::open(f)
            .and_then(|mut h| h.read(&mut head))
            .with_context(|| format!("{}", f.display()))?;
        let text = String::from_utf8_lossy(&head[..n]);
        if stance::input::detect(&f.display().to_string(), &text) != InputFormat::Jsonl {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `predict` over JSONL, streamed: see `stance::stream`.
fn predict_stream(a: PredictArgs) -> Result<()> {
    use stance::stream::{OnError, ShardKey, StreamFormat, StreamOptions, StreamReport};
    if a.files.iter().filter(|f| f.as_os_str() == "-").count() > 1
        || a.files.len() > 1 && a.files.iter().any(|f| f.as_os_str() == "-")
    {
        bail!("standard input (\"-\") can be given once, and not together with files");
    }
    let format = match a.format {
        Some(FormatArg::Articles) => StreamFormat::Articles,
        _ => StreamFormat::Sentences,
    };
    let mut done = std::collections::HashSet::new();
    if a.resume {
        let Some(out) = &a.output else {
            bail!("--resume needs -o FILE (the output to resume)")
        };
        if format != StreamFormat::Articles {
            bail!("--resume needs --format articles (one complete line per article)");
        }
        if out.exists() {
            let bytes = std::fs::read(out).with_context(|| format!("{}", out.display()))?;
            done = stance::stream::completed_ids(&bytes);
        }
    }
    let ckpt = load_model(&a.model)?;
    let opts = StreamOptions {
        format,
        render: stance::predict::RenderOptions {
            width: usize::MAX,
            top_k: a.top_k,
        },
        threshold: a.threshold.map(|t| t as f32),
        on_error: if a.on_error == OnErrorArg::Skip {
            OnError::Skip
        } else {
            OnError::Fail
        },
        shard: a.shard.map(|mut s| {
            s.key = match a.shard_by {
                ShardByArg::Line => ShardKey::Line,
                ShardByArg::Id => ShardKey::Id,
            };
            s
        }),
        done,
        chunk_sentences: a.batch_size * 8,
        batch_size: a.batch_size,
        precision: a.precision,
        tagger: load_tagger(&a.who)?.map(std::sync::Arc::new),
    };
    let mut out: Box<dyn Write> = Box::new(std::io::stdout().lock());
    let mut file = None;
    if let Some(p) = &a.output {
        let f = if a.resume && p.exists() {
            stance::atomic::StreamFile::append(p)?
        } else {
            stance::atomic::StreamFile::create(p)?
        };
        file = Some(f);
    }
    let mut err_file = match &a.errors {
        Some(p) => Some(stance::atomic::StreamFile::create(p)?),
        None => None,
    };
    let mut report = StreamReport::default();
    let pb = Progress::new(0, "{elapsed_precise} labelled {pos} sentences", "sentences");
    let mut progress = |n: usize| pb.set_position(n as u64);
    let sources: Vec<Option<&PathBuf>> = if a.files.is_empty() || a.files[0].as_os_str() == "-" {
        vec![None]
    } else {
        a.files.iter().map(Some).collect()
    };
    for src in sources {
        let (name, raw): (String, Box<dyn Read>) = match src {
            None => ("-".into(), Box::new(std::io::stdin())),
            Some(p) => (
                p.display().to_string(),
                Box::new(std::fs::File::open(p).with_context(|| format!("{}", p.display()))?),
            ),
        };
        let mut reader = std::io::BufReader::with_capacity(1 << 20, raw);
        let sink: &mut dyn Write = match &mut file {
            Some(f) => f,
            None => &mut out,
        };
        let errs: Option<&mut dyn Write> = match &mut err_file {
            Some(f) => Some(f),
            None => None,
        };
        stance::stream::stream_jsonl(
            &ckpt,
            &name,
            &mut reader,
            sink,
            errs,
            &opts,
            &mut report,
            &mut progress,
        )?;
    }
    pb.finish_and_clear();
    if let Some(f) = file {
        f.commit()?;
    }
    if let Some(f) = err_file {
        f.commit()?;
    }
    eprintln!(
        "labelled {} articles ({} sentences){}{}{}",
        report.articles,
        report.sentences,
        if report.resumed > 0 {
            format!("; {} already in the output (--resume)", report.resumed)
        } else {
            String::new()
        },
        if report.other_shards > 0 {
            format!("; {} lines left to other shards", report.other_shards)
        } else {
            String::new()
        },
        if report.skipped > 0 {
            format!("; {} bad lines skipped", report.skipped)
        } else {
            String::new()
        },
    );
    if report.skipped > 0 {
        return Err(SkippedLines(report.skipped).into());
    }
    Ok(())
}

/// Columns for the table: the terminal's real width when stdout is one
/// (shells do not export $COLUMNS), else $COLUMNS, else 110.
fn table_width(to_terminal: bool) -> usize {
    if to_terminal {
        // SAFETY: TIOCGWINSZ fills a winsize struct for a terminal fd.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        if unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0
            && ws.ws_col > 0
        {
            return ws.ws_col as usize;
        }
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|&c: &usize| c >= 40)
        .unwrap_or(110)
}

fn write_output(path: Option<&Path>, text: &str) -> Result<()> {
    match path {
        Some(p) => stance::atomic::write_file(p, text.as_bytes())?,
        None => {
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(text.as_bytes()) {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    return Err(e.into());
                }
            }
        }
    }
    Ok(())
}

fn eval(a: EvalArgs) -> Result<()> {
    if matches!(a.task, TaskArg::Attribution) {
        return eval_attribution(a);
    }
    if let Some(p) = &a.predictions {
        let mut inputs = a.data.clone();
        inputs.push(a.model.join("model.safetensors"));
        inputs.push(a.model.join("config.json"));
        stance::guard::output_file(p, "--predictions", &inputs)?;
    }
    let ckpt = load_model(&a.model)?;
    let rows = stance::data::read_files(&a.data, Some(&ckpt.labels))?;
    let pb = Progress::new(
        rows.len() as u64,
        "{elapsed_precise} [{bar:30}] {pos}/{len} sentences",
        "sentences",
    );
    let (report, logits) =
        stance::eval::evaluate_checkpoint(&ckpt, &rows, a.batch_size, a.precision, |n| {
            pb.set_position(n as u64)
        })?;
    pb.finish_and_clear();
    if let Some(p) = &a.predictions {
        let mut out = String::new();
        for row in stance::eval::predictions(&ckpt, &rows, &logits) {
            out += &serde_json::to_string(&row)?;
            out.push('\n');
        }
        stance::atomic::write_file(p, out.as_bytes())?;
    }
    let text = if a.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        report.render()
    };
    write_output(None, &text)
}

fn eval_attribution(a: EvalArgs) -> Result<()> {
    if let Some(p) = &a.predictions {
        stance::guard::output_file(p, "--predictions", &a.data)?;
    }
    let dir = if a.model == Path::new(DEFAULT_MODEL) {
        PathBuf::from(DEFAULT_TAGGER)
    } else {
        a.model.clone()
    };
    if !dir.exists() {
        bail!("--model {}: no such directory", dir.display());
    }
    let tagger = stance::attribution::tagger::Tagger::load(&dir)?;
    eprintln!(
        "tagging {} ...",
        a.data
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let (report, docs, predicted) =
        stance::attribution::evaluate::evaluate(&tagger, &a.data, a.precision)?;
    if let Some(p) = &a.predictions {
        let mut out = String::new();
        for row in stance::attribution::evaluate::span_rows(&docs, &predicted) {
            out += &serde_json::to_string(&row)?;
            out.push('\n');
        }
        stance::atomic::write_file(p, out.as_bytes())?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(())
}

fn download(a: DownloadArgs) -> Result<()> {
    stance::download::validate_model_id(&a.model_id)?;
    let name = a
        .model_id
        .rsplit('/')
        .next()
        .unwrap_or(&a.model_id)
        .to_string();
    let cfg = stance::download::DownloadConfig {
        overwrite: a.overwrite,
        out: a.out.unwrap_or_else(|| PathBuf::from("models").join(name)),
        model_id: a.model_id,
        revision: a.revision,
        offline: a.offline,
        progress: std::io::stderr().is_terminal(),
        timeout: std::time::Duration::from_secs_f64(a.timeout),
    };
    let files = stance::download::download(&cfg)?;
    for f in files {
        println!("{}", f.display());
    }
    Ok(())
}

fn bench(a: BenchArgs) -> Result<()> {
    if let (BenchModeArg::Serve, Some(url)) = (a.mode, &a.url) {
        let bytes = std::fs::read(&a.data).with_context(|| format!("{}", a.data.display()))?;
        let articles = stance::input::parse_articles(
            &a.data.display().to_string(),
            &bytes,
            InputFormat::Auto,
        )?;
        let body = serde_json::json!({"text": articles[0].text}).to_string();
        let report = stance::serve::load::run(url, &body, a.clients, a.requests);
        write_output(None, &(serde_json::to_string(&report)? + "\n"))?;
        if report.errors > 0 {
            bail!(
                "{} of {} requests failed; first: {}",
                report.errors,
                report.requests,
                report.first_error.unwrap_or_default()
            );
        }
        return Ok(());
    }
    let rows = stance::data::read_file(&a.data, None)?;
    let texts: Vec<String> = rows
        .into_iter()
        .map(|r| r.text)
        .take(a.limit.unwrap_or(usize::MAX))
        .collect();
    if let Some(out) = a.logits_out {
        stance::guard::output_file(&out, "--logits-out", std::slice::from_ref(&a.data))?;
        let logits = stance::bench::logits(&a.model, &texts, a.max_len, a.precision)?;
        stance::atomic::write_file(&out, serde_json::to_string(&logits)?.as_bytes())?;
        return Ok(());
    }
    let cfg = stance::bench::BenchConfig {
        model: a.model,
        texts,
        mode: match a.mode {
            BenchModeArg::Infer => stance::bench::BenchMode::Infer,
            BenchModeArg::TrainFull => stance::bench::BenchMode::TrainFull,
            BenchModeArg::TrainLora => stance::bench::BenchMode::TrainLora,
            BenchModeArg::Serve => unreachable!("clap requires --url with --mode serve"),
        },
        batch_size: a.batch_size,
        max_len: a.max_len,
        reps: a.reps,
        steps: a.steps,
        precision: a.precision,
    };
    let result = stance::bench::run(&cfg)?;
    write_output(None, &(serde_json::to_string(&result)? + "\n"))
}

fn data(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Stats {
            files,
            tokenizer,
            json,
        } => {
            let rows = stance::data::read_files(&files, None)?;
            let (lengths, unit) = match tokenizer {
                Some(dir) => {
                    let tok = stance::checkpoint::tokenizer_path_or_build(&dir)?;
                    let enc = stance::batch::TextEncoder::new(tok, 100_000, &dir)?;
                    let texts: Vec<&str> = rows.iter().map(|r| r.text.as_str()).collect();
                    (
                        enc.encode(&texts, None)?
                            .iter()
                            .map(|e| e.ids.len())
                            .collect::<Vec<_>>(),
                        "tokens",
                    )
                }
                None => (
                    rows.iter()
                        .map(|r| r.text.split_whitespace().count())
                        .collect(),
                    "words",
                ),
            };
            let stats = stance::data::Stats::compute(&rows, &lengths, unit);
            let text = if json {
                serde_json::to_string_pretty(&stats)? + "\n"
            } else {
                stats.render()
            };
            write_output(None, &text)
        }
        DataCommand::Split {
            files,
            dev,
            test,
            seed,
            out_dir,
            prefix,
        } => {
            for name in ["train", "dev", "test"] {
                stance::guard::output_file(
                    &out_dir.join(format!("{prefix}.{name}.jsonl")),
                    "--out-dir/--prefix",
                    &files,
                )?;
            }
            let rows = stance::data::read_files(&files, None)?;
            let split = stance::data::split_by_article(
                &rows,
                stance::data::SplitConfig { dev, test, seed },
            )?;
            for (name, part) in split.parts() {
                let wanted = match name {
                    "dev" => dev,
                    "test" => test,
                    _ => 1.0,
                };
                if part.is_empty() && wanted > 0.0 {
                    let articles: std::collections::HashSet<String> =
                        rows.iter().map(|r| r.article_key()).collect();
                    bail!("{} articles are too few to split: the {name} split would be empty (use more data, or --{name} 0)", articles.len());
                }
            }
            let mut outputs = Vec::new();
            for (name, part) in split.parts() {
                let path = out_dir.join(format!("{prefix}.{name}.jsonl"));
                outputs.push((path, stance::data::jsonl_bytes(part)?));
            }
            // All three files or none: a failure must not leave a new train split beside an old test split.
            stance::atomic::write_files(&outputs)?;
            for ((path, _), (_, part)) in outputs.iter().zip(split.parts()) {
                let arts: std::collections::HashSet<String> =
                    part.iter().map(|r| r.article_key()).collect();
                println!(
                    "{}: {} sentences, {} articles",
                    path.display(),
                    part.len(),
                    arts.len()
                );
            }
            println!(
                "cross-split duplicate sentences: {}",
                split.cross_split_duplicates.len()
            );
            for d in &split.cross_split_duplicates {
                println!("  {d}");
            }
            Ok(())
        }
        DataCommand::RealBuild {
            files,
            root,
            out_dir,
            max_round,
        } => {
            let files = if files.is_empty() {
                standoff_files(Path::new("data/real"))?
            } else {
                files
            };
            let mut rows = stance::data::realnews::read_standoff(&files)?;
            if let Some(max) = max_round {
                rows.retain(|r| r.round <= max);
            }
            let parts = stance::data::realnews::build(&rows, &root)?;
            let mut outputs = Vec::new();
            for (name, part) in &parts {
                let path = out_dir.join(format!("real.{name}.jsonl"));
                stance::guard::output_file(&path, "--out-dir", &files)?;
                outputs.push((path, stance::data::jsonl_bytes(part)?));
            }
            stance::atomic::write_files(&outputs)?;
            for ((path, _), (_, part)) in outputs.iter().zip(&parts) {
                let arts: std::collections::HashSet<String> =
                    part.iter().map(|r| r.article_key()).collect();
                println!(
                    "{}: {} sentences, {} articles",
                    path.display(),
                    part.len(),
                    arts.len()
                );
            }
            Ok(())
        }
        DataCommand::RealSegment { docs, root } => {
            let mut out = String::new();
            for d in &docs {
                let (source, doc) = d
                    .split_once('/')
                    .with_context(|| format!("{d}: expected SOURCE/PATH"))?;
                let path = root.join(source).join(doc);
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("{}", path.display()))?;
                let article = stance::data::realnews::article_id(source, doc);
                for (i, s) in stance::data::realnews::segment(source, &text)
                    .iter()
                    .enumerate()
                {
                    let row = serde_json::json!({"id": format!("{article}#{i}"), "source": source, "doc": doc, "index": i,
                        "start": s.start, "end": s.end, "sha1": stance::data::realnews::sha1_hex(&s.text), "text": s.text});
                    out.push_str(&row.to_string());
                    out.push('\n');
                }
            }
            write_output(None, &out)
        }
    }
}

/// The `*.jsonl` files directly in `dir`, sorted.
fn standoff_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{}: no stand-off files (*.jsonl)", dir.display());
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every flag and argument of every command says what it is for.
    #[test]
    fn every_flag_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if id != "help" && id != "version" && a.get_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                if sub.get_about().is_none() {
                    missing.push(format!("{path} {} (no about)", sub.get_name()));
                }
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "stance", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }
}
