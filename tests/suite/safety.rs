//! Adversarial cases, table-driven: bad, careless or hostile inputs across
//! every command. Each case runs the binary in a fresh copy of a fixture
//! directory and asserts a non-zero exit, a message naming the file or
//! flag, no panic, and that every file that existed before the run is
//! byte-identical afterwards (nothing destroyed, nothing half-written).

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A fixture with a base model, data, an article and a trained checkpoint;
/// built once, copied for every case.
fn template() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let t = tempfile::tempdir().unwrap().keep();
        common::tiny_base(&t.join("base"), 3);
        common::write_jsonl(&t.join("train.jsonl"), common::TRAIN_ROWS, 4);
        common::write_jsonl(&t.join("dev.jsonl"), &common::TRAIN_ROWS[..8], 4);
        std::fs::write(
            t.join("a.txt"),
            "The mayor denied the report. Police accused the driver of fraud.\n",
        )
        .unwrap();
        std::fs::create_dir(t.join("notes")).unwrap();
        std::fs::write(t.join("notes/todo.md"), "my notes\n").unwrap();
        let o = stance_in(
            &t,
            &[
                "train",
                "--train",
                "train.jsonl",
                "--dev",
                "dev.jsonl",
                "--base",
                "base",
                "--out",
                "ckpt",
                "--epochs",
                "1",
                "--batch-size",
                "4",
                "--max-len",
                "32",
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        // A LoRA checkpoint (PEFT layout) for the adapter cases.
        let o = stance_in(
            &t,
            &[
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "lora",
                "--method",
                "lora",
                "--lora-r",
                "2",
                "--epochs",
                "1",
                "--batch-size",
                "4",
                "--max-len",
                "32",
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(t.join("lora/adapter_config.json").is_file());
        t
    })
}

fn stance_in(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stance"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env("HF_HOME", dir.join(".hf"))
        // stance's own cache (hash records) is outside the case directory.
        .env("STANCE_CACHE", dir.with_extension("cache"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else if meta.is_file() {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// Every regular file below `dir` with its bytes (symlinks by target).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            } else if m.file_type().is_symlink() {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                );
            }
        }
    }
    out
}

/// One adversarial case: `setup` prepares extra files in the case's
/// directory; `args` run there; the run must fail naming each of `needles`.
struct Case {
    name: &'static str,
    setup: fn(&Path),
    args: &'static [&'static str],
    needles: &'static [&'static str],
}

