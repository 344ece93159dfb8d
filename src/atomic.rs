//! Write files and directories so that a crash never leaves a half-written
//! result, and nothing stance did not create is ever replaced.
//!
//! - Files go to a temporary sibling and are renamed into place; the new
//!   file keeps the old one's permissions. FIFOs and devices are written
//!   through (renaming over them would replace the node itself); a symlink
//!   is followed and its target replaced, never the link.
//! - Directories (checkpoints, downloads) are built in a temporary sibling
//!   that carries the [`MARKER`] file from its first moment, then swapped
//!   with the old directory in one `renameat2(RENAME_EXCHANGE)`, so a kill at
//!   any point leaves the old or the new complete directory at the path,
//!   never neither. A lock file refuses a second writer of the same path.
//! - Temporaries are named `.NAME.tmp-PID`, `.NAME.partial-PID`; a later run
//!   removes those whose process is gone.
//!
//! What may be written at all is decided before any work by
//! [`crate::guard`].

use crate::{Error, Result};
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The file that marks a directory as written by stance.
pub const MARKER: &str = ".stance-checkpoint";

const TAGS: &[&str] = &["tmp", "partial", "old"];

fn sibling(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{tag}-{}", std::process::id()))
}

/// Whether process `pid` is alive (or exists under another user).
fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for the process.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// When process (or thread) `pid` started, from `/proc`: boot time plus
/// its start in clock ticks. `None` where `/proc` cannot tell.
fn started_at(pid: i32) -> Option<std::time::SystemTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22, counted after the command name, which may hold spaces.
    let after = &stat[stat.rfind(')')? + 1..];
    let ticks: u64 = after.split_whitespace().nth(19)?.parse().ok()?;
    let btime: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())?;
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as u64 } else { 100 };
    Some(
        std::time::UNIX_EPOCH
            + std::time::Duration::from_secs(btime)
            + std::time::Duration::from_millis(ticks * 1000 / hz),
    )
}

/// Whether the process that made a file at `made` (named by its `pid`) can
/// still be running. PIDs are reused (only 32768 of them on many systems,
/// shared with threads), so a live `pid` that started after the file was
/// made is another process, and the file is a leftover. Within the
/// second of slack that boot time's resolution needs, it counts as alive.
fn maker_alive(pid: i32, made: Option<std::time::SystemTime>) -> bool {
    if pid <= 0 || !alive(pid) {
        return false;
    }
    match (started_at(pid), made) {
        (Some(start), Some(made)) => start <= made + std::time::Duration::from_secs(1),
        _ => true,
    }
}

/// Remove temporaries of `path` left by runs that were killed: siblings
/// named `.NAME.{tmp,partial,old}-PID` whose PID is no longer running. A
/// directory is removed only when it carries the marker or is empty, so a
/// look-alike that stance did not make survives.
pub fn clean_leftovers(path: &Path) {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Ok(entries) = std::fs::read_dir(&parent) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = file.strip_prefix(&format!(".{name}.")) else {
            continue;
        };
        let Some((tag, pid)) = rest.split_once('-') else {
            continue;
        };
        let Ok(pid) = pid.parse::<i32>() else {
            continue;
        };
        let p = e.path();
        let made = std::fs::symlink_metadata(&p)
            .and_then(|m| m.modified())
            .ok();
        if !TAGS.contains(&tag) || pid <= 0 || maker_alive(pid, made) {
            continue;
        }
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {
                let empty = std::fs::read_dir(&p)
                    .map(|mut d| d.next().is_none())
                    .unwrap_or(false);
                if empty || p.join(MARKER).is_file() {
                    remove_marked_dir(&p);
                }
            }
            Ok(m) if m.is_file() => {
                let _ = std::fs::remove_file(&p);
            }
            _ => {}
        }
    }
}

/// Remove a directory stance made, its [`MARKER`] last: a kill halfway
/// leaves a directory that still carries the marker (or an empty one), so
/// [`clean_leftovers`] can still tell it is ours and finish the job.
fn remove_marked_dir(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name() == MARKER {
                continue;
            }
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => {
                    let _ = std::fs::remove_dir_all(&p);
                }
                _ => {
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
    }
    let _ = std::fs::remove_file(dir.join(MARKER));
    let _ = std::fs::remove_dir(dir);
}

