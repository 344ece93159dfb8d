//! What stance may write over, decided before any work starts.
//!
//! stance deletes or replaces only what it created:
//! - an output file must not be one of the run's inputs (by file identity,
//!   so `a.txt`, `./a.txt` and a link to it are the same), nor a directory;
//! - a checkpoint or download directory must be absent, or a directory
//!   carrying stance's marker ([`crate::atomic::MARKER`]), and then only with
//!   `--overwrite`; it must not be, or contain, an input (the base model, the
//!   training data), nor be the working directory or one of its ancestors.

use crate::atomic::MARKER;
use crate::{Error, Result};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// `(device, inode)` of an existing path, following links.
fn identity(p: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()))
}

/// Check an output file against the run's inputs. `flag` names the option
/// in messages (e.g. `--output`).
pub fn output_file(path: &Path, flag: &str, inputs: &[PathBuf]) -> Result<()> {
    if path.as_os_str().is_empty() {
        return Err(Error::Invalid(format!("{flag}: empty path")));
    }
    if let Some(id) = identity(path) {
        if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
            return Err(Error::Invalid(format!(
                "{flag} {}: is a directory; give a file path",
                path.display()
            )));
        }
        for i in inputs {
            if identity(i) == Some(id) {
                return Err(Error::Invalid(format!("{flag} {} is also an input ({}); stance will not overwrite its input, choose another output path", path.display(), i.display())));
            }
        }
    }
    Ok(())
}

/// Check a directory that a run will create or replace. `kind` names what
/// goes there ("checkpoint", "model download").
pub fn checkpoint_dir(dir: &Path, flag: &str, overwrite: bool, inputs: &[PathBuf]) -> Result<()> {
    let shown = dir.display();
    if dir.as_os_str().is_empty() || dir.file_name().is_none() {
        return Err(Error::Invalid(format!(
            "{flag} {shown:?}: needs a directory name (not '.', '..' or '/')"
        )));
    }
    if let (Ok(cwd), Ok(abs)) = (
        std::env::current_dir().and_then(std::fs::canonicalize),
        std::fs::canonicalize(dir),
    ) {
        if cwd.starts_with(&abs) {
            return Err(Error::Invalid(format!("{flag} {shown}: is the working directory or one of its parents; choose a new directory")));
        }
    }
    let meta = match std::fs::symlink_metadata(dir) {
        Err(_) => return Ok(()),
        Ok(m) => m,
    };
    if !meta.is_dir() {
        return Err(Error::Invalid(format!("{flag} {shown}: exists and is not a directory; stance replaces only checkpoint directories it wrote, choose another path")));
    }
    if !dir.join(MARKER).is_file() {
        return Err(Error::Invalid(format!(
            "{flag} {shown}: exists and is not a directory stance wrote (no {MARKER} in it); stance will not replace it, choose a new directory"
        )));
    }
    let abs = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
    for i in inputs {
        if let Ok(ai) = std::fs::canonicalize(i) {
            if ai.starts_with(&abs) {
                return Err(Error::Invalid(format!(
                    "{flag} {shown}: holds an input of this run ({}); choose another directory",
                    i.display()
                )));
            }
        }
    }
    if !overwrite {
        return Err(Error::Invalid(format!(
            "{flag} {shown}: already holds a stance checkpoint; pass --overwrite to replace it"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_inputs_directories_and_foreign_dirs() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a.txt");
        std::fs::write(&a, "x").unwrap();
        let dotted = t.path().join(".").join("a.txt");
        assert!(output_file(&dotted, "--output", std::slice::from_ref(&a))
            .unwrap_err()
            .to_string()
            .contains("also an input"));
        assert!(output_file(t.path(), "--output", &[])
            .unwrap_err()
            .to_string()
            .contains("directory"));
        assert!(output_file(
            &t.path().join("new.txt"),
            "--output",
            std::slice::from_ref(&a)
        )
        .is_ok());

        let foreign = t.path().join("notes");
        std::fs::create_dir(&foreign).unwrap();
        assert!(checkpoint_dir(&foreign, "--out", true, &[])
            .unwrap_err()
            .to_string()
            .contains("not a directory stance wrote"));
        assert!(checkpoint_dir(&a, "--out", true, &[])
            .unwrap_err()
            .to_string()
            .contains("not a directory"));
        let ours = t.path().join("ckpt");
        std::fs::create_dir(&ours).unwrap();
        std::fs::write(ours.join(MARKER), "{}").unwrap();
        assert!(checkpoint_dir(&ours, "--out", false, &[])
            .unwrap_err()
            .to_string()
            .contains("--overwrite"));
        assert!(checkpoint_dir(&ours, "--out", true, &[]).is_ok());
        std::fs::write(ours.join("train.jsonl"), "x").unwrap();
        assert!(
            checkpoint_dir(&ours, "--out", true, &[ours.join("train.jsonl")])
                .unwrap_err()
                .to_string()
                .contains("holds an input")
        );
        assert!(checkpoint_dir(Path::new("."), "--out", true, &[]).is_err());
        assert!(checkpoint_dir(Path::new("/"), "--out", true, &[]).is_err());
        assert!(checkpoint_dir(&t.path().join("fresh"), "--out", false, &[]).is_ok());
    }
}