fn none(_: &Path) {}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("ckpt/config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

fn edit_adapter(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("lora/adapter_config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(p, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

const TRAIN: &[&str] = &[
    "train",
    "--train",
    "train.jsonl",
    "--dev",
    "dev.jsonl",
    "--base",
    "base",
    "--epochs",
    "1",
    "--batch-size",
    "4",
    "--max-len",
    "32",
];

fn cases() -> Vec<Case> {
    macro_rules! c {
        ($name:expr, $setup:expr, [$($a:expr),* $(,)?], [$($n:expr),* $(,)?]) => {
            Case { name: $name, setup: $setup, args: &[$($a),*], needles: &[$($n),*] }
        };
    }
    vec![
        // 1. Data loss: outputs that are inputs, foreign directories, the tree itself.
        c!(
            "train --out is the train file",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "train.jsonl"
            ],
            ["--out", "train.jsonl"]
        ),
        c!(
            "train --out is the base",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "base"
            ],
            ["--out", "base"]
        ),
        c!(
            "train --out is a notes directory",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "notes"
            ],
            ["--out", "notes", "not a directory stance wrote"]
        ),
        c!(
            "train --out existing checkpoint without --overwrite",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "ckpt"
            ],
            ["--overwrite"]
        ),
        c!(
            "train --out .",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "."
            ],
            ["--out"]
        ),
        c!(
            "train --out ..",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                ".."
            ],
            ["--out"]
        ),
        c!(
            "train --out /",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "/"
            ],
            ["--out"]
        ),
        c!(
            "train --out holds the training data",
            |d| {
                std::fs::copy(d.join("train.jsonl"), d.join("ckpt/train.jsonl")).unwrap();
            },
            [
                "train",
                "--train",
                "ckpt/train.jsonl",
                "--base",
                "base",
                "--out",
                "ckpt",
                "--overwrite"
            ],
            ["holds an input"]
        ),
        c!(
            "train --out is the base, overwrite",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "ckpt",
                "--out",
                "ckpt",
                "--overwrite"
            ],
            ["--out", "ckpt"]
        ),
        c!(
            "predict -o is the article",
            none,
            ["predict", "--model", "ckpt", "a.txt", "-o", "a.txt"],
            ["also an input"]
        ),
        c!(
            "predict -o ./article",
            none,
            ["predict", "--model", "ckpt", "a.txt", "-o", "./a.txt"],
            ["also an input"]
        ),
        c!(
            "predict -o link to the article",
            |d| std::os::unix::fs::symlink(d.join("a.txt"), d.join("link.txt")).unwrap(),
            ["predict", "--model", "ckpt", "a.txt", "-o", "link.txt"],
            ["also an input"]
        ),
        c!(
            "predict -o a directory",
            none,
            ["predict", "--model", "ckpt", "a.txt", "-o", "notes"],
            ["directory"]
        ),
        c!(
            "predict --jsonl -o the input",
            |d| write(d, "in.jsonl", b"{\"text\": \"The mayor denied it.\"}\n"),
            ["predict", "--model", "ckpt", "--jsonl", "in.jsonl", "--output", "in.jsonl"],
            ["also an input"]
        ),
        c!(
            "data split over its own input",
            |d| {
                std::fs::copy(d.join("train.jsonl"), d.join("s.train.jsonl")).unwrap();
            },
            [
                "data",
                "split",
                "s.train.jsonl",
                "--prefix",
                "s",
                "--out-dir",
                "."
            ],
            ["also an input"]
        ),
        c!(
            "bench --logits-out is the data",
            none,
            [
                "bench",
                "--model",
                "ckpt",
                "--data",
                "dev.jsonl",
                "--logits-out",
                "dev.jsonl"
            ],
            ["also an input"]
        ),
        c!(
            "download trailing slash id",
            none,
            ["download", "ok/"],
            ["model id"]
        ),
        c!("download empty id", none, ["download", ""], ["model id"]),
        c!(
            "download dotdot id",
            none,
            ["download", "../models"],
            ["model id"]
        ),
        c!("download dot id", none, ["download", "org/."], ["model id"]),
        c!(
            "download revision traversal",
            none,
            [
                "download",
                "org/name",
                "--revision",
                "../../X",
                "--out",
                "fresh"
            ],
            ["--revision"]
        ),
        c!(
            "download revision absolute",
            none,
            [
                "download",
                "org/name",
                "--revision",
                "/etc",
                "--out",
                "fresh"
            ],
            ["--revision"]
        ),
        c!(
            "download --out foreign directory",
            none,
            ["download", "org/name", "--out", "notes"],
            ["not a directory stance wrote"]
        ),
        c!(
            "download --out the base",
            none,
            ["download", "org/name", "--out", "base"],
            ["not a directory stance wrote"]
        ),
        c!(
            "download --out a file",
            none,
            ["download", "org/name", "--out", "a.txt"],
            ["not a directory"]
        ),
        c!(
            "download --out .",
            none,
            ["download", "org/name", "--out", "."],
            ["--out"]
        ),
        // 4. Flags out of range.
        c!(
            "lr negative",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "new",
                "--lr",
                "-1"
            ],
            ["--lr"]
        ),
        c!(
            "lr NaN",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "new",
                "--lr",
                "NaN"
            ],
            ["--lr"]
        ),
        c!(
            "lr inf",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "new",
                "--lr",
                "inf"
            ],
            ["--lr"]
        ),
        c!(
            "lr zero",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "new",
                "--lr",
                "0"
            ],
            ["--lr"]
        ),
        c!(
            "lr text",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "new",
                "--lr",
                "fast"
            ],
            ["--lr"]
        ),
        c!(
            "warmup 5",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "new",
                "--warmup",
                "5"
            ],
            ["--warmup"]
        ),
        c!(
            "warmup -1",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "new",
                "--warmup",
                "-1"
            ],
            ["--warmup"]
        ),
        c!(
            "warmup 1",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "new",
                "--warmup",
                "1"
            ],
            ["--warmup"]
        ),
        c!(
            "max-grad-norm -1",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "new",
                "--max-grad-norm",
                "-1"
            ],
            ["--max-grad-norm"]
        ),
        c!(
            "max-grad-norm NaN",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "new",
                "--max-grad-norm",
                "NaN"
            ],
            ["--max-grad-norm"]
        ),
        c!(
            "weight-decay NaN",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "new",
                "--weight-decay",
                "NaN"
            ],
            ["--weight-decay"]
        ),
        c!(
            "weight-decay negative",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "new",
                "--weight-decay",
                "-0.1"
            ],
            ["--weight-decay"]
        ),
        c!(
            "epochs 0",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "new",
                "--epochs",
                "0"
            ],
            ["--epochs"]
        ),
        c!(
            "batch-size 0 train",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "new",
                "--batch-size",
                "0"
            ],
            ["--batch-size"]
        ),
        c!(
            "max-len 0",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "new",
                "--max-len",
                "0"
            ],
            ["--max-len"]
        ),
        c!(
            "max-len huge",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "new",
                "--max-len",
                "100000"
            ],
            ["--max-len"]
        ),
        c!(
            "train-layers 100",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "new",
                "--method",
                "top",
                "--train-layers",
                "100"
            ],
            ["--train-layers"]
        ),
        c!(
            "train-layers 0",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "new",
                "--method",
                "top",
                "--train-layers",
                "0"
            ],
            ["--train-layers"]
        ),
        c!(
            "lora-r above hidden",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "new",
                "--method",
                "lora",
                "--lora-r",
                "64"
            ],
            ["--lora-r"]
        ),
        c!(
            "lora-r 100000",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "new",
                "--method",
                "lora",
                "--lora-r",
                "100000"
            ],
            ["--lora-r"]
        ),
        c!(
            "lora-r 0",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "new",
                "--method",
                "lora",
                "--lora-r",
                "0"
            ],
            ["--lora-r"]
        ),
        c!(
            "lora-alpha negative",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "new",
                "--method",
                "lora",
                "--lora-alpha",
                "-2"
            ],
            ["--lora-alpha"]
        ),
        c!(
            "method unknown",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "new",
                "--method",
                "magic"
            ],
            ["--method"]
        ),
        c!(
            "predict batch-size 0",
            none,
            ["predict", "--model", "ckpt", "a.txt", "--batch-size", "0"],
            ["--batch-size"]
        ),
        c!(
            "eval batch-size 0",
            none,
            [
                "eval",
                "--model",
                "ckpt",
                "--data",
                "dev.jsonl",
                "--batch-size",
                "0"
            ],
            ["--batch-size"]
        ),
        c!(
            "threads 0",
            none,
            ["--threads", "0", "predict", "--model", "ckpt", "a.txt"],
            ["--threads"]
        ),
        c!(
            "threads 100000",
            none,
            ["--threads", "100000", "predict", "--model", "ckpt", "a.txt"],
            ["--threads"]
        ),
        c!(
            "precision unknown",
            none,
            ["predict", "--model", "ckpt", "a.txt", "--precision", "f8"],
            ["precision"]
        ),
        c!(
            "format unknown",
            none,
            ["predict", "--model", "ckpt", "a.txt", "--format", "xml"],
            ["--format"]
        ),
        c!(
            "split dev 2",
            none,
            [
                "data",
                "split",
                "train.jsonl",
                "--dev",
                "2",
                "--out-dir",
                "out"
            ],
            ["--dev"]
        ),
        c!(
            "split dev+test >= 1",
            none,
            [
                "data",
                "split",
                "train.jsonl",
                "--dev",
                "0.5",
                "--test",
                "0.5",
                "--out-dir",
                "out"
            ],
            ["--dev"]
        ),
        // Inputs that are missing, empty or malformed.
        c!(
            "predict missing file",
            none,
            ["predict", "--model", "ckpt", "nope.txt"],
            ["nope.txt"]
        ),
        c!(
            "predict empty file",
            |d| write(d, "empty.txt", b""),
            ["predict", "--model", "ckpt", "empty.txt"],
            ["empty.txt"]
        ),
        c!(
            "predict whitespace file",
            |d| write(d, "ws.txt", b"  \n\n \t\n"),
            ["predict", "--model", "ckpt", "ws.txt"],
            ["ws.txt"]
        ),
        c!(
            "predict non-UTF-8",
            |d| write(d, "bad.txt", b"caf\xe9 owners\n"),
            ["predict", "--model", "ckpt", "bad.txt"],
            ["bad.txt:1", "UTF-8"]
        ),
        c!(
            "predict directory as input",
            none,
            ["predict", "--model", "ckpt", "notes"],
            ["notes"]
        ),
        c!(
            "predict jsonl bad line",
            |d| write(d, "in.jsonl", b"{\"text\": \"ok.\"}\n{broken\n"),
            ["predict", "--model", "ckpt", "--jsonl", "in.jsonl"],
            ["in.jsonl:2"]
        ),
        c!(
            "predict jsonl no text",
            |d| write(d, "in.jsonl", b"{\"body\": \"x\"}\n"),
            ["predict", "--model", "ckpt", "--jsonl", "in.jsonl"],
            ["in.jsonl:1", "text"]
        ),
        c!(
            "predict jsonl text not string",
            |d| write(d, "in.jsonl", b"{\"text\": 5}\n"),
            ["predict", "--model", "ckpt", "--jsonl", "in.jsonl"],
            ["in.jsonl:1", "text"]
        ),
        c!(
            "predict jsonl empty text",
            |d| write(d, "in.jsonl", b"{\"text\": \"  \"}\n"),
            ["predict", "--model", "ckpt", "--jsonl", "in.jsonl"],
            ["in.jsonl:1", "empty"]
        ),
        c!(
            "predict stdin twice",
            none,
            ["predict", "--model", "ckpt", "-", "-"],
            ["standard input"]
        ),
        c!(
            "predict model missing",
            none,
            ["predict", "--model", "nomodel", "a.txt"],
            ["nomodel"]
        ),
        c!(
            "predict model is a file",
            none,
            ["predict", "--model", "a.txt", "a.txt"],
            ["a.txt"]
        ),
        c!(
            "predict model is a base, not a classifier",
            none,
            ["predict", "--model", "base", "a.txt"],
            ["base"]
        ),
        c!(
            "train missing file",
            none,
            [
                "train",
                "--train",
                "nope.jsonl",
                "--base",
                "base",
                "--out",
                "new"
            ],
            ["nope.jsonl"]
        ),
        c!(
            "train bad json",
            |d| write(
                d,
                "t.jsonl",
                b"{\"text\": \"a\", \"label\": \"denial\"}\nnot json\n"
            ),
            ["train", "--train", "t.jsonl", "--base", "base", "--out", "new"],
            ["t.jsonl:2"]
        ),
        c!(
            "train unknown label",
            |d| write(d, "t.jsonl", b"{\"text\": \"a\", \"label\": \"lie\"}\n"),
            ["train", "--train", "t.jsonl", "--base", "base", "--out", "new"],
            ["t.jsonl:1", "lie"]
        ),
        c!(
            "train empty text",
            |d| write(d, "t.jsonl", b"{\"text\": \"\", \"label\": \"denial\"}\n"),
            ["train", "--train", "t.jsonl", "--base", "base", "--out", "new"],
            ["t.jsonl:1"]
        ),
        c!(
            "train empty file",
            |d| write(d, "t.jsonl", b""),
            ["train", "--train", "t.jsonl", "--base", "base", "--out", "new"],
            ["t.jsonl"]
        ),
        c!(
            "train csv without label column",
            |d| write(d, "t.csv", b"text,kind\nhello,x\n"),
            ["train", "--train", "t.csv", "--base", "base", "--out", "new"],
            ["t.csv", "label"]
        ),
        c!(
            "train base missing",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "nobase",
                "--out",
                "new"
            ],
            ["nobase"]
        ),
        c!(
            "train base without weights",
            |d| {
                std::fs::create_dir(d.join("b2")).unwrap();
                std::fs::copy(d.join("base/config.json"), d.join("b2/config.json")).unwrap();
            },
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "b2",
                "--out",
                "new"
            ],
            ["b2", "model.safetensors"]
        ),
        c!(
            "eval unknown label",
            |d| write(d, "e.jsonl", b"{\"text\": \"a\", \"label\": \"lie\"}\n"),
            ["eval", "--model", "ckpt", "--data", "e.jsonl"],
            ["e.jsonl:1", "lie"]
        ),
        c!(
            "eval missing data",
            none,
            ["eval", "--model", "ckpt", "--data", "nope.jsonl"],
            ["nope.jsonl"]
        ),
        c!(
            "stats missing file",
            none,
            ["data", "stats", "nope.jsonl"],
            ["nope.jsonl"]
        ),
        c!(
            "real-build missing root",
            none,
            [
                "data",
                "real-build",
                "--root",
                "noroot",
                "--out-dir",
                "o",
                "dev.jsonl"
            ],
            ["dev.jsonl"]
        ),
        c!(
            "bench reps 0",
            none,
            [
                "bench",
                "--model",
                "ckpt",
                "--data",
                "dev.jsonl",
                "--reps",
                "0"
            ],
            ["--reps"]
        ),
        c!(
            "bench batch-size 0",
            none,
            [
                "bench",
                "--model",
                "ckpt",
                "--data",
                "dev.jsonl",
                "--batch-size",
                "0"
            ],
            ["--batch-size"]
        ),
        c!(
            "predict stdin and a file",
            none,
            ["predict", "--model", "ckpt", "a.txt", "-"],
            ["standard input"]
        ),
        c!(
            "train BOM then bad label",
            |d| write(
                d,
                "t.jsonl",
                b"\xef\xbb\xbf{\"text\": \"a\", \"label\": \"lie\"}\n"
            ),
            ["train", "--train", "t.jsonl", "--base", "base", "--out", "new"],
            ["t.jsonl:1", "unknown label"]
        ),
        c!(
            "train --train-layers with full",
            none,
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "new",
                "--method",
                "top",
                "--train-layers",
                "3"
            ],
            ["--train-layers"]
        ),
        c!(
            "data split empty file",
            |d| write(d, "e.jsonl", b""),
            ["data", "split", "e.jsonl", "--out-dir", "o"],
            ["e.jsonl"]
        ),
        c!(
            "data split too small",
            |d| write(
                d,
                "small.jsonl",
                b"{\"text\": \"a\", \"label\": \"denial\", \"article\": \"x\"}\n"
            ),
            ["data", "split", "small.jsonl", "--out-dir", "o"],
            ["too few"]
        ),
        c!(
            "bench steps 0",
            none,
            [
                "bench",
                "--model",
                "ckpt",
                "--data",
                "dev.jsonl",
                "--steps",
                "0"
            ],
            ["--steps"]
        ),
        // 3. Hostile or corrupt model directories.
        c!(
            "config vocab_size 1e12",
            |d| edit_config(d, |v| v["vocab_size"] =
                serde_json::json!(1_000_000_000_000u64)),
            ["predict", "--model", "ckpt", "a.txt"],
            ["config.json", "vocab_size"]
        ),
        c!(
            "config hidden_size 1.2e8",
            |d| edit_config(d, |v| v["hidden_size"] = serde_json::json!(120_000_000)),
            ["predict", "--model", "ckpt", "a.txt"],
            ["config.json", "hidden_size"]
        ),
        c!(
            "config fewer layers than weights",
            |d| edit_config(d, |v| v["num_hidden_layers"] = serde_json::json!(1)),
            ["predict", "--model", "ckpt", "a.txt"],
            ["config.json", "num_hidden_layers"]
        ),
        c!(
            "config more layers than weights",
            |d| edit_config(d, |v| v["num_hidden_layers"] = serde_json::json!(4)),
            ["predict", "--model", "ckpt", "a.txt"],
            ["config.json", "num_hidden_layers"]
        ),
        c!(
            "config vocab mismatch",
            |d| edit_config(d, |v| v["vocab_size"] = serde_json::json!(500)),
            ["predict", "--model", "ckpt", "a.txt"],
            ["config.json", "vocab_size"]
        ),
        c!(
            "config intermediate mismatch",
            |d| edit_config(d, |v| v["intermediate_size"] = serde_json::json!(40)),
            ["predict", "--model", "ckpt", "a.txt"],
            ["config.json", "intermediate_size"]
        ),
        c!(
            "config label2id contradicts",
            |d| edit_config(
                d,
                |v| v["label2id"] =
                    serde_json::json!({"assertion": 1, "denial": 0, "allegation": 2, "context": 3})
            ),
            ["predict", "--model", "ckpt", "a.txt"],
            ["config.json", "label2id"]
        ),
        c!(
            "config temperature 0",
            |d| edit_config(d, |v| v["stance"]["temperature"] = serde_json::json!(0.0)),
            ["predict", "--model", "ckpt", "a.txt"],
            ["config.json", "temperature"]
        ),
        c!(
            "config temperature -1",
            |d| edit_config(d, |v| v["stance"]["temperature"] = serde_json::json!(-1.0)),
            ["predict", "--model", "ckpt", "a.txt"],
            ["config.json", "temperature"]
        ),
        c!(
            "config max_len 0",
            |d| edit_config(d, |v| v["stance"]["max_len"] = serde_json::json!(0)),
            ["predict", "--model", "ckpt", "a.txt"],
            ["config.json", "max_len"]
        ),
        c!(
            "config context 1000",
            |d| edit_config(d, |v| v["stance"]["context"] = serde_json::json!(1000)),
            ["predict", "--model", "ckpt", "a.txt"],
            ["config.json", "context"]
        ),
        c!(
            "config unsupported activation",
            |d| edit_config(d, |v| v["hidden_act"] = serde_json::json!("swish")),
            ["predict", "--model", "ckpt", "a.txt"],
            ["config.json", "hidden_act"]
        ),
        c!(
            "config dropout 2",
            |d| edit_config(d, |v| v["hidden_dropout_prob"] = serde_json::json!(2.0)),
            ["predict", "--model", "ckpt", "a.txt"],
            ["config.json", "hidden_dropout_prob"]
        ),
        c!(
            "config heads do not divide",
            |d| edit_config(d, |v| v["num_attention_heads"] = serde_json::json!(5)),
            ["predict", "--model", "ckpt", "a.txt"],
            ["config.json", "num_attention_heads"]
        ),
        c!(
            "adapter_config targets no module",
            |d| edit_adapter(d, |v| v["target_modules"] = serde_json::json!(["nothing"])),
            ["predict", "--model", "lora", "a.txt"],
            ["lora/adapter_config.json", "match no module"]
        ),
        c!(
            "adapter_config with no target_modules",
            |d| edit_adapter(d, |v| v["target_modules"] = serde_json::json!([])),
            ["predict", "--model", "lora", "a.txt"],
            ["lora/adapter_config.json", "target_modules"]
        ),
        c!(
            "adapter_config r as a string",
            |d| edit_adapter(d, |v| v["r"] = serde_json::json!("2")),
            ["predict", "--model", "lora", "a.txt"],
            ["lora/adapter_config.json", "r \"2\""]
        ),
        c!(
            "adapter_config r larger than the adapter weights",
            |d| edit_adapter(d, |v| v["r"] = serde_json::json!(3)),
            ["predict", "--model", "lora", "a.txt"],
            ["lora/adapter_model.safetensors", "shape"]
        ),
        c!(
            "adapter weights truncated",
            |d| {
                let p = d.join("lora/adapter_model.safetensors");
                let b = std::fs::read(&p).unwrap();
                std::fs::write(&p, &b[..b.len() / 2]).unwrap();
            },
            ["predict", "--model", "lora", "a.txt"],
            ["lora/adapter_model.safetensors"]
        ),
        c!(
            "config not json",
            |d| write(d, "ckpt/config.json", b"{ not json"),
            ["predict", "--model", "ckpt", "a.txt"],
            ["config.json"]
        ),
        c!(
            "config wrong type",
            |d| edit_config(d, |v| v["hidden_size"] = serde_json::json!("big")),
            ["predict", "--model", "ckpt", "a.txt"],
            ["config.json"]
        ),
        c!(
            "config model_type roberta",
            |d| edit_config(d, |v| v["model_type"] = serde_json::json!("gpt2")),
            ["predict", "--model", "ckpt", "a.txt"],
            ["config.json", "model_type"]
        ),
        c!(
            "weights truncated",
            |d| {
                let p = d.join("ckpt/model.safetensors");
                let b = std::fs::read(&p).unwrap();
                std::fs::write(&p, &b[..b.len() / 2]).unwrap();
            },
            ["predict", "--model", "ckpt", "a.txt"],
            ["model.safetensors"]
        ),
        c!(
            "weights empty",
            |d| write(d, "ckpt/model.safetensors", b""),
            ["predict", "--model", "ckpt", "a.txt"],
            ["model.safetensors"]
        ),
        c!(
            "weights garbage",
            |d| write(
                d,
                "ckpt/model.safetensors",
                b"\xff\xff\xff\xff\xff\xff\xff\x7fgarbage"
            ),
            ["predict", "--model", "ckpt", "a.txt"],
            ["model.safetensors"]
        ),
        c!(
            "weights NaN",
            nan_weights,
            ["predict", "--model", "ckpt", "a.txt"],
            ["NaN"]
        ),
        c!(
            "tokenizer missing",
            |d| std::fs::remove_file(d.join("ckpt/tokenizer.json")).unwrap(),
            ["predict", "--model", "ckpt", "a.txt"],
            ["tokenizer"]
        ),
        c!(
            "tokenizer garbage",
            |d| write(d, "ckpt/tokenizer.json", b"{\"nope\": 1}"),
            ["predict", "--model", "ckpt", "a.txt"],
            ["tokenizer.json"]
        ),
        c!(
            "base config vocab 1e12",
            |d| {
                let p = d.join("base/config.json");
                let mut v: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
                v["vocab_size"] = serde_json::json!(1_000_000_000_000u64);
                std::fs::write(p, v.to_string()).unwrap();
            },
            [
                "train",
                "--train",
                "train.jsonl",
                "--base",
                "base",
                "--out",
                "new"
            ],
            ["config.json", "vocab_size"]
        ),
        // The server's flags (refused before the model loads or a port is taken).
        c!(
            "serve --addr not an address",
            none,
            ["serve", "--model", "ckpt", "--addr", "localhost"],
            ["--addr"]
        ),
        c!(
            "serve --addr bad port",
            none,
            ["serve", "--model", "ckpt", "--addr", "127.0.0.1:99999"],
            ["--addr"]
        ),
        c!(
            "serve --max-body 0",
            none,
            ["serve", "--model", "ckpt", "--max-body", "0"],
            ["--max-body"]
        ),
        c!(
            "serve --timeout 0",
            none,
            ["serve", "--model", "ckpt", "--timeout", "0"],
            ["--timeout"]
        ),
        c!(
            "serve --timeout negative",
            none,
            ["serve", "--model", "ckpt", "--timeout", "-1"],
            ["--timeout"]
        ),
        c!(
            "serve --timeout NaN",
            none,
            ["serve", "--model", "ckpt", "--timeout", "NaN"],
            ["--timeout"]
        ),
        c!(
            "serve --batch-size 0",
            none,
            ["serve", "--model", "ckpt", "--batch-size", "0"],
            ["--batch-size"]
        ),
        c!(
            "serve --batch-wait-ms huge",
            none,
            ["serve", "--model", "ckpt", "--batch-wait-ms", "5000"],
            ["--batch-wait-ms"]
        ),
        c!(
            "serve missing model",
            none,
            ["serve", "--model", "nomodel", "--addr", "127.0.0.1:0"],
            ["nomodel"]
        ),
        c!(
            "serve bad precision",
            none,
            ["serve", "--model", "ckpt", "--precision", "f8"],
            ["--precision"]
        ),
        c!(
            "serve model is a data file",
            none,
            ["serve", "--model", "train.jsonl", "--addr", "127.0.0.1:0"],
            ["train.jsonl"]
        ),
        // Streaming predict: shards, resume, error records.
        c!(
            "predict --shard 0/2",
            |d| write(
                d,
                "in.jsonl",
                b"{\"id\": 1, \"text\": \"The mayor denied it.\"}\n"
            ),
            ["predict", "--model", "ckpt", "--shard", "0/2", "in.jsonl"],
            ["--shard", "1 <= K <= N"]
        ),
        c!(
            "predict --shard 3/2",
            |d| write(
                d,
                "in.jsonl",
                b"{\"id\": 1, \"text\": \"The mayor denied it.\"}\n"
            ),
            ["predict", "--model", "ckpt", "--shard", "3/2", "in.jsonl"],
            ["--shard", "1 <= K <= N"]
        ),
        c!(
            "predict --shard 1/0",
            |d| write(
                d,
                "in.jsonl",
                b"{\"id\": 1, \"text\": \"The mayor denied it.\"}\n"
            ),
            ["predict", "--model", "ckpt", "--shard", "1/0", "in.jsonl"],
            ["--shard"]
        ),
        c!(
            "predict --shard words",
            |d| write(
                d,
                "in.jsonl",
                b"{\"id\": 1, \"text\": \"The mayor denied it.\"}\n"
            ),
            ["predict", "--model", "ckpt", "--shard", "half", "in.jsonl"],
            ["--shard", "K/N"]
        ),
        c!(
            "predict --shard on text input",
            none,
            ["predict", "--model", "ckpt", "--shard", "1/2", "a.txt"],
            ["--shard needs JSONL"]
        ),
        c!(
            "predict --on-error skip on text input",
            none,
            ["predict", "--model", "ckpt", "--on-error", "skip", "a.txt"],
            ["--on-error skip needs JSONL"]
        ),
        c!(
            "predict --format articles on text input",
            none,
            ["predict", "--model", "ckpt", "--format", "articles", "a.txt"],
            ["--format articles needs JSONL"]
        ),
        c!(
            "predict --resume without -o",
            |d| write(
                d,
                "in.jsonl",
                b"{\"id\": 1, \"text\": \"The mayor denied it.\"}\n"
            ),
            ["predict", "--model", "ckpt", "--format", "articles", "--resume", "in.jsonl"],
            ["--resume needs -o"]
        ),
        c!(
            "predict --resume sentence format",
            |d| write(
                d,
                "in.jsonl",
                b"{\"id\": 1, \"text\": \"The mayor denied it.\"}\n"
            ),
            [
                "predict",
                "--model",
                "ckpt",
                "--format",
                "jsonl",
                "--resume",
                "-o",
                "out.jsonl",
                "in.jsonl"
            ],
            ["--resume needs --format articles"]
        ),
        c!(
            "predict --resume onto the input",
            |d| write(
                d,
                "in.jsonl",
                b"{\"id\": 1, \"text\": \"The mayor denied it.\"}\n"
            ),
            [
                "predict", "--model", "ckpt", "--format", "articles", "--resume", "-o", "in.jsonl",
                "in.jsonl"
            ],
            ["--output", "in.jsonl"]
        ),
        c!(
            "predict --errors is the input",
            |d| write(
                d,
                "in.jsonl",
                b"{\"id\": 1, \"text\": \"The mayor denied it.\"}\n"
            ),
            [
                "predict",
                "--model",
                "ckpt",
                "--on-error",
                "skip",
                "--errors",
                "in.jsonl",
                "in.jsonl"
            ],
            ["--errors", "in.jsonl"]
        ),
        c!(
            "predict --errors is --output",
            |d| write(
                d,
                "in.jsonl",
                b"{\"id\": 1, \"text\": \"The mayor denied it.\"}\n"
            ),
            [
                "predict",
                "--model",
                "ckpt",
                "--on-error",
                "skip",
                "--errors",
                "o.jsonl",
                "-o",
                "o.jsonl",
                "in.jsonl"
            ],
            ["--errors", "--output"]
        ),
        c!(
            "predict --errors is a directory",
            |d| write(
                d,
                "in.jsonl",
                b"{\"id\": 1, \"text\": \"The mayor denied it.\"}\n"
            ),
            [
                "predict",
                "--model",
                "ckpt",
                "--on-error",
                "skip",
                "--errors",
                "notes",
                "in.jsonl"
            ],
            ["--errors", "directory"]
        ),
        c!(
            "predict --on-error bogus",
            |d| write(
                d,
                "in.jsonl",
                b"{\"id\": 1, \"text\": \"The mayor denied it.\"}\n"
            ),
            [
                "predict",
                "--model",
                "ckpt",
                "--on-error",
                "ignore",
                "in.jsonl"
            ],
            ["--on-error"]
        ),
        c!(
            "predict --shard-by bogus",
            |d| write(
                d,
                "in.jsonl",
                b"{\"id\": 1, \"text\": \"The mayor denied it.\"}\n"
            ),
            [
                "predict",
                "--model",
                "ckpt",
                "--shard",
                "1/2",
                "--shard-by",
                "date",
                "in.jsonl"
            ],
            ["--shard-by"]
        ),
        c!(
            "predict jsonl line not an object",
            |d| write(d, "in.jsonl", b"[1, 2]\n"),
            ["predict", "--model", "ckpt", "in.jsonl"],
            ["in.jsonl:1", "object"]
        ),
        c!(
            "predict jsonl unknown article format",
            |d| write(d, "in.jsonl", b"{\"text\": \"x.\", \"format\": \"pdf\"}\n"),
            ["predict", "--model", "ckpt", "in.jsonl"],
            ["in.jsonl:1", "format"]
        ),
        c!(
            "predict jsonl html article of script only",
            |d| write(
                d,
                "in.jsonl",
                b"{\"text\": \"<script>x()</script>\", \"format\": \"html\"}\n"
            ),
            ["predict", "--model", "ckpt", "in.jsonl"],
            ["in.jsonl:1", "markup"]
        ),
        c!(
            "predict jsonl bad UTF-8 on line 2",
            |d| write(
                d,
                "in.jsonl",
                b"{\"text\": \"ok.\"}\n{\"text\": \"caf\xe9\"}\n"
            ),
            ["predict", "--model", "ckpt", "in.jsonl"],
            ["in.jsonl:2", "UTF-8"]
        ),
        c!(
            "predict jsonl after a BOM, bad line 2",
            |d| write(d, "in.jsonl", b"\xef\xbb\xbf{\"text\": \"ok.\"}\n{oops\n"),
            ["predict", "--model", "ckpt", "in.jsonl"],
            ["in.jsonl:2", "bad JSON"]
        ),
        c!(
            "predict jsonl stdin twice",
            none,
            ["predict", "--model", "ckpt", "--jsonl", "-", "-"],
            ["standard input"]
        ),
        // Input formats and output options.
        c!(
            "predict --input-format bogus",
            none,
            [
                "predict",
                "--model",
                "ckpt",
                "--input-format",
                "pdf",
                "a.txt"
            ],
            ["--input-format"]
        ),
        c!(
            "predict --jsonl with --input-format",
            none,
            [
                "predict",
                "--model",
                "ckpt",
                "--jsonl",
                "--input-format",
                "text",
                "a.txt"
            ],
            ["--jsonl"]
        ),
        c!(
            "predict html page of script only",
            |d| write(
                d,
                "page.html",
                b"<html><script>alert(1)</script><nav>Home</nav></html>"
            ),
            ["predict", "--model", "ckpt", "page.html"],
            ["page.html", "markup"]
        ),
        c!(
            "predict html non-UTF-8",
            |d| write(d, "page.html", b"<p>caf\xe9</p>"),
            ["predict", "--model", "ckpt", "page.html"],
            ["page.html:1", "UTF-8"]
        ),
        c!(
            "predict --top-k too big",
            none,
            ["predict", "--model", "ckpt", "--top-k", "65", "a.txt"],
            ["--top-k"]
        ),
        c!(
            "predict --top-k negative",
            none,
            ["predict", "--model", "ckpt", "--top-k", "-1", "a.txt"],
            ["--top-k"]
        ),
        // The load test.
        c!(
            "bench serve without --url",
            none,
            ["bench", "--mode", "serve", "--data", "a.txt"],
            ["--url"]
        ),
        c!(
            "bench serve --clients 0",
            none,
            [
                "bench",
                "--mode",
                "serve",
                "--url",
                "http://127.0.0.1:9",
                "--data",
                "a.txt",
                "--clients",
                "0"
            ],
            ["--clients"]
        ),
        c!(
            "bench serve nothing listening",
            none,
            [
                "bench",
                "--mode",
                "serve",
                "--url",
                "http://127.0.0.1:9",
                "--data",
                "a.txt",
                "--clients",
                "1",
                "--requests",
                "2"
            ],
            ["2 of 2 requests failed"]
        ),
        c!(
            "bench serve missing article",
            none,
            [
                "bench",
                "--mode",
                "serve",
                "--url",
                "http://127.0.0.1:9",
                "--data",
                "nope.txt"
            ],
            ["nope.txt"]
        ),
    ]
}

