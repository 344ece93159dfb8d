//! The `stance` command line: parse flags into typed configs, call one
//! library function per command, print errors with their whole chain.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use stance::engine::Precision;
use stance::predict::{Article, Format};
use stance::train::{ClassWeights, LabelSource, TrainConfig, TrainEvent, TrainJob};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

/// The model `predict` and `eval` use when no --model is given.
const DEFAULT_MODEL: &str = "models/stance-minilm";

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
    /// Measure inference or training throughput (see scripts/bench.sh).
    Bench(BenchArgs),
}

#[derive(Args)]
struct BenchArgs {
    /// A checkpoint, or a base encoder (then with a fresh 4-label head).
    #[arg(long, default_value = "models/all-MiniLM-L6-v2")]
    model: PathBuf,
    /// Sentences (JSONL / CSV / TSV with a text column).
    #[arg(long)]
    data: PathBuf,
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
}

#[derive(Clone, Copy, ValueEnum)]
enum BenchModeArg {
    Infer,
    TrainFull,
    TrainLora,
}

#[derive(Args)]
struct TrainArgs {
    /// Training data (JSONL, CSV or TSV); repeat for several files.
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
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Stop after this many epochs without a better dev macro-F1 (0: never).
    #[arg(long, default_value_t = 2)]
    patience: usize,
    #[arg(long, value_enum, default_value_t = WeightsArg::Auto)]
    class_weights: WeightsArg,
    /// Feed this many neighbouring sentences on each side as a second segment.
    #[arg(long, default_value_t = 0)]
    context: usize,
    /// What to train: every tensor, the top --train-layers layers plus head, the head alone, or LoRA adapters plus classifier.
    #[arg(long, value_enum, default_value_t = MethodArg::Full)]
    method: MethodArg,
    /// Encoder layers trained by --method top.
    #[arg(long, default_value_t = 2)]
    train_layers: usize,
    /// LoRA rank (--method lora), at most the model's hidden size.
    #[arg(long, default_value_t = 8, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=4096))]
    lora_r: usize,
    /// LoRA alpha; adapters are scaled by alpha / r.
    #[arg(long, default_value_t = 16.0, value_parser = positive, allow_negative_numbers = true)]
    lora_alpha: f64,
    /// Comma-separated modules that get adapters: query, key, value, dense.
    #[arg(long, default_value = "query,value")]
    lora_targets: String,
    /// Save only the trained tensors (f16) and a reference to the base (with --method top|head; LoRA always does).
    #[arg(long)]
    delta: bool,
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
}

#[derive(Args)]
struct PredictArgs {
    /// Checkpoint directory.
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: PathBuf,
    /// Plain-text articles ("-" or nothing: standard input).
    files: Vec<PathBuf>,
    /// Inputs are JSONL, one article per line: {"text": ..., "id": ...}.
    #[arg(long)]
    jsonl: bool,
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
    /// Sentences per forward pass.
    #[arg(long, default_value_t = 32, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=4096))]
    batch_size: usize,
    /// Matrix products in f32 (the reference: logits match transformers'), or in bf16 with f32 sums:
    /// about 1.6x faster on whole articles on CPUs with AMX or AVX512-BF16, the same test-split
    /// accuracy for the shipped model (emulated, and slower, on other CPUs).
    #[arg(long, default_value = "f32")]
    precision: Precision,
}

#[derive(Args)]
struct EvalArgs {
    #[arg(long, default_value = DEFAULT_MODEL)]
    model: PathBuf,
    /// Labelled sentences (JSONL, CSV or TSV).
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
}

#[derive(Args)]
struct DownloadArgs {
    /// Hub model id, e.g. sentence-transformers/all-MiniLM-L6-v2.
    model_id: String,
    #[arg(long, default_value = "main")]
    revision: String,
    /// Output directory (default: models/<name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Use only the local hf-hub cache (HF_HOME); no network.
    #[arg(long)]
    offline: bool,
    /// Replace --out when it holds an earlier stance download (nothing else is ever replaced).
    #[arg(long)]
    overwrite: bool,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Counts per label and domain, sentence lengths, duplicates, articles.
    Stats {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Measure lengths in this model's tokens (default: words).
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Split by article into train / dev / test files.
    Split {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, default_value_t = 0.1)]
        dev: f64,
        #[arg(long, default_value_t = 0.1)]
        test: f64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Directory for <prefix>.train.jsonl, .dev.jsonl and .test.jsonl.
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
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
    },
    /// Cut real-news documents into sentences (JSONL with offsets, hash and
    /// text), as the stand-off corpus was cut; for annotation.
    RealSegment {
        /// Documents as SOURCE/PATH, e.g. bbc/politics/001.txt.
        #[arg(required = true)]
        docs: Vec<String>,
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
        std::process::exit(1);
    }
}

