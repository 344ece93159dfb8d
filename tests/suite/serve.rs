//! `stance serve` end to end on a tiny random model: the server runs as a
//! child process on 127.0.0.1:0 and is driven over real HTTP.

use crate::common;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_stance");
const ARTICLE: &str = "Mayor denies report\n\nThe mayor denied the report. Police accused the driver of fraud. The town was founded in 1820.";

pub struct Server {
    child: Child,
    base: String,
}

impl Server {
    /// `stance serve --model CKPT EXTRA...` on a free port; sentences only
    /// (not the shipped tagger) unless `extra` names a --tagger.
    pub fn start(ckpt: &std::path::Path, extra: &[&str]) -> Server {
        let who: &[&str] = if extra.contains(&"--tagger") {
            &[]
        } else {
            &["--no-attribution"]
        };
        let mut child = Command::new(BIN)
            .args(["serve", "--model"])
            .arg(ckpt)
            .args(["--addr", "127.0.0.1:0"])
            .args(who)
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        let at = line
            .find("http://")
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        let base = line[at..]
            .split_whitespace()
            .next()
            .unwrap()
            .trim_end_matches('/')
            .to_string();
        // Keep draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = err.read_to_string(&mut rest);
        });
        Server { child, base }
    }
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
    fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }
    pub fn post_json(&self, path: &str, body: &str) -> (u16, Value) {
        match ureq::post(&self.url(path))
            .set("Content-Type", "application/json")
            .send_string(body)
        {
            Ok(r) => (r.status(), r.into_json().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap()),
            Err(e) => panic!("{e}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli_predict(dir: &std::path::Path, text: &str) -> Vec<Value> {
    std::fs::write(dir.join("cli.txt"), text).unwrap();
    let o = Command::new(BIN)
        .args(["predict", "--model", "ckpt", "--format", "jsonl", "cli.txt"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn api_answers_like_the_cli_and_refuses_bad_requests() {
    let t = tempfile::tempdir().unwrap();
    let ckpt = common::train_tiny(BIN, t.path());
    let s = Server::start(&ckpt, &["--max-body", "4000"]);

    let health: Value = ureq::get(&s.url("/healthz"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(health["status"], "ok");
    let model: Value = ureq::get(&s.url("/v1/model"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(
        model["labels"],
        json!(["assertion", "denial", "allegation", "context"])
    );
    assert_eq!(model["max_length"], 32);

    // One article: the same sentences, offsets, labels and probabilities as `stance predict`.
    let (code, v) = s.post_json("/v1/predict", &json!({"text": ARTICLE}).to_string());
    assert_eq!(code, 200, "{v}");
    let got = v["articles"][0]["sentences"].as_array().unwrap();
    let want = cli_predict(t.path(), ARTICLE);
    assert_eq!(got.len(), want.len());
    assert_eq!(got.len(), 4);
    for (g, w) in got.iter().zip(&want) {
        for k in [
            "index",
            "start",
            "end",
            "text",
            "label",
            "probability",
            "probabilities",
        ] {
            assert_eq!(g[k], w[k], "{k}");
        }
    }
    assert_eq!(v["model"]["labels"], model["labels"]);

    // Several articles: ids come back as sent (types kept), top_k, threshold, HTML input.
    let body = json!({"articles": [
        {"id": 7, "text": "The mayor denied the report."},
        {"id": "b", "text": "<p>Police accused the driver &amp; his son.</p><script>x()</script><p>The town was founded in 1820.</p>", "format": "html"}
    ], "top_k": 2, "threshold": 0.99});
    let (code, v) = s.post_json("/v1/predict", &body.to_string());
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["articles"][0]["id"], json!(7));
    assert_eq!(v["articles"][1]["id"], json!("b"));
    let html_sentences: Vec<&str> = v["articles"][1]["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        html_sentences,
        [
            "Police accused the driver & his son.",
            "The town was founded in 1820."
        ]
    );
    for a in v["articles"].as_array().unwrap() {
        for x in a["sentences"].as_array().unwrap() {
            assert_eq!(x["top_k"].as_array().unwrap().len(), 2);
            assert_eq!(
                x["label"], "uncertain",
                "a tiny model is never 0.99 sure: {x}"
            );
        }
    }

    // The HTML view endpoint returns the self-contained page.
    let page = ureq::post(&s.url("/v1/view"))
        .send_string(&json!({"text": ARTICLE}).to_string())
        .unwrap();
    assert!(page.content_type().starts_with("text/html"));
    let page = page.into_string().unwrap();
    assert_eq!(page.matches("data-label=").count(), 4);
    let root = ureq::get(&s.url("/"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(root.contains("<textarea") && root.contains("/v1/view"));

    // Bad requests: 4xx with a JSON error that names the problem.
    for (body, code, want) in [
        ("{", 400, "not valid JSON"),
        ("{}", 400, "missing \"text\""),
        (r#"{"text": "   "}"#, 400, "empty"),
        (
            r#"{"text": "x.", "colour": 1}"#,
            400,
            "unknown field \"colour\"",
        ),
        (
            r#"{"articles": [{"text": "ok."}, {"id": 1}]}"#,
            400,
            "articles[1]",
        ),
    ] {
        let (c, v) = s.post_json("/v1/predict", body);
        assert_eq!(c, code, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(want), "{body}: {v}");
    }
    let big = json!({"text": "The mayor denied it. ".repeat(300)}).to_string();
    let (c, v) = s.post_json("/v1/predict", &big);
    assert_eq!(c, 413, "{v}");
    assert!(v["error"].as_str().unwrap().contains("4000-byte limit"));
    let r = ureq::post(&s.url("/v1/predict"))
        .set("Content-Type", "text/plain")
        .send_string("x");
    assert!(matches!(r, Err(ureq::Error::Status(415, _))));
    let r = ureq::get(&s.url("/v2/nothing")).call();
    assert!(matches!(r, Err(ureq::Error::Status(404, _))));

    // Concurrent requests (batched together by the model thread) get the
    // same answers as one at a time.
    let alone = s
        .post_json("/v1/predict", &json!({"text": ARTICLE}).to_string())
        .1["articles"]
        .clone();
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..12)
            .map(|i| {
                let s = &s;
                sc.spawn(move || {
                    let text = if i % 2 == 0 {
                        ARTICLE.to_string()
                    } else {
                        format!("Sentence {i} is here. The mayor denied it.")
                    };
                    (
                        i,
                        text.clone(),
                        s.post_json("/v1/predict", &json!({"text": text}).to_string()),
                    )
                })
            })
            .collect();
        for h in hs {
            let (i, text, (code, v)) = h.join().unwrap();
            assert_eq!(code, 200);
            if i % 2 == 0 {
                assert_eq!(v["articles"], alone);
            } else {
                assert_eq!(
                    v["articles"][0]["sentences"][0]["text"],
                    text.split(". ").next().unwrap().to_string() + "."
                );
            }
        }
    });
}

/// Send an HTTP/1.1 request with a chunked body, chunk by chunk.
fn chunked_request(addr: &str, path: &str, content_type: &str) -> TcpStream {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(c, "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").unwrap();
    c
}

fn send_chunk(c: &mut TcpStream, data: &str) {
    write!(c, "{:x}\r\n{data}\r\n", data.len()).unwrap();
    c.flush().unwrap();
}

/// Read from `c` until `needle` has appeared `times` times in what came so far.
fn read_until(c: &mut TcpStream, got: &mut String, needle: &str, times: usize) {
    let mut buf = [0u8; 4096];
    while got.matches(needle).count() < times {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed; got {got:?}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

#[test]
fn ndjson_streams_in_order_and_sigterm_lets_requests_finish() {
    let t = tempfile::tempdir().unwrap();
    let ckpt = common::train_tiny(BIN, t.path());
    let mut s = Server::start(&ckpt, &[]);

    // Plain NDJSON: one line out per line in, in order; a bad line gets an
    // error record naming its line, and the rest go on.
    let body = "{\"id\": 1, \"text\": \"The mayor denied the report.\", \"url\": \"u\"}\nnot json\n\n{\"id\": \"x\", \"text\": \"Police accused him. He was arrested.\"}\n";
    let r = ureq::post(&s.url("/v1/predict"))
        .set("Content-Type", "application/x-ndjson")
        .send_string(body)
        .unwrap();
    assert_eq!(r.content_type(), "application/x-ndjson");
    let lines: Vec<Value> = r
        .into_string()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["id"], json!(1));
    assert_eq!(lines[0]["sentences"].as_array().unwrap().len(), 1);
    assert_eq!(lines[1]["line"], json!(2));
    assert!(lines[1]["error"].as_str().unwrap().contains("bad JSON"));
    assert_eq!(lines[2]["id"], json!("x"));
    assert_eq!(lines[2]["sentences"].as_array().unwrap().len(), 2);

    // Streaming: the first article's answer arrives before the second is sent.
    let mut c = chunked_request(s.addr(), "/v1/predict", "application/x-ndjson");
    send_chunk(
        &mut c,
        "{\"id\": \"first\", \"text\": \"The mayor denied the report.\"}\n",
    );
    let mut got = String::new();
    read_until(&mut c, &mut got, "\"sentences\"", 1);
    assert!(got.contains("\"first\""));

    // SIGTERM with that request still open: the server stops accepting,
    // but the open request is finished.
    unsafe { libc::kill(s.child.id() as i32, libc::SIGTERM) };
    std::thread::sleep(Duration::from_millis(300));
    send_chunk(
        &mut c,
        "{\"id\": \"second\", \"text\": \"Police accused the driver.\"}\n",
    );
    send_chunk(&mut c, "");
    read_until(&mut c, &mut got, "\"sentences\"", 2);
    assert!(got.contains("\"second\""));
    let start = Instant::now();
    loop {
        if let Some(st) = s.child.try_wait().unwrap() {
            assert!(st.success(), "exit status {st}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "server did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        TcpStream::connect(s.addr()).is_err(),
        "still accepting after shutdown"
    );
}

#[test]
fn bounded_load_test_has_no_errors_and_no_memory_growth() {
    let t = tempfile::tempdir().unwrap();
    let ckpt = common::train_tiny(BIN, t.path());
    let s = Server::start(&ckpt, &[]);
    std::fs::write(t.path().join("article.txt"), ARTICLE).unwrap();
    let o = Command::new(BIN)
        .args(["bench", "--mode", "serve", "--url", &s.base, "--data"])
        .arg(t.path().join("article.txt"))
        .args(["--clients", "8", "--requests", "40"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["requests"], 320);
    assert_eq!(r["errors"], 0, "{r}");
    assert!(r["requests_per_s"].as_f64().unwrap() > 0.0);
    assert!(r["p99_ms"].as_f64().unwrap() >= r["p50_ms"].as_f64().unwrap());
    let (warm, end) = (
        r["rss_warm_mb"].as_f64().unwrap(),
        r["rss_end_mb"].as_f64().unwrap(),
    );
    assert!(
        end - warm < 30.0,
        "server memory grew {warm:.1} -> {end:.1} MB under load"
    );
}

/// A free local port (bound, then released for the child to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= (val(c) as u32) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// WebDriver (W3C, over plain HTTP) against Debian's chromedriver.
struct Driver {
    child: Child,
    base: String,
}

impl Driver {
    fn start() -> Option<Driver> {
        let found = Command::new("which")
            .arg("chromedriver")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            assert!(
                std::env::var("STANCE_REQUIRE_BROWSER").is_err(),
                "no chromedriver on PATH (apt-get install chromium-driver)"
            );
            eprintln!("skipped: no chromedriver on PATH");
            return None;
        }
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let d = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let start = Instant::now();
        while ureq::get(&format!("{}/status", d.base)).call().is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(d)
    }
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let r = match body {
            Some(b) => ureq::request(method, &url).send_json(b),
            None => ureq::request(method, &url).call(),
        };
        match r {
            Ok(r) => r.into_json::<Value>().unwrap()["value"].clone(),
            Err(ureq::Error::Status(c, r)) => panic!(
                "{method} {path}: {c} {}",
                r.into_string().unwrap_or_default()
            ),
            Err(e) => panic!("{method} {path}: {e}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

#[test]
fn paste_page_in_a_real_browser() {
    let Some(driver) = Driver::start() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let ckpt = common::train_tiny(BIN, t.path());
    let s = Server::start(&ckpt, &[]);
    let article = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/examples/iran-campaign-hack.txt"
    ))
    .unwrap();
    let want = cli_predict(t.path(), &article);

    let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
        "binary": "/usr/bin/chromium",
        "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,1400"]}}}});
    let session = driver.call("POST", "/session", Some(caps));
    let sid = session["sessionId"].as_str().unwrap().to_string();
    let p = |rest: &str| format!("/session/{sid}{rest}");
    let find = |css: &str| {
        let v = driver.call(
            "POST",
            &p("/element"),
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {v}"))
            .to_string()
    };

    driver.call("POST", &p("/url"), Some(json!({"url": s.url("/")})));
    let area = find("#text");
    driver.call(
        "POST",
        &p(&format!("/element/{area}/value")),
        Some(json!({"text": article})),
    );
    let typed = driver.call(
        "POST",
        &p("/execute/sync"),
        Some(json!({"script": "return document.getElementById('text').value", "args": []})),
    );
    assert_eq!(
        typed.as_str().unwrap(),
        article,
        "the page's textarea holds the article"
    );
    let go = find("#go");
    driver.call("POST", &p(&format!("/element/{go}/click")), Some(json!({})));

    // The view arrives in the iframe: one highlighted element per sentence,
    // carrying the label the CLI gives.
    let frame = find("#view");
    let start = Instant::now();
    let labels: Vec<String> = loop {
        driver.call("POST", &p("/frame"), Some(json!({"id": {ELEMENT: frame}})));
        let got = driver.call("POST", &p("/execute/sync"), Some(json!({"script":
            "return Array.from(document.querySelectorAll('span.s[data-index]')).map(e => e.getAttribute('data-label'))", "args": []})));
        let got: Vec<String> = got
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        driver.call("POST", &p("/frame/parent"), Some(json!({})));
        if !got.is_empty() {
            break got;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no labelled sentences appeared in the page"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let cli: Vec<String> = want
        .iter()
        .map(|v| v["label"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(labels, cli);
    let status = driver.call(
        "POST",
        &p("/execute/sync"),
        Some(json!({"script": "return document.getElementById('status').textContent", "args": []})),
    );
    assert_eq!(status, "done");

    let png = decode_base64(
        driver
            .call("GET", &p("/screenshot"), None)
            .as_str()
            .unwrap(),
    );
    assert_eq!(&png[..4], b"\x89PNG");
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-page.png");
    std::fs::write(&out, png).unwrap();
    eprintln!("screenshot: {}", out.display());
    driver.call("DELETE", &p(""), None);
}
