//! The app role and the media role on different machines: what the app-server asks of
//! the media server — end a publish, cancel a job, remove a deleted video's files
//! ([`HttpMedia`], over the media server's bearer-guarded control API) — and what the
//! media server asks the app-server — may this request fetch a private video's files
//! ([`RemoteAccess`], over the signed access hook). In one process the same is done
//! directly (`app::InProcessMedia`, `app::vod_access`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::{Method, Request, StatusCode};
use videopick_hooks::HookClient;
use videopick_storage::Storage;

use crate::http::{HttpResponse, respond};

/// Remove the files of `media` (an upload, a job's outputs, a recording): its upload,
/// `vod/` and thumbnail directories and its recording. How many directories went.
/// Blocking.
pub(crate) fn remove_media_files(storage: &Storage, media: &str) -> usize {
    let mut dirs = Vec::new();
    if let Ok(v) = videopick_storage::VideoId::new(media) {
        dirs.push(storage.vod_dir(&v));
        dirs.push(storage.thumbnail_dir(&v));
    }
    if let Ok(u) = videopick_storage::UploadId::new(media) {
        dirs.push(storage.upload_dir(&u));
    }
    if let Some(d) = videopick_live::recorder::recording_dir(storage, media) {
        dirs.push(d);
    }
    let mut n = 0;
    for d in dirs {
        // Its lock too: a recording still being written, an upload being written or a job
        // writing its outputs (cancelled just before) is waited for a little.
        let mut tries = 0;
        loop {
            match storage.remove_object(&d) {
                Ok(existed) => n += usize::from(existed),
                Err(videopick_storage::StorageError::Locked { .. }) if tries < 50 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                Err(e) => tracing::warn!(dir = %d.display(), error = %e, "media files not removed"),
            }
            break;
        }
    }
    n
}

/// [`remove_media_files`] off the async threads.
pub(crate) async fn remove_media(storage: &Storage, media: &str) -> usize {
    let (storage, media) = (storage.clone(), media.to_string());
    tokio::task::spawn_blocking(move || remove_media_files(&storage, &media))
        .await
        .unwrap_or(0)
}

/// Whether `s` can be a media id (one safe path component).
fn media_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `DELETE /api/media/<id>` on the media server (bearer `api_token`): remove a deleted
/// video's files. `None` for other requests.
pub(crate) async fn media_api<B>(
    storage: &Storage,
    api_token: Option<&str>,
    req: &Request<B>,
) -> Option<HttpResponse> {
    let id = req.uri().path().strip_prefix("/api/media/")?;
    if req.method() != Method::DELETE {
        return Some(respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "DELETE only\n",
        ));
    }
    let Some(token) = api_token.filter(|t| !t.is_empty()) else {
        return Some(respond(
            StatusCode::FORBIDDEN,
            "text/plain",
            "removing files needs --api-token on the server\n",
        ));
    };
    if !crate::http::bearer_is(req.headers(), token) {
        return Some(respond(
            StatusCode::UNAUTHORIZED,
            "text/plain",
            "bad or missing bearer token\n",
        ));
    }
    if !media_id(id) {
        return Some(respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"));
    }
    let removed = remove_media(storage, id).await;
    tracing::info!(media = id, directories = removed, "media files removed");
    Some(respond(
        StatusCode::OK,
        "application/json",
        format!("{{\"removed\":{removed}}}\n"),
    ))
}

/// The media server on another machine, as the app-server controls it (its `--media-api`
/// URL and `--media-token`, the media server's `--api-token`).
pub(crate) struct HttpMedia {
    client: HookClient,
    base: String,
    token: Option<String>,
}

impl HttpMedia {
    pub(crate) fn new(client: HookClient, base: &str, token: Option<String>) -> HttpMedia {
        HttpMedia {
            client,
            base: base.trim_end_matches('/').to_string(),
            token: token.filter(|t| !t.is_empty()),
        }
    }

    /// `method` to `path` until the media server answers (not 5xx), up to 4 attempts
    /// (0.5, 1 and 2 s apart). The answer's status, if any.
    async fn call(&self, method: Method, path: &str) -> Option<u16> {
        let url = format!("{}{path}", self.base);
        let mut wait = Duration::from_millis(500);
        for attempt in 1..=4 {
            match self
                .client
                .call(method.clone(), &url, self.token.as_deref())
                .await
            {
                Ok(a) if a.status < 500 => return Some(a.status),
                Ok(a) => tracing::debug!(url, status = a.status, attempt, "media server refused"),
                Err(e) => tracing::debug!(url, error = %e, attempt, "media server unreachable"),
            }
            if attempt < 4 {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        tracing::warn!(%method, url, "media server call gave up");
        None
    }
}

impl videopick_app::MediaControl for HttpMedia {
    fn end_publish<'a>(&'a self, app: &'a str, name: &'a str) -> videopick_app::BoxFuture<'a, ()> {
        Box::pin(async move {
            if !media_id(app) || !media_id(name) {
                return;
            }
            match self
                .call(Method::DELETE, &format!("/api/streams/{app}/{name}"))
                .await
            {
                Some(204) => {
                    tracing::info!(stream = %format!("{app}/{name}"), "publish ended: its key was rotated");
                }
                Some(404) | None => {}
                Some(status) => tracing::warn!(status, "media server did not end the publish"),
            }
        })
    }