/// Write `bytes` to `path`: through a temporary file and a rename for a
/// regular file (or a new one), straight into a FIFO or device.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let path = &resolve_link(path)?;
    if let Ok(m) = std::fs::metadata(path) {
        let t = m.file_type();
        if t.is_fifo() || t.is_char_device() || t.is_block_device() || t.is_socket() {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| Error::io(path, e))?;
            return f
                .write_all(bytes)
                .and_then(|_| f.flush())
                .map_err(|e| Error::io(path, e));
        }
        if t.is_dir() {
            return Err(Error::file(path, "is a directory; give a file path"));
        }
    }
    write_files(&[(path.clone(), bytes)])
}

/// An output file written as a stream: into a temporary sibling that
/// [`StreamFile::commit`] renames into place (dropped uncommitted, the
/// temporary is removed and the target is as it was), or straight through
/// for a FIFO or device, or appended to (resuming a run's own output).
pub struct StreamFile {
    file: std::io::BufWriter<std::fs::File>,
    /// (temporary, target) while staged.
    staged: Option<(PathBuf, PathBuf)>,
}

impl StreamFile {
    /// Start writing `path` (see [`write_file`] for links, FIFOs, devices).
    pub fn create(path: &Path) -> Result<StreamFile> {
        let path = resolve_link(path)?;
        if let Ok(m) = std::fs::metadata(&path) {
            let t = m.file_type();
            if t.is_fifo() || t.is_char_device() || t.is_block_device() || t.is_socket() {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|e| Error::io(&path, e))?;
                return Ok(StreamFile {
                    file: std::io::BufWriter::new(f),
                    staged: None,
                });
            }
            if t.is_dir() {
                return Err(Error::file(&path, "is a directory; give a file path"));
            }
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        clean_leftovers(&path);
        let tmp = sibling(&path, "tmp");
        let f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        if let Ok(old) = std::fs::metadata(&path) {
            let _ = std::fs::set_permissions(&tmp, old.permissions());
        }
        Ok(StreamFile {
            file: std::io::BufWriter::new(f),
            staged: Some((tmp, path)),
        })
    }

    /// Append to `path`, first cutting off a trailing partial line (what a
    /// killed run leaves), so every line stays whole.
    pub fn append(path: &Path) -> Result<StreamFile> {
        let path = resolve_link(path)?;
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        f.set_len(keep as u64).map_err(|e| Error::io(&path, e))?;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        f.flush().map_err(|e| Error::io(&path, e))?;
        Ok(StreamFile {
            file: std::io::BufWriter::new(f),
            staged: None,
        })
    }

    /// Finish: flush, and rename a staged file into place.
    pub fn commit(mut self) -> Result<()> {
        let staged = self.staged.take();
        let target = staged.as_ref().map(|(_, p)| p.clone()).unwrap_or_default();
        self.file.flush().map_err(|e| Error::io(&target, e))?;
        self.file
            .get_ref()
            .sync_all()
            .or_else(|e| if staged.is_some() { Err(e) } else { Ok(()) })
            .map_err(|e| Error::io(&target, e))?;
        if let Some((tmp, path)) = staged {
            if let Err(e) = std::fs::rename(&tmp, &path) {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::io(&path, e));
            }
        }
        Ok(())
    }
}

impl Write for StreamFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Drop for StreamFile {
    fn drop(&mut self) {
        if let Some((tmp, _)) = self.staged.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Write several files as one commit: every temporary is written first (the
/// step that fails on a full disk or a bad path), and only when all of them
/// are complete are they renamed into place. A failure leaves every target
/// as it was.
pub fn write_files<B: AsRef<[u8]>>(files: &[(PathBuf, B)]) -> Result<()> {
    let mut staged: Vec<(PathBuf, PathBuf)> = Vec::new();
    let cleanup = |staged: &[(PathBuf, PathBuf)]| {
        staged
            .iter()
            .for_each(|(t, _)| drop(std::fs::remove_file(t)))
    };
    for (path, bytes) in files {
        let path = resolve_link(path)?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        clean_leftovers(&path);
        let tmp = sibling(&path, "tmp");
        let r = std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(bytes.as_ref()).and_then(|_| f.sync_all()));
        staged.push((tmp.clone(), path.clone()));
        if let Err(e) = r {
            cleanup(&staged);
            return Err(Error::io(&tmp, e));
        }
        if let Ok(old) = std::fs::metadata(&path) {
            let _ = std::fs::set_permissions(&tmp, old.permissions());
        }
    }
    for (i, (tmp, path)) in staged.iter().enumerate() {
        if let Err(e) = std::fs::rename(tmp, path) {
            cleanup(&staged[i..]);
            return Err(Error::io(path, e));
        }
    }
    Ok(())
}

/// A symlink's target (so the target is replaced, not the link); other
/// paths unchanged.
fn resolve_link(path: &Path) -> Result<PathBuf> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path).map_err(|e| {
            Error::file(
                path,
                format!("is a symlink whose target cannot be resolved ({e})"),
            )
        }),
        _ => Ok(path.to_path_buf()),
    }
}

