//! Uploads on disk, through the storage crate: `uploads/<shard>/<id>/` holds `data` (the
//! bytes, appended in place), `info` (length, metadata, concat, times; written atomically)
//! and `offset` (the durable offset, rewritten atomically after each fsync of `data`).
//!
//! The advertised offset is the recorded durable offset, never the file's length: bytes
//! past it (written, not yet fsynced when the process died) are cut away the next time
//! the upload is opened for writing, and the client resends them. A writer holds the
//! upload's cross-process lock ([`Storage::append_file`]), so two requests — in one
//! process or several — never append to the same upload at once.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use videopick_storage::{AppendFile, Storage, StorageError, SyncPolicy, Synced, UploadId};

/// What can go wrong in the store, each mapping to a tus answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No such upload (404).
    #[error("upload {0} not found")]
    NotFound(String),
    /// The request's offset is not the upload's (409).
    #[error("offset mismatch: the upload is at {current}, the request starts at {requested}")]
    OffsetMismatch {
        /// Where the upload is.
        current: u64,
        /// Where the request wanted to write.
        requested: u64,
    },
    /// Writing past the declared length (400 / 413).
    #[error("write past the upload's length of {length} bytes")]
    PastLength {
        /// The declared length.
        length: u64,
    },
    /// Another request holds the upload (423 until it is released or taken over).
    #[error("upload {0} is being written by another request")]
    Locked(String),
    /// The length was already declared (400).
    #[error("the upload's length is already set")]
    LengthAlreadySet,
    /// A corrupt info file.
    #[error("upload {id}: corrupt info: {detail}")]
    Corrupt {
        /// The upload.
        id: String,
        /// What is wrong.
        detail: String,
    },
    /// Storage failure (disk full is [`StorageError::DiskFull`] inside).
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// The concatenation role of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConcatRole {
    /// A partial upload, to be concatenated later.
    Partial,
    /// A final upload made of these partial uploads, in order.
    Final(Vec<UploadId>),
}

/// An upload's fixed facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInfo {
    /// Its id.
    pub id: UploadId,
    /// Total length; `None` while deferred.
    pub length: Option<u64>,
    /// `Upload-Metadata` in canonical form (empty if none).
    pub metadata: String,
    /// Concatenation role.
    pub concat: Option<ConcatRole>,
    /// Creation time.
    pub created: SystemTime,
    /// When an unfinished upload expires.
    pub expires: Option<SystemTime>,
}

/// An upload and how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// Its facts.
    pub info: UploadInfo,
    /// Bytes durably stored.
    pub offset: u64,
}

impl Upload {
    /// All bytes are in.
    pub fn is_complete(&self) -> bool {
        self.info.length == Some(self.offset)
    }
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

fn from_ms(v: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(v)
}

impl UploadInfo {
    fn to_text(&self) -> String {
        let mut s = String::new();
        match self.length {
            Some(l) => {
                let _ = writeln!(s, "length={l}");
            }
            None => s.push_str("length=deferred\n"),
        }
        let _ = writeln!(s, "metadata={}", self.metadata);
        match &self.concat {
            None => {}
            Some(ConcatRole::Partial) => s.push_str("concat=partial\n"),
            Some(ConcatRole::Final(parts)) => {
                let ids: Vec<&str> = parts.iter().map(UploadId::as_str).collect();
                let _ = writeln!(s, "concat=final;{}", ids.join(" "));
            }
        }
        let _ = writeln!(s, "created_ms={}", ms(self.created));
        if let Some(e) = self.expires {
            let _ = writeln!(s, "expires_ms={}", ms(e));
        }
        s
    }

