//! `stance download` against a local HTTP server that serves files in the
//! Hugging Face Hub's URL layout (`/{repo}/resolve/{revision}/{file}`), via
//! `HF_ENDPOINT`; then `--offline` from the filled cache, and the errors
//! when the hub cannot be reached or the cache is empty.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

/// Serve `files` for repo `org/tiny` at revision `main` until the process ends.
fn serve(files: HashMap<String, Vec<u8>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            let mut range: Option<(usize, Option<usize>)> = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(r) = lower.strip_prefix("range: bytes=") {
                    let (a, b) = r.trim().split_once('-').unwrap();
                    range = Some((a.parse().unwrap(), b.parse().ok()));
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            let file = path
                .strip_prefix("/org/tiny/resolve/main/")
                .and_then(|f| files.get(f));
            let response = match file {
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
                Some(body) => {
                    let (start, end) = range
                        .map(|(a, b)| (a, b.unwrap_or(body.len() - 1).min(body.len() - 1)))
                        .unwrap_or((0, body.len() - 1));
                    let part = &body[start..=end];
                    let mut head = format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{end}/{}\r\nETag: \"etag-{}-{}\"\r\nX-Repo-Commit: 0123456789abcdef0123456789abcdef01234567\r\nConnection: close\r\n\r\n",
                        part.len(),
                        body.len(),
                        path.len(),
                        body.len()
                    )
                    .into_bytes();
                    head.extend_from_slice(part);
                    head
                }
            };
            let _ = stream.write_all(&response);
        }
    });
    port
}

fn stance(args: &[&str], endpoint: &str, home: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stance"))
        .args(args)
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HOME", home)
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap()
}

#[test]
fn downloads_from_a_hub_layout_server_then_offline_from_cache() {
    let t = tempfile::tempdir().unwrap();
    let base = common::tiny_base(&t.path().join("src"), 4);
    let mut files = HashMap::new();
    // No tokenizer.json on the server: stance must build it from vocab.txt.
    for f in ["config.json", "vocab.txt", "model.safetensors"] {
        files.insert(f.to_string(), std::fs::read(base.join(f)).unwrap());
    }
    let port = serve(files);
    let endpoint = format!("http://127.0.0.1:{port}");
    let home = t.path().join("hf-home");
    let out = t.path().join("got");
    let o = stance(
        &["download", "org/tiny", "--out", out.to_str().unwrap()],
        &endpoint,
        &home,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "config.json",
        "vocab.txt",
        "model.safetensors",
        "tokenizer.json",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    assert_eq!(
        std::fs::read(out.join("model.safetensors")).unwrap(),
        std::fs::read(base.join("model.safetensors")).unwrap()
    );
    // The downloaded directory works as a training base.
    let ck = stance::checkpoint::load_base(
        &out,
        &stance::labels::LabelSet::default_stance(),
        32,
        1,
        &candle_core::Device::Cpu,
    )
    .unwrap();
    assert_eq!(
        ck.load_report.fresh,
        vec!["classifier.weight", "classifier.bias"]
    );
    assert_eq!(
        ck.encoder.encode(&["the report"], None).unwrap()[0]
            .ids
            .len(),
        4
    );

    // Offline: served from the HF_HOME cache, with an unreachable endpoint.
    let out2 = t.path().join("got2");
    let o = stance(
        &[
            "download",
            "org/tiny",
            "--offline",
            "--out",
            out2.to_str().unwrap(),
        ],
        "http://127.0.0.1:9",
        &home,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out2.join("model.safetensors").is_file());
}

#[test]
fn unreachable_hub_and_empty_cache_are_clear_errors() {
    let t = tempfile::tempdir().unwrap();
    let home = t.path().join("hf-home");
    let out = t.path().join("got");
    let o = stance(
        &["download", "org/tiny", "--out", out.to_str().unwrap()],
        "http://127.0.0.1:9",
        &home,
    );
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("org/tiny") && e.contains("cannot fetch config.json from http://127.0.0.1:9"),
        "{e}"
    );
    let o = stance(
        &[
            "download",
            "org/tiny",
            "--offline",
            "--out",
            out.to_str().unwrap(),
        ],
        "http://127.0.0.1:9",
        &home,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not in the cache"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!out.exists());
}

#[test]
fn missing_weights_on_the_hub_is_named() {
    let t = tempfile::tempdir().unwrap();
    let base = common::tiny_base(&t.path().join("src"), 4);
    let mut files = HashMap::new();
    for f in ["config.json", "tokenizer.json"] {
        files.insert(f.to_string(), std::fs::read(base.join(f)).unwrap());
    }
    let port = serve(files);
    let o = stance(
        &[
            "download",
            "org/tiny",
            "--out",
            t.path().join("x").to_str().unwrap(),
        ],
        &format!("http://127.0.0.1:{port}"),
        &t.path().join("h"),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("has no model.safetensors"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
