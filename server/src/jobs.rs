//! Transcoding in the media server: finished uploads become ladder jobs, finished
//! recordings remux jobs (and ladders, if configured), run by workers on the embedded
//! queue or a shared PostgreSQL one; `GET /api/jobs/<id>` shows them and `/vod/<id>/…`
//! serves the results.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper::{Method, Request, StatusCode};
use serde_json::{Value, json};
use videopick_storage::{Storage, UploadId, VideoId};
use videopick_transcode::plan::{LadderConfig, SegmentType};
use videopick_transcode::queue::{
    AnyQueue, Backoff, FileQueue, Job, JobId, JobQueue, JobState, NewJob, PgQueue, QueueError,
};
use videopick_transcode::runner::{Runner, RunnerConfig};
use videopick_transcode::worker::{Worker, WorkerConfig, ladder_job, remux_job};
use videopick_transcode::{Transcoder, TranscoderConfig};
use videopick_tus::store::{ConcatRole, FileStore};

use crate::config::JobsConfig;
pub use crate::config::RecordingJobs;
use crate::http::{Body, HttpResponse, respond};

/// The media server's jobs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    queue: AnyQueue,
    storage: Storage,
    recordings: RecordingJobs,
    attempts: u32,
    api_token: Option<String>,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "host".into(), |h| h.trim().to_string())
}

