//! The storage root: layout, typed paths, locks and space accounting.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use crate::error::{IoContext, Result, StorageError};
use crate::fsutil;
use crate::id::{RecordingId, StreamKey, UploadId, VideoId};

/// Layout version written by this build. A root with a higher version is refused.
pub const LAYOUT_VERSION: u32 = 1;

/// Name of the layout-version file at the root.
pub const LAYOUT_FILE: &str = "VIDEOPICK_LAYOUT";

const LAYOUT_PREFIX: &str = "videopick-storage layout ";

/// Internal directory holding the advisory lock files (mirrors the object tree).
const LOCKS_DIR: &str = "locks";

/// The top-level areas of the storage root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Area {
    /// Resumable uploads in progress or finished (`uploads/`).
    Uploads,
    /// Live-stream recordings (`recordings/`).
    Recordings,
    /// Transcoded video on demand (`vod/`).
    Vod,
    /// Posters and storyboards (`thumbnails/`).
    Thumbnails,
    /// Work in progress, published from here by rename (`tmp/`).
    Tmp,
}

impl Area {
    /// Every area, in a fixed order.
    pub const ALL: [Area; 5] = [
        Area::Uploads,
        Area::Recordings,
        Area::Vod,
        Area::Thumbnails,
        Area::Tmp,
    ];

    /// The area's directory name under the root.
    pub fn dir_name(self) -> &'static str {
        match self {
            Area::Uploads => "uploads",
            Area::Recordings => "recordings",
            Area::Vod => "vod",
            Area::Thumbnails => "thumbnails",
            Area::Tmp => "tmp",
        }
    }
}

impl fmt::Display for Area {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dir_name())
    }
}

/// The two shard directory names for `key`: the first two bytes of its 64-bit FNV-1a hash in
/// hex. The hash is part of layout version 1 and never changes within it.
///
/// 65,536 leaf directories keep each directory small even with tens of millions of objects.
pub fn shard(key: &str) -> (String, String) {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let [a, b, ..] = h.to_be_bytes();
    (format!("{a:02x}"), format!("{b:02x}"))
}

/// Options of a [`Storage`]; [`Default`] is right for production.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StorageOptions {
    /// Bytes that [`Storage::reserve`] always leaves free on the file system (default 1 GiB).
    pub min_free_bytes: u64,
    /// Age after which an unlocked entry in `tmp/` is stale (default 24 h).
    pub tmp_ttl: Duration,
    /// Sweep stale `tmp/` entries when the storage is opened (default true).
    pub sweep_tmp_on_open: bool,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            min_free_bytes: 1 << 30,
            tmp_ttl: Duration::from_secs(24 * 3600),
            sweep_tmp_on_open: true,
        }
    }
}

impl StorageOptions {
    /// Set [`StorageOptions::min_free_bytes`].
    #[must_use]
    pub fn min_free_bytes(mut self, bytes: u64) -> Self {
        self.min_free_bytes = bytes;
        self
    }

    /// Set [`StorageOptions::tmp_ttl`].
    #[must_use]
    pub fn tmp_ttl(mut self, ttl: Duration) -> Self {
        self.tmp_ttl = ttl;
        self
    }

    /// Set [`StorageOptions::sweep_tmp_on_open`].
    #[must_use]
    pub fn sweep_tmp_on_open(mut self, on: bool) -> Self {
        self.sweep_tmp_on_open = on;
        self
    }
}

pub(crate) struct Inner {
    pub(crate) root: PathBuf,
    pub(crate) options: StorageOptions,
    reserved: Mutex<u64>,
}

/// A storage root. Cheap to clone (shared inside), `Send + Sync`.
///
/// All paths it hands out are inside the root by construction: they are built from the root,
/// an [`Area`], shard directories and validated ids only.
#[derive(Clone)]
pub struct Storage {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("root", &self.inner.root)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// Open (creating if needed) the storage at `root` with default options.
    pub fn open(root: impl AsRef<Path>) -> Result<Storage> {
        Storage::open_with(root, StorageOptions::default())
    }

