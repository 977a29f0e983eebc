//! Sweeps: stale `tmp/` entries and recording retention.
//!
//! Both take `now` from the caller (no clock reads inside), never follow symlinks, never
//! leave the root, and skip anything that is locked (a writer still at work).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{IoContext, Result, StorageError};
use crate::fsutil;
use crate::storage::{Area, Storage};

/// One entry a sweep removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// What was removed.
    pub path: PathBuf,
    /// Bytes it held.
    pub bytes: u64,
}

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Entries removed, oldest first.
    pub removed: Vec<Removed>,
    /// Entries that qualified but were skipped because a writer held them.
    pub skipped_locked: Vec<PathBuf>,
}

impl SweepReport {
    /// Total bytes removed.
    pub fn bytes_removed(&self) -> u64 {
        self.removed.iter().map(|r| r.bytes).sum()
    }
}

/// How long and how much recordings are kept. `None` means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Remove recordings whose newest file is older than this.
    pub max_age: Option<Duration>,
    /// Remove the oldest recordings until all of them together take at most this many bytes.
    pub max_total_bytes: Option<u64>,
}

/// A recording directory found under `recordings/`.
#[derive(Debug, Clone)]
struct Found {
    path: PathBuf,
    bytes: u64,
    mtime: SystemTime,
}

/// Try to take the flock of a tmp entry itself (writers hold it while they work).
fn tmp_entry_in_use(path: &Path) -> io::Result<Option<File>> {
    let f = File::open(path)?;
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Subdirectories of `dir`, skipping symlinks and files.
fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(StorageError::io("read directory", dir, e)),
    };
    for entry in entries {
        let entry = entry.ctx("read directory", dir)?;
        if entry.file_type().ctx("stat", &entry.path())?.is_dir() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

impl Storage {
    /// Remove entries of `tmp/` whose newest content is older than
    /// [`StorageOptions::tmp_ttl`](crate::StorageOptions::tmp_ttl) at `now`, unless a writer
    /// still holds them.
    pub fn sweep_tmp(&self, now: SystemTime) -> Result<SweepReport> {
        let tmp = self.area_dir(Area::Tmp);
        let ttl = self.inner.options.tmp_ttl;
        let mut report = SweepReport::default();
        let mut entries: Vec<(SystemTime, PathBuf)> = Vec::new();
        for entry in fs::read_dir(&tmp).ctx("read directory", &tmp)? {
            let path = entry.ctx("read directory", &tmp)?.path();
            match fsutil::tree_mtime(&path) {
                Ok(mtime) => entries.push((mtime, path)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io("stat", path, e)),
            }
        }
        entries.sort();
        for (mtime, path) in entries {
            if now.duration_since(mtime).unwrap_or_default() <= ttl {
                continue;
            }
            let is_symlink = fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
            // A symlink is removed as a link (never followed); anything else only when no
            // writer holds its lock.
            let _guard = if is_symlink {
                None
            } else {
                match tmp_entry_in_use(&path) {
                    Ok(Some(g)) => Some(g),
                    Ok(None) => {
                        report.skipped_locked.push(path);
                        continue;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(StorageError::io("lock", path, e)),
                }
            };
            let (bytes, _) = fsutil::tree_size(&path).unwrap_or((0, 0));
            match fsutil::remove_any(&path) {
                Ok(()) => report.removed.push(Removed { path, bytes }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io("remove", path, e)),
            }
        }
        Ok(report)
    }

    /// Every recording directory with its size and newest modification time.
    fn recordings(&self) -> Result<Vec<Found>> {
        let mut found = Vec::new();
        for a in subdirs(&self.area_dir(Area::Recordings))? {
            for b in subdirs(&a)? {
                for stream in subdirs(&b)? {
                    for rec in subdirs(&stream)? {
                        let (bytes, _) = fsutil::tree_size(&rec).ctx("measure", &rec)?;
                        let mtime = fsutil::tree_mtime(&rec).ctx("stat", &rec)?;
                        found.push(Found {
                            path: rec,
                            bytes,
                            mtime,
                        });
                    }
                }
            }
        }
        found.sort_by(|x, y| x.mtime.cmp(&y.mtime).then_with(|| x.path.cmp(&y.path)));
        Ok(found)
    }

    /// Apply a retention policy to `recordings/` at `now`: remove recordings older than
    /// `max_age`, then the oldest ones until the rest fit in `max_total_bytes`. A recording
    /// whose lock is held (still being written) is never removed.
    pub fn sweep_recordings(
        &self,
        policy: &RetentionPolicy,
        now: SystemTime,
    ) -> Result<SweepReport> {
        let found = self.recordings()?;
        let mut total: u64 = found.iter().map(|f| f.bytes).sum();
        let mut report = SweepReport::default();
        for rec in found {
            let too_old = policy
                .max_age
                .is_some_and(|max| now.duration_since(rec.mtime).unwrap_or_default() > max);
            let too_much = policy.max_total_bytes.is_some_and(|max| total > max);
            if !too_old && !too_much {
                continue;
            }
            let _lock = match self.try_lock(&rec.path) {
                Ok(l) => l,
                Err(StorageError::Locked { path }) => {
                    report.skipped_locked.push(path);
                    continue;
                }
                Err(e) => return Err(e),
            };
            match fs::remove_dir_all(&rec.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io("remove recording", rec.path, e)),
            }
            let _ = self.remove_lock_files(&rec.path);
            total -= rec.bytes;
            report.removed.push(Removed {
                path: rec.path,
                bytes: rec.bytes,
            });
        }
        Ok(report)
    }
}
