//! The content hash a hub file is named by, and checking a file against it.
//!
//! The hub names an LFS file (weights) by the sha256 of its content, sent
//! as `X-Linked-Etag`, and a regular file (config, tokenizer) by its git
//! blob id, the sha1 of `"blob {len}\0"` followed by the content, sent as
//! `ETag`. Both are the file's name in the cache's `blobs/`.

use super::names::is_hex;
use crate::Result;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Digest {
    Sha256(String),
    GitSha1(String),
}

impl Digest {
    /// From an `ETag` / `X-Linked-Etag` value (`"abc…"`, `W/"abc…"`), or
    /// from a blob's file name. Anything but 64 or 40 hex digits is refused:
    /// this string becomes a path.
    pub fn parse(raw: &str) -> Option<Digest> {
        let s = raw.trim();
        let s = s.strip_prefix("W/").unwrap_or(s);
        let s = s.trim_matches('"').to_ascii_lowercase();
        if is_hex(&s, 64) {
            Some(Digest::Sha256(s))
        } else if is_hex(&s, 40) {
            Some(Digest::GitSha1(s))
        } else {
            None
        }
    }

    /// The hex digest, which is also the blob's file name.
    pub fn hex(&self) -> &str {
        match self {
            Digest::Sha256(h) | Digest::GitSha1(h) => h,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Digest::Sha256(_) => "sha256",
            Digest::GitSha1(_) => "git blob sha1",
        }
    }

    /// The digest of `path`'s content, of the same kind as `self`.
    pub fn of_same_kind(&self, path: &Path) -> Result<String> {
        self.digest(path, true)
    }

    /// [`Self::of_same_kind`] for a file about to be renamed (a download
    /// being verified): hashed without leaving a record under its
    /// temporary name.
    pub fn of_temporary_file(&self, path: &Path) -> Result<String> {
        self.digest(path, false)
    }

    fn digest(&self, path: &Path, remember: bool) -> Result<String> {
        if let Digest::Sha256(_) = self {
            // Remembered by path, size, inode and change time (hash_cache):
            // any write to the blob makes it hashed again, and a model used
            // by hub name is not re-read in full on every run.
            return if remember {
                crate::hash_cache::sha256(path)
            } else {
                crate::hash_cache::sha256_uncached(path)
            };
        }
        // The git blob id: sha1 of "blob {len}\0" and the content.
        use sha1::Digest as _;
        let map = crate::model::map_file(path)?;
        let mut h = sha1::Sha1::new();
        h.update(format!("blob {}\0", map.len()).as_bytes());
        h.update(&map[..]);
        Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Whether `path` holds exactly the content this digest names.
    pub fn matches(&self, path: &Path) -> Result<bool> {
        Ok(self.of_same_kind(path)? == self.hex())
    }
}
