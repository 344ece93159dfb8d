//! Names that become parts of paths: the model id and revision the user
//! gives, and the commit and content hashes the server sends back.

use crate::{Error, Result};

/// A hub id is `name` or `owner/name`, each part letters, digits, `-`, `_`
/// and `.`, not `.` or `..` alone: anything else would make a surprising
/// default output path (`ok/` made it `models/`).
pub fn validate_model_id(id: &str) -> Result<()> {
    let parts: Vec<&str> = id.split('/').collect();
    let ok_part = |p: &&str| {
        !p.is_empty()
            && *p != "."
            && *p != ".."
            && p.len() <= 96
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    if parts.len() > 2 || !parts.iter().all(ok_part) {
        return Err(Error::Invalid(format!(
            "model id {id:?}: expected NAME or OWNER/NAME (letters, digits, '-', '_', '.')"
        )));
    }
    Ok(())
}

/// A revision is a branch, tag or commit: no `..`, no leading `/`, no
/// characters a path could escape with.
pub fn validate_revision(rev: &str) -> Result<()> {
    let ok = !rev.is_empty()
        && rev.len() <= 128
        && !rev.starts_with('/')
        && !rev
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        && rev
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if !ok {
        return Err(Error::Invalid(format!(
            "--revision {rev:?}: expected a branch, tag or commit name"
        )));
    }
    Ok(())
}

/// `s` is exactly `len` lowercase hex digits.
pub fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A commit id as the hub sends it in `X-Repo-Commit`: 40 hex digits.
pub fn commit(raw: &str) -> Option<String> {
    let c = raw.trim().to_ascii_lowercase();
    is_hex(&c, 40).then_some(c)
}

/// The revision in a URL path: `refs/pr/1` is one segment, `refs%2Fpr%2F1`.
/// [`validate_revision`] allows no other character that needs escaping.
pub fn url_revision(rev: &str) -> String {
    rev.replace('/', "%2F")
}

/// The cache folder of a model repository: `models--owner--name`.
pub fn repo_folder(model_id: &str) -> String {
    format!("models--{}", model_id.replace('/', "--"))
}