/// Overwrite every float of the checkpoint's classifier weight with NaN.
fn nan_weights(d: &Path) {
    let p = d.join("ckpt/model.safetensors");
    let mut tensors = candle_core::safetensors::load(&p, &candle_core::Device::Cpu).unwrap();
    let w = tensors.get("classifier.weight").unwrap();
    let nan = (w.ones_like().unwrap() * f64::NAN).unwrap();
    tensors.insert("classifier.weight".into(), nan);
    candle_core::safetensors::save(&tensors, &p).unwrap();
}

#[test]
fn every_adversarial_case_fails_cleanly_and_touches_no_file() {
    let root = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let list = cases();
    for (i, case) in list.iter().enumerate() {
        let dir = root.path().join(format!("case{i}"));
        copy_dir(template(), &dir);
        (case.setup)(&dir);
        let before = snapshot(&dir);
        let o = stance_in(&dir, case.args);
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        let after = snapshot(&dir);
        let mut problems = Vec::new();
        if o.status.success() {
            problems.push("exited 0".to_string());
        }
        if o.status.code().is_none() {
            problems.push(format!("killed by a signal: {:?}", o.status));
        }
        if err.contains("panicked") {
            problems.push("panicked".into());
        }
        for n in case.needles {
            if !err.contains(n) {
                problems.push(format!("message lacks {n:?}"));
            }
        }
        for (path, bytes) in &before {
            if after.get(path) != Some(bytes) {
                problems.push(format!("{} changed or vanished", path.display()));
            }
        }
        let stray: Vec<_> = after.keys().filter(|p| !before.contains_key(*p)).collect();
        if !stray.is_empty() {
            problems.push(format!("left new files {stray:?}"));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "[{}] {:?}: {}\n    stderr: {}",
                case.name,
                case.args,
                problems.join("; "),
                err.trim()
            ));
        }
    }
    assert!(list.len() >= 150, "{} cases", list.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        list.len(),
        failures.join("\n")
    );
}

