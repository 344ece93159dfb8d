//! The shipped model (models/stance-mpnet), scored with the same code as
//! `stance eval`: on the real-news test split (rebuilt from
//! ../shared/realnews; scored once when the model was chosen, see
//! models/README.md) and on the corpus test split, plus bf16 inference
//! within 0.005 macro-F1 of f32 on the corpus split.
//!
//! It needs the base encoder's weights (scripts/fetch-base-model.sh) and the
//! real-news documents; CI fetches the first, has the second, and sets
//! STANCE_REQUIRE_BASE=1 and STANCE_REQUIRE_REALNEWS=1 so that neither
//! missing skips the test there.
//!
//! The floors are the measured scores less a small margin: they catch a
//! regression. They are below issue 10's targets (real test macro-F1 0.80,
//! every label 0.65), which this model does not reach; see models/README.md.

use stance::engine::Precision;
use std::path::{Path, PathBuf};

/// Real test split, measured for the shipped model (2026-12-02): macro-F1
/// 0.696, lowest label F1 0.598 (allegation), ECE 0.032; corpus test 0.860.
/// The ECE ceiling and the corpus floor are issue 10's targets.
const REAL_MACRO_FLOOR: f64 = 0.68;
const REAL_LABEL_FLOOR: f64 = 0.58;
const REAL_ECE_CEILING: f64 = 0.05;
const CORPUS_MACRO_FLOOR: f64 = 0.80;

fn realnews(root: &Path) -> Option<PathBuf> {
    let dir = std::env::var_os("STANCE_REALNEWS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/realnews"));
    if dir.join("polnear").is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("STANCE_REQUIRE_REALNEWS").is_err(),
        "real-news documents missing at {}",
        dir.display()
    );
    eprintln!(
        "skipped the real-news part: no documents at {}",
        dir.display()
    );
    None
}

#[test]
fn shipped_model_meets_its_accuracy_bar_on_real_and_corpus_test_splits() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !crate::common::shipped_base_present(root) {
        return;
    }
    let ckpt = stance::checkpoint::load(
        &root.join(crate::common::SHIPPED),
        &candle_core::Device::Cpu,
    )
    .unwrap();

    if let Some(dir) = realnews(root) {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("data/real"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
            .collect();
        files.sort();
        let standoff = stance::data::realnews::read_standoff(&files).unwrap();
        let built = stance::data::realnews::build(&standoff, &dir).unwrap();
        let test = &built["test"];
        let report = stance::eval::evaluate_checkpoint(&ckpt, test, 64, Precision::F32, |_| {})
            .unwrap()
            .0;
        eprintln!(
            "real test split ({} sentences):\n{}",
            test.len(),
            report.render()
        );
        let m = &report.metrics;
        assert!(
            m.macro_avg.f1 >= REAL_MACRO_FLOOR,
            "real test macro-F1 {:.4}",
            m.macro_avg.f1
        );
        for c in &m.per_class {
            assert!(
                c.f1 >= REAL_LABEL_FLOOR,
                "real test {}: F1 {:.4}",
                c.label,
                c.f1
            );
        }
        assert!(
            report.ece <= REAL_ECE_CEILING,
            "real test ECE {:.4}",
            report.ece
        );
    }

    let rows =
        stance::data::read_file(&root.join("data/stance.test.jsonl"), Some(&ckpt.labels)).unwrap();
    let report = stance::eval::evaluate_checkpoint(&ckpt, &rows, 64, Precision::F32, |_| {})
        .unwrap()
        .0;
    let m = &report.metrics;
    eprintln!("corpus test split:\n{}", report.render());
    assert!(
        m.macro_avg.f1 >= CORPUS_MACRO_FLOOR,
        "corpus test macro-F1 {:.4}",
        m.macro_avg.f1
    );
    let bf16 = stance::eval::evaluate_checkpoint(&ckpt, &rows, 64, Precision::Bf16, |_| {})
        .unwrap()
        .0;
    let loss = m.macro_avg.f1 - bf16.metrics.macro_avg.f1;
    eprintln!(
        "bf16 macro-F1 {:.4} (f32 {:.4})",
        bf16.metrics.macro_avg.f1, m.macro_avg.f1
    );
    assert!(loss <= 0.005, "bf16 loses {loss:.4} macro-F1");
}