    fn cancel_job<'a>(&'a self, job_id: &'a str) -> videopick_app::BoxFuture<'a, ()> {
        Box::pin(async move {
            if job_id.parse::<u64>().is_err() {
                return;
            }
            match self
                .call(Method::POST, &format!("/api/jobs/{job_id}/cancel"))
                .await
            {
                Some(200 | 404) | None => {}
                Some(status) => tracing::warn!(job = job_id, status, "job not cancelled"),
            }
        })
    }

    fn remove_video_files<'a>(
        &'a self,
        video_id: &'a str,
        media_id: Option<&'a str>,
        _job_id: Option<&'a str>,
    ) -> videopick_app::BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(media) = media_id.filter(|m| self::media_id(m)) else {
                return;
            };
            match self
                .call(Method::DELETE, &format!("/api/media/{media}"))
                .await
            {
                Some(200) => tracing::info!(video = video_id, media, "video files removed"),
                status => {
                    tracing::warn!(video = video_id, media, ?status, "video files not removed");
                }
            }
        })
    }
}

/// How long an access answer is remembered.
const ACCESS_MEMO: Duration = Duration::from_secs(5);
/// Most answers remembered (then all are forgotten).
const ACCESS_MEMO_MAX: usize = 10_000;

/// The media server asks the app-server (its signed `/api/v1/hooks/media`) whether a
/// request may fetch `/vod/<media>/…` or `/recordings/<media>/…`; answers are remembered
/// for a few seconds (a public video's for everyone).
pub(crate) struct RemoteAccess {
    client: HookClient,
    url: String,
    memo: Mutex<HashMap<String, (Instant, bool)>>,
}

impl RemoteAccess {
    pub(crate) fn new(client: HookClient, url: String) -> RemoteAccess {
        RemoteAccess {
            client,
            url,
            memo: Mutex::default(),
        }
    }

    fn recall(&self, key: &str) -> Option<bool> {
        let memo = self
            .memo
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        memo.get(key)
            .filter(|(at, _)| at.elapsed() < ACCESS_MEMO)
            .map(|(_, ok)| *ok)
    }

    fn remember(&self, key: String, ok: bool) {
        let mut memo = self
            .memo
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if memo.len() >= ACCESS_MEMO_MAX {
            memo.clear();
        }
        memo.insert(key, (Instant::now(), ok));
    }

    /// `None`: the request may go on; `Some`: the refusal to answer.
    pub(crate) async fn check<B>(&self, req: &Request<B>) -> Option<HttpResponse> {
        let path = req.uri().path();
        let rest = path
            .strip_prefix("/vod/")
            .or_else(|| path.strip_prefix("/recordings/"))?;
        let media = rest.split('/').next().unwrap_or_default();
        let header = |name| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (authorization, cookie) = (
            header(hyper::header::AUTHORIZATION),
            header(hyper::header::COOKIE),
        );
        let public_key = format!("p\0{media}");
        let own_key = format!(
            "u\0{media}\0{}\0{}",
            authorization.as_deref().unwrap_or_default(),
            cookie.as_deref().unwrap_or_default()
        );
        let refused = || respond(StatusCode::NOT_FOUND, "text/plain", "not found\n");
        if self.recall(&public_key) == Some(true) {
            return None;
        }
        match self.recall(&own_key) {
            Some(true) => return None,
            Some(false) => return Some(refused()),
            None => {}
        }
        let ask = serde_json::json!({
            "media": media,
            "authorization": authorization,
            "cookie": cookie,
        });
        match self.client.post_json(&self.url, &ask).await {
            Ok(a) if a.is_success() => {
                let public = a
                    .json::<serde_json::Value>()
                    .ok()
                    .and_then(|v| v["public"].as_bool())
                    .unwrap_or(false);
                if public {
                    self.remember(public_key, true);
                } else {
                    self.remember(own_key, true);
                }
                None
            }
            Ok(a) if a.status == 404 => {
                self.remember(own_key, false);
                Some(refused())
            }
            Ok(a) => {
                tracing::warn!(status = a.status, "access hook refused to answer");
                Some(respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "cannot check access now; try again shortly\n",
                ))
            }
            Err(e) => {
                tracing::warn!(error = %e, "access hook unreachable");
                Some(respond(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "cannot check access now; try again shortly\n",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_ids_are_single_safe_components() {
        for ok in ["abc", "live.tv.1733300000000", "a_b-c"] {
            assert!(media_id(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a?b", "a b", &"x".repeat(201)] {
            assert!(!media_id(bad), "{bad}");
        }
    }

    #[test]
    fn removing_a_recordings_media_takes_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open_with(
            dir.path(),
            videopick_storage::StorageOptions::default().min_free_bytes(0),
        )
        .unwrap();
        let rec = "live.tv.1733300000000";
        let d = videopick_live::recorder::recording_dir(&storage, rec).unwrap();
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("index.m3u8"), "#EXTM3U\n").unwrap();
        let v = videopick_storage::VideoId::new(rec).unwrap();
        std::fs::create_dir_all(storage.vod_dir(&v)).unwrap();
        assert_eq!(remove_media_files(&storage, rec), 2);
        assert!(!d.exists());
        assert!(!storage.vod_dir(&v).exists());
        assert_eq!(remove_media_files(&storage, rec), 0);
    }
}