    fn from_text(id: &UploadId, text: &str) -> Result<UploadInfo, StoreError> {
        let corrupt = |d: &str| StoreError::Corrupt {
            id: id.to_string(),
            detail: d.to_string(),
        };
        let mut info = UploadInfo {
            id: id.clone(),
            length: None,
            metadata: String::new(),
            concat: None,
            created: UNIX_EPOCH,
            expires: None,
        };
        let mut saw_length = false;
        for line in text.lines() {
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| corrupt("a line without '='"))?;
            let num = |v: &str| v.parse::<u64>().map_err(|_| corrupt(k));
            match k {
                "length" => {
                    saw_length = true;
                    info.length = if v == "deferred" { None } else { Some(num(v)?) };
                }
                "metadata" => info.metadata = v.to_string(),
                "concat" if v == "partial" => info.concat = Some(ConcatRole::Partial),
                "concat" => {
                    let list = v.strip_prefix("final;").ok_or_else(|| corrupt("concat"))?;
                    let parts = list
                        .split(' ')
                        .map(|p| UploadId::new(p).map_err(|_| corrupt("concat part")))
                        .collect::<Result<Vec<_>, _>>()?;
                    info.concat = Some(ConcatRole::Final(parts));
                }
                "created_ms" => info.created = from_ms(num(v)?),
                "expires_ms" => info.expires = Some(from_ms(num(v)?)),
                _ => {} // written by a newer version: ignore
            }
        }
        if !saw_length {
            return Err(corrupt("no length"));
        }
        Ok(info)
    }
}

/// The file store.
#[derive(Debug, Clone)]
pub struct FileStore {
    storage: Storage,
    sync: SyncPolicy,
}

/// A fresh random upload id (128 bits from the OS, hex).
pub fn new_upload_id() -> io::Result<UploadId> {
    let mut b = [0u8; 16];
    fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    let hex = b.iter().fold(String::with_capacity(32), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    });
    UploadId::new(hex).map_err(io::Error::other)
}

impl FileStore {
    /// A store in `storage`'s `uploads/` area; `sync` says when data is fsynced (each
    /// fsync also records the durable offset).
    pub fn new(storage: Storage, sync: SyncPolicy) -> FileStore {
        FileStore { storage, sync }
    }

