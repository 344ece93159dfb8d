//! `stance download` against servers on 127.0.0.1 that speak the Hugging
//! Face Hub's protocol (`/{repo}/resolve/{revision}/{file}`, `X-Repo-Commit`,
//! `ETag` / `X-Linked-Etag`, a redirect to a CDN for LFS files), reached via
//! `HF_ENDPOINT`: an honest hub, then hostile ones. Every hostile case must
//! fail with a message naming what was wrong, without a panic, without
//! writing outside the cache, and without keeping an unverified file.

use crate::common;

use sha1::Digest as _;
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const OTHER_COMMIT: &str = "fedcba9876543210fedcba9876543210fedcba98";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
fn sha256(b: &[u8]) -> String {
    hex(&sha2::Sha256::digest(b))
}
/// The git blob id, as `git hash-object` prints it.
fn git_sha1(b: &[u8]) -> String {
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", b.len()).as_bytes());
    h.update(b);
    hex(&h.finalize())
}

struct Req {
    path: String,
    authorization: Option<String>,
}

enum Reply {
    /// A complete response, then close.
    Raw(Vec<u8>),
    /// Send these bytes, then hold the connection open, silent.
    Stall(Vec<u8>),
    /// Send this head, then zeros until the client hangs up.
    Endless(Vec<u8>),
}

fn response(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("HTTP/1.1 {status}\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    r.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut r = r.into_bytes();
    r.extend_from_slice(body);
    r
}

fn not_found() -> Reply {
    Reply::Raw(response("404 Not Found", &[], b""))
}

/// Serve until the test process ends; each connection on its own thread.
fn serve(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handler = Arc::new(handler);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let handler = handler.clone();
            std::thread::spawn(move || handle(stream, &*handler));
        }
    });
    port
}

fn handle(mut stream: TcpStream, handler: &dyn Fn(&Req) -> Reply) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    let mut authorization = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("authorization") {
                authorization = Some(v.trim().to_string());
            }
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
    match handler(&Req {
        path,
        authorization,
    }) {
        Reply::Raw(bytes) => {
            let _ = stream.write_all(&bytes);
        }
        Reply::Stall(bytes) => {
            let _ = stream.write_all(&bytes);
            std::thread::sleep(Duration::from_secs(60));
        }
        Reply::Endless(head) => {
            let _ = stream.write_all(&head);
            let zeros = vec![0u8; 1 << 16];
            while stream.write_all(&zeros).is_ok() {}
        }
    }
}

/// An honest hub for `org/tiny` at `main`: small files straight back with
/// their git blob id as ETag, weights as an LFS file (a 302 to `/cdn/<sha>`
/// carrying X-Linked-Etag and X-Linked-Size).
struct Hub {
    files: HashMap<String, Vec<u8>>,
    commit: String,
}

impl Hub {
    fn new(files: HashMap<String, Vec<u8>>) -> Hub {
        Hub {
            files,
            commit: COMMIT.into(),
        }
    }

    fn reply(&self, req: &Req) -> Reply {
        if let Some(sha) = req.path.strip_prefix("/cdn/") {
            return match self.files.values().find(|b| sha256(b) == sha) {
                Some(b) => Reply::Raw(response("200 OK", &[], b)),
                None => not_found(),
            };
        }
        let Some(name) = req.path.strip_prefix("/org/tiny/resolve/main/") else {
            return not_found();
        };
        let Some(body) = self.files.get(name) else {
            return not_found();
        };
        if name.ends_with(".safetensors") {
            Reply::Raw(response(
                "302 Found",
                &[
                    ("X-Repo-Commit", self.commit.clone()),
                    ("X-Linked-Etag", format!("\"{}\"", sha256(body))),
                    ("X-Linked-Size", body.len().to_string()),
                    ("ETag", format!("\"{}\"", git_sha1(b"pointer"))),
                    ("Location", format!("/cdn/{}", sha256(body))),
                ],
                b"",
            ))
        } else {
            Reply::Raw(response(
                "200 OK",
                &[
                    ("X-Repo-Commit", self.commit.clone()),
                    ("ETag", format!("\"{}\"", git_sha1(body))),
                ],
                body,
            ))
        }
    }
}

fn base_files(dir: &Path) -> HashMap<String, Vec<u8>> {
    let base = common::tiny_base(dir, 4);
    // No tokenizer.json on the server: stance must build it from vocab.txt.
    ["config.json", "vocab.txt", "model.safetensors"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(base.join(f)).unwrap()))
        .collect()
}

