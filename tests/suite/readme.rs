//! The README's sample output is what the binary prints: the block after
//! "Output of `scripts/quickstart.sh`" must equal `stance predict --format
//! table` on the seed article with the shipped model (the quickstart's own
//! command), so the README cannot go stale when the model is reshipped.
//! Needs the base encoder's weights, like tests/suite/shipped_model.rs.

use std::path::Path;

#[test]
fn readme_sample_is_what_quickstart_prints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !crate::common::shipped_base_present(root) {
        return;
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let after = readme
        .split("Output of `scripts/quickstart.sh`")
        .nth(1)
        .expect("README has the quickstart sample");
    let block = after.split("```\n").nth(1).expect("a fenced block follows");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stance"))
        .args([
            "predict",
            "--format",
            "table",
            "data/examples/iran-campaign-hack.txt",
        ])
        .current_dir(root)
        .env_remove("COLUMNS")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(block, printed, "README sample differs from `scripts/quickstart.sh`; regenerate it with `target/release/stance predict --format table data/examples/iran-campaign-hack.txt`");
}

#[test]
fn readme_who_claims_what_line_is_what_predict_prints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !crate::common::shipped_base_present(root)
        || !crate::common::base_present(root, crate::common::SHIPPED_TAGGER)
    {
        return;
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let after = readme
        .split("### Who claims what")
        .nth(1)
        .expect("README has the who-claims-what section");
    let block = after.split("```\n").nth(1).expect("a fenced block follows");
    let line: serde_json::Value = serde_json::from_str(block.trim()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stance"))
        .args([
            "predict",
            "--format",
            "jsonl",
            "data/examples/iran-campaign-hack.txt",
        ])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let i = line["index"].as_u64().unwrap() as usize;
    assert_eq!(line, printed[i], "README's JSONL line differs from `stance predict --format jsonl data/examples/iran-campaign-hack.txt`");
}