/// Held while a directory is being written: `.NAME.lock` beside it, holding
/// the writer's PID. Removed on drop.
pub struct DirLock {
    path: PathBuf,
    /// False for a nested acquisition by the process that already holds it.
    owned: bool,
}

impl DirLock {
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::file(dir, "has no file name to write to"))?;
        let path = dir.with_file_name(format!(".{name}.lock"));
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    let _ = write!(f, "{}", std::process::id());
                    return Ok(DirLock { path, owned: true });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let pid = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse::<i32>().ok());
                    match pid {
                        // This process holds it already (a run locks its output at the start, the save again).
                        Some(p) if p as u32 == std::process::id() => return Ok(DirLock { path, owned: false }),
                        Some(p) if maker_alive(p, std::fs::metadata(&path).and_then(|m| m.modified()).ok()) => {
                            return Err(Error::file(dir, format!("another stance run (PID {p}) is writing it; wait for it or choose another path (lock {})", path.display())))
                        }
                        // A stale lock from a killed run.
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        Err(Error::file(
            dir,
            format!("cannot take the lock {}", path.display()),
        ))
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Swap two paths atomically (Linux `renameat2(RENAME_EXCHANGE)`); `false`
/// where the file system cannot.
fn exchange(a: &Path, b: &Path) -> Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    let ca = std::ffi::CString::new(a.as_os_str().as_bytes())
        .map_err(|_| Error::file(a, "path contains a NUL byte"))?;
    let cb = std::ffi::CString::new(b.as_os_str().as_bytes())
        .map_err(|_| Error::file(b, "path contains a NUL byte"))?;
    // SAFETY: two valid C strings; renameat2 reads them only.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::ENOTSUP) => Ok(false),
        _ => Err(Error::io(b, err)),
    }
}

/// Build a directory with `fill` in a temporary sibling, then put it at
/// `dir`, replacing what was there only once the new one is complete. The
/// caller has checked (with [`crate::guard::checkpoint_dir`]) that `dir` is
/// absent or a directory stance wrote.
pub fn write_dir(dir: &Path, kind: &str, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let _lock = DirLock::acquire(dir)?;
    clean_leftovers(dir);
    let tmp = sibling(dir, "partial");
    std::fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let marker = serde_json::json!({"written_by": format!("stance {}", env!("CARGO_PKG_VERSION")), "kind": kind});
    let result = std::fs::write(tmp.join(MARKER), marker.to_string() + "\n")
        .map_err(|e| Error::io(tmp.join(MARKER), e))
        .and_then(|_| fill(&tmp))
        .and_then(|_| uniform_modes(&tmp));
    if let Err(e) = result {
        remove_marked_dir(&tmp);
        return Err(e);
    }
    if std::fs::symlink_metadata(dir).is_ok() {
        if exchange(&tmp, dir)? {
            // `tmp` now holds the old directory.
            remove_marked_dir(&tmp);
            return Ok(());
        }
        // No atomic exchange on this file system: move the old one aside
        // first; a kill between the two renames leaves both complete
        // directories beside the path.
        let old = sibling(dir, "old");
        std::fs::rename(dir, &old).map_err(|e| Error::io(dir, e))?;
        if let Err(e) = std::fs::rename(&tmp, dir) {
            let _ = std::fs::rename(&old, dir);
            remove_marked_dir(&tmp);
            return Err(Error::io(dir, e));
        }
        remove_marked_dir(&old);
        return Ok(());
    }
    std::fs::rename(&tmp, dir).map_err(|e| {
        remove_marked_dir(&tmp);
        Error::io(dir, e)
    })
}

