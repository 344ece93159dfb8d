//! Fuzz targets for everything stance parses from a user's or a stranger's
//! files: the JSONL/CSV/TSV training-data reader, article input (text,
//! HTML, JSONL), the sentence splitter, `config.json`, PEFT's
//! `adapter_config.json`, and the safetensors loader.
//!
//! Each target is a proptest harness driven for a time budget: inputs are
//! valid seeds mutated (byte flips, inserts, deletions, duplicated runs,
//! truncation, and tokens from a per-format dictionary such as `1e999`,
//! `"vocab_size"` or a 2^64 length prefix) or plain random bytes. A panic
//! or a broken property is a failure, shrunk to a minimal input. Every
//! target also checks that an error names the file it came from.
//!
//! CI runs each for `STANCE_FUZZ_SECS` seconds (default 1). The long runs:
//!
//! ```sh
//! STANCE_FUZZ_SECS=600 cargo test --release --test suite fuzz:: -- --nocapture --test-threads 2
//! ```

use crate::common;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};
use std::cell::RefCell;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn budget() -> Duration {
    let secs = std::env::var("STANCE_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0);
    Duration::from_secs_f64(secs)
}

/// Run `check` on inputs drawn from `strategy` until the budget is spent,
/// in batches with fixed seeds (so a failure reproduces).
fn fuzz<S: Strategy>(name: &str, strategy: S, check: impl Fn(&S::Value))
where
    S::Value: Debug,
{
    const BATCH: u32 = 64;
    let started = Instant::now();
    let deadline = started + budget();
    let mut inputs: u64 = 0;
    let mut batch: u64 = 0;
    while batch == 0 || Instant::now() < deadline {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&batch.to_le_bytes());
        for (i, b) in name.bytes().enumerate() {
            seed[8 + i % 24] ^= b;
        }
        let config = Config {
            cases: BATCH,
            failure_persistence: None,
            max_shrink_iters: 4096,
            ..Config::default()
        };
        let mut runner =
            TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
        match runner.run(&strategy, |v| {
            check(&v);
            Ok(())
        }) {
            Ok(()) => {}
            Err(TestError::Fail(why, v)) => {
                panic!("fuzz {name}, batch {batch}: {why}\nminimal input: {v:?}")
            }
            Err(TestError::Abort(why)) => panic!("fuzz {name}, batch {batch}: aborted: {why}"),
        }
        inputs += BATCH as u64;
        batch += 1;
    }
    eprintln!(
        "fuzz {name}: {inputs} inputs in {:.0} s, 0 failures",
        started.elapsed().as_secs_f64()
    );
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Duplicate(usize, usize),
    Truncate(usize),
    Token(usize, usize),
}

fn mutation(dict_len: usize) -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Mutation::Flip(p, b)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(p, b)| Mutation::Insert(p, b)),
        (any::<usize>(), 1usize..64).prop_map(|(p, n)| Mutation::Delete(p, n)),
        (any::<usize>(), 1usize..256).prop_map(|(p, n)| Mutation::Duplicate(p, n)),
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), 0..dict_len).prop_map(|(p, t)| Mutation::Token(p, t)),
    ]
}

/// A position in `0..=len`, three times in four inside the first `focus`
/// bytes (where a format's header is).
fn at(p: usize, len: usize, focus: usize) -> usize {
    let span = if p.is_multiple_of(4) {
        len
    } else {
        focus.min(len)
    };
    (p / 4) % (span + 1)
}

