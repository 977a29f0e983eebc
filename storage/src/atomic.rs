//! Atomic publish: build in `tmp/`, fsync, rename into place, fsync the parent.
//!
//! A reader never sees a half-written file or directory at a final path: either the old
//! content (or nothing) or the complete new content. A writer that is dropped, fails or is
//! killed leaves only an entry in `tmp/`, which the tmp sweep removes later.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result, StorageError};
use crate::fsutil;
use crate::storage::{Area, Storage};

/// Create an exclusive `tmp/` file for a new object and hold its flock, so the tmp sweep
/// never removes it while it is being written.
fn create_tmp_file(storage: &Storage) -> Result<(File, PathBuf)> {
    let tmp = storage
        .area_dir(Area::Tmp)
        .join(fsutil::unique_name("part"));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .ctx("create temporary file", &tmp)?;
    file.try_lock()
        .map_err(|e| StorageError::io("lock temporary file", &tmp, io::Error::other(e)))?;
    Ok((file, tmp))
}

/// fsync `file`, rename `tmp` to `target`, fsync the target's parent (and `tmp/`).
fn publish_file(file: &File, tmp: &Path, target: &Path) -> Result<()> {
    file.sync_all().ctx("fsync", tmp)?;
    let parent = target.parent().ok_or_else(|| StorageError::OutsideRoot {
        path: target.to_path_buf(),
    })?;
    fsutil::create_dirs_durable(parent)?;
    fs::rename(tmp, target).ctx("rename into place", target)?;
    fsutil::sync_dir(parent)
}

/// A file written in `tmp/` and published at its final path by [`AtomicFile::commit`].
///
/// Replacing an existing file is atomic too: readers see the old or the new content.
#[derive(Debug)]
pub struct AtomicFile {
    file: File,
    tmp: PathBuf,
    target: PathBuf,
    done: bool,
}

impl Storage {
    /// Start writing a file that will appear at `target` (a path inside an object area) only
    /// once complete.
    pub fn atomic_file(&self, target: impl Into<PathBuf>) -> Result<AtomicFile> {
        let target = target.into();
        self.object_relative(&target)?;
        let (file, tmp) = create_tmp_file(self)?;
        Ok(AtomicFile {
            file,
            tmp,
            target,
            done: false,
        })
    }

    /// Write `data` to `target` atomically (see [`Storage::atomic_file`]).
    pub fn write_atomic(&self, target: impl Into<PathBuf>, data: &[u8]) -> Result<PathBuf> {
        let mut f = self.atomic_file(target)?;
        f.write_all(data).ctx("write", &f.tmp)?;
        f.commit()
    }

    /// Start building a directory that will appear at `target` only once complete (e.g. a
    /// transcoded HLS ladder). Fill [`AtomicDir::path`], then [`AtomicDir::commit`].
    pub fn atomic_dir(&self, target: impl Into<PathBuf>) -> Result<AtomicDir> {
        let target = target.into();
        self.object_relative(&target)?;
        let tmp = self.area_dir(Area::Tmp).join(fsutil::unique_name("dir"));
        fs::create_dir(&tmp).ctx("create temporary directory", &tmp)?;
        let guard = File::open(&tmp).ctx("open temporary directory", &tmp)?;
        guard
            .try_lock()
            .map_err(|e| StorageError::io("lock temporary directory", &tmp, io::Error::other(e)))?;
        Ok(AtomicDir {
            storage: self.clone(),
            tmp,
            target,
            _guard: guard,
            done: false,
        })
    }
}