/// Give every file in `dir` the mode the marker got from the umask, so
/// weights written by a library that creates files 0600 match the rest.
fn uniform_modes(dir: &Path) -> Result<()> {
    let mode = std::fs::metadata(dir.join(MARKER))
        .map_err(|e| Error::io(dir.join(MARKER), e))?
        .permissions()
        .mode()
        & 0o777;
    for e in std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .flatten()
    {
        let p = e.path();
        if p.is_file() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io(&p, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_pid_does_not_keep_a_leftover() {
        let t = tempfile::tempdir().unwrap();
        let me = std::process::id();
        let out = t.path().join("ckpt");
        // Named after this (live) process: made now, it may be ours and stays;
        // made a day ago, before this process started, its maker is gone.
        let recent = t.path().join(format!(".ckpt.tmp-{me}"));
        let old = t.path().join(format!(".ckpt.old-{me}"));
        std::fs::write(&recent, b"x").unwrap();
        std::fs::write(&old, b"x").unwrap();
        let day_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(day_ago)
            .unwrap();
        assert!(started_at(me as i32).is_some());
        clean_leftovers(&out);
        assert!(recent.exists());
        assert!(!old.exists());
    }

    #[test]
    fn failed_fill_leaves_nothing_and_keeps_old() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("ckpt");
        write_dir(&d, "test", |p| write_file(&p.join("a"), b"1")).unwrap();
        let r = write_dir(&d, "test", |p| {
            write_file(&p.join("a"), b"2")?;
            Err(Error::Invalid("boom".into()))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(d.join("a")).unwrap(), b"1");
        let names: Vec<_> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        write_dir(&d, "test", |p| write_file(&p.join("b"), b"3")).unwrap();
        assert!(!d.join("a").exists());
        assert_eq!(std::fs::read(d.join("b")).unwrap(), b"3");
        assert!(d.join(MARKER).is_file());
    }

    #[test]
    fn leftovers_of_dead_runs_are_removed_and_others_kept() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("out");
        // PID 0x7ffffff0 is far above any pid_max, so never alive.
        let dead = t.path().join(".out.partial-2147483632");
        std::fs::create_dir(&dead).unwrap();
        std::fs::write(dead.join(MARKER), "{}").unwrap();
        let dead_file = t.path().join(".out.tmp-2147483632");
        std::fs::write(&dead_file, "x").unwrap();
        let not_ours = t.path().join(".out.partial-2147483631");
        std::fs::create_dir(&not_ours).unwrap();
        std::fs::write(not_ours.join("notes.txt"), "keep").unwrap();
        let live = t.path().join(format!(".out.tmp-{}", std::process::id()));
        std::fs::write(&live, "x").unwrap();
        clean_leftovers(&d);
        assert!(!dead.exists() && !dead_file.exists());
        assert!(
            not_ours.join("notes.txt").exists(),
            "a directory without the marker is not ours"
        );
        assert!(live.exists(), "a live process's temporary stays");
    }

    #[test]
    fn lock_refuses_a_second_writer_and_takes_over_a_stale_lock() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("out");
        let held = DirLock::acquire(&d).unwrap();
        // The same process may take it again (a run locks at its start and again to save);
        // the nested guard leaves the lock in place when dropped.
        drop(DirLock::acquire(&d).unwrap());
        assert!(t.path().join(".out.lock").exists());
        drop(held);
        assert!(!t.path().join(".out.lock").exists());
        // PID 1 is always alive: another process holds the lock.
        std::fs::write(t.path().join(".out.lock"), "1").unwrap();
        let err = DirLock::acquire(&d).err().unwrap().to_string();
        assert!(err.contains("another stance run (PID 1)"), "{err}");
        std::fs::write(t.path().join(".out.lock"), "2147483632").unwrap();
        DirLock::acquire(&d).unwrap();
    }

    #[test]
    fn files_keep_their_mode_and_fifos_are_written_through() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("a.txt");
        std::fs::write(&f, "old").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_file(&f, b"new").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"new");
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o640
        );
        // A symlink is followed: the target changes, the link stays a link.
        let link = t.path().join("link.txt");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        write_file(&link, b"via link").unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&f).unwrap(), b"via link");
        // /dev/null stays a device.
        write_file(Path::new("/dev/null"), b"x").unwrap();
        assert!(std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
    }
}
