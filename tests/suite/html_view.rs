//! `stance predict --format html` in a real browser: headless Chromium
//! parses the page and dumps its DOM; the test checks one element per
//! sentence carrying its label and probability, that article text with
//! markup stays text, and saves a screenshot (target/tmp/html-view.png).
//!
//! CI installs Debian's `chromium` and sets STANCE_REQUIRE_BROWSER=1, so
//! there a missing browser fails instead of skipping.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(o) = Command::new("which").arg(name).output() {
            if o.status.success() {
                return Some(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
            }
        }
    }
    assert!(
        std::env::var("STANCE_REQUIRE_BROWSER").is_err(),
        "no chromium on PATH (apt-get install chromium)"
    );
    eprintln!("skipped: no chromium on PATH");
    None
}

fn headless(browser: &Path, extra: &[&str], page: &Path) -> std::process::Output {
    Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap()
}

#[test]
fn html_view_in_a_real_browser() {
    let Some(browser) = chromium() else { return };
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let bin = env!("CARGO_BIN_EXE_stance");
    common::train_tiny(bin, d);
    let article = "Mayor denies <script>document.title='pwned'</script> report\n\nThe mayor denied the report. Police accused the driver of fraud.\nThe town was founded in 1820.\n\nShares rose 4 percent on Monday & fell later.";
    std::fs::write(d.join("a.txt"), article).unwrap();
    std::fs::write(
        d.join("b.txt"),
        "The club denied any wrongdoing. The law dates back decades.",
    )
    .unwrap();
    let o = Command::new(bin)
        .args([
            "predict",
            "--model",
            "ckpt",
            "--format",
            "html",
            "a.txt",
            "b.txt",
            "-o",
            "report.html",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let jsonl = Command::new(bin)
        .args([
            "predict", "--model", "ckpt", "--format", "jsonl", "a.txt", "b.txt",
        ])
        .current_dir(d)
        .output()
        .unwrap();
    let preds: Vec<serde_json::Value> = String::from_utf8_lossy(&jsonl.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    let page = d.join("report.html");
    let dom = headless(&browser, &["--dump-dom"], &page);
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    // No script ran and none was created: the article's markup is text.
    assert!(
        !dom.contains("<script"),
        "the article's <script> became an element"
    );
    assert!(
        dom.contains("&lt;script&gt;"),
        "the article's markup is shown as text"
    );
    assert!(
        dom.contains("<title>stance: 2 articles</title>"),
        "title unchanged by the article's script"
    );
    // One focusable element per sentence, each carrying the label the JSONL output gives it.
    let spans: Vec<&str> = dom.split("tabindex=\"0\"").skip(1).collect();
    assert_eq!(spans.len(), preds.len(), "one element per sentence");
    for (span, p) in spans.iter().zip(&preds) {
        let label = p["label"].as_str().unwrap();
        assert!(
            span.contains(&format!("data-label=\"{label}\"")),
            "{span} vs {p}"
        );
        assert!(
            span.contains(&format!(
                "aria-label=\"sentence {}: {label} ",
                p["index"].as_u64().unwrap() + 1
            )),
            "{span}"
        );
    }
    // Two articles, two sections, each with its summary and strip; no external assets.
    assert_eq!(dom.matches("<section class=\"article\"").count(), 2);
    assert_eq!(dom.matches("<nav class=\"strip\"").count(), 2);
    assert!(
        !dom.contains("src=\"http") && !dom.contains("href=\"http"),
        "external asset"
    );

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("html-view.png");
    let _ = std::fs::remove_file(&shot);
    let o = headless(
        &browser,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1100,1400",
        ],
        &page,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot of {} bytes",
        png.len()
    );
}
