//! Durable append files for uploads and recordings.
//!
//! An append handle knows two lengths: what has been written ([`AppendFile::len`]) and what
//! is known to be on stable storage ([`AppendFile::durable_len`], the length at the last
//! fsync). A server advertises only the durable length (e.g. a TUS `Upload-Offset`), so what
//! it promises always survives a crash. The handle holds the object's advisory lock, so no
//! other handle, in any process, appends to the same file at the same time.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result, StorageError};
use crate::fsutil;
use crate::storage::{ObjectLock, Storage};

/// When an append handle fsyncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncPolicy {
    /// After every write: the durable length always equals the written length.
    Always,
    /// Whenever at least this many bytes are not yet durable, and on close.
    EveryBytes(u64),
    /// Only on [`AppendFile::sync`] and on close.
    OnClose,
}

impl Default for SyncPolicy {
    /// Every 8 MiB and on close: bounded loss window, fsync cost amortised.
    fn default() -> Self {
        SyncPolicy::EveryBytes(8 << 20)
    }
}

/// Length bookkeeping shared by the sync and async handles.
#[derive(Debug, Clone, Copy)]
struct Lengths {
    written: u64,
    durable: u64,
    policy: SyncPolicy,
}

impl Lengths {
    /// Refuse to "truncate" beyond what has been written.
    fn check_truncate(&self, path: &Path, len: u64) -> Result<()> {
        if len > self.written {
            return Err(StorageError::Invalid(format!(
                "cannot truncate {} to {len} bytes: it has only {}",
                path.display(),
                self.written
            )));
        }
        Ok(())
    }

    fn needs_sync(&self) -> bool {
        match self.policy {
            SyncPolicy::Always => self.written != self.durable,
            SyncPolicy::EveryBytes(n) => self.written - self.durable >= n.max(1),
            SyncPolicy::OnClose => false,
        }
    }
}

/// Open (or create) the file, fsync what is already there and take the lock.
fn open_locked(storage: &Storage, path: &Path) -> Result<(File, ObjectLock, u64)> {
    storage.object_relative(path)?;
    let lock = storage.try_lock(path)?;
    let parent = path.parent().ok_or_else(|| StorageError::OutsideRoot {
        path: path.to_path_buf(),
    })?;
    fsutil::create_dirs_durable(parent)?;
    let existed = path.exists();
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .ctx("open for append", path)?;
    // Whatever an earlier (possibly killed) writer left in the page cache becomes durable
    // now, so the length we start from is a durable one.
    file.sync_all().ctx("fsync", path)?;
    if !existed {
        fsutil::sync_dir(parent)?;
    }
    let len = file.metadata().ctx("stat", path)?.len();
    Ok((file, lock, len))
}

/// A durable append handle: tracks the written and the durable (fsynced) length, holds the
/// object's lock, and fsyncs as its [`SyncPolicy`] says.
#[derive(Debug)]
pub struct AppendFile {
    file: File,
    /// A second descriptor without `O_APPEND`, opened on first use: `splice` refuses
    /// append-mode targets, so spliced bytes are written at explicit offsets through it.
    positional: Option<File>,
    path: PathBuf,
    lens: Lengths,
    /// Bumped by every truncation: a background sync begun before one proves nothing
    /// about the bytes written after it.
    generation: u64,
    _lock: ObjectLock,
}

/// A sync of an [`AppendFile`]'s bytes up to [`BackgroundSync::len`], to run on another
/// thread while appends continue ([`AppendFile::begin_sync`]); hand its [`Synced`] back to
/// [`AppendFile::complete_sync`] to raise the durable length.
#[derive(Debug)]
pub struct BackgroundSync {
    file: File,
    path: PathBuf,
    len: u64,
    generation: u64,
}

/// Proof that an [`AppendFile`]'s first [`Synced::len`] bytes reached stable storage.
#[derive(Debug, Clone, Copy)]
pub struct Synced {
    len: u64,
    generation: u64,
}

impl BackgroundSync {
    /// The bytes this sync makes durable (the file's written length when it began).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the file was empty when the sync began.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// fsync (blocking); the proof of what is now durable.
    pub fn run(self) -> Result<Synced> {
        self.file.sync_data().ctx("fsync", &self.path)?;
        Ok(Synced {
            len: self.len,
            generation: self.generation,
        })
    }
}