fn apply(seed: &[u8], muts: &[Mutation], dict: &[&[u8]], focus: usize) -> Vec<u8> {
    let mut v = seed.to_vec();
    for m in muts {
        let len = v.len();
        match m {
            Mutation::Flip(p, b) if len > 0 => {
                let i = at(*p, len - 1, focus);
                v[i] ^= b | 1;
            }
            Mutation::Flip(..) => {}
            Mutation::Insert(p, b) => {
                let i = at(*p, len, focus);
                v.splice(i..i, b.iter().copied());
            }
            Mutation::Delete(p, n) => {
                let i = at(*p, len, focus);
                let j = (i + n).min(len);
                v.drain(i..j);
            }
            Mutation::Duplicate(p, n) => {
                let i = at(*p, len, focus);
                let j = (i + n).min(len);
                let run: Vec<u8> = v[i..j].to_vec();
                v.splice(j..j, run);
            }
            Mutation::Truncate(p) => v.truncate(at(*p, len, usize::MAX)),
            Mutation::Token(p, t) => {
                let i = at(*p, len, focus);
                v.splice(i..i, dict[*t].iter().copied());
            }
        }
    }
    v
}

/// Mutated seeds, or random bytes one time in eight.
fn inputs(
    seeds: Vec<Vec<u8>>,
    dict: &'static [&'static [u8]],
    focus: usize,
) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..512),
        7 => (0..n, prop::collection::vec(mutation(dict.len()), 1..8))
            .prop_map(move |(i, m)| apply(&seeds[i], &m, dict, focus)),
    ]
}

const JSON_DICT: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"true",
    b"-1",
    b"0",
    b"-0",
    b"1e308",
    b"1e999",
    b"-1e999",
    b"4294967297",
    b"18446744073709551616",
    b"1e12",
    b"120000000",
    b"NaN",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b"\n",
    b"\r\n",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\xc3",
    b"\"vocab_size\"",
    b"\"hidden_size\"",
    b"\"num_hidden_layers\"",
    b"\"num_attention_heads\"",
    b"\"intermediate_size\"",
    b"\"max_position_embeddings\"",
    b"\"type_vocab_size\"",
    b"\"id2label\"",
    b"\"label2id\"",
    b"\"hidden_act\"",
    b"\"gelu_new\"",
    b"\"temperature\"",
    b"\"layer_norm_eps\"",
    b"\"pad_token_id\"",
    b"\"label\"",
    b"\"text\"",
    b"\"article\"",
    b"\"index\"",
    b"\"id\"",
    b"\"domain\"",
    b"\"r\"",
    b"\"lora_alpha\"",
    b"\"target_modules\"",
    b"\"peft_type\"",
    b"\"LORA\"",
    b"\"denial\"",
    b"\"allegation\"",
    b"\"format\"",
    b"\"html\"",
    b"<p>",
    b"</p>",
    b"<script>",
    b"&nbsp;",
    b"\"text\",\"label\"\n",
    b"\t",
];

const TEXT_DICT: &[&[u8]] = &[
    b". ",
    b".\" ",
    b"Mr. ",
    b"U.S. ",
    b"?\" ",
    b"! ",
    "\u{2026}".as_bytes(),
    b"\n\n",
    b"\r\n",
    "\u{201c}".as_bytes(),
    "\u{201d}".as_bytes(),
    b"'",
    b"(",
    b")",
    b"e.g. ",
    b"3.5",
    "\u{2014}".as_bytes(),
    "e\u{301}".as_bytes(),
    "\u{1f600}".as_bytes(),
    b"\t",
    "\u{2028}".as_bytes(),
    "\u{3002}".as_bytes(),
    "\u{ff01}".as_bytes(),
    b"...",
    b"No. 5",
    b"  ",
    "\u{a0}".as_bytes(),
    "\u{200b}".as_bytes(),
    b"<p>",
    b"&amp;",
];

const SAFETENSORS_DICT: &[&[u8]] = &[
    b"{\"",
    b"\"dtype\":\"F32\"",
    b"\"dtype\":\"BF16\"",
    b"\"dtype\":\"F16\"",
    b"\"dtype\":\"I64\"",
    b"\"dtype\":\"U8\"",
    b"\"shape\":[",
    b"\"data_offsets\":[",
    b"0",
    b"4294967295",
    b"18446744073709551615",
    b"]",
    b"}",
    b",",
    b"\"__metadata__\":{}",
    b"\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\x00\x00\x00\x00\x00\x00\x00\x00",
    b"\x00\x00\x80\x7f",
    b"\x00\x00\xc0\x7f",
    b"embeddings.word_embeddings.weight",
    b"encoder.layer.7.output.dense.weight",
    b"bert.",
];

