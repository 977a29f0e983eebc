//! Block-storage layout for VideoPick.
//!
//! One root directory (production: `/mnt/storage`, a mounted block volume) holds every file
//! the platform keeps:
//!
//! ```text
//! <root>/VIDEOPICK_LAYOUT              layout version ("videopick-storage layout 1")
//! <root>/uploads/<aa>/<bb>/<upload>/   resumable uploads (data + info)
//! <root>/recordings/<aa>/<bb>/<stream>/<recording>/   live recordings
//! <root>/vod/<aa>/<bb>/<video>/        transcoded renditions
//! <root>/thumbnails/<aa>/<bb>/<video>/ posters, storyboards
//! <root>/tmp/                          work in progress, published by rename
//! <root>/locks/                        advisory lock files (mirror of the object tree)
//! ```
//!
//! `<aa>/<bb>` are two shard levels from a hash of the id ([`shard`]), so no directory grows
//! to millions of entries.
//!
//! ```
//! use std::io::Write;
//! use videopick_storage::{Area, Storage, StorageOptions, SyncPolicy, UploadId, VideoId};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let storage = Storage::open_with(dir.path(), StorageOptions::default().min_free_bytes(0))?;
//!
//! // Ids are validated: nothing built from one can leave its area.
//! assert!(VideoId::new("../etc").is_err());
//! let video = VideoId::new("v42")?;
//!
//! // Atomic publish: readers see nothing or the whole file, never half of it.
//! let playlist = storage.vod_dir(&video).join("master.m3u8");
//! let mut f = storage.atomic_file(&playlist)?;
//! f.write_all(b"#EXTM3U\n")?;
//! f.commit()?;
//! assert_eq!(std::fs::read(&playlist)?, b"#EXTM3U\n");
//!
//! // Durable append: advertise only what survived an fsync.
//! let upload = UploadId::new("u1")?;
//! let mut data = storage.append_file(storage.upload_dir(&upload).join("data"), SyncPolicy::OnClose)?;
//! data.append(b"hello")?;
//! assert_eq!((data.len(), data.durable_len()), (5, 0));
//! assert_eq!(data.sync()?, 5);
//!
//! // Space guard and usage.
//! let _reservation = storage.reserve(1024)?;
//! assert_eq!(storage.usage(Area::Vod)?.files, 1);
//! # Ok(()) }
//! ```
//!
//! Writers:
//! - [`Storage::atomic_file`] / [`Storage::write_atomic`] (and `atomic_file_async` with the
//!   `tokio` feature) for whole files; [`Storage::atomic_dir`] for whole directories.
//! - [`Storage::append_file`] (and `append_file_async`) for uploads and recordings, holding
//!   the object's cross-process lock.
//!
//! Housekeeping: [`Storage::reserve`] before large writes, [`Storage::usage`],
//! [`Storage::sweep_tmp`] and [`Storage::sweep_recordings`], [`Storage::try_lock`].

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod append;
mod atomic;
mod error;
mod fsutil;
pub mod id;
mod storage;
mod sweep;

#[cfg(feature = "tokio")]
pub use append::AsyncAppendFile;
pub use append::{AppendFile, BackgroundSync, SyncPolicy, Synced};
#[cfg(feature = "tokio")]
pub use atomic::AsyncAtomicFile;
pub use atomic::{AtomicDir, AtomicFile};
pub use error::{Result, StorageError};
pub use id::{Id, IdError, MAX_ID_LEN, RecordingId, StreamKey, UploadId, VideoId};
pub use storage::{
    Area, LAYOUT_FILE, LAYOUT_VERSION, ObjectLock, Reservation, Storage, StorageOptions, Usage,
    shard,
};
pub use sweep::{Removed, RetentionPolicy, SweepReport};