fn stance(args: &[&str], endpoint: &str, home: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stance"))
        .args(args)
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HOME", home)
        .env("STANCE_CACHE", home.join("stance-cache"))
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap()
}

fn cache_dir(home: &Path) -> PathBuf {
    home.join("hub").join("models--org--tiny")
}

#[test]
fn downloads_from_an_honest_hub_then_offline_from_cache() {
    let t = tempfile::tempdir().unwrap();
    let files = base_files(&t.path().join("src"));
    let weights = files["model.safetensors"].clone();
    let hub = Hub::new(files);
    let port = serve(move |r| hub.reply(r));
    let endpoint = format!("http://127.0.0.1:{port}");
    let home = t.path().join("hf-home");
    let out = t.path().join("got");
    let o = stance(
        &["download", "org/tiny", "--out", out.to_str().unwrap()],
        &endpoint,
        &home,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("model.safetensors:") && err.contains("sha256 verified"),
        "{err}"
    );
    assert!(
        err.contains("config.json:") && err.contains("git blob sha1 verified"),
        "{err}"
    );
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
        weights
    );
    // The download was hashed as it was verified, without leaving a
    // remembered hash under its temporary name.
    let records = home.join("stance-cache/sha256");
    for r in std::fs::read_dir(&records).into_iter().flatten().flatten() {
        let text = std::fs::read_to_string(r.path()).unwrap();
        assert!(!text.contains(".incoming.tmp"), "stale record: {text}");
    }

    // The cache has huggingface_hub's layout, so Python tools share it.
    let cache = cache_dir(&home);
    assert_eq!(
        std::fs::read_to_string(cache.join("refs/main")).unwrap(),
        COMMIT
    );
    let link = cache
        .join("snapshots")
        .join(COMMIT)
        .join("model.safetensors");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("../../blobs").join(sha256(&weights))
    );
    assert_eq!(std::fs::read(&link).unwrap(), weights);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&link).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);

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

    // Offline: served from the cache, with an unreachable endpoint.
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
    assert_eq!(
        std::fs::read(out2.join("model.safetensors")).unwrap(),
        weights
    );

    // HF_HUB_OFFLINE=1 means the same as --offline, as in huggingface_hub.
    let out_env = t.path().join("got-env");
    let o = Command::new(env!("CARGO_BIN_EXE_stance"))
        .args(["download", "org/tiny", "--out", out_env.to_str().unwrap()])
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env("HF_HOME", &home)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read(out_env.join("model.safetensors")).unwrap(),
        weights
    );

    // A truncated blob in the cache is never used: offline refuses it...
    let blob = cache.join("blobs").join(sha256(&weights));
    std::fs::write(&blob, &weights[..weights.len() / 2]).unwrap();
    let out3 = t.path().join("got3");
    let o = stance(
        &[
            "download",
            "org/tiny",
            "--offline",
            "--out",
            out3.to_str().unwrap(),
        ],
        "http://127.0.0.1:9",
        &home,
    );
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(&sha256(&weights)) && e.contains("does not match its sha256"),
        "{e}"
    );
    assert!(!out3.exists());
    // ...and online fetches it again and repairs the cache.
    let o = stance(
        &["download", "org/tiny", "--out", out3.to_str().unwrap()],
        &endpoint,
        &home,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("fetching it again"));
    assert_eq!(std::fs::read(&blob).unwrap(), weights);
    assert_eq!(
        std::fs::read(out3.join("model.safetensors")).unwrap(),
        weights
    );

    // A second online run reuses the verified blobs.
    let out4 = t.path().join("got4");
    let o = stance(
        &["download", "org/tiny", "--out", out4.to_str().unwrap()],
        &endpoint,
        &home,
    );
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("model.safetensors: in the cache, sha256 verified"));
}

