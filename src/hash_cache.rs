//! sha256 of large files, remembered next to them: a delta checkpoint
//! verifies its 87 MB base on every load, and hashing it was a fifth of a
//! cold `stance predict`. The record (`.<name>.sha256.json` beside the
//! file) holds the hash with the file's size, inode, modification and
//! change times; any write, replacement or rename changes the change time
//! (which no user call can set back), so a stale record is never trusted
//! and the file is hashed again. A directory that cannot be written to
//! just means hashing every time.

use crate::Result;
use std::path::{Path, PathBuf};

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Record {
    sha256: String,
    len: u64,
    inode: u64,
    modified_ns: i128,
    changed_ns: i128,
}

impl Record {
    fn describes(&self, file: &Record) -> bool {
        (self.len, self.inode, self.modified_ns, self.changed_ns)
            == (file.len, file.inode, file.modified_ns, file.changed_ns)
    }
}

fn record_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.sha256.json"))
}

/// The file's identity as the record stores it (without the hash).
fn stamp(path: &Path) -> Option<Record> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    let ns = |s: i64, n: i64| s as i128 * 1_000_000_000 + n as i128;
    Some(Record {
        sha256: String::new(),
        len: m.len(),
        inode: m.ino(),
        modified_ns: ns(m.mtime(), m.mtime_nsec()),
        changed_ns: ns(m.ctime(), m.ctime_nsec()),
    })
}

/// Hex sha256 of `path`, from its record when the record still describes
/// the file, else computed (and recorded).
pub fn sha256(path: &Path) -> Result<String> {
    let now = stamp(path);
    let rec = record_path(path);
    if let (Some(now), Ok(text)) = (&now, std::fs::read_to_string(&rec)) {
        if let Ok(old) = serde_json::from_str::<Record>(&text) {
            if old.describes(now) && old.sha256.len() == 64 {
                return Ok(old.sha256);
            }
        }
    }
    let sha256 = crate::checkpoint::sha256_file(path)?;
    // Recorded only if the file did not change while it was hashed.
    if let Some(now) = now.filter(|n| stamp(path).as_ref() == Some(n)) {
        let r = Record {
            sha256: sha256.clone(),
            ..now
        };
        if let Ok(json) = serde_json::to_vec(&r) {
            let _ = crate::atomic::write_file(&rec, &json);
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
        let f = t.path().join("w.bin");
        std::fs::write(&f, b"abc").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256(&f).unwrap(), abc);
        let rec = record_path(&f);
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
        assert_eq!(abd, crate::checkpoint::sha256_file(&f).unwrap());
        // A corrupt record is ignored.
        std::fs::write(&rec, b"{not json").unwrap();
        assert_eq!(sha256(&f).unwrap(), abd);
    }
}
