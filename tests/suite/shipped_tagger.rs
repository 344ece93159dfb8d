//! The shipped attribution tagger (models/stance-tagger) on PolNeAR dev
//! (../shared/realnews/polnear/dev, the split it was chosen on), scored
//! with the code of `stance eval --task attribution`. Issue 15's targets are
//! source exact-span F1 >= 0.70 and word-overlap F1 >= 0.80 (both met and
//! asserted) and cue exact-span F1 >= 0.80, which this tagger does not
//! reach (0.721; PolNeAR's own annotators agree at 0.71 on exact cues):
//! its floor is the measured score less a small margin, to catch a
//! regression (see models/README.md). Needs the base encoder (scripts/fetch-base-model.sh)
//! and ../shared; CI has both and sets STANCE_REQUIRE_BASE and
//! STANCE_REQUIRE_REALNEWS so that neither missing skips the test there.

use stance::attribution::Role;
use std::path::{Path, PathBuf};

/// Measured 2026-12-07: source exact 0.783, word overlap 0.839; cue exact 0.722.
const SOURCE_EXACT: f64 = 0.70;
const SOURCE_OVERLAP: f64 = 0.80;
const CUE_EXACT: f64 = 0.70;

fn polnear_dev(root: &Path) -> Option<PathBuf> {
    let dir = std::env::var_os("STANCE_REALNEWS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../shared/realnews"))
        .join("polnear/dev");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("STANCE_REQUIRE_REALNEWS").is_err(),
        "PolNeAR dev missing at {}",
        dir.display()
    );
    eprintln!("skipped: no PolNeAR dev at {}", dir.display());
    None
}

#[test]
fn shipped_tagger_meets_the_attribution_targets_on_polnear_dev() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tagger_dir = root.join(crate::common::SHIPPED_TAGGER);
    if !crate::common::base_present(root, crate::common::SHIPPED_TAGGER) {
        return;
    }
    let Some(dev) = polnear_dev(root) else { return };
    let tagger = stance::attribution::tagger::Tagger::load(&tagger_dir).unwrap();
    let (report, docs, _) =
        stance::attribution::evaluate::evaluate(&tagger, &[dev], stance::engine::Precision::F32)
            .unwrap();
    assert_eq!(docs.len(), 84);
    eprintln!("{}", report.render());
    let (source, cue) = (report.role(Role::Source), report.role(Role::Cue));
    assert!(
        source.exact.f1 >= SOURCE_EXACT,
        "source exact F1 {:.4} < {SOURCE_EXACT}",
        source.exact.f1
    );
    assert!(
        source.overlap.f1 >= SOURCE_OVERLAP,
        "source word-overlap F1 {:.4} < {SOURCE_OVERLAP}",
        source.overlap.f1
    );
    assert!(
        cue.exact.f1 >= CUE_EXACT,
        "cue exact F1 {:.4} < {CUE_EXACT}",
        cue.exact.f1
    );
}