#[test]
fn overwrite_replaces_a_stance_checkpoint_and_keeps_everything_else() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(template(), dir.path());
    let before = snapshot(dir.path());
    let mut args: Vec<&str> = TRAIN.to_vec();
    args.extend(["--out", "ckpt", "--overwrite", "--seed", "5"]);
    let o = stance_in(dir.path(), &args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let after = snapshot(dir.path());
    for (p, b) in &before {
        if !p.starts_with("ckpt") {
            assert_eq!(after.get(p), Some(b), "{} changed", p.display());
        }
    }
    assert!(dir.path().join("ckpt/.stance-checkpoint").is_file());
    // Every file of the checkpoint has the same mode (weights were once 0600).
    use std::os::unix::fs::PermissionsExt;
    let modes: std::collections::BTreeSet<u32> = std::fs::read_dir(dir.path().join("ckpt"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().permissions().mode() & 0o777)
        .collect();
    assert_eq!(modes.len(), 1, "{modes:?}");
    // Nothing left beside it.
    let stray: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".ckpt"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn predict_writes_through_fifos_and_devices_and_follows_links() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(template(), dir.path());
    let o = stance_in(
        dir.path(),
        &["predict", "--model", "ckpt", "a.txt", "-o", "/dev/null"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(dir.path().join("target.jsonl"), "old").unwrap();
    std::os::unix::fs::symlink("target.jsonl", dir.path().join("out-link")).unwrap();
    let o = stance_in(
        dir.path(),
        &[
            "predict", "--model", "ckpt", "a.txt", "-o", "out-link", "--format", "jsonl",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        std::fs::symlink_metadata(dir.path().join("out-link"))
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was replaced"
    );
    assert!(std::fs::read_to_string(dir.path().join("target.jsonl"))
        .unwrap()
        .contains("\"label\""));
}

#[test]
fn a_second_writer_of_the_same_out_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(template(), dir.path());
    // A lock held by a live process (this test) blocks the run before any work.
    std::fs::write(dir.path().join(".new.lock"), std::process::id().to_string()).unwrap();
    let mut args: Vec<&str> = TRAIN.to_vec();
    args.extend(["--out", "new"]);
    let o = stance_in(dir.path(), &args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("another stance run"),
        "{err}"
    );
    assert!(!err.contains("epoch"), "refused only after training: {err}");
    assert!(!dir.path().join("new").exists());
    // A stale lock (dead PID) is taken over.
    std::fs::write(dir.path().join(".new.lock"), "2147483632").unwrap();
    let o = stance_in(dir.path(), &args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!dir.path().join(".new.lock").exists());
}

#[test]
fn single_class_training_data_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(template(), dir.path());
    let rows: Vec<(&str, &str)> = common::TRAIN_ROWS
        .iter()
        .map(|(t, _)| (*t, "denial"))
        .collect();
    common::write_jsonl(&dir.path().join("one.jsonl"), &rows, 4);
    let o = stance_in(
        dir.path(),
        &[
            "train",
            "--train",
            "one.jsonl",
            "--base",
            "base",
            "--out",
            "one",
            "--epochs",
            "1",
            "--max-len",
            "32",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("single label (denial)"), "{err}");
}

/// SIGKILL a retraining of `ckpt` at 24 points spread over the whole run
/// (loading, training, and the save): each time `ckpt` is a complete
/// checkpoint that loads and predicts, the old one or the new one, and the
/// next run cleans up whatever the killed one left.
#[test]
fn a_kill_at_any_point_leaves_a_complete_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(template(), dir.path());
    let mut args: Vec<String> = TRAIN.iter().map(|s| s.to_string()).collect();
    args.extend(["--out", "ckpt", "--overwrite"].map(String::from));
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_stance"))
            .args(&args)
            .current_dir(dir.path())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // How long an uninterrupted run takes here.
    let t0 = std::time::Instant::now();
    assert!(run().wait().unwrap().success());
    let full = t0.elapsed();
    let mut rng = 0x9e3779b97f4a7c15u64;
    for k in 0..24u32 {
        // Spread over [0, 1.1 * full], denser near the end where the save is.
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let u = (rng >> 11) as f64 / (1u64 << 53) as f64;
        let at = full.mul_f64(if k % 2 == 0 { u * 1.1 } else { 0.8 + 0.3 * u });
        let mut child = run();
        std::thread::sleep(at);
        let _ = child.kill();
        let _ = child.wait();
        let o = stance_in(
            dir.path(),
            &["predict", "--model", "ckpt", "a.txt", "--format", "jsonl"],
        );
        assert!(
            o.status.success(),
            "after a kill at {at:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(dir.path().join("ckpt/.stance-checkpoint").is_file());
    }
    // A clean run afterwards removes every leftover of the killed ones.
    assert!(run().wait().unwrap().success());
    let stray: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".ckpt"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}