impl Synced {
    /// The bytes proven durable.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing was proven (an empty file).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Storage {
    /// Open `path` (inside an object area) for appending, creating it if missing.
    ///
    /// Fails with [`StorageError::Locked`] if another handle holds the file.
    pub fn append_file(&self, path: impl Into<PathBuf>, policy: SyncPolicy) -> Result<AppendFile> {
        let path = path.into();
        let (file, lock, len) = open_locked(self, &path)?;
        Ok(AppendFile {
            file,
            positional: None,
            path,
            lens: Lengths {
                written: len,
                durable: len,
                policy,
            },
            generation: 0,
            _lock: lock,
        })
    }
}

impl AppendFile {
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written so far (durable or not).
    pub fn len(&self) -> u64 {
        self.lens.written
    }

    /// True when the file is empty.
    pub fn is_empty(&self) -> bool {
        self.lens.written == 0
    }

    /// Bytes known to be on stable storage: never more than what is on disk.
    pub fn durable_len(&self) -> u64 {
        self.lens.durable
    }

    /// Append `buf`, fsyncing as the policy says. On error (e.g.
    /// [`StorageError::DiskFull`]) the written length is re-read from the file, the durable
    /// length is unchanged, and the handle stays usable.
    pub fn append(&mut self, buf: &[u8]) -> Result<()> {
        if let Err(e) = self.file.write_all(buf) {
            self.lens.written = self.file.metadata().map_or(self.lens.written, |m| m.len());
            return Err(StorageError::io("append to", &self.path, e));
        }
        self.lens.written += buf.len() as u64;
        if self.lens.needs_sync() {
            self.sync()?;
        }
        Ok(())
    }

    /// Append the first `len` bytes of `src` (read from its current position) without
    /// passing them through user space: the kernel copies them (`copy_file_range`), or
    /// shares the blocks where the file system can (reflinks on btrfs and XFS). Errors
    /// leave the handle as [`AppendFile::append`] does.
    pub fn append_from(&mut self, src: &mut File, len: u64) -> Result<()> {
        let mut limited = std::io::Read::take(&mut *src, len);
        match std::io::copy(&mut limited, &mut self.file) {
            Ok(n) if n == len => {}
            Ok(n) => {
                self.lens.written = self.file.metadata().map_or(self.lens.written, |m| m.len());
                return Err(StorageError::Invalid(format!(
                    "{}: source ended after {n} of {len} bytes",
                    self.path.display()
                )));
            }
            Err(e) => {
                self.lens.written = self.file.metadata().map_or(self.lens.written, |m| m.len());
                return Err(StorageError::io("append to", &self.path, e));
            }
        }
        self.lens.written += len;
        if self.lens.needs_sync() {
            self.sync()?;
        }
        Ok(())
    }

    /// Append up to `len` bytes waiting in `pipe` (put there by `splice` from a socket)
    /// without passing them through user space: the kernel moves them into the page
    /// cache. Returns how many were appended (fewer when the pipe holds fewer), fsyncing
    /// as the policy says. Errors leave the handle as [`AppendFile::append`] does.
    pub fn append_from_pipe(&mut self, pipe: impl std::os::fd::AsFd, len: usize) -> Result<usize> {
        if self.positional.is_none() {
            let f = OpenOptions::new()
                .write(true)
                .open(&self.path)
                .ctx("open for splicing", &self.path)?;
            self.positional = Some(f);
        }
        let Some(target) = &self.positional else {
            return Ok(0);
        };
        let mut at = self.lens.written;
        let moved = rustix::pipe::splice(
            pipe,
            None,
            target,
            Some(&mut at),
            len,
            rustix::pipe::SpliceFlags::MOVE,
        );
        match moved {
            Ok(n) => {
                self.lens.written += n as u64;
                if self.lens.needs_sync() {
                    self.sync()?;
                }
                Ok(n)
            }
            Err(e) => {
                self.lens.written = self.file.metadata().map_or(self.lens.written, |m| m.len());
                Err(StorageError::io("splice into", &self.path, e.into()))
            }
        }
    }

    /// fsync now; afterwards the durable length equals the written length.
    pub fn sync(&mut self) -> Result<u64> {
        if self.lens.durable != self.lens.written {
            self.file.sync_data().ctx("fsync", &self.path)?;
            self.lens.durable = self.lens.written;
        }
        Ok(self.lens.durable)
    }

    /// Start a sync of everything written so far that runs apart from this handle (on
    /// another thread, [`BackgroundSync::run`]) while appends go on: a writer then never
    /// waits for the disk to flush. The durable length rises only when the proof comes
    /// back through [`AppendFile::complete_sync`].
    pub fn begin_sync(&self) -> Result<BackgroundSync> {
        Ok(BackgroundSync {
            file: self.file.try_clone().ctx("dup", &self.path)?,
            path: self.path.clone(),
            len: self.lens.written,
            generation: self.generation,
        })
    }

