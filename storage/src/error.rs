//! The error type of every storage operation.

use std::io;
use std::path::PathBuf;

use crate::id::IdError;

/// Anything that can go wrong in the storage crate.
///
/// Invalid input (a bad id, a path outside the root), conditions of the disk (no space, a
/// newer layout, a held lock) and plain I/O failures are distinct variants so callers can map
/// them to the right answer (400, 507, 423, 500 …).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// An id was rejected by validation.
    #[error(transparent)]
    InvalidId(#[from] IdError),

    /// The root was written by a newer layout version than this build understands.
    #[error(
        "storage root {root} has layout version {found}, but this build supports at most {supported}; upgrade the software"
    )]
    NewerLayout {
        /// The storage root.
        root: PathBuf,
        /// Version found in the layout file.
        found: u32,
        /// Highest version this build understands.
        supported: u32,
    },

    /// The layout file exists but cannot be understood.
    #[error("storage layout file {path} is corrupt: {detail}")]
    CorruptLayout {
        /// Path of the layout file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },

    /// A path handed to the storage does not lie inside the area it must be in.
    #[error("path {path} is outside the storage area it must be in")]
    OutsideRoot {
        /// The offending path.
        path: PathBuf,
    },

    /// [`Storage::reserve`](crate::Storage::reserve) refused: the bytes asked for would eat
    /// into the configured free-space reserve.
    #[error(
        "insufficient space: {requested} bytes requested, {available} bytes available above the reserve"
    )]
    InsufficientSpace {
        /// Bytes requested.
        requested: u64,
        /// Bytes that could still be granted.
        available: u64,
    },

    /// The file system reported it is full (ENOSPC / EDQUOT) during `op` on `path`.
    /// Nothing at a final path was changed.
    #[error("disk full while trying to {op} {path}")]
    DiskFull {
        /// What was being done.
        op: &'static str,
        /// The path concerned.
        path: PathBuf,
    },

    /// Another handle or process holds the object's lock.
    #[error("{path} is locked by another writer")]
    Locked {
        /// The locked object.
        path: PathBuf,
    },

    /// The final path of a publish already exists and replacing was not asked for.
    #[error("{path} already exists")]
    AlreadyExists {
        /// The existing path.
        path: PathBuf,
    },

    /// A caller asked for something inconsistent (e.g. truncating an append file beyond its
    /// length).
    #[error("invalid request: {0}")]
    Invalid(String),

    /// Any other I/O error, with what was being done and where.
    #[error("I/O error while trying to {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl StorageError {
    /// Wrap an I/O error on `path`, turning "no space" errors into
    /// [`StorageError::DiskFull`] (for crates doing their own file work inside the root).
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        if is_no_space(&source) {
            StorageError::DiskFull { op, path }
        } else {
            StorageError::Io { op, path, source }
        }
    }

    /// True for both space errors: the reserve check and a full file system.
    pub fn is_no_space(&self) -> bool {
        matches!(
            self,
            StorageError::InsufficientSpace { .. } | StorageError::DiskFull { .. }
        )
    }
}

fn is_no_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || matches!(e.raw_os_error(), Some(28 | 122)) // ENOSPC, EDQUOT on Linux
}

/// Result alias of this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Extension to attach an operation and a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| StorageError::io(op, path, e))
    }
}