    /// Open (creating if needed) the storage at `root`.
    ///
    /// Creates the root, every area and the layout file when missing; refuses a root whose
    /// layout file names a newer version ([`StorageError::NewerLayout`]) or cannot be read
    /// ([`StorageError::CorruptLayout`]). Sweeps stale `tmp/` entries unless told not to.
    pub fn open_with(root: impl AsRef<Path>, options: StorageOptions) -> Result<Storage> {
        let root = root.as_ref();
        fsutil::create_dirs_durable(root)?;
        let root = root.canonicalize().ctx("resolve storage root", root)?;

        let layout = root.join(LAYOUT_FILE);
        match fs::read_to_string(&layout) {
            Ok(text) => {
                let found = parse_layout(&text).ok_or_else(|| StorageError::CorruptLayout {
                    path: layout.clone(),
                    detail: format!("expected \"{LAYOUT_PREFIX}<version>\", found {text:?}"),
                })?;
                if found > LAYOUT_VERSION {
                    return Err(StorageError::NewerLayout {
                        root,
                        found,
                        supported: LAYOUT_VERSION,
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io("read layout file", layout, e)),
        }

        let mut created = false;
        for dir in Area::ALL
            .iter()
            .map(|a| a.dir_name())
            .chain(std::iter::once(LOCKS_DIR))
        {
            let p = root.join(dir);
            if !p.is_dir() {
                match fs::create_dir(&p) {
                    Ok(()) => created = true,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && p.is_dir() => {}
                    Err(e) => return Err(StorageError::io("create area", p, e)),
                }
            }
        }
        if created {
            fsutil::sync_dir(&root)?;
        }

        let storage = Storage {
            inner: Arc::new(Inner {
                root,
                options,
                reserved: Mutex::new(0),
            }),
        };
        if !layout.exists() {
            storage.write_layout_file()?;
        }
        if storage.inner.options.sweep_tmp_on_open {
            storage.sweep_tmp(SystemTime::now())?;
        }
        Ok(storage)
    }

    fn write_layout_file(&self) -> Result<()> {
        let layout = self.inner.root.join(LAYOUT_FILE);
        let tmp = self.area_dir(Area::Tmp).join(fsutil::unique_name("layout"));
        let mut f = File::create(&tmp).ctx("create", &tmp)?;
        f.write_all(format!("{LAYOUT_PREFIX}{LAYOUT_VERSION}\n").as_bytes())
            .and_then(|()| f.sync_all())
            .ctx("write", &tmp)?;
        fs::rename(&tmp, &layout).ctx("rename into place", &layout)?;
        fsutil::sync_dir(&self.inner.root)
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The options this storage was opened with.
    pub fn options(&self) -> &StorageOptions {
        &self.inner.options
    }

    /// The directory of an area.
    pub fn area_dir(&self, area: Area) -> PathBuf {
        self.inner.root.join(area.dir_name())
    }

    fn sharded(&self, area: Area, key: &str) -> PathBuf {
        let (a, b) = shard(key);
        self.area_dir(area).join(a).join(b).join(key)
    }

    /// Directory of one upload: `uploads/<shard>/<id>/` (its data and info files go inside).
    pub fn upload_dir(&self, id: &UploadId) -> PathBuf {
        self.sharded(Area::Uploads, id.as_str())
    }

    /// Directory of a video's renditions: `vod/<shard>/<id>/`.
    pub fn vod_dir(&self, id: &VideoId) -> PathBuf {
        self.sharded(Area::Vod, id.as_str())
    }

    /// Directory of a video's posters and storyboards: `thumbnails/<shard>/<id>/`.
    pub fn thumbnail_dir(&self, id: &VideoId) -> PathBuf {
        self.sharded(Area::Thumbnails, id.as_str())
    }

    /// Directory of all recordings of one stream: `recordings/<shard>/<stream>/`.
    pub fn stream_recordings_dir(&self, stream: &StreamKey) -> PathBuf {
        self.sharded(Area::Recordings, stream.as_str())
    }

    /// Directory of one recording: `recordings/<shard>/<stream>/<recording>/`.
    pub fn recording_dir(&self, stream: &StreamKey, recording: &RecordingId) -> PathBuf {
        self.stream_recordings_dir(stream).join(recording.as_str())
    }

    /// Check that `path` is strictly inside one of the object areas (not `tmp/`, not the
    /// lock directory) and made only of ordinary components; return its path relative to the
    /// root.
    pub(crate) fn object_relative<'p>(&self, path: &'p Path) -> Result<&'p Path> {
        let outside = || StorageError::OutsideRoot {
            path: path.to_path_buf(),
        };
        let rel = path.strip_prefix(&self.inner.root).map_err(|_| outside())?;
        let mut comps = rel.components();
        let Some(Component::Normal(first)) = comps.next() else {
            return Err(outside());
        };
        let in_object_area = Area::ALL
            .iter()
            .any(|a| *a != Area::Tmp && first == a.dir_name());
        if !in_object_area || comps.clone().next().is_none() {
            return Err(outside());
        }
        if !comps.all(|c| matches!(c, Component::Normal(_))) {
            return Err(outside());
        }
        Ok(rel)
    }

    fn lock_file_path(&self, object: &Path) -> Result<PathBuf> {
        let rel = self.object_relative(object)?;
        let mut p = self.inner.root.join(LOCKS_DIR).join(rel);
        let mut name = p.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        p.set_file_name(name);
        Ok(p)
    }

    fn open_lock_file(&self, object: &Path) -> Result<File> {
        let lock_path = self.lock_file_path(object)?;
        if let Some(parent) = lock_path.parent() {
            fs::create_dir_all(parent).ctx("create lock directory", parent)?;
        }
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .ctx("open lock file", &lock_path)
    }

    /// Take the exclusive advisory lock of the object at `path` (a path this storage handed
    /// out), failing at once with [`StorageError::Locked`] if another handle — in this or any
    /// other process on the same root — holds it.
    ///
    /// The lock is released when the returned guard is dropped or its process dies.
    pub fn try_lock(&self, path: &Path) -> Result<ObjectLock> {
        let file = self.open_lock_file(path)?;
        match file.try_lock() {
            Ok(()) => Ok(ObjectLock {
                _file: file,
                path: path.to_path_buf(),
            }),
            Err(std::fs::TryLockError::WouldBlock) => Err(StorageError::Locked {
                path: path.to_path_buf(),
            }),
            Err(std::fs::TryLockError::Error(e)) => Err(StorageError::io("lock", path, e)),
        }
    }

    /// Remove the lock files of the object at `path` and of every object inside it (call
    /// once the object is gone: they would otherwise stay behind it forever). Missing ones
    /// are fine.
    pub fn remove_lock_files(&self, path: &Path) -> Result<()> {
        let lock_file = self.lock_file_path(path)?;
        let nested = self
            .inner
            .root
            .join(LOCKS_DIR)
            .join(self.object_relative(path)?);
        match fs::remove_dir_all(&nested) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io("remove locks", nested, e)),
        }
        match fs::remove_file(&lock_file) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io("remove lock", lock_file, e)),
        }
    }

    /// Remove the object at `path` (a directory or file this storage handed out) and its
    /// lock files, holding its lock meanwhile: [`StorageError::Locked`] while someone else
    /// holds it. Whether it existed.
    pub fn remove_object(&self, path: &Path) -> Result<bool> {
        let lock = self.try_lock(path)?;
        let existed = match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(path).map(|()| true),
            Ok(_) => fs::remove_file(path).map(|()| true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
        .map_err(|e| StorageError::io("remove", path, e))?;
        self.remove_lock_files(path)?;
        drop(lock);
        Ok(existed)
    }

    /// Like [`Storage::try_lock`] but waits until the lock is free.
    pub fn lock(&self, path: &Path) -> Result<ObjectLock> {
        let file = self.open_lock_file(path)?;
        file.lock().ctx("lock", path)?;
        Ok(ObjectLock {
            _file: file,
            path: path.to_path_buf(),
        })
    }

    /// Bytes available to unprivileged writers on the root's file system right now.
    pub fn free_bytes(&self) -> Result<u64> {
        let st = rustix::fs::statvfs(&self.inner.root)
            .map_err(|e| StorageError::io("statvfs", &self.inner.root, e.into()))?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// Bytes currently held by live [`Reservation`]s.
    pub fn reserved_bytes(&self) -> u64 {
        *self
            .inner
            .reserved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserve `bytes` of disk space before writing them.
    ///
    /// Fails with [`StorageError::InsufficientSpace`] when the free space, less the bytes of
    /// other live reservations and less [`StorageOptions::min_free_bytes`], is smaller than
    /// `bytes` — so a writer learns it cannot finish *before* the disk fills up. The
    /// reservation is returned when the guard is dropped; release parts of it as the bytes
    /// land with [`Reservation::release`].
    pub fn reserve(&self, bytes: u64) -> Result<Reservation> {
        let free = self.free_bytes()?;
        let mut reserved = self
            .inner
            .reserved
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let available =
            free.saturating_sub(self.inner.options.min_free_bytes.saturating_add(*reserved));
        if bytes > available {
            return Err(StorageError::InsufficientSpace {
                requested: bytes,
                available,
            });
        }
        *reserved += bytes;
        Ok(Reservation {
            inner: Arc::clone(&self.inner),
            bytes,
        })
    }

    /// Bytes and files stored in one area (symlinks are not followed).
    pub fn usage(&self, area: Area) -> Result<Usage> {
        let dir = self.area_dir(area);
        let (bytes, files) = fsutil::tree_size(&dir).ctx("measure", &dir)?;
        Ok(Usage { bytes, files })
    }
}

fn parse_layout(text: &str) -> Option<u32> {
    text.trim().strip_prefix(LAYOUT_PREFIX)?.parse().ok()
}

/// Space used by an area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Sum of file sizes.
    pub bytes: u64,
    /// Number of files.
    pub files: u64,
}

/// Held advisory lock of one object; released on drop.
#[derive(Debug)]
pub struct ObjectLock {
    _file: File,
    path: PathBuf,
}

impl ObjectLock {
    /// The locked object's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Space reserved with [`Storage::reserve`]; returned on drop.
pub struct Reservation {
    inner: Arc<Inner>,
    bytes: u64,
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl Reservation {
    /// Bytes still held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Give back up to `n` bytes (e.g. once they have been written to disk and show up in
    /// the file system's own accounting).
    pub fn release(&mut self, n: u64) {
        let n = n.min(self.bytes);
        self.bytes -= n;
        let mut reserved = self
            .inner
            .reserved
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *reserved = reserved.saturating_sub(n);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_is_stable_and_two_hex_levels() {
        // Pinned values: changing the hash would move every object of layout version 1.
        assert_eq!(shard("a"), ("af".to_string(), "63".to_string()));
        let (a, b) = shard("some-upload-id");
        assert_eq!((a.len(), b.len()), (2, 2));
        assert!(a.chars().chain(b.chars()).all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn layout_parse() {
        assert_eq!(parse_layout("videopick-storage layout 1\n"), Some(1));
        assert_eq!(parse_layout("videopick-storage layout x"), None);
        assert_eq!(parse_layout(""), None);
    }
}
