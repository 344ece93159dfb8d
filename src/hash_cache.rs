//! sha256 of large files, remembered: a delta checkpoint verifies its 87 MB
//! base on every load, and hashing it was a fifth of a cold `stance
//! predict`. The record holds the hash with the file's path, size, inode,
//! modification and change times; any write, replacement or rename changes
//! the change time (which no user call can set back), so a stale record is
//! never trusted and the file is hashed again.
//!
//! Records live in stance's own cache (`$STANCE_CACHE`, else
//! `$XDG_CACHE_HOME/stance`, else `~/.cache/stance`), under `sha256/`, one
//! file per hashed path, never beside the user's files: stance writes only
//! to its outputs and caches. No usable cache just means hashing every time.

use crate::Result;
use std::path::{Path, PathBuf};

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Record {
    path: String,
    sha256: String,
    len: u64,
    inode: u64,
    modified_ns: i128,
    changed_ns: i128,
}

impl Record {
    fn describes(&self, file: &Record) -> bool {
        (
            &self.path,
            self.len,
            self.inode,
            self.modified_ns,
            self.changed_ns,
        ) == (
            &file.path,
            file.len,
            file.inode,
            file.modified_ns,
            file.changed_ns,
        )
    }
}

/// stance's cache directory, if the environment names one.
pub fn cache_root() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("STANCE_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|p| p.join("stance")))
        .or_else(|| var("HOME").map(|p| p.join(".cache").join("stance")))
}

/// The record of `path` (absolute) under `root`: named by a hash of the path.
fn record_path(root: &Path, path: &str) -> PathBuf {
    use sha2::Digest;
    let h = sha2::Sha256::digest(path.as_bytes());
    let name: String = h[..16].iter().map(|b| format!("{b:02x}")).collect();
    root.join("sha256").join(format!("{name}.json"))
}

/// The file's identity as the record stores it (without the hash).
fn stamp(path: &Path) -> Option<Record> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    let abs = std::fs::canonicalize(path).ok()?;
    let ns = |s: i64, n: i64| s as i128 * 1_000_000_000 + n as i128;
    Some(Record {
        path: abs.to_string_lossy().into_owned(),
        sha256: String::new(),
        len: m.len(),
        inode: m.ino(),
        modified_ns: ns(m.mtime(), m.mtime_nsec()),
        changed_ns: ns(m.ctime(), m.ctime_nsec()),
    })
}

/// Hex sha256 of a file, read in full.
pub fn sha256_uncached(path: &Path) -> Result<String> {
    use sha2::Digest;
    let map = crate::model::map_file(path)?;
    let h = sha2::Sha256::digest(&map[..]);
    Ok(h.iter().map(|b| format!("{b:02x}")).collect())
}

/// Hex sha256 of `path`, from its record when the record still describes
/// the file, else computed (and recorded).
pub fn sha256(path: &Path) -> Result<String> {
    sha256_in(path, cache_root().as_deref())
}

fn sha256_in(path: &Path, root: Option<&Path>) -> Result<String> {
    let now = stamp(path);
    let rec = match (&now, root) {
        (Some(n), Some(root)) => Some(record_path(root, &n.path)),
        _ => None,
    };
    let Some(rec) = rec else {
        return sha256_uncached(path);
    };
    if let (Some(now), Ok(text)) = (&now, std::fs::read_to_string(&rec)) {
        if let Ok(old) = serde_json::from_str::<Record>(&text) {
            if old.describes(now) && old.sha256.len() == 64 {
                return Ok(old.sha256);
            }
        }
    }
    let sha256 = sha256_uncached(path)?;
    // Recorded only if the file did not change while it was hashed.
    if let Some(now) = now.filter(|n| stamp(path).as_ref() == Some(n)) {
        let r = Record {
            sha256: sha256.clone(),
            ..now
        };
        if let Ok(json) = serde_json::to_vec(&r) {
            if std::fs::create_dir_all(rec.parent().unwrap()).is_ok() {
                let _ = crate::atomic::write_file(&rec, &json);
            }
        }
    }
    Ok(sha256)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_notices_changes() {
        let t = tempfile::tempdir().unwrap();
        let cache = t.path().join("cache");
        let sha256 = |f: &Path| sha256_in(f, Some(&cache));
        let f = t.path().join("w.bin");
        std::fs::write(&f, b"abc").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256(&f).unwrap(), abc);
        // The record is in the cache, not beside the file.
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 2);
        let abs = std::fs::canonicalize(&f).unwrap();
        let rec = record_path(&cache, &abs.to_string_lossy());
        assert!(rec.is_file());
        // A record that describes the file is believed (here: a planted
        // wrong hash, to prove the file was not read again).
        let mut r: Record = serde_json::from_str(&std::fs::read_to_string(&rec).unwrap()).unwrap();
        r.sha256 = "0".repeat(64);
        std::fs::write(&rec, serde_json::to_vec(&r).unwrap()).unwrap();
        assert_eq!(sha256(&f).unwrap(), "0".repeat(64));
        // Rewriting the file (same size) changes its change time: hashed again.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&f, b"abd").unwrap();
        let abd = sha256(&f).unwrap();
        assert_ne!(abd, abc);
        assert_eq!(abd, sha256_uncached(&f).unwrap());
        // A corrupt record is ignored.
        std::fs::write(&rec, b"{not json").unwrap();
        assert_eq!(sha256(&f).unwrap(), abd);
    }
}