#[test]
fn git_blob_ids_match_git() {
    // `printf 'hello\n' | git hash-object --stdin`
    assert_eq!(
        git_sha1(b"hello\n"),
        "ce013625030ba8dba906f756967f9e9ca394464a"
    );
    let t = tempfile::tempdir().unwrap();
    let p = t.path().join("f");
    std::fs::write(&p, b"hello\n").unwrap();
    let d =
        stance::hub::digest::Digest::parse("\"ce013625030ba8dba906f756967f9e9ca394464a\"").unwrap();
    assert!(d.matches(&p).unwrap());
    std::fs::write(&p, b"hello").unwrap();
    assert!(!d.matches(&p).unwrap());
    // An empty file (`git hash-object /dev/null`; sha256 of nothing).
    std::fs::write(&p, b"").unwrap();
    let empty =
        stance::hub::digest::Digest::parse("e69de29bb2d1d6434b8b29ae775ad8c2e48c5391").unwrap();
    assert!(empty.matches(&p).unwrap());
    let empty256 = stance::hub::digest::Digest::parse(&sha256(b"")).unwrap();
    assert!(empty256.matches(&p).unwrap());
}

#[test]
fn the_token_goes_to_the_hub_only_never_to_the_cdn() {
    let t = tempfile::tempdir().unwrap();
    let files = base_files(&t.path().join("src"));
    // (path, Authorization) of every request.
    type Log = Arc<Mutex<Vec<(String, Option<String>)>>>;
    let seen: Log = Arc::default();
    let log = seen.clone();
    let port_cell: Arc<Mutex<u16>> = Arc::default();
    let pc = port_cell.clone();
    let hub = Hub::new(files);
    let port = serve(move |r| {
        log.lock()
            .unwrap()
            .push((r.path.clone(), r.authorization.clone()));
        match hub.reply(r) {
            // Send the CDN hop to another host name for the same server.
            Reply::Raw(b) if r.path.ends_with(".safetensors") => {
                let s = String::from_utf8(b).unwrap().replace(
                    "Location: /cdn/",
                    &format!("Location: http://localhost:{}/cdn/", pc.lock().unwrap()),
                );
                Reply::Raw(s.into_bytes())
            }
            other => other,
        }
    });
    *port_cell.lock().unwrap() = port;
    let out = t.path().join("got");
    let o = Command::new(env!("CARGO_BIN_EXE_stance"))
        .args(["download", "org/tiny", "--out", out.to_str().unwrap()])
        .env("HF_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("HF_HOME", t.path().join("h"))
        .env("HF_TOKEN", "hf_secret")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let seen = seen.lock().unwrap();
    assert!(seen
        .iter()
        .filter(|(p, _)| p.starts_with("/org/"))
        .all(|(_, a)| a.as_deref() == Some("Bearer hf_secret")));
    let cdn: Vec<_> = seen
        .iter()
        .filter(|(p, _)| p.starts_with("/cdn/"))
        .collect();
    assert_eq!(cdn.len(), 1, "{seen:?}");
    assert_eq!(cdn[0].1, None, "the token leaked to the CDN");
}

/// Every file under `dir` with its content, links as their targets.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut m = BTreeMap::new();
    fn walk(d: &Path, m: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            if ft.is_symlink() {
                m.insert(
                    p.clone(),
                    std::fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                );
            } else if ft.is_dir() {
                walk(&p, m);
            } else {
                m.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    walk(dir, &mut m);
    m
}

type Hostile = Box<dyn Fn(&Hub, &Req) -> Option<Reply> + Send + Sync>;

fn resolve(file: &str) -> String {
    format!("/org/tiny/resolve/main/{file}")
}

/// Answer requests for `file` with `reply`; the honest hub answers the rest.
fn on(file: &'static str, reply: impl Fn(&Hub) -> Reply + Send + Sync + 'static) -> Hostile {
    Box::new(move |hub, r| (r.path == resolve(file)).then(|| reply(hub)))
}

/// Answer requests for `file` with this status, headers and body.
fn answer(
    file: &'static str,
    status: &'static str,
    headers: Vec<(&'static str, String)>,
    body: &[u8],
) -> Hostile {
    let body = body.to_vec();
    on(file, move |_| Reply::Raw(response(status, &headers, &body)))
}

/// Answer the CDN hop (the LFS body) with `reply`.
fn cdn(reply: impl Fn() -> Reply + Send + Sync + 'static) -> Hostile {
    Box::new(move |_, r| r.path.starts_with("/cdn/").then(&reply))
}

fn commit() -> (&'static str, String) {
    ("X-Repo-Commit", COMMIT.into())
}

fn quoted(h: String) -> String {
    format!("\"{h}\"")
}

/// A head that announces `len` bytes, then part of the body.
fn cut(head: String, len: usize, body: &[u8]) -> Reply {
    let mut b =
        format!("HTTP/1.1 200 OK\r\n{head}Content-Length: {len}\r\nConnection: close\r\n\r\n")
            .into_bytes();
    b.extend_from_slice(body);
    Reply::Raw(b)
}

#[test]
fn hostile_hubs_are_refused_and_leave_nothing_unverified() {
    let t = tempfile::tempdir().unwrap();
    let files = base_files(&t.path().join("src"));
    let config = files["config.json"].clone();
    let weights = files["model.safetensors"].clone();
    let lfs = |etag: String, location: &str| {
        vec![
            commit(),
            ("X-Linked-Etag", etag),
            ("Location", location.to_string()),
        ]
    };
    let junk = b"\xff\xff\xff\xff\xff\xff\xff\x7fjunk".to_vec();
    let (c, w, j) = (config.clone(), weights.clone(), junk.clone());
    let (w2, w3) = (weights.clone(), weights.clone());
    // (name, extra flags, the misbehaviour, what the error must say)
    #[rustfmt::skip]
    let cases: Vec<(&str, Vec<&str>, Hostile, &str)> = vec![
        ("commit with ../", vec![],
            answer("config.json", "200 OK", vec![("X-Repo-Commit", "../../..".into()), ("ETag", quoted("x".into()))], b"{}"),
            "X-Repo-Commit \"../../..\""),
        ("etag with ../", vec![],
            answer("config.json", "200 OK", vec![commit(), ("ETag", quoted("../../../../escape".into()))], b"{}"),
            "ETag \"\\\"../../../../escape\\\"\""),
        ("linked etag with ../", vec![],
            answer("model.safetensors", "302 Found", lfs("../../blobs/x".into(), "/cdn/x"), b""),
            "X-Linked-Etag"),
        ("no X-Repo-Commit (not a hub)", vec![],
            answer("config.json", "200 OK", vec![], b"{}"),
            "sent no X-Repo-Commit"),
        ("redirect loop", vec![],
            answer("model.safetensors", "302 Found", lfs(quoted("ab".repeat(32)), &resolve("model.safetensors")), b""),
            "more than 5 redirects"),
        ("redirect to file://", vec![],
            answer("config.json", "302 Found", vec![commit(), ("ETag", quoted(git_sha1(b"{}"))), ("Location", "file:///etc/passwd".into())], b""),
            "only http and https"),
        ("stalled body", vec!["--timeout", "1"],
            on("config.json", |_| Reply::Stall(format!("HTTP/1.1 200 OK\r\nX-Repo-Commit: {COMMIT}\r\nETag: \"{COMMIT}\"\r\nContent-Length: 1000\r\n\r\n{{\"a\"").into_bytes())),
            "sent nothing for 1 s after 4 bytes"),
        ("stalled head", vec!["--timeout", "1"],
            on("config.json", |_| Reply::Stall(Vec::new())),
            "cannot fetch config.json"),
        ("100 GB announced, endless body", vec![],
            on("model.safetensors", |_| Reply::Endless(format!("HTTP/1.1 200 OK\r\nX-Repo-Commit: {COMMIT}\r\nX-Linked-Etag: \"{}\"\r\nX-Linked-Size: 100000000000\r\nContent-Range: bytes 0-99999999999/100000000000\r\n\r\n", "ab".repeat(32)).into_bytes())),
            "announced as 100000000000 bytes, over the 8589934592-byte limit"),
        ("endless body, no length", vec![],
            on("config.json", |_| Reply::Endless(format!("HTTP/1.1 200 OK\r\nX-Repo-Commit: {COMMIT}\r\nETag: \"{}\"\r\nConnection: close\r\n\r\n", "ab".repeat(20)).into_bytes())),
            "larger than the 16777216-byte limit"),
        ("truncated body", vec![],
            on("config.json", move |_| cut(format!("X-Repo-Commit: {COMMIT}\r\nETag: \"{}\"\r\n", git_sha1(&c)), c.len(), &c[..c.len() / 2])),
            "truncated: got"),
        ("truncated LFS blob", vec![],
            cdn(move || cut(String::new(), w.len(), &w[..100])),
            "truncated: got 100 of"),
        ("weights do not match their sha256", vec![],
            cdn(move || {
                let mut bad = w2.clone();
                let n = bad.len();
                bad[n - 1] ^= 1;
                Reply::Raw(response("200 OK", &[], &bad))
            }),
            "corrupt or tampered"),
        ("config does not match its git blob id", vec![],
            answer("config.json", "200 OK", vec![commit(), ("ETag", quoted(git_sha1(b"other")))], b"{}"),
            "corrupt or tampered"),
        ("weights with a sha1 only", vec![],
            answer("model.safetensors", "200 OK", vec![commit(), ("ETag", quoted(git_sha1(&w3)))], &w3),
            "gave no sha256 (X-Linked-Etag)"),
        ("weights that are not safetensors", vec![],
            Box::new(move |_, r| {
                if r.path == resolve("model.safetensors") {
                    Some(Reply::Raw(response("302 Found", &lfs(quoted(sha256(&j)), "/junk"), b"")))
                } else {
                    (r.path == "/junk").then(|| Reply::Raw(response("200 OK", &[], &j)))
                }
            }),
            "not a valid safetensors file"),
        ("files from two commits", vec![],
            on("vocab.txt", |hub| {
                let b = &hub.files["vocab.txt"];
                Reply::Raw(response("200 OK", &[("X-Repo-Commit", OTHER_COMMIT.into()), ("ETag", quoted(git_sha1(b)))], b))
            }),
            "the repository changed during the download"),
        ("HTTP 500", vec![],
            answer("model.safetensors", "500 Internal Server Error", vec![], b""),
            "HTTP 500"),
        ("private repository", vec![],
            answer("config.json", "401 Unauthorized", vec![], b""),
            "set HF_TOKEN"),
        ("bad X-Linked-Size", vec![],
            answer("model.safetensors", "302 Found", vec![commit(), ("X-Linked-Etag", quoted("cd".repeat(32))), ("X-Linked-Size", "-5".into()), ("Location", "/cdn/x".into())], b""),
            "X-Linked-Size \"-5\""),
        ("revision with ../", vec!["--revision", "../../X"],
            Box::new(|_, _| None),
            "--revision \"../../X\""),
    ];
    assert!(cases.len() >= 20);
    for (name, flags, hostile, want) in cases {
        let dir = tempfile::tempdir_in(t.path()).unwrap();
        let hub = Hub::new(files.clone());
        let port = serve(move |r| hostile(&hub, r).unwrap_or_else(|| hub.reply(r)));
        let home = dir.path().join("hf-home");
        let out = dir.path().join("got");
        std::fs::write(dir.path().join("keep.txt"), b"user file").unwrap();
        let before = tree(dir.path());
        let mut args = vec!["download", "org/tiny", "--out", out.to_str().unwrap()];
        args.extend(flags);
        let started = Instant::now();
        let o = stance(&args, &format!("http://127.0.0.1:{port}"), &home);
        let took = started.elapsed();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(want), "{name}: wanted {want:?} in:\n{err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
        assert!(took < Duration::from_secs(20), "{name}: took {took:?}");
        assert!(!out.exists(), "{name}: left {out:?}");
        // Nothing outside the cache changed; in the cache, nothing half
        // written and no blob that does not match its name.
        let after = tree(dir.path());
        for (p, b) in &before {
            assert_eq!(after.get(p), Some(b), "{name}: {p:?} changed");
        }
        for p in after.keys().filter(|p| !before.contains_key(*p)) {
            assert!(
                p.starts_with(cache_dir(&home)),
                "{name}: wrote {p:?} outside the cache"
            );
            let file = p.file_name().unwrap().to_string_lossy().into_owned();
            assert!(!file.starts_with('.'), "{name}: left {p:?}");
            if p.parent().unwrap().ends_with("blobs") {
                let b = std::fs::read(p).unwrap();
                assert!(
                    file == sha256(&b) || file == git_sha1(&b),
                    "{name}: unverified blob {p:?}"
                );
            }
        }
    }
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
    let mut files = base_files(&t.path().join("src"));
    files.remove("model.safetensors");
    let hub = Hub::new(files);
    let port = serve(move |r| hub.reply(r));
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

#[test]
fn a_moved_delta_checkpoint_finds_its_base_in_the_hub_cache() {
    let t = tempfile::tempdir().unwrap();
    let hub = Hub::new(base_files(&t.path().join("src")));
    let port = serve(move |r| hub.reply(r));
    let home = t.path().join("hf-home");
    let base = t.path().join("base");
    let o = stance(
        &["download", "org/tiny", "--out", base.to_str().unwrap()],
        &format!("http://127.0.0.1:{port}"),
        &home,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    common::write_jsonl(&t.path().join("train.jsonl"), common::TRAIN_ROWS, 4);
    let bin = env!("CARGO_BIN_EXE_stance");
    let run = |args: &[&str]| {
        Command::new(bin)
            .args(args)
            .current_dir(t.path())
            .env("HF_HOME", &home)
            .env("HF_ENDPOINT", "http://127.0.0.1:9")
            .env_remove("STANCE_BASE_DIR")
            .output()
            .unwrap()
    };
    let o = run(&[
        "train",
        "--train",
        "train.jsonl",
        "--base",
        base.to_str().unwrap(),
        "--out",
        "ckpt",
        "--method",
        "head",
        "--delta",
        "--base-id",
        "org/tiny",
        "--epochs",
        "1",
        "--max-len",
        "32",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(t.path().join("a.txt"), "The mayor denied the report.\n").unwrap();
    let before = run(&["predict", "--model", "ckpt", "a.txt", "--format", "jsonl"]);
    assert!(
        before.status.success(),
        "{}",
        String::from_utf8_lossy(&before.stderr)
    );
    // The base directory is gone (a copied checkpoint on another machine):
    // the base is found in the hub cache by id and sha256.
    std::fs::remove_dir_all(&base).unwrap();
    let after = run(&["predict", "--model", "ckpt", "a.txt", "--format", "jsonl"]);
    assert!(
        after.status.success(),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
    assert_eq!(after.stdout, before.stdout);
    // Without the cache it is a clear error naming where it looked.
    std::fs::remove_dir_all(&home).unwrap();
    let gone = run(&["predict", "--model", "ckpt", "a.txt"]);
    assert_eq!(gone.status.code(), Some(1));
    let e = String::from_utf8_lossy(&gone.stderr);
    assert!(
        e.contains("needs its base model org/tiny") && e.contains("hub cache"),
        "{e}"
    );
}

#[test]
fn model_flag_takes_a_hub_name_downloads_once_then_runs_offline() {
    let t = tempfile::tempdir().unwrap();
    let ckpt = common::train_tiny(env!("CARGO_BIN_EXE_stance"), &t.path().join("train"));
    let files: HashMap<String, Vec<u8>> = ["config.json", "tokenizer.json", "model.safetensors"]
        .iter()
        .map(|f| (f.to_string(), std::fs::read(ckpt.join(f)).unwrap()))
        .collect();
    let hub = Hub::new(files);
    let port = serve(move |r| hub.reply(r));
    let home = t.path().join("hf-home");
    let article = t.path().join("a.txt");
    std::fs::write(
        &article,
        "The mayor denied the report. Police accused him.\n",
    )
    .unwrap();
    let a = article.to_str().unwrap();
    let local = stance(
        &[
            "predict",
            "--model",
            ckpt.to_str().unwrap(),
            "--format",
            "jsonl",
            a,
        ],
        "http://127.0.0.1:9",
        &home,
    );
    assert!(
        local.status.success(),
        "{}",
        String::from_utf8_lossy(&local.stderr)
    );

    // A hub name: fetched into the cache (nowhere else), then used.
    let o = stance(
        &["predict", "--model", "org/tiny", "--format", "jsonl", a],
        &format!("http://127.0.0.1:{port}"),
        &home,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout, local.stdout, "the same labels as the local copy");
    assert!(cache_dir(&home)
        .join("snapshots")
        .join(COMMIT)
        .join("model.safetensors")
        .is_file());

    // Offline, with the hub gone: from the cache, by name and by revision.
    for name in ["org/tiny", &format!("org/tiny@{COMMIT}")] {
        let o = Command::new(env!("CARGO_BIN_EXE_stance"))
            .args(["predict", "--model", name, "--format", "jsonl", a])
            .env("HF_ENDPOINT", "http://127.0.0.1:9")
            .env("HF_HOME", &home)
            .env("HF_HUB_OFFLINE", "1")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(o.stdout, local.stdout);
    }

    // A name that is not cached, offline: a clear error naming it, no panic.
    let o = Command::new(env!("CARGO_BIN_EXE_stance"))
        .args(["predict", "--model", "org/other", a])
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env("HF_HOME", &home)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("org/other") && err.contains("not in the cache"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
}