impl AtomicFile {
    /// The final path the file will be published at.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The temporary file's path, for a tool that writes by name (e.g. ffmpeg): it may
    /// rewrite the file in place there (not replace it with another), then
    /// [`AtomicFile::commit`] publishes what it wrote.
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// Make the content durable and publish it at the final path. Returns that path.
    pub fn commit(mut self) -> Result<PathBuf> {
        self.file.flush().ctx("flush", &self.tmp)?;
        publish_file(&self.file, &self.tmp, &self.target)?;
        self.done = true;
        Ok(std::mem::take(&mut self.target))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.file.write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// A directory built in `tmp/` and published at its final path by [`AtomicDir::commit`] or
/// [`AtomicDir::commit_replace`].
#[derive(Debug)]
pub struct AtomicDir {
    storage: Storage,
    tmp: PathBuf,
    target: PathBuf,
    _guard: File,
    done: bool,
}

impl AtomicDir {
    /// The directory to fill (inside `tmp/`).
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// The final path the directory will be published at.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// fsync everything inside, then rename into place. Fails with
    /// [`StorageError::AlreadyExists`] if the target exists, and with
    /// [`StorageError::Locked`] if another writer holds the target's lock.
    pub fn commit(self) -> Result<PathBuf> {
        self.publish(false)
    }

    /// Like [`AtomicDir::commit`], but an existing target is swapped out atomically (readers
    /// see the old or the new tree, never a mix or nothing) and then removed.
    pub fn commit_replace(self) -> Result<PathBuf> {
        self.publish(true)
    }

    fn publish(mut self, replace: bool) -> Result<PathBuf> {
        fsutil::sync_tree(&self.tmp)?;
        let _lock = self.storage.try_lock(&self.target)?;
        let parent = self
            .target
            .parent()
            .ok_or_else(|| StorageError::OutsideRoot {
                path: self.target.clone(),
            })?
            .to_path_buf();
        fsutil::create_dirs_durable(&parent)?;
        let exists = fs::symlink_metadata(&self.target).is_ok();
        if exists && !replace {
            return Err(StorageError::AlreadyExists {
                path: self.target.clone(),
            });
        }
        if exists {
            rustix::fs::renameat_with(
                rustix::fs::CWD,
                &self.tmp,
                rustix::fs::CWD,
                &self.target,
                rustix::fs::RenameFlags::EXCHANGE,
            )
            .map_err(|e| StorageError::io("swap into place", &self.target, e.into()))?;
            fsutil::sync_dir(&parent)?;
            // The old tree now sits at the tmp path; remove it.
            fs::remove_dir_all(&self.tmp).ctx("remove replaced directory", &self.tmp)?;
        } else {
            fs::rename(&self.tmp, &self.target).ctx("rename into place", &self.target)?;
            fsutil::sync_dir(&parent)?;
        }
        fsutil::sync_dir(&self.storage.area_dir(Area::Tmp))?;
        self.done = true;
        Ok(std::mem::take(&mut self.target))
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

#[cfg(feature = "tokio")]
mod asynchronous {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::io::AsyncWrite;

    use super::{File, Path, PathBuf, Result, Storage, StorageError, create_tmp_file, fs};
    use crate::error::IoContext;

    /// The tokio counterpart of [`AtomicFile`](super::AtomicFile): an `AsyncWrite` whose
    /// content appears at the final path only after [`AsyncAtomicFile::commit`].
    #[derive(Debug)]
    pub struct AsyncAtomicFile {
        file: Option<tokio::fs::File>,
        tmp: PathBuf,
        target: PathBuf,
    }

    fn join_err(e: &tokio::task::JoinError) -> StorageError {
        StorageError::Invalid(format!("blocking storage task failed: {e}"))
    }

    impl Storage {
        /// Async version of [`Storage::atomic_file`].
        pub async fn atomic_file_async(
            &self,
            target: impl Into<PathBuf>,
        ) -> Result<AsyncAtomicFile> {
            let target = target.into();
            self.object_relative(&target)?;
            let storage = self.clone();
            let (file, tmp) = tokio::task::spawn_blocking(move || create_tmp_file(&storage))
                .await
                .map_err(|e| join_err(&e))??;
            Ok(AsyncAtomicFile {
                file: Some(tokio::fs::File::from_std(file)),
                tmp,
                target,
            })
        }
    }

    impl AsyncAtomicFile {
        /// The final path the file will be published at.
        pub fn target(&self) -> &Path {
            &self.target
        }

        /// Make the content durable and publish it at the final path.
        pub async fn commit(mut self) -> Result<PathBuf> {
            let Some(mut file) = self.file.take() else {
                return Err(StorageError::Invalid("file already committed".into()));
            };
            tokio::io::AsyncWriteExt::flush(&mut file)
                .await
                .ctx("flush", &self.tmp)?;
            let std_file: File = file.into_std().await;
            let tmp = self.tmp.clone();
            let target = self.target.clone();
            let result = tokio::task::spawn_blocking(move || {
                super::publish_file(&std_file, &tmp, &target).map(|()| target)
            })
            .await
            .map_err(|e| join_err(&e))?;
            if result.is_ok() {
                // Published: nothing left in tmp/ for Drop to remove.
                self.tmp = PathBuf::new();
            }
            result
        }

        fn file(&mut self) -> std::io::Result<Pin<&mut tokio::fs::File>> {
            self.file
                .as_mut()
                .map(Pin::new)
                .ok_or_else(|| std::io::Error::other("atomic file already committed"))
        }
    }

    impl AsyncWrite for AsyncAtomicFile {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            match self.get_mut().file() {
                Ok(f) => f.poll_write(cx, buf),
                Err(e) => Poll::Ready(Err(e)),
            }
        }
        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            match self.get_mut().file() {
                Ok(f) => f.poll_flush(cx),
                Err(e) => Poll::Ready(Err(e)),
            }
        }
        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            match self.get_mut().file() {
                Ok(f) => f.poll_shutdown(cx),
                Err(e) => Poll::Ready(Err(e)),
            }
        }
    }

    impl Drop for AsyncAtomicFile {
        fn drop(&mut self) {
            if !self.tmp.as_os_str().is_empty() {
                let _ = fs::remove_file(&self.tmp);
            }
        }
    }
}

#[cfg(feature = "tokio")]
pub use asynchronous::AsyncAtomicFile;
