//! Small durable-filesystem helpers shared by the writers.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{IoContext, Result};

/// fsync a directory so entries created, renamed or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("fsync directory", dir)
}

/// Create `dir` and any missing ancestors, fsyncing the parent of each directory created so
/// the new entries survive a power loss.
pub(crate) fn create_dirs_durable(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut cur = dir;
    while !cur.is_dir() {
        missing.push(cur.to_path_buf());
        match cur.parent() {
            Some(p) if !p.as_os_str().is_empty() => cur = p,
            _ => break,
        }
    }
    for d in missing.iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => {}
            // Raced with another creator: fine, the entry exists.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => continue,
            Err(e) => return Err(crate::StorageError::io("create directory", d.clone(), e)),
        }
        if let Some(p) = d.parent() {
            sync_dir(p)?;
        }
    }
    Ok(())
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A name unique across processes and time, for entries in `tmp/`.
pub(crate) fn unique_name(suffix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{}-{}.{}", std::process::id(), nanos, n, suffix)
}

/// fsync every file and directory below `dir` (and `dir` itself), without following symlinks.
pub(crate) fn sync_tree(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).ctx("read directory", dir)? {
        let entry = entry.ctx("read directory", dir)?;
        let path: PathBuf = entry.path();
        let ft = entry.file_type().ctx("stat", &path)?;
        if ft.is_dir() {
            sync_tree(&path)?;
        } else if ft.is_file() {
            File::open(&path)
                .and_then(|f| f.sync_all())
                .ctx("fsync file", &path)?;
        }
    }
    sync_dir(dir)
}

/// Total size in bytes and number of files below `path`, not following symlinks.
pub(crate) fn tree_size(path: &Path) -> io::Result<(u64, u64)> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return Ok((meta.len(), 1));
    }
    let (mut bytes, mut files) = (0, 0);
    for entry in fs::read_dir(path)? {
        let entry = entry?;
        match tree_size(&entry.path()) {
            Ok((b, f)) => {
                bytes += b;
                files += f;
            }
            // Removed while we walked: it no longer counts.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok((bytes, files))
}

/// Latest modification time of anything below `path` (including itself).
pub(crate) fn tree_mtime(path: &Path) -> io::Result<SystemTime> {
    let meta = fs::symlink_metadata(path)?;
    let mut latest = meta.modified()?;
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            match tree_mtime(&entry.path()) {
                Ok(t) => latest = latest.max(t),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(latest)
}

/// Remove a file or a whole directory tree (never following symlinks).
pub(crate) fn remove_any(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    }
}