    /// The storage root.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    fn dir(&self, id: &UploadId) -> PathBuf {
        self.storage.upload_dir(id)
    }

    /// Path of an upload's bytes.
    pub fn data_path(&self, id: &UploadId) -> PathBuf {
        self.dir(id).join("data")
    }

    /// Create an upload: its directory appears whole (info, empty data, offset 0) or not
    /// at all.
    pub fn create(&self, info: UploadInfo) -> Result<Upload, StoreError> {
        let dir = self.storage.atomic_dir(self.dir(&info.id))?;
        let fail = |what: &'static str, e: io::Error| StorageError::io(what, dir.path(), e);
        fs::write(dir.path().join("info"), info.to_text()).map_err(|e| fail("write info", e))?;
        fs::write(dir.path().join("data"), b"").map_err(|e| fail("create data", e))?;
        fs::write(dir.path().join("offset"), b"0").map_err(|e| fail("write offset", e))?;
        dir.commit()?;
        Ok(Upload { info, offset: 0 })
    }

    /// Read an upload's info and durable offset.
    pub fn get(&self, id: &UploadId) -> Result<Upload, StoreError> {
        let dir = self.dir(id);
        let text = match fs::read_to_string(dir.join("info")) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(id.to_string()));
            }
            Err(e) => return Err(StorageError::io("read", dir.join("info"), e).into()),
        };
        let info = UploadInfo::from_text(id, &text)?;
        let offset = self.recorded_offset(id)?;
        Ok(Upload { info, offset })
    }

    fn recorded_offset(&self, id: &UploadId) -> Result<u64, StoreError> {
        let path = self.dir(id).join("offset");
        let text = fs::read_to_string(&path).map_err(|e| StorageError::io("read", &path, e))?;
        text.trim().parse().map_err(|_| StoreError::Corrupt {
            id: id.to_string(),
            detail: "offset".into(),
        })
    }

    /// Open an upload for appending at `offset` (which must be its current offset). Bytes
    /// past the recorded offset, left by a crash, are cut away first.
    pub fn writer(&self, id: &UploadId, offset: u64) -> Result<UploadWriter, StoreError> {
        let upload = self.get(id)?;
        // Periodic fsyncs run on a helper thread while appends go on (see UploadWriter).
        let (policy, interval) = match self.sync {
            SyncPolicy::EveryBytes(n) => (SyncPolicy::OnClose, Some(n.max(1))),
            p => (p, None),
        };
        let mut file = match self.storage.append_file(self.data_path(id), policy) {
            Ok(f) => f,
            Err(StorageError::Locked { .. }) => return Err(StoreError::Locked(id.to_string())),
            Err(e) => return Err(e.into()),
        };
        // A takeover request from before we held the upload is answered by holding it.
        self.clear_takeover(id);
        if file.len() > upload.offset {
            file.truncate(upload.offset)?;
        }
        let current = file.len().min(upload.offset);
        if current < upload.offset {
            // The file system lost bytes it had confirmed: advertise what is there.
            self.storage
                .write_atomic(self.dir(id).join("offset"), current.to_string().as_bytes())?;
        }
        if offset != current {
            return Err(StoreError::OffsetMismatch {
                current,
                requested: offset,
            });
        }
        Ok(UploadWriter {
            store: self.clone(),
            id: id.clone(),
            sync_started: file.len(),
            file,
            length: upload.info.length,
            recorded: current,
            interval,
            inflight: None,
        })
    }

    /// Declare the length of a deferred-length upload (not below what is stored).
    pub fn declare_length(&self, id: &UploadId, length: u64) -> Result<Upload, StoreError> {
        let mut upload = self.get(id)?;
        if upload.info.length.is_some() {
            return Err(StoreError::LengthAlreadySet);
        }
        if length < upload.offset {
            return Err(StoreError::PastLength { length });
        }
        upload.info.length = Some(length);
        self.storage
            .write_atomic(self.dir(id).join("info"), upload.info.to_text().as_bytes())?;
        Ok(upload)
    }

    /// Fill final upload `id` from its partial uploads, once they are all complete: the
    /// parts' bytes are appended in order by the kernel (`copy_file_range`: no copy through
    /// user space, shared blocks where the file system reflinks); nothing is listed as
    /// stored before it is fsynced. Returns the final upload (complete, or unchanged while a part is not)
    /// and whether this call completed it.
    pub fn concatenate(&self, id: &UploadId) -> Result<(Upload, bool), StoreError> {
        let upload = self.get(id)?;
        let Some(ConcatRole::Final(parts)) = &upload.info.concat else {
            return Ok((upload, false));
        };
        if upload.is_complete() {
            return Ok((upload, false));
        }
        let mut uploads = Vec::with_capacity(parts.len());
        for p in parts {
            let u = self.get(p)?;
            if !u.is_complete() {
                return Ok((upload, false)); // concatenation-unfinished: later
            }
            uploads.push(u);
        }
        let mut w = self.writer(id, upload.offset)?;
        if upload.offset > 0 {
            // An earlier attempt died midway: start over.
            w.rewind(0)?;
        }
        for p in &uploads {
            let path = self.data_path(&p.info.id);
            let mut f = fs::File::open(&path).map_err(|e| StorageError::io("open", &path, e))?;
            w.append_file(&mut f, p.offset)?;
        }
        let offset = w.finish()?;
        Ok((
            Upload {
                info: upload.info,
                offset,
            },
            true,
        ))
    }

    /// Ask whoever holds upload `id` — in any process — to let go (see
    /// [`FileStore::takeover_requested`]).
    pub fn request_takeover(&self, id: &UploadId) -> Result<(), StoreError> {
        let path = self.dir(id).join("takeover");
        fs::write(&path, b"").map_err(|e| StorageError::io("write", &path, e).into())
    }

    /// Whether another request asked for upload `id` (a writer checks this while it
    /// streams and lets go when asked).
    pub fn takeover_requested(&self, id: &UploadId) -> bool {
        self.dir(id).join("takeover").exists()
    }

    /// Withdraw a takeover request.
    pub fn clear_takeover(&self, id: &UploadId) {
        let _ = fs::remove_file(self.dir(id).join("takeover"));
    }

    /// When bytes last landed (the time the durable offset was last recorded, or the
    /// creation).
    pub fn last_write(&self, id: &UploadId) -> Result<SystemTime, StoreError> {
        let path = self.dir(id).join("offset");
        match fs::metadata(&path).and_then(|m| m.modified()) {
            Ok(t) => Ok(t),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(id.to_string()))
            }
            Err(e) => Err(StorageError::io("stat", &path, e).into()),
        }
    }

    /// Every upload in the store.
    pub fn list(&self) -> Result<Vec<UploadId>, StoreError> {
        let mut out = Vec::new();
        let root = self.storage.area_dir(videopick_storage::Area::Uploads);
        let mut level = vec![root];
        for _ in 0..3 {
            let mut next = Vec::new();
            for d in level {
                let rd = match fs::read_dir(&d) {
                    Ok(rd) => rd,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(StorageError::io("list", &d, e).into()),
                };
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        next.push(e.path());
                    }
                }
            }
            level = next;
        }
        for d in level {
            if let Some(id) = d
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| UploadId::new(n).ok())
                && d.join("info").exists()
            {
                out.push(id);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Remove unfinished uploads with no write for `ttl` as of `now`; uploads being written
    /// are skipped. Returns the removed ids.
    pub fn sweep_expired(
        &self,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<Vec<UploadId>, StoreError> {
        let mut removed = Vec::new();
        for id in self.list()? {
            let Ok(upload) = self.get(&id) else { continue };
            if upload.is_complete() {
                continue;
            }
            let Ok(last) = self.last_write(&id) else {
                continue;
            };
            if now.duration_since(last).unwrap_or(Duration::ZERO) <= ttl {
                continue;
            }
            match self.terminate(&id) {
                Ok(()) => removed.push(id),
                Err(StoreError::Locked(_) | StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    /// Remove an upload (its data and records).
    pub fn terminate(&self, id: &UploadId) -> Result<(), StoreError> {
        let dir = self.dir(id);
        if !dir.join("info").exists() {
            return Err(StoreError::NotFound(id.to_string()));
        }
        let _lock = match self.storage.try_lock(&self.data_path(id)) {
            Ok(l) => l,
            Err(StorageError::Locked { .. }) => return Err(StoreError::Locked(id.to_string())),
            Err(e) => return Err(e.into()),
        };
        // Remove the info first: from then on the upload is gone for every reader.
        fs::remove_file(dir.join("info")).map_err(|e| StorageError::io("remove", &dir, e))?;
        fs::remove_dir_all(&dir).map_err(|e| StorageError::io("remove", &dir, e))?;
        // Its lock files go too (the one held here is only unlinked).
        let _ = self.storage.remove_lock_files(&dir);
        Ok(())
    }
}

/// Appends to one upload; holds its lock. Call [`UploadWriter::finish`] to make the bytes
/// durable and advance the recorded offset (dropping it without `finish` keeps only what
/// earlier fsyncs recorded).
///
/// With [`SyncPolicy::EveryBytes`], each periodic fsync (and the offset record after it)
/// runs on a helper thread while appends go on, so the writer never waits for the disk to
/// flush; the recorded offset rises when a sync completes. At most one sync is in flight;
/// if the next is due four intervals later and the last has still not finished, the
/// writer waits for it (the unsynced window stays bounded).
#[derive(Debug)]
pub struct UploadWriter {
    store: FileStore,
    id: UploadId,
    file: AppendFile,
    length: Option<u64>,
    recorded: u64,
    /// Bytes between background syncs (`None`: the file's own policy decides).
    interval: Option<u64>,
    /// The written length when the last background sync began.
    sync_started: u64,
    inflight: Option<std::thread::JoinHandle<Result<Synced, StoreError>>>,
}

impl Drop for UploadWriter {
    fn drop(&mut self) {
        // The helper writes the offset record: it must be done before the lock goes, or
        // it could overwrite a later writer's record.
        if let Some(h) = self.inflight.take() {
            let _ = h.join();
        }
    }
}

impl UploadWriter {
    /// Bytes written so far (durable or not).
    pub fn written(&self) -> u64 {
        self.file.len()
    }

    /// The offset recorded as durable.
    pub fn durable_offset(&self) -> u64 {
        self.recorded
    }

    /// Append `buf`. Refuses to go past the declared length, writing nothing.
    pub fn write(&mut self, buf: &[u8]) -> Result<(), StoreError> {
        if let Some(length) = self.length
            && self.file.len() + buf.len() as u64 > length
        {
            return Err(StoreError::PastLength { length });
        }
        self.file.append(buf)?;
        self.after_append()
    }

    /// Record what became durable; start (or wait for) a background sync when one is due.
    fn after_append(&mut self) -> Result<(), StoreError> {
        let Some(interval) = self.interval else {
            if self.file.durable_len() > self.recorded {
                self.record(self.file.durable_len())?;
            }
            return Ok(());
        };
        if self
            .inflight
            .as_ref()
            .is_some_and(std::thread::JoinHandle::is_finished)
        {
            self.harvest()?;
        }
        let pending = self.file.len() - self.sync_started;
        if pending < interval {
            return Ok(());
        }
        if self.inflight.is_some() {
            if pending < interval.saturating_mul(4) {
                return Ok(());
            }
            self.harvest()?;
        }
        let job = self.file.begin_sync()?;
        self.sync_started = job.len();
        let storage = self.store.storage.clone();
        let path = self.store.dir(&self.id).join("offset");
        let handle = std::thread::Builder::new()
            .name("tus-sync".into())
            .stack_size(256 << 10)
            .spawn(move || {
                let synced = job.run()?;
                storage.write_atomic(path, synced.len().to_string().as_bytes())?;
                Ok(synced)
            })
            .map_err(|e| StorageError::io("spawn a sync thread for", self.file.path(), e))?;
        self.inflight = Some(handle);
        Ok(())
    }

    /// Wait for the background sync in flight, if any, and take in what it recorded.
    fn harvest(&mut self) -> Result<(), StoreError> {
        let Some(h) = self.inflight.take() else {
            return Ok(());
        };
        let synced = h.join().map_err(|_| {
            StoreError::Storage(StorageError::Invalid(format!(
                "{}: the sync thread panicked",
                self.file.path().display()
            )))
        })??;
        self.file.complete_sync(synced);
        self.recorded = self.recorded.max(synced.len());
        Ok(())
    }

    fn record(&mut self, offset: u64) -> Result<(), StoreError> {
        let path = self.store.dir(&self.id).join("offset");
        self.store
            .storage
            .write_atomic(path, offset.to_string().as_bytes())?;
        self.recorded = offset;
        Ok(())
    }

    /// Append up to `len` bytes waiting in `pipe` (spliced there from the request's
    /// socket) without passing them through user space; how many were appended. Refuses
    /// to go past the declared length, writing nothing.
    pub fn append_from_pipe(
        &mut self,
        pipe: impl std::os::fd::AsFd,
        len: usize,
    ) -> Result<usize, StoreError> {
        if let Some(length) = self.length
            && self.file.len() + len as u64 > length
        {
            return Err(StoreError::PastLength { length });
        }
        let n = self.file.append_from_pipe(pipe, len)?;
        self.after_append()?;
        Ok(n)
    }

    /// Append `len` bytes of `src` without passing them through user space (reflinked
    /// where the file system can), with the same length check and offset recording as
    /// [`UploadWriter::write`].
    pub fn append_file(&mut self, src: &mut fs::File, len: u64) -> Result<(), StoreError> {
        if let Some(length) = self.length
            && self.file.len() + len > length
        {
            return Err(StoreError::PastLength { length });
        }
        self.file.append_from(src, len)?;
        self.after_append()
    }

    /// Cut the upload back to `offset` (at least where this writer started is up to the
    /// caller), recording it: e.g. to drop a chunk whose checksum failed, even if part of
    /// it was already fsynced.
    pub fn rewind(&mut self, offset: u64) -> Result<u64, StoreError> {
        self.harvest()?;
        self.file.truncate(offset)?;
        self.sync_started = offset;
        if offset != self.recorded {
            self.record(offset)?;
        }
        Ok(offset)
    }

    /// fsync, record the offset and release the upload. Returns the new offset.
    pub fn finish(mut self) -> Result<u64, StoreError> {
        self.harvest()?;
        let durable = self.file.sync()?;
        if durable != self.recorded {
            self.record(durable)?;
        }
        Ok(self.recorded)
    }
}