    /// Take in a finished background sync; returns the durable length. A sync begun
    /// before a truncation is ignored (the bytes it covered may have been replaced).
    pub fn complete_sync(&mut self, synced: Synced) -> u64 {
        if synced.generation == self.generation && synced.len <= self.lens.written {
            self.lens.durable = self.lens.durable.max(synced.len);
        }
        self.lens.durable
    }

    /// Cut the file back to `len` bytes (e.g. to discard a chunk whose checksum failed) and
    /// make that durable.
    pub fn truncate(&mut self, len: u64) -> Result<()> {
        self.lens.check_truncate(&self.path, len)?;
        self.generation += 1;
        self.file.set_len(len).ctx("truncate", &self.path)?;
        self.file.sync_all().ctx("fsync", &self.path)?;
        self.lens.written = len;
        self.lens.durable = len;
        Ok(())
    }

    /// fsync and release the handle (and its lock). Returns the durable length.
    pub fn close(mut self) -> Result<u64> {
        self.sync()
    }
}

impl Drop for AppendFile {
    fn drop(&mut self) {
        // Best effort: honour "sync on close" for handles dropped without close().
        let _ = self.sync();
    }
}

#[cfg(feature = "tokio")]
mod asynchronous {
    use tokio::io::AsyncWriteExt;

    use super::{
        Lengths, ObjectLock, Path, PathBuf, Result, Storage, StorageError, SyncPolicy, open_locked,
    };
    use crate::error::IoContext;

    /// The tokio counterpart of [`AppendFile`](super::AppendFile).
    #[derive(Debug)]
    pub struct AsyncAppendFile {
        file: tokio::fs::File,
        path: PathBuf,
        lens: Lengths,
        _lock: ObjectLock,
    }

    impl Storage {
        /// Async version of [`Storage::append_file`].
        pub async fn append_file_async(
            &self,
            path: impl Into<PathBuf>,
            policy: SyncPolicy,
        ) -> Result<AsyncAppendFile> {
            let path = path.into();
            let storage = self.clone();
            let p = path.clone();
            let (file, lock, len) = tokio::task::spawn_blocking(move || open_locked(&storage, &p))
                .await
                .map_err(|e| {
                    StorageError::Invalid(format!("blocking storage task failed: {e}"))
                })??;
            Ok(AsyncAppendFile {
                file: tokio::fs::File::from_std(file),
                path,
                lens: Lengths {
                    written: len,
                    durable: len,
                    policy,
                },
                _lock: lock,
            })
        }
    }

    impl AsyncAppendFile {
        /// The file's path.
        pub fn path(&self) -> &Path {
            &self.path
        }

        /// Bytes written so far (durable or not).
        pub fn len(&self) -> u64 {
            self.lens.written
        }

        /// True when the file is empty.
        pub fn is_empty(&self) -> bool {
            self.lens.written == 0
        }

        /// Bytes known to be on stable storage.
        pub fn durable_len(&self) -> u64 {
            self.lens.durable
        }

        /// Append `buf`, fsyncing as the policy says (see
        /// [`AppendFile::append`](super::AppendFile::append)).
        pub async fn append(&mut self, buf: &[u8]) -> Result<()> {
            let res = match self.file.write_all(buf).await {
                Ok(()) => self.file.flush().await,
                Err(e) => Err(e),
            };
            if let Err(e) = res {
                if let Ok(m) = self.file.metadata().await {
                    self.lens.written = m.len();
                }
                return Err(StorageError::io("append to", &self.path, e));
            }
            self.lens.written += buf.len() as u64;
            if self.lens.needs_sync() {
                self.sync().await?;
            }
            Ok(())
        }

        /// fsync now; afterwards the durable length equals the written length.
        pub async fn sync(&mut self) -> Result<u64> {
            if self.lens.durable != self.lens.written {
                self.file.sync_data().await.ctx("fsync", &self.path)?;
                self.lens.durable = self.lens.written;
            }
            Ok(self.lens.durable)
        }

        /// Cut the file back to `len` bytes and make that durable.
        pub async fn truncate(&mut self, len: u64) -> Result<()> {
            self.lens.check_truncate(&self.path, len)?;
            self.file.set_len(len).await.ctx("truncate", &self.path)?;
            self.file.sync_all().await.ctx("fsync", &self.path)?;
            self.lens.written = len;
            self.lens.durable = len;
            Ok(())
        }

        /// fsync and release the handle (and its lock). Returns the durable length.
        pub async fn close(mut self) -> Result<u64> {
            self.sync().await
        }
    }
}

#[cfg(feature = "tokio")]
pub use asynchronous::AsyncAppendFile;