impl Jobs {
    /// Open the queue and start this process's workers. `None` (with a warning) when the
    /// embedded queue is held by another process on the same storage: only one process
    /// can use it; several share a queue through `--jobs-db`.
    pub async fn start(
        args: &JobsConfig,
        storage: &Storage,
        api_token: Option<String>,
        metrics: &crate::metrics::Metrics,
    ) -> Result<Option<Jobs>, crate::Error> {
        let queue = match &args.jobs_db {
            Some(url) => AnyQueue::Pg(PgQueue::connect(url, Backoff::default()).await?),
            None => match FileQueue::open(storage.root().join("queue")) {
                Ok(q) => AnyQueue::File(q),
                Err(QueueError::Locked(dir)) => {
                    tracing::warn!(
                        queue = %dir,
                        "the job queue is held by another process: this one queues no transcoding jobs (use --jobs-db to share a queue)"
                    );
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            },
        };
        let runner = Runner::new(RunnerConfig {
            max_concurrent: args.ffmpeg_concurrency.max(1),
            ..RunnerConfig::default()
        });
        let transcoder = Transcoder::new(
            storage.clone(),
            runner,
            TranscoderConfig {
                ladder: LadderConfig {
                    rungs: args.ladder.clone(),
                    segment_type: if args.ladder_fmp4 {
                        SegmentType::Fmp4
                    } else {
                        SegmentType::Ts
                    },
                    ..LadderConfig::default()
                },
                ..TranscoderConfig::default()
            },
        );
        let host = hostname();
        let mut durations = None;
        if args.transcode_workers > 0 {
            metrics.register(|r| {
                durations = Some(videopick_transcode::worker::job_duration_metric(r));
            });
        }
        for i in 0..args.transcode_workers {
            let mut config = WorkerConfig::named(format!("{host}-{}-{i}", std::process::id()));
            config.job_timeout = Some(Duration::from_secs(args.job_timeout_mins.max(1) * 60));
            config.metrics.clone_from(&durations);
            let worker = Worker::new(queue.clone(), transcoder.clone(), config);
            tokio::spawn(async move { worker.run(std::future::pending()).await });
        }
        Ok(Some(Jobs {
            inner: Arc::new(Inner {
                queue,
                storage: storage.clone(),
                recordings: args.transcode_recordings,
                attempts: args.job_attempts.max(1),
                api_token,
            }),
        }))
    }

    /// The queue.
    pub fn queue(&self) -> &AnyQueue {
        &self.inner.queue
    }

    /// A finished upload: a ladder job (video id = upload id), and a `job` marker in the
    /// upload's directory once it is queued. Returns the job id.
    pub async fn upload_finished(&self, upload_id: &str, data: &Path) -> Option<JobId> {
        let video = VideoId::new(upload_id).ok()?;
        let job = ladder_job(&video, data).max_attempts(self.inner.attempts);
        let id = self.enqueue(job, "upload", upload_id).await?;
        let storage = self.inner.storage.clone();
        let marker = UploadId::new(upload_id).ok()?;
        let written = tokio::task::spawn_blocking(move || {
            storage.write_atomic(
                storage.upload_dir(&marker).join("job"),
                id.to_string().as_bytes(),
            )
        })
        .await;
        if !matches!(written, Ok(Ok(_))) {
            tracing::warn!(
                upload = upload_id,
                job = id,
                "job queued, but its marker was not written"
            );
        }
        Some(id)
    }

    /// Queue the finished uploads that have no job yet (the process stopped between an
    /// upload's last byte and its job): run at start-up. Returns how many were queued.
    pub async fn queue_missed_uploads(&self, store: &FileStore) -> usize {
        let (store2, storage) = (store.clone(), self.inner.storage.clone());
        let missed = tokio::task::spawn_blocking(move || {
            let Ok(ids) = store2.list() else {
                return Vec::new();
            };
            ids.into_iter()
                .filter_map(|id| {
                    let u = store2.get(&id).ok()?;
                    let whole = u.is_complete() && u.info.concat != Some(ConcatRole::Partial);
                    let queued = storage.upload_dir(&id).join("job").exists();
                    (whole && !queued).then(|| (id.to_string(), store2.data_path(&id)))
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let mut n = 0;
        for (id, data) in missed {
            if self.upload_finished(&id, &data).await.is_some() {
                n += 1;
            }
        }
        n
    }

    /// A closed recording (id `app.stream.ms`, its playlist at `playlist`).
    pub async fn recording_finished(&self, id: &str, playlist: &Path) -> Option<JobId> {
        let then_ladder = match self.inner.recordings {
            RecordingJobs::None => return None,
            RecordingJobs::Remux => false,
            RecordingJobs::Ladder => true,
        };
        let video = VideoId::new(id).ok()?;
        let job = remux_job(&video, playlist, then_ladder).max_attempts(self.inner.attempts);
        self.enqueue(job, "recording", id).await
    }

    async fn enqueue(&self, job: NewJob, what: &str, id: &str) -> Option<JobId> {
        let kind = job.kind.clone();
        match self.inner.queue.enqueue(job).await {
            Ok(j) => {
                tracing::info!(source = what, id, kind, job = j, "job queued");
                Some(j)
            }
            Err(e) => {
                tracing::warn!(source = what, id, kind, error = %e, "cannot queue a job");
                None
            }
        }
    }

    /// `/api/jobs…` and `/vod/…`; `None` for other paths.
    pub async fn route(&self, req: &Request<hyper::body::Incoming>) -> Option<HttpResponse> {
        let path = req.uri().path();
        if let Some(rest) = path.strip_prefix("/vod/") {
            if req.method() != Method::GET && req.method() != Method::HEAD {
                return Some(respond(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "text/plain",
                    "GET only\n",
                ));
            }
            return Some(self.vod_file(rest, req).await);
        }
        let rest = path.strip_prefix("/api/jobs")?;
        Some(self.api(req, rest).await)
    }

    async fn api(&self, req: &Request<hyper::body::Incoming>, rest: &str) -> HttpResponse {
        let q = &self.inner.queue;
        let json_resp =
            |status, v: Value| respond(status, "application/json", v.to_string() + "\n");
        let failed = |e: QueueError| {
            json_resp(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": e.to_string()}),
            )
        };
        let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
        match (req.method(), &parts[..]) {
            (&Method::GET, [""] | []) => {
                let state = req
                    .uri()
                    .query()
                    .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("state=")))
                    .and_then(JobState::parse);
                match q.list(state, 100).await {
                    Ok(jobs) => json_resp(
                        StatusCode::OK,
                        Value::Array(jobs.iter().map(|j| self.public_job(j)).collect()),
                    ),
                    Err(e) => failed(e),
                }
            }
            (&Method::GET, [id]) if !id.is_empty() => match id.parse::<JobId>() {
                Ok(id) => match q.get(id).await {
                    Ok(Some(job)) => json_resp(StatusCode::OK, self.public_job(&job)),
                    Ok(None) => json_resp(StatusCode::NOT_FOUND, json!({"error": "no such job"})),
                    Err(e) => failed(e),
                },
                Err(_) => json_resp(StatusCode::NOT_FOUND, json!({"error": "no such job"})),
            },
            (&Method::POST, [id, action @ ("cancel" | "retry")]) => {
                if !self.authorized(req) {
                    return json_resp(
                        StatusCode::UNAUTHORIZED,
                        json!({"error": "bearer token required"}),
                    );
                }
                match id.parse::<JobId>() {
                    Ok(id) => match if *action == "cancel" {
                        q.cancel(id).await
                    } else {
                        q.retry(id).await
                    } {
                        Ok(done) => json_resp(StatusCode::OK, json!({ "ok": done })),
                        Err(e) => failed(e),
                    },
                    Err(_) => json_resp(StatusCode::NOT_FOUND, json!({"error": "no such job"})),
                }
            }
            _ => json_resp(StatusCode::NOT_FOUND, json!({"error": "not found"})),
        }
    }

    /// A job as the public API shows it: ids, state, progress and public URLs — never the
    /// server's file-system paths (inputs, output directories), which stay in the logs.
    fn public_job(&self, job: &Job) -> Value {
        let root = self.inner.storage.root().to_string_lossy().into_owned();
        let video = job.payload.get("video_id").and_then(Value::as_str);
        let ms = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        };
        let result = job.result.as_ref().map(|r| {
            let mut out = serde_json::Map::new();
            for key in ["master", "duration_ms", "rungs", "ladder_job"] {
                if let Some(v) = r.get(key) {
                    out.insert(key.to_string(), v.clone());
                }
            }
            if r.get("mp4").is_some()
                && let Some(v) = video
            {
                out.insert("mp4".into(), json!(format!("/vod/{v}/video.mp4")));
            }
            Value::Object(out)
        });
        json!({
            "id": job.id,
            "kind": job.kind,
            "video_id": video,
            "state": job.state,
            "priority": job.priority,
            "attempts": job.attempts,
            "max_attempts": job.max_attempts,
            "progress": job.progress,
            // Errors quote ffmpeg, which names files: the storage root is masked.
            "last_error": job.last_error.as_ref().map(|e| e.replace(&root, "<storage>")),
            "result": result,
            "run_after_ms": ms(job.run_after),
            "created_at_ms": ms(job.created_at),
            "updated_at_ms": ms(job.updated_at),
        })
    }

    fn authorized(&self, req: &Request<hyper::body::Incoming>) -> bool {
        let Some(token) = &self.inner.api_token else {
            return true;
        };
        crate::http::bearer_is(req.headers(), token)
    }

    /// A file of a published video: `<id>/<name>` or `<id>/<rung>/<name>`, names of
    /// letters, digits, `-`, `_` and `.` only. MP4 files answer byte ranges.
    async fn vod_file(&self, rest: &str, req: &Request<hyper::body::Incoming>) -> HttpResponse {
        let parts: Vec<&str> = rest.split('/').collect();
        let safe = |s: &str| {
            !s.is_empty()
                && !s.starts_with('.')
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| safe(p)) {
            return not_found();
        }
        let Ok(video) = VideoId::new(parts[0]) else {
            return not_found();
        };
        let mut path: PathBuf = self.inner.storage.vod_dir(&video);
        for p in &parts[1..] {
            path.push(p);
        }
        let name = parts[parts.len() - 1];
        let (ctype, cache) = match name.rsplit('.').next().unwrap_or("") {
            "m3u8" => ("application/vnd.apple.mpegurl", "public, max-age=60"),
            "ts" => ("video/mp2t", "public, max-age=31536000, immutable"),
            "m4s" => ("video/iso.segment", "public, max-age=31536000, immutable"),
            "mp4" => ("video/mp4", "public, max-age=3600"),
            "jpg" => ("image/jpeg", "public, max-age=3600"),
            "vtt" => ("text/vtt", "public, max-age=3600"),
            _ => return not_found(),
        };
        let Ok(file) = tokio::fs::File::open(&path).await else {
            return not_found();
        };
        let Ok(meta) = file.metadata().await else {
            return not_found();
        };
        if !meta.is_file() {
            return not_found();
        }
        let len = meta.len();
        let range = req
            .headers()
            .get(hyper::header::RANGE)
            .and_then(|v| v.to_str().ok())
            .map(|r| parse_range(r, len));
        let (status, start, end) = match range {
            None => (StatusCode::OK, 0, len),
            Some(Some((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b),
            Some(None) => {
                let mut r = respond(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "text/plain",
                    "bad range\n",
                );
                if let Ok(v) = format!("bytes */{len}").parse() {
                    r.headers_mut().insert(hyper::header::CONTENT_RANGE, v);
                }
                return r;
            }
        };
        let body: Body = if req.method() == Method::HEAD {
            http_body_util::BodyExt::boxed(http_body_util::Empty::new())
        } else {
            http_body_util::BodyExt::boxed(FileBody::new(file, start, end - start))
        };
        let mut resp = hyper::Response::new(body);
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        let mut set = |k: hyper::header::HeaderName, v: String| {
            if let Ok(v) = v.parse() {
                h.insert(k, v);
            }
        };
        set(hyper::header::CONTENT_TYPE, ctype.into());
        set(hyper::header::CACHE_CONTROL, cache.into());
        set(hyper::header::CONTENT_LENGTH, (end - start).to_string());
        set(hyper::header::ACCEPT_RANGES, "bytes".into());
        set(hyper::header::ACCESS_CONTROL_ALLOW_ORIGIN, "*".into());
        if status == StatusCode::PARTIAL_CONTENT {
            set(
                hyper::header::CONTENT_RANGE,
                format!("bytes {start}-{}/{len}", end - 1),
            );
        }
        resp
    }
}

fn not_found() -> HttpResponse {
    respond(StatusCode::NOT_FOUND, "text/plain", "not found\n")
}

/// One `bytes=a-b`, `bytes=a-` or `bytes=-n` range of a `len`-byte file, as `[start, end)`.
fn parse_range(header: &str, len: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') || len == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        return (n > 0).then(|| (len.saturating_sub(n), len));
    }
    let start: u64 = a.parse().ok()?;
    let end = if b.is_empty() {
        len
    } else {
        b.parse::<u64>().ok()?.saturating_add(1).min(len)
    };
    (start < end).then_some((start, end))
}

/// A response body streaming `len` bytes of a file from `start`, 64 KiB at a time. A read
/// error ends the body early (the client sees fewer bytes than Content-Length).
struct FileBody {
    file: tokio::fs::File,
    start: Option<u64>,
    /// A seek to `start` was started (and must be completed, not restarted).
    seeking: bool,
    left: u64,
    buf: Box<[u8]>,
}

impl FileBody {
    fn new(file: tokio::fs::File, start: u64, len: u64) -> FileBody {
        FileBody {
            file,
            start: (start > 0).then_some(start),
            seeking: false,
            left: len,
            buf: vec![0; 64 * 1024].into_boxed_slice(),
        }
    }
}

impl HttpBody for FileBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        use tokio::io::{AsyncRead, AsyncSeek};
        let this = &mut *self;
        if let Some(start) = this.start {
            if !this.seeking {
                if std::pin::Pin::new(&mut this.file)
                    .start_seek(std::io::SeekFrom::Start(start))
                    .is_err()
                {
                    return Poll::Ready(None);
                }
                this.seeking = true;
            }
            match std::pin::Pin::new(&mut this.file).poll_complete(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => return Poll::Ready(None),
                Poll::Ready(Ok(_)) => this.start = None,
            }
        }
        if this.left == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.left)
            .unwrap_or(usize::MAX)
            .min(this.buf.len());
        let mut rb = tokio::io::ReadBuf::new(&mut this.buf[..want]);
        match std::pin::Pin::new(&mut this.file).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(None),
            Poll::Ready(Ok(())) => {
                let data = Bytes::copy_from_slice(rb.filled());
                this.left -= data.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Err(_)) => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some((0, 100)));
        assert_eq!(parse_range("bytes=900-", 1000), Some((900, 1000)));
        assert_eq!(parse_range("bytes=-100", 1000), Some((900, 1000)));
        assert_eq!(parse_range("bytes=990-2000", 1000), Some((990, 1000)));
        assert_eq!(parse_range("bytes=1000-", 1000), None);
        assert_eq!(parse_range("bytes=5-1", 1000), None);
        assert_eq!(parse_range("bytes=0-1,5-6", 1000), None);
        assert_eq!(parse_range("items=0-1", 1000), None);
    }
}
