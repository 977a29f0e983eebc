//! The tus 1.0.0 HTTP service (feature `server`): hand it hyper requests under its base
//! path, get responses back. Core protocol plus the creation, creation-with-upload,
//! creation-defer-length, expiration, checksum, checksum-trailer, termination,
//! concatenation and concatenation-unfinished extensions.
//!
//! PATCH bodies stream to disk through a bounded channel (at most
//! [`TusConfig::body_queue`] frames in memory) feeding a blocking writer, so a 5 GB
//! single-request upload uses constant memory. A response's `Upload-Offset` is always the
//! durably recorded offset.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, combinators::BoxBody};
use hyper::body::Body;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::mpsc;
use videopick_storage::{StorageError, UploadId};

use crate::checksum::Hasher;
use crate::core::PatchOutcome;
use crate::direct::{DirectBody, DirectBodySlot};
use crate::headers::{
    self, Checksum, ChecksumAlgorithm, Concat, HeaderError, Metadata, TUS_VERSION, check_version,
    parse_defer_length, parse_u64,
};
use crate::hooks::{Hooks, NoHooks, RequestInfo};
use crate::store::{ConcatRole, FileStore, StoreError, Upload, UploadInfo, new_upload_id};

/// Completes when another request takes upload `id` over: `stop` from this process, or
/// the store's request file from another (looked at every 250 ms).
async fn taken_over(store: FileStore, id: UploadId, stop: Arc<tokio::sync::Notify>) {
    let mut poll = tokio::time::interval(Duration::from_millis(250));
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.notified() => return,
            _ = poll.tick() => {
                if store.takeover_requested(&id) {
                    return;
                }
            }
        }
    }
}

/// What a body copy through the HTTP library leaves: the writer, a store failure, a
/// broken body.
type FramesCopied = (
    crate::store::UploadWriter,
    Option<StoreError>,
    Option<String>,
);

/// Response body type.
pub type TusBody = BoxBody<Bytes, Infallible>;

/// The extensions this service implements, for `Tus-Extension`.
pub const EXTENSIONS: &str = "creation,creation-with-upload,creation-defer-length,expiration,checksum,checksum-trailer,termination,concatenation,concatenation-unfinished";

/// Headers a browser may send and read (CORS).
const TUS_HEADERS: &str = "Authorization, Content-Type, Location, Tus-Extension, Tus-Max-Size, Tus-Resumable, Tus-Version, Tus-Checksum-Algorithm, Upload-Checksum, Upload-Concat, Upload-Defer-Length, Upload-Expires, Upload-Length, Upload-Metadata, Upload-Offset, X-HTTP-Method-Override, X-Requested-With";
const TUS_EXPOSE: &str = "Location, Tus-Extension, Tus-Max-Size, Tus-Resumable, Tus-Version, Tus-Checksum-Algorithm, Upload-Concat, Upload-Defer-Length, Upload-Expires, Upload-Length, Upload-Metadata, Upload-Offset";

/// Service settings.
#[derive(Debug, Clone)]
pub struct TusConfig {
    /// Path prefix the service is mounted at, with a trailing slash (`/files/`).
    pub base_path: String,
    /// Largest upload accepted (`Tus-Max-Size`).
    pub max_size: u64,
    /// Largest `Upload-Metadata` header.
    pub max_metadata: usize,
    /// Unfinished uploads expire this long after their last write (`None`: never).
    pub expiration: Option<Duration>,
    /// Allowed CORS origins (`*` for any); empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// Body frames queued between the network and the disk writer (default 1). Each
    /// queued frame pins a read buffer of the HTTP server, so an upload holds about
    /// (queue + 2) × the server's largest read: with hyper reading at most 32 KiB,
    /// about 100 KiB.
    pub body_queue: usize,
}

impl Default for TusConfig {
    fn default() -> Self {
        TusConfig {
            base_path: "/files/".into(),
            max_size: 64 << 30,
            max_metadata: headers::DEFAULT_MAX_METADATA,
            expiration: Some(Duration::from_secs(24 * 3600)),
            cors_origins: vec!["*".into()],
            body_queue: 1,
        }
    }
}

/// The service. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TusService {
    inner: Arc<Inner>,
}

struct Inner {
    store: FileStore,
    config: TusConfig,
    hooks: Arc<dyn Hooks>,
    metrics: Counters,
    /// Requests writing now, by upload id: signalled to stop when another request wants
    /// the upload (a stalled client must not hold it forever).
    active: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Notify>>>,
}