/// A scratch directory per test, in memory where possible.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(t) = tempfile::tempdir_in(shm) {
            return t;
        }
    }
    tempfile::tempdir().unwrap()
}

fn assert_names(err: &dyn std::fmt::Display, path: &Path) {
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "the error does not name {}: {msg}",
        path.display()
    );
}

fn jsonl_seed(dir: &Path) -> Vec<u8> {
    let p = dir.join("seed.jsonl");
    common::write_jsonl(&p, common::TRAIN_ROWS, 4);
    std::fs::read(p).unwrap()
}

#[test]
fn fuzz_training_data_reader() {
    let t = scratch();
    let mut csv = b"text,label\n".to_vec();
    let mut tsv = b"text\tlabel\tarticle\n".to_vec();
    for (text, label) in common::TRAIN_ROWS {
        csv.extend(format!("\"{text}\",{label}\n").bytes());
        tsv.extend(format!("{text}\t{label}\ta1\n").bytes());
    }
    let seeds = vec![jsonl_seed(t.path()), csv, tsv];
    let labels = stance::labels::LabelSet::default_stance();
    let paths: Vec<PathBuf> = ["in.jsonl", "in.csv", "in.tsv"]
        .iter()
        .map(|f| t.path().join(f))
        .collect();
    fuzz(
        "training data reader",
        (inputs(seeds, JSON_DICT, 4096), 0usize..3),
        |(bytes, ext)| {
            let path = &paths[*ext];
            std::fs::write(path, bytes).unwrap();
            match stance::data::read_file(path, Some(&labels)) {
                Ok(rows) => assert!(!rows.is_empty()),
                Err(e) => assert_names(&e, path),
            }
        },
    );
}

#[test]
fn fuzz_article_input() {
    let article = std::fs::read("data/examples/iran-campaign-hack.txt").unwrap();
    let html = format!(
        "<html><head><script>var x=1;</script></head><body><h1>Title</h1><p>{}</p></body></html>",
        String::from_utf8_lossy(&article).replace('\n', "</p><p>")
    )
    .into_bytes();
    let jsonl = b"{\"id\": 1, \"text\": \"The mayor denied it. Police said so.\", \"url\": \"u\"}\n{\"id\": \"b\", \"text\": \"<p>A</p>\", \"format\": \"html\"}\n".to_vec();
    let seeds = vec![article, html, jsonl];
    let formats = [
        stance::input::InputFormat::Auto,
        stance::input::InputFormat::Text,
        stance::input::InputFormat::Html,
        stance::input::InputFormat::Jsonl,
    ];
    fuzz(
        "article input",
        (inputs(seeds, JSON_DICT, 4096), 0usize..4),
        |(bytes, f)| match stance::input::parse_articles("fuzz-input.txt", bytes, formats[*f]) {
            Ok(articles) => {
                for a in articles {
                    let _ = stance::splitter::split_sentences(&a.text);
                }
            }
            Err(e) => assert!(e.to_string().contains("fuzz-input.txt"), "{e}"),
        },
    );
}

#[test]
fn fuzz_sentence_splitter() {
    let article = std::fs::read("data/examples/iran-campaign-hack.txt").unwrap();
    let other = std::fs::read("data/examples/business-finance-010.txt").unwrap();
    let seeds = vec![
        article,
        other,
        "He said: \u{201c}No.\u{201d} Then \u{2026} U.S. Sen. Smith (R.) left. \u{4e2d}\u{6587}\u{3002}\u{6d4b}\u{8bd5}\u{ff01}".as_bytes().to_vec(),
    ];
    fuzz(
        "sentence splitter",
        inputs(seeds, TEXT_DICT, usize::MAX),
        |bytes| {
            let text = String::from_utf8_lossy(bytes);
            let chars: Vec<char> = text.chars().collect();
            let mut last_end = 0;
            for s in stance::splitter::split_sentences(&text) {
                assert!(
                    s.start >= last_end && s.start < s.end && s.end <= chars.len(),
                    "{s:?}"
                );
                assert_eq!(chars[s.start..s.end].iter().collect::<String>(), s.text);
                assert!(!s.text.trim().is_empty());
                last_end = s.end;
            }
        },
    );
}