fn run(cmd: Command) -> Result<()> {
    match cmd {
        Command::Train(a) => train(a),
        Command::Predict(a) => predict(a),
        Command::Eval(a) => eval(a),
        Command::Download(a) => download(a),
        Command::Data(d) => data(d),
        Command::Bench(a) => bench(a),
    }
}

fn bar(len: u64, template: &str) -> ProgressBar {
    let b = ProgressBar::with_draw_target(Some(len), indicatif::ProgressDrawTarget::stderr());
    b.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

fn train(a: TrainArgs) -> Result<()> {
    let labels = if a.labels == "auto" {
        LabelSource::FromData
    } else {
        LabelSource::Fixed(stance::labels::LabelSet::parse(&a.labels)?.names().to_vec())
    };
    let job = TrainJob {
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
            pad_id: 0,
        },
    };
    let mut pb: Option<ProgressBar> = None;
    let started = std::time::Instant::now();
    let mut on_event =
        |e: &TrainEvent| match e {
            TrainEvent::Info(s) => eprintln!("{s}"),
            TrainEvent::Start { steps, .. } => {
                pb = Some(bar(
                    *steps as u64,
                    "{elapsed_precise} [{bar:30}] {pos}/{len} steps  {msg}",
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
                    Some(b) if !b.is_hidden() => b.println(msg),
                    _ => eprintln!("{msg}"),
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
    Ok(stance::checkpoint::load(dir, &candle_core::Device::Cpu)?)
}

fn read_articles(files: &[PathBuf], jsonl: bool) -> Result<Vec<Article>> {
    if files.iter().filter(|f| f.as_os_str() == "-").count() > 1 {
        bail!("standard input (\"-\") given more than once");
    }
    if files.len() > 1 && files.iter().any(|f| f.as_os_str() == "-") {
        bail!("standard input (\"-\") cannot be combined with files; give either files or \"-\"");
    }
    let mut sources: Vec<(String, Vec<u8>)> = Vec::new();
    if files.is_empty() || files.iter().any(|f| f.as_os_str() == "-") && files.len() == 1 {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("reading standard input")?;
        sources.push(("-".into(), buf));
    } else {
        for f in files {
            sources.push((
                f.display().to_string(),
                std::fs::read(f).with_context(|| format!("{}", f.display()))?,
            ));
        }
    }
    let mut articles = Vec::new();
    for (name, bytes) in sources {
        let text = std::str::from_utf8(&bytes).map_err(|e| {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            anyhow::anyhow!("{name}:{line}: invalid UTF-8 at byte {}", e.valid_up_to())
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if !jsonl {
            if text.trim().is_empty() {
                bail!("{name}: empty input, nothing to label");
            }
            articles.push(Article {
                name,
                text: text.to_string(),
            });
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| anyhow::anyhow!("{name}:{}: bad JSON: {e}", i + 1))?;
            let Some(t) = v.get("text").and_then(|t| t.as_str()) else {
                bail!("{name}:{}: missing string field \"text\"", i + 1)
            };
            if t.trim().is_empty() {
                bail!("{name}:{}: empty text", i + 1);
            }
            let id = v
                .get("id")
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| x.to_string())
                })
                .unwrap_or_else(|| format!("{name}:{}", i + 1));
            articles.push(Article {
                name: id,
                text: t.to_string(),
            });
        }
        if articles.is_empty() {
            bail!("{name}: no articles in JSONL input");
        }
    }
    Ok(articles)
}

fn predict(a: PredictArgs) -> Result<()> {
    if let Some(out) = &a.output {
        stance::guard::output_file(out, "--output", &a.files)?;
    }
    let articles = read_articles(&a.files, a.jsonl)?;
    let ckpt = load_model(&a.model)?;
    let pb = bar(0, "{elapsed_precise} labelling {pos}/{len} sentences");
    let mut preds =
        stance::predict::predict_articles(&ckpt, &articles, a.batch_size, a.precision, |n| {
            pb.set_position(n as u64)
        })?;
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
    let out = stance::predict::render(&preds, format, width);
    write_output(a.output.as_deref(), &out)
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
    let ckpt = load_model(&a.model)?;
    let rows = stance::data::read_files(&a.data, Some(&ckpt.labels))?;
    let pb = bar(
        rows.len() as u64,
        "{elapsed_precise} [{bar:30}] {pos}/{len} sentences",
    );
    let report = stance::eval::evaluate_checkpoint(&ckpt, &rows, a.batch_size, a.precision, |n| {
        pb.set_position(n as u64)
    })?;
    pb.finish_and_clear();
    let text = if a.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        report.render()
    };
    write_output(None, &text)
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
    };
    let files = stance::download::download(&cfg)?;
    for f in files {
        println!("{}", f.display());
    }
    Ok(())
}

fn bench(a: BenchArgs) -> Result<()> {
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
        } => {
            let files = if files.is_empty() {
                standoff_files(Path::new("data/real"))?
            } else {
                files
            };
            let rows = stance::data::realnews::read_standoff(&files)?;
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