fn empty() -> TusBody {
    Empty::<Bytes>::new().boxed()
}

fn text(status: StatusCode, msg: impl Into<String>) -> Response<TusBody> {
    let mut r = Response::new(http_body_util::Full::new(Bytes::from(msg.into())).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn status(code: StatusCode) -> Response<TusBody> {
    let mut r = Response::new(empty());
    *r.status_mut() = code;
    r
}

fn set(r: &mut Response<TusBody>, name: &'static str, value: impl AsRef<str>) {
    if let Ok(v) = HeaderValue::from_str(value.as_ref()) {
        r.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn header_error(e: &HeaderError) -> Response<TusBody> {
    let code = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    text(code, format!("{e}\n"))
}

fn store_error(e: &StoreError) -> Response<TusBody> {
    match e {
        StoreError::NotFound(_) => text(StatusCode::NOT_FOUND, "upload not found\n"),
        StoreError::OffsetMismatch { .. } => text(StatusCode::CONFLICT, format!("{e}\n")),
        StoreError::PastLength { .. } | StoreError::LengthAlreadySet => {
            text(StatusCode::BAD_REQUEST, format!("{e}\n"))
        }
        StoreError::Locked(_) => text(StatusCode::LOCKED, format!("{e}\n")),
        StoreError::Storage(s) if s.is_no_space() => text(
            StatusCode::INSUFFICIENT_STORAGE,
            "the server's disk is full; what arrived is kept, resume later\n",
        ),
        _ => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TusService")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Upload counters, for Prometheus.
#[derive(Debug, Default)]
struct Counters {
    created: AtomicU64,
    finished: AtomicU64,
    terminated: AtomicU64,
    bytes_received: AtomicU64,
}

/// A snapshot of [`TusService::metrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TusMetrics {
    /// Uploads created.
    pub created: u64,
    /// Uploads completed.
    pub finished: u64,
    /// Uploads terminated.
    pub terminated: u64,
    /// Body bytes durably stored by PATCH requests.
    pub bytes_received: u64,
    /// Requests writing right now.
    pub active_uploads: u64,
}

impl TusService {
    /// Counters since start.
    pub fn metrics(&self) -> TusMetrics {
        let c = &self.inner.metrics;
        TusMetrics {
            created: c.created.load(Ordering::Relaxed),
            finished: c.finished.load(Ordering::Relaxed),
            terminated: c.terminated.load(Ordering::Relaxed),
            bytes_received: c.bytes_received.load(Ordering::Relaxed),
            active_uploads: self.active().len() as u64,
        }
    }

    /// Count stored bytes, report progress, and completion.
    async fn after_write(&self, id: &UploadId, from: u64, now: u64) {
        self.inner
            .metrics
            .bytes_received
            .fetch_add(now.saturating_sub(from), Ordering::Relaxed);
        if let Ok(upload) = self.inner.store.get(id) {
            self.inner.hooks.progress(&upload);
            if upload.is_complete() && now > from {
                self.finished(&upload).await;
            }
        }
    }

    /// Tell the hooks (and the counters) an upload is complete.
    async fn finished(&self, upload: &Upload) {
        self.inner.metrics.finished.fetch_add(1, Ordering::Relaxed);
        let data = self.inner.store.data_path(&upload.info.id);
        self.inner.hooks.post_finish(upload, &data).await;
    }
}

impl TusService {
    /// A service over `store` without hooks.
    pub fn new(store: FileStore, config: TusConfig) -> TusService {
        TusService::with_hooks(store, config, Arc::new(NoHooks))
    }

    /// A service over `store` that consults `hooks`.
    pub fn with_hooks(store: FileStore, config: TusConfig, hooks: Arc<dyn Hooks>) -> TusService {
        TusService {
            inner: Arc::new(Inner {
                store,
                config,
                hooks,
                metrics: Counters::default(),
                active: std::sync::Mutex::default(),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &FileStore {
        &self.inner.store
    }

    /// The configuration.
    pub fn config(&self) -> &TusConfig {
        &self.inner.config
    }

    /// Whether `path` is under this service's base path.
    pub fn owns(&self, path: &str) -> bool {
        let base = &self.inner.config.base_path;
        path.starts_with(base.as_str()) || path == base.trim_end_matches('/')
    }

    /// Answer a request (method override and CORS included).
    pub async fn handle<B>(&self, req: Request<B>) -> Response<TusBody>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        let origin = header(req.headers(), "origin").map(str::to_string);
        let mut resp = self.route(req).await;
        self.cors(&mut resp, origin.as_deref());
        resp
    }

    fn cors(&self, resp: &mut Response<TusBody>, origin: Option<&str>) {
        let Some(origin) = origin else { return };
        let allowed = self
            .inner
            .config
            .cors_origins
            .iter()
            .any(|o| o == "*" || o == origin);
        if !allowed {
            return;
        }
        set(resp, "access-control-allow-origin", origin);
        set(resp, "access-control-expose-headers", TUS_EXPOSE);
        set(resp, "vary", "Origin");
    }

    async fn route<B>(&self, req: Request<B>) -> Response<TusBody>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        let h = req.headers();
        let method = match header(h, "x-http-method-override") {
            Some(m) => match Method::from_bytes(m.trim().as_bytes()) {
                Ok(m) => m,
                Err(_) => return text(StatusCode::BAD_REQUEST, "bad X-HTTP-Method-Override\n"),
            },
            None => req.method().clone(),
        };
        let path = req.uri().path().to_string();
        let base = self.inner.config.base_path.clone();
        let rest = path
            .strip_prefix(base.as_str())
            .unwrap_or("")
            .trim_end_matches('/');
        if method == Method::OPTIONS {
            return self.options(h);
        }
        let info = RequestInfo {
            method: method.to_string(),
            path: path.clone(),
            upload: (!rest.is_empty()).then(|| rest.to_string()),
            authorization: header(h, "authorization").map(str::to_string),
            headers: h.clone(),
        };
        if let Err(r) = self.inner.hooks.authorize(&info).await {
            let code = StatusCode::from_u16(r.status).unwrap_or(StatusCode::FORBIDDEN);
            let mut resp = text(code, format!("{}\n", r.message));
            set(&mut resp, "tus-resumable", TUS_VERSION);
            return resp;
        }
        let mut resp = if let Err(e) = check_version(header(h, "tus-resumable")) {
            let mut r = header_error(&e);
            set(&mut r, "tus-version", TUS_VERSION);
            r
        } else if rest.is_empty() {
            if method == Method::POST {
                self.create(req, &info).await
            } else {
                status(StatusCode::METHOD_NOT_ALLOWED)
            }
        } else {
            match UploadId::new(rest) {
                Err(_) => text(StatusCode::NOT_FOUND, "upload not found\n"),
                Ok(id) => match method {
                    Method::HEAD => self.head(&id).await,
                    Method::PATCH => {
                        let span = tracing::debug_span!("upload", id = %id.as_str());
                        tracing::Instrument::instrument(self.patch(&id, req), span).await
                    }
                    Method::DELETE => self.delete(&id).await,
                    _ => status(StatusCode::METHOD_NOT_ALLOWED),
                },
            }
        };
        set(&mut resp, "tus-resumable", TUS_VERSION);
        resp
    }

    fn options(&self, h: &HeaderMap) -> Response<TusBody> {
        // A CORS preflight gets 200 with the allowed methods and headers; a tus
        // capabilities request gets 204 with the tus headers (both carry both).
        let preflight = h.contains_key("access-control-request-method");
        let mut r = status(if preflight {
            StatusCode::OK
        } else {
            StatusCode::NO_CONTENT
        });
        set(&mut r, "tus-resumable", TUS_VERSION);
        set(&mut r, "tus-version", TUS_VERSION);
        set(&mut r, "tus-extension", EXTENSIONS);
        set(
            &mut r,
            "tus-max-size",
            self.inner.config.max_size.to_string(),
        );
        set(
            &mut r,
            "tus-checksum-algorithm",
            ChecksumAlgorithm::header_list(),
        );
        if preflight {
            set(
                &mut r,
                "access-control-allow-methods",
                "POST, GET, HEAD, PATCH, DELETE, OPTIONS",
            );
            set(&mut r, "access-control-allow-headers", TUS_HEADERS);
            set(&mut r, "access-control-max-age", "86400");
        }
        r
    }

    fn expires(&self) -> Option<SystemTime> {
        self.inner.config.expiration.map(|d| SystemTime::now() + d)
    }

    fn location(&self, id: &UploadId) -> String {
        format!("{}{}", self.inner.config.base_path, id.as_str())
    }

    /// The new upload's length from `Upload-Length` / `Upload-Defer-Length` (exactly one),
    /// checked against `Tus-Max-Size` and the free space (refused before a byte lands).
    fn requested_length(&self, h: &HeaderMap) -> Result<Option<u64>, Box<Response<TusBody>>> {
        let length = match (header(h, "upload-length"), header(h, "upload-defer-length")) {
            (Some(l), None) => {
                Some(parse_u64("Upload-Length", l).map_err(|e| Box::new(header_error(&e)))?)
            }
            (None, Some(d)) => {
                parse_defer_length(d).map_err(|e| Box::new(header_error(&e)))?;
                None
            }
            _ => {
                return Err(Box::new(text(
                    StatusCode::BAD_REQUEST,
                    "exactly one of Upload-Length and Upload-Defer-Length is required\n",
                )));
            }
        };
        let Some(l) = length else { return Ok(None) };
        let max = self.inner.config.max_size;
        if l > max {
            return Err(Box::new(text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("Upload-Length {l} is over Tus-Max-Size {max}\n"),
            )));
        }
        match self.inner.store.storage().reserve(l) {
            Ok(_) => Ok(Some(l)),
            Err(StorageError::InsufficientSpace {
                requested,
                available,
            }) => Err(Box::new(text(
                StatusCode::INSUFFICIENT_STORAGE,
                format!(
                    "not enough disk space for this upload: {requested} bytes needed, {available} available\n"
                ),
            ))),
            Err(e) => Err(Box::new(store_error(&StoreError::Storage(e)))),
        }
    }

    /// A new upload's validated `Upload-Metadata` and a fresh id.
    fn metadata_and_id(
        &self,
        h: &HeaderMap,
    ) -> Result<(Metadata, UploadId), Box<Response<TusBody>>> {
        let metadata = match header(h, "upload-metadata") {
            None => Metadata::default(),
            Some(v) => Metadata::parse(v, self.inner.config.max_metadata)
                .map_err(|e| Box::new(header_error(&e)))?,
        };
        let id = new_upload_id()
            .map_err(|e| Box::new(text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"))))?;
        Ok((metadata, id))
    }

    async fn create<B>(&self, req: Request<B>, who: &RequestInfo) -> Response<TusBody>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        let h = req.headers();
        let concat = match header(h, "upload-concat").map(Concat::parse) {
            None => None,
            Some(Ok(c)) => Some(c),
            Some(Err(e)) => return header_error(&e),
        };
        if let Some(Concat::Final(urls)) = &concat {
            return self.create_final(urls, h, who).await;
        }
        let length = match self.requested_length(h) {
            Ok(l) => l,
            Err(r) => return *r,
        };
        let (metadata, id) = match self.metadata_and_id(h) {
            Ok(x) => x,
            Err(r) => return *r,
        };
        let info = UploadInfo {
            id: id.clone(),
            length,
            metadata: metadata.to_header(),
            concat: concat.map(|_| ConcatRole::Partial),
            created: SystemTime::now(),
            expires: self.expires(),
        };
        let proposed = Upload {
            info: info.clone(),
            offset: 0,
        };
        if let Err(r) = self.inner.hooks.pre_create(&proposed, who).await {
            let code = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
            return text(code, format!("{}\n", r.message));
        }
        let store = self.inner.store.clone();
        let created = tokio::task::spawn_blocking(move || store.create(info)).await;
        let upload = match created {
            Ok(Ok(u)) => u,
            Ok(Err(e)) => return store_error(&e),
            Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        };
        self.inner.metrics.created.fetch_add(1, Ordering::Relaxed);
        if upload.is_complete() {
            self.finished(&upload).await; // Upload-Length: 0
        }
        // creation-with-upload: a body in the creation request is the first PATCH.
        let with_body = header(req.headers(), "content-type")
            .is_some_and(|c| c.trim() == "application/offset+octet-stream");
        let mut resp = status(StatusCode::CREATED);
        if with_body {
            let h = req.headers();
            let plan = crate::core::creation_body_plan(|n| header(h, n));
            if let Ok(plan) = plan
                && let Ok(outcome) = self.write_body(&id, plan, req).await
            {
                let offset = outcome.offset();
                self.after_write(&id, 0, offset).await;
                set(&mut resp, "upload-offset", offset.to_string());
            }
        }
        set(&mut resp, "location", self.location(&id));
        if let Some(e) = upload.info.expires {
            set(&mut resp, "upload-expires", headers::http_date(e));
        }
        resp
    }

    /// `Upload-Concat: final;…`: the parts must be partial uploads of this server; the
    /// final upload's length is their sum, and it is filled once they are all complete.
    async fn create_final(
        &self,
        urls: &[String],
        h: &HeaderMap,
        who: &RequestInfo,
    ) -> Response<TusBody> {
        let mut parts = Vec::with_capacity(urls.len());
        let mut length = 0u64;
        for url in urls {
            // An absolute URL or a path: the id is what follows the base path.
            let path = url.find("://").map_or(url.as_str(), |i| {
                url[i + 3..].find('/').map_or("", |j| &url[i + 3 + j..])
            });
            let id = path
                .strip_prefix(self.inner.config.base_path.as_str())
                .and_then(|rest| UploadId::new(rest.trim_end_matches('/')).ok());
            let Some(id) = id else {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("{url} is not an upload of this server\n"),
                );
            };
            match self.inner.store.get(&id) {
                Ok(u) if u.info.concat == Some(ConcatRole::Partial) => match u.info.length {
                    Some(l) => length += l,
                    None => {
                        return text(
                            StatusCode::BAD_REQUEST,
                            format!("{url} has no length yet\n"),
                        );
                    }
                },
                Ok(_) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        format!("{url} is not a partial upload\n"),
                    );
                }
                Err(StoreError::NotFound(_)) => {
                    return text(StatusCode::BAD_REQUEST, format!("{url} does not exist\n"));
                }
                Err(e) => return store_error(&e),
            }
            parts.push(id);
        }
        if length > self.inner.config.max_size {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the parts add up to more than Tus-Max-Size\n",
            );
        }
        let (metadata, id) = match self.metadata_and_id(h) {
            Ok(x) => x,
            Err(r) => return *r,
        };
        let info = UploadInfo {
            id: id.clone(),
            length: Some(length),
            metadata: metadata.to_header(),
            concat: Some(ConcatRole::Final(parts)),
            created: SystemTime::now(),
            expires: None,
        };
        let proposed = Upload {
            info: info.clone(),
            offset: 0,
        };
        if let Err(r) = self.inner.hooks.pre_create(&proposed, who).await {
            let code = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
            return text(code, format!("{}\n", r.message));
        }
        let store = self.inner.store.clone();
        let done = tokio::task::spawn_blocking(move || {
            store.create(info)?;
            store.concatenate(&id).map(|(u, _)| u)
        })
        .await;
        match done {
            Ok(Ok(u)) => {
                self.inner.metrics.created.fetch_add(1, Ordering::Relaxed);
                if u.is_complete() {
                    self.finished(&u).await;
                }
                let mut r = status(StatusCode::CREATED);
                set(&mut r, "location", self.location(&u.info.id));
                r
            }
            Ok(Err(e)) => store_error(&e),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        }
    }

    async fn head(&self, id: &UploadId) -> Response<TusBody> {
        let upload = match self.inner.store.get(id) {
            // A final upload whose parts finished since: fill it now (off the runtime).
            Ok(u) if matches!(u.info.concat, Some(ConcatRole::Final(_))) && !u.is_complete() => {
                let (store, id2) = (self.inner.store.clone(), id.clone());
                match tokio::task::spawn_blocking(move || store.concatenate(&id2)).await {
                    Ok(Ok((u, filled))) => {
                        if filled && u.is_complete() {
                            self.finished(&u).await;
                        }
                        u
                    }
                    // Another request is filling it right now: report where it stands.
                    Ok(Err(StoreError::Locked(_))) => match self.inner.store.get(id) {
                        Ok(u) => u,
                        Err(e) => return store_error(&e),
                    },
                    Ok(Err(e)) => return store_error(&e),
                    Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
                }
            }
            Ok(u) => u,
            Err(e) => return store_error(&e),
        };
        let mut r = status(StatusCode::OK);
        set(&mut r, "upload-offset", upload.offset.to_string());
        match upload.info.length {
            Some(l) => set(&mut r, "upload-length", l.to_string()),
            None => set(&mut r, "upload-defer-length", "1"),
        }
        if !upload.info.metadata.is_empty() {
            set(&mut r, "upload-metadata", &upload.info.metadata);
        }
        if !upload.is_complete()
            && let Some(ttl) = self.inner.config.expiration
            && let Ok(last) = self.inner.store.last_write(id)
        {
            set(&mut r, "upload-expires", headers::http_date(last + ttl));
        }
        match &upload.info.concat {
            Some(ConcatRole::Partial) => set(&mut r, "upload-concat", "partial"),
            Some(ConcatRole::Final(parts)) => {
                let urls: Vec<String> = parts.iter().map(|p| self.location(p)).collect();
                set(&mut r, "upload-concat", format!("final;{}", urls.join(" ")));
            }
            None => {}
        }
        set(&mut r, "cache-control", "no-store");
        r
    }

    async fn patch<B>(&self, id: &UploadId, req: Request<B>) -> Response<TusBody>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        let final_upload = self
            .inner
            .store
            .get(id)
            .is_ok_and(|u| matches!(u.info.concat, Some(ConcatRole::Final(_))));
        let h = req.headers();
        let plan = match crate::core::decide_patch(
            |n| header(h, n),
            final_upload,
            self.inner.config.max_size,
        ) {
            Ok(p) => p,
            Err(r) => {
                let code = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
                return text(code, r.message);
            }
        };
        // creation-defer-length: the length may come with a PATCH.
        if let Some(l) = plan.declare_length {
            match self.inner.store.declare_length(id, l) {
                Ok(_) | Err(StoreError::LengthAlreadySet) => {}
                Err(e) => return store_error(&e),
            }
        }
        let from = plan.offset;
        let outcome = match self.write_body(id, plan, req).await {
            Ok(o) => o,
            Err(r) => return r,
        };
        self.after_write(id, from, outcome.offset()).await;
        let mut r = outcome_response(outcome);
        if r.status() == StatusCode::NO_CONTENT
            && let Some(e) = self.expires()
        {
            set(&mut r, "upload-expires", headers::http_date(e));
        }
        r
    }

    /// Stream `req`'s body into upload `id` as `plan` says; the outcome once what arrived
    /// is durable (`Err`: an answer before anything was written, e.g. the upload is held).
    #[allow(clippy::too_many_lines)] // the streaming core, clearer in one piece
    async fn write_body<B>(
        &self,
        id: &UploadId,
        plan: crate::core::PatchPlan,
        req: Request<B>,
    ) -> Result<PatchOutcome, Response<TusBody>>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        let offset = plan.offset;
        let mut checksum = plan.checksum;
        // checksum-trailer: the checksum comes after the body, so its algorithm is not
        // known while hashing; hash with each supported one.
        let trailer = plan.checksum_trailer;
        let store = self.inner.store.clone();
        let id2 = id.clone();
        let writer = self.take_writer(store, id2, offset).await?;
        let stop = Arc::new(tokio::sync::Notify::new());
        self.active().insert(id.to_string(), stop.clone());
        let mut hashers: Vec<Hasher> = match &checksum {
            Some(c) => vec![Hasher::new(c.algorithm)],
            None if trailer => ChecksumAlgorithm::ALL
                .into_iter()
                .map(Hasher::new)
                .collect(),
            None => Vec::new(),
        };
        let mut bad_trailer = None;
        let direct = req
            .extensions()
            .get::<DirectBodySlot>()
            .cloned()
            .and_then(|slot| slot.take().map(|body| (slot, body)));
        let copied = if let Some((slot, body)) = direct {
            self.copy_direct(id, slot, body, writer, std::mem::take(&mut hashers), &stop)
                .await
                .map(|(w, failed, read_error, back)| {
                    hashers = back;
                    (w, failed, read_error)
                })
        } else {
            self.copy_frames(
                id,
                req,
                writer,
                &mut hashers,
                &stop,
                trailer,
                &mut checksum,
                &mut bad_trailer,
            )
            .await
        };
        {
            let mut active = self.active();
            if active
                .get(id.as_str())
                .is_some_and(|s| Arc::ptr_eq(s, &stop))
            {
                active.remove(id.as_str());
            }
        }
        let (mut w, failed, read_error) = copied?;
        let digest = checksum.as_ref().and_then(|c| {
            let i = hashers.iter().position(|h| h.algorithm() == c.algorithm)?;
            Some(hashers.swap_remove(i).finish())
        });
        let mismatch = bad_trailer.is_some()
            || checksum
                .as_ref()
                .is_some_and(|c| digest.as_ref() != Some(&c.digest));
        let finish = tokio::task::spawn_blocking(move || {
            if mismatch && read_error.is_none() {
                // Checksum mismatch: the chunk is discarded, the offset stays.
                let offset = w.rewind(offset).and_then(|_| w.finish())?;
                return Ok(PatchOutcome::ChecksumMismatch { offset });
            }
            let offset = w.finish()?;
            Ok(match (failed, read_error) {
                (Some(error), _) => PatchOutcome::StoreFailed { offset, error },
                (None, Some(reason)) => PatchOutcome::BodyBroken { offset, reason },
                (None, None) => PatchOutcome::Stored { offset },
            })
        })
        .await;
        match finish {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(e)) => Err(store_error(&e)),
            Err(e) => Err(text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"))),
        }
    }

    /// The body through the HTTP library: frames handed to a blocking disk task.
    #[allow(clippy::too_many_arguments)] // the streaming core's state, in one call
    async fn copy_frames<B>(
        &self,
        id: &UploadId,
        req: Request<B>,
        writer: crate::store::UploadWriter,
        hashers: &mut [Hasher],
        stop: &Arc<tokio::sync::Notify>,
        trailer: bool,
        checksum: &mut Option<Checksum>,
        bad_trailer: &mut Option<crate::headers::HeaderError>,
    ) -> Result<FramesCopied, Response<TusBody>>
    where
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: std::fmt::Display,
    {
        let (tx, mut rx) = mpsc::channel::<Bytes>(self.inner.config.body_queue.max(1));
        // The disk side: a blocking task appending what the network side sends.
        let disk = tokio::task::spawn_blocking(move || {
            let mut w = writer;
            let mut failed = None;
            while let Some(chunk) = rx.blocking_recv() {
                if failed.is_none()
                    && let Err(e) = w.write(&chunk)
                {
                    failed = Some(e);
                }
            }
            (w, failed)
        });
        let mut body = req.into_body();
        let mut read_error = None;
        let takeover = taken_over(self.inner.store.clone(), id.clone(), stop.clone());
        tokio::pin!(takeover);
        loop {
            let frame = tokio::select! {
                f = body.frame() => f,
                () = &mut takeover => break, // taken over: keep what arrived, let go
            };
            let Some(frame) = frame else { break };
            match frame {
                Ok(f) => match f.into_data() {
                    Ok(data) => {
                        for h in hashers.iter_mut() {
                            h.update(&data);
                        }
                        if tx.send(data).await.is_err() {
                            break;
                        }
                    }
                    Err(f) => {
                        if let Ok(t) = f.into_trailers()
                            && trailer
                            && let Some(v) = header(&t, "upload-checksum")
                        {
                            match Checksum::parse(v) {
                                Ok(c) => *checksum = Some(c),
                                Err(e) => *bad_trailer = Some(e),
                            }
                        }
                    }
                },
                Err(e) => {
                    read_error = Some(e.to_string());
                    break;
                }
            }
        }
        drop(tx);
        match disk.await {
            Ok((w, failed)) => Ok((w, failed, read_error)),
            Err(e) => Err(text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"))),
        }
    }

    /// The body straight from the socket ([`crate::direct`]): the disk thread reads it
    /// itself; the connection goes back into `slot` afterwards.
    async fn copy_direct(
        &self,
        id: &UploadId,
        slot: DirectBodySlot,
        mut body: DirectBody,
        mut writer: crate::store::UploadWriter,
        mut hashers: Vec<Hasher>,
        stop: &Arc<tokio::sync::Notify>,
    ) -> Result<
        (
            crate::store::UploadWriter,
            Option<StoreError>,
            Option<String>,
            Vec<Hasher>,
        ),
        Response<TusBody>,
    > {
        let broken = |e: std::io::Error| text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"));
        let Some(stream) = body.take_stream() else {
            return Ok((writer, None, Some("no connection".into()), hashers));
        };
        let mut socket = stream.into_std().map_err(broken)?;
        socket.set_nonblocking(false).map_err(broken)?;
        // A takeover (this process: `stop`; another: the store's request file) raises
        // the flag the disk thread looks at between reads.
        let flag = Arc::new(AtomicBool::new(false));
        let watcher = {
            let flag = flag.clone();
            let takeover = taken_over(self.inner.store.clone(), id.clone(), stop.clone());
            tokio::spawn(async move {
                takeover.await;
                flag.store(true, Ordering::Relaxed);
            })
        };
        let done = tokio::task::spawn_blocking(move || {
            let copied =
                crate::direct::copy(&mut body, &mut socket, &mut writer, &mut hashers, &flag);
            (body, socket, writer, hashers, copied)
        })
        .await;
        watcher.abort();
        let (mut body, socket, writer, hashers, copied) =
            done.map_err(|e| text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")))?;
        // Back to the runtime, for the answer and the next request.
        if socket.set_read_timeout(None).is_ok()
            && socket.set_nonblocking(true).is_ok()
            && let Ok(stream) = tokio::net::TcpStream::from_std(socket)
        {
            body.set_stream(stream);
        }
        slot.put(body);
        Ok((writer, copied.failed, copied.read_error, hashers))
    }

    /// Remove unfinished uploads whose expiration passed (nothing when expiration is off).
    pub async fn sweep_expired(&self) -> Result<Vec<UploadId>, StoreError> {
        let Some(ttl) = self.inner.config.expiration else {
            return Ok(Vec::new());
        };
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || store.sweep_expired(ttl, SystemTime::now()))
            .await
            .map_err(|e| StoreError::Corrupt {
                id: String::new(),
                detail: e.to_string(),
            })?
    }

    fn active(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Arc<tokio::sync::Notify>>>
    {
        self.inner
            .active
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Run `op` (blocking) on the upload `id`; while another request holds the upload
    /// (a PATCH whose client went away and has not noticed yet), ask that request to stop
    /// and try again, for up to 5 s.
    async fn when_released<T: Send + 'static>(
        &self,
        id: &UploadId,
        op: impl Fn() -> Result<T, StoreError> + Send + Sync + Clone + 'static,
    ) -> Result<T, Response<TusBody>> {
        let store = self.inner.store.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut asked = false;
        let result = loop {
            let op = op.clone();
            match tokio::task::spawn_blocking(op).await {
                Ok(Ok(v)) => break Ok(v),
                Ok(Err(StoreError::Locked(_))) if tokio::time::Instant::now() < deadline => {
                    if let Some(holder) = self.active().get(id.as_str()) {
                        holder.notify_one(); // a request of this server
                    } else if !asked {
                        // A request of another process sharing the storage.
                        asked = store.request_takeover(id).is_ok();
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(Err(e)) => break Err(store_error(&e)),
                Err(e) => break Err(text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"))),
            }
        };
        if asked {
            store.clear_takeover(id);
        }
        result
    }

    /// Open the upload for writing (see [`Self::when_released`]).
    async fn take_writer(
        &self,
        store: FileStore,
        id: UploadId,
        offset: u64,
    ) -> Result<crate::store::UploadWriter, Response<TusBody>> {
        let i = id.clone();
        self.when_released(&id, move || store.writer(&i, offset))
            .await
    }

    /// Terminate the upload; a PATCH still holding it (its client cancelled mid-request)
    /// is asked to stop first, so the client gets 204 rather than 423.
    async fn delete(&self, id: &UploadId) -> Response<TusBody> {
        let store = self.inner.store.clone();
        let id2 = id.clone();
        match self.when_released(id, move || store.terminate(&id2)).await {
            Ok(()) => {
                self.inner
                    .metrics
                    .terminated
                    .fetch_add(1, Ordering::Relaxed);
                self.inner.hooks.post_terminate(id.as_str());
                status(StatusCode::NO_CONTENT)
            }
            Err(r) => r,
        }
    }
}

/// The answer to a PATCH once its body is stored: 460 for a checksum mismatch, the store's
/// error (507 for a full disk …), else 204 — always with the durable offset.
fn outcome_response(outcome: PatchOutcome) -> Response<TusBody> {
    let offset = outcome.offset();
    let mut r = match outcome {
        PatchOutcome::ChecksumMismatch { .. } => text(
            StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST),
            "checksum mismatch: the chunk was discarded\n",
        ),
        PatchOutcome::StoreFailed { error, .. } => store_error(&error),
        // A broken body: the client is gone or will resume from the offset.
        PatchOutcome::Stored { .. } | PatchOutcome::BodyBroken { .. } => {
            status(StatusCode::NO_CONTENT)
        }
    };
    set(&mut r, "upload-offset", offset.to_string());
    r
}