fn tiny_base(dir: &Path) -> PathBuf {
    common::tiny_base(&dir.join("base"), 5)
}

#[test]
fn fuzz_config_json() {
    let t = scratch();
    let base = tiny_base(t.path());
    let shipped = std::fs::read("models/stance-mpnet/config.json").unwrap_or_default();
    let seeds = vec![std::fs::read(base.join("config.json")).unwrap(), shipped];
    let weights = base.join("model.safetensors");
    let path = t.path().join("config.json");
    fuzz(
        "config.json",
        inputs(seeds, JSON_DICT, usize::MAX),
        |bytes| {
            std::fs::write(&path, bytes).unwrap();
            match stance::model::BertConfig::from_file(&path) {
                Ok(cfg) => {
                    if let Err(e) =
                        stance::model::preflight::check_against_weights(&cfg, &path, &weights)
                    {
                        assert_names(&e, &path);
                    }
                    let _ = cfg.labels();
                }
                Err(e) => assert_names(&e, &path),
            }
        },
    );
}

#[test]
fn fuzz_adapter_config() {
    let t = scratch();
    let seeds = vec![
        br#"{"peft_type": "LORA", "task_type": "SEQ_CLS", "r": 8, "lora_alpha": 16, "lora_dropout": 0.0, "target_modules": ["query", "value"], "modules_to_save": ["classifier"], "base_model_name_or_path": "sentence-transformers/all-MiniLM-L6-v2"}"#.to_vec(),
        br#"{"peft_type": "LORA", "r": 4, "target_modules": "query"}"#.to_vec(),
    ];
    let path = t.path().join("adapter_config.json");
    fuzz(
        "adapter_config.json",
        inputs(seeds, JSON_DICT, usize::MAX),
        |bytes| {
            let text = String::from_utf8_lossy(bytes);
            match stance::checkpoint::parse_adapter_config(&path, &text) {
                Ok(cfg) => assert!(cfg.r >= 1 && cfg.alpha.is_finite() && !cfg.targets.is_empty()),
                Err(e) => assert_names(&e, &path),
            }
        },
    );
}

#[test]
fn fuzz_safetensors_loader() {
    let t = scratch();
    let base = tiny_base(t.path());
    let seed = std::fs::read(base.join("model.safetensors")).unwrap();
    let header = 8 + u64::from_le_bytes(seed[..8].try_into().unwrap()) as usize;
    let config = stance::model::BertConfig::from_file(&base.join("config.json")).unwrap();
    let model = RefCell::new(
        stance::model::BertClassifier::new_for_loading(&config, 4, 1, &candle_core::Device::Cpu)
            .unwrap(),
    );
    let path = t.path().join("model.safetensors");
    let config_path = base.join("config.json");
    fuzz(
        "safetensors loader",
        inputs(vec![seed], SAFETENSORS_DICT, header + 16),
        |bytes| {
            std::fs::write(&path, bytes).unwrap();
            if let Err(e) =
                stance::model::preflight::check_against_weights(&config, &config_path, &path)
            {
                let msg = e.to_string();
                assert!(
                    msg.contains("model.safetensors") || msg.contains("config.json"),
                    "{msg}"
                );
            }
            if let Err(e) = model.borrow_mut().load_weights(&path) {
                assert_names(&e, &path);
            }
            if let Err(e) = candle_core::safetensors::load(&path, &candle_core::Device::Cpu) {
                let _ = e.to_string();
            }
        },
    );
}
