//! The hub cache, in the layout Python's huggingface_hub and hf-hub share:
//!
//! ```text
//! <cache>/models--owner--name/refs/<revision>          the commit id
//! <cache>/models--owner--name/blobs/<hash>             the content
//! <cache>/models--owner--name/snapshots/<commit>/<file> -> ../../blobs/<hash>
//! ```
//!
//! Every path part comes from a validated name (model id, revision, a
//! 40-hex commit, a 64- or 40-hex hash, a file name from stance's own
//! list). A blob is stored only after it matched its hash, and a cached blob
//! is hashed again before each reuse, so a truncated or altered file left by
//! another tool is never used.

use super::digest::Digest;
use super::names;
use crate::{Error, Result};
use std::path::{Path, PathBuf};

pub struct RepoCache {
    dir: PathBuf,
}

impl RepoCache {
    /// The cache of `model_id` under the cache root: `HF_HUB_CACHE`, else
    /// `HF_HOME/hub`, else `~/.cache/huggingface/hub`.
    pub fn from_env(model_id: &str) -> Result<RepoCache> {
        names::validate_model_id(model_id)?;
        let root = match std::env::var_os("HF_HUB_CACHE") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => hf_hub::Cache::from_env().path().clone(),
        };
        Ok(RepoCache {
            dir: root.join(names::repo_folder(model_id)),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn blob(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs").join(digest.hex())
    }

    fn snapshot(&self, commit: &str, file: &str) -> PathBuf {
        self.dir.join("snapshots").join(commit).join(file)
    }

    /// The commit a revision resolved to on the last online run. A
    /// revision that is itself a commit id needs no ref.
    pub fn commit_of(&self, revision: &str) -> Result<Option<String>> {
        names::validate_revision(revision)?;
        if let Some(c) = names::commit(revision) {
            return Ok(Some(c));
        }
        let path = self.dir.join("refs").join(revision);
        match std::fs::read_to_string(&path) {
            Ok(s) => names::commit(&s).map(Some).ok_or_else(|| {
                Error::file(
                    &path,
                    "not a commit id (the cache is damaged; run once without --offline)",
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    pub fn set_ref(&self, revision: &str, commit: &str) -> Result<()> {
        names::validate_revision(revision)?;
        if names::commit(revision).is_some() {
            return Ok(());
        }
        let path = self.dir.join("refs").join(revision);
        mkdirs(path.parent().unwrap())?;
        crate::atomic::write_file(&path, commit.as_bytes())
    }

    /// A cached blob that still matches its hash. A blob that does not is
    /// reported and left for [`RepoCache::store`] to replace.
    pub fn verified_blob(&self, digest: &Digest) -> Result<Option<PathBuf>> {
        let path = self.blob(digest);
        if !path.is_file() {
            return Ok(None);
        }
        if digest.matches(&path)? {
            Ok(Some(path))
        } else {
            eprintln!(
                "warning: cached {} does not match its {}; fetching it again",
                path.display(),
                digest.kind()
            );
            Ok(None)
        }
    }

    /// A temporary file in `blobs/` to download into, named
    /// `.incoming.tmp-PID` so that a later run removes it if this one is
    /// killed; dropped without [`RepoCache::store`], it is deleted.
    pub fn incoming(&self) -> Result<IncomingBlob> {
        let blobs = self.dir.join("blobs");
        mkdirs(&blobs)?;
        let name = blobs.join("incoming");
        crate::atomic::clean_leftovers(&name);
        let path = blobs.join(format!(".incoming.tmp-{}", std::process::id()));
        let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
        Ok(IncomingBlob {
            path,
            file: Some(file),
            stored: false,
        })
    }

    /// Keep `incoming` as the blob for `digest` if, and only if, its
    /// content matches; otherwise it is deleted and the mismatch returned.
    pub fn store(&self, mut incoming: IncomingBlob, digest: &Digest) -> Result<PathBuf, String> {
        let file = incoming.file.take().expect("stored once");
        file.sync_all()
            .map_err(|e| format!("writing to the cache: {e}"))?;
        drop(file);
        let got = digest
            .of_temporary_file(&incoming.path)
            .map_err(|e| e.to_string())?;
        if got != digest.hex() {
            return Err(format!(
                "the content's {} is {got}, but the hub named it {}: corrupt or tampered; nothing was kept",
                digest.kind(),
                digest.hex()
            ));
        }
        // Blobs are read by every user of a shared cache, as hf-hub's are.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&incoming.path, std::fs::Permissions::from_mode(0o644));
        let dest = self.blob(digest);
        std::fs::rename(&incoming.path, &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
        incoming.stored = true;
        Ok(dest)
    }

    /// Point `snapshots/<commit>/<file>` at the blob, as huggingface_hub
    /// does (a relative symlink), replacing an older link atomically.
    pub fn link(&self, commit: &str, file: &str, digest: &Digest) -> Result<PathBuf> {
        let path = self.snapshot(commit, file);
        let parent = path.parent().unwrap();
        mkdirs(parent)?;
        let target = Path::new("../../blobs").join(digest.hex());
        let tmp = parent.join(format!(".{file}.stance-link-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        Ok(path)
    }

    /// A snapshot whose `file` links to the blob named `hex` (for a delta
    /// checkpoint looking for its base by sha256), if the cache has one.
    pub fn snapshot_with(&self, file: &str, hex: &str) -> Option<PathBuf> {
        let want = Path::new("../../blobs").join(hex);
        let snapshots = std::fs::read_dir(self.dir.join("snapshots")).ok()?;
        snapshots
            .flatten()
            .map(|e| e.path())
            .find(|snap| std::fs::read_link(snap.join(file)).is_ok_and(|t| t == want))
    }

    /// The cached, verified content of `file` at `commit`, for `--offline`:
    /// `Ok(None)` when the cache has no such file.
    pub fn cached_file(&self, commit: &str, file: &str) -> Result<Option<PathBuf>> {
        let path = self.snapshot(commit, file);
        let target = match std::fs::read_link(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(_) if path.is_file() => {
                return Err(Error::file(
                    &path,
                    "a plain file, not a link to a blob named by its hash, so it cannot be verified; run without --offline to fetch a verified copy",
                ))
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let digest = Digest::parse(name)
            .filter(|_| target.parent() == Some(Path::new("../../blobs")))
            .ok_or_else(|| {
                Error::file(
                    &path,
                    format!(
                        "links to {}, not to ../../blobs/<hash>: it cannot be verified",
                        target.display()
                    ),
                )
            })?;
        let blob = self.blob(&digest);
        if !blob.is_file() {
            return Err(Error::file(
                &path,
                format!("its blob {} is missing", blob.display()),
            ));
        }
        if !digest.matches(&blob)? {
            return Err(Error::file(
                &blob,
                format!(
                    "does not match its {} (truncated or altered); run without --offline to fetch it again",
                    digest.kind()
                ),
            ));
        }
        Ok(Some(blob))
    }
}

/// A download in progress inside `blobs/`, deleted unless stored.
pub struct IncomingBlob {
    path: PathBuf,
    file: Option<std::fs::File>,
    stored: bool,
}

impl IncomingBlob {
    pub fn writer(&mut self) -> &mut std::fs::File {
        self.file.as_mut().expect("not yet stored")
    }
}

impl Drop for IncomingBlob {
    fn drop(&mut self) {
        if !self.stored {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn mkdirs(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}
