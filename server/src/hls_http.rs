//! HTTP routes of live HLS and recordings: `/<app>/<stream>.m3u8` and its segments from the
//! live origin ([`videopick_live::hls::LiveHls`]), `/recordings/<id>/…` from storage.

use std::sync::Arc;

use hyper::{Method, StatusCode};
use videopick_hls::LiveOrigin;
use videopick_live::recorder::recording_dir;
use videopick_storage::Storage;

use crate::http::{HttpResponse, respond};

/// Serves live HLS and recordings over HTTP. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HlsService {
    storage: Storage,
    origin: Arc<LiveOrigin>,
}

impl HlsService {
    /// Routes over `origin` (live) and `storage` (recordings).
    pub fn new(storage: Storage, origin: Arc<LiveOrigin>) -> HlsService {
        HlsService { storage, origin }
    }

    /// Answer HLS requests: live playlists and segments, recordings.
    pub async fn route<B>(&self, req: &hyper::Request<B>) -> Option<HttpResponse> {
        let path = req.uri().path();
        #[allow(clippy::case_sensitive_file_extension_comparisons)] // the URL contract
        let ours = path.ends_with(".m3u8") || path.ends_with(".ts");
        if !ours {
            return None;
        }
        if req.method() == Method::OPTIONS {
            let mut r = cors(respond(StatusCode::NO_CONTENT, "text/plain", ""));
            r.headers_mut().insert(
                "access-control-allow-methods",
                hyper::header::HeaderValue::from_static("GET, HEAD, OPTIONS"),
            );
            return Some(r);
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return None;
        }
        let rest = path.strip_prefix('/')?;
        if let Some(rec) = rest.strip_prefix("recordings/") {
            return Some(cors(self.recording_file(rec).await));
        }
        let (app, file) = rest.split_once('/')?;
        if app.is_empty() || file.contains('/') {
            return None;
        }
        Some(cors(self.live_file(app, file)))
    }

    fn live_file(&self, app: &str, file: &str) -> HttpResponse {
        let origin = &self.origin;
        if let Some(stream) = file.strip_suffix(".m3u8") {
            return match origin.playlist(&format!("{app}/{stream}")) {
                Some(text) => cached(
                    respond(StatusCode::OK, "application/vnd.apple.mpegurl", text),
                    "no-cache",
                ),
                None => not_found(),
            };
        }
        // `<stream>-<generation>-<sequence>.ts`
        let found = file.strip_suffix(".ts").and_then(|name| {
            let mut it = name.rsplitn(3, '-');
            let seq: u64 = it.next()?.parse().ok()?;
            let generation: u64 = it.next()?.parse().ok()?;
            let stream = it.next()?;
            origin.segment(&format!("{app}/{stream}"), generation, seq)
        });
        match found {
            Some(data) => cached(
                respond(StatusCode::OK, "video/mp2t", data),
                "public, max-age=31536000, immutable",
            ),
            None => not_found(),
        }
    }

    async fn recording_file(&self, rest: &str) -> HttpResponse {
        let Some((id, file)) = rest.split_once('/') else {
            return not_found();
        };
        let Some(dir) = recording_dir(&self.storage, id) else {
            return not_found();
        };
        let is_segment = file
            .strip_suffix(".ts")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if file != "index.m3u8" && !is_segment {
            return not_found();
        }
        match tokio::fs::read(dir.join(file)).await {
            Ok(data) if is_segment => cached(
                respond(StatusCode::OK, "video/mp2t", data),
                "public, max-age=31536000, immutable",
            ),
            Ok(data) => {
                let ended = data.ends_with(b"#EXT-X-ENDLIST\n");
                cached(
                    respond(StatusCode::OK, "application/vnd.apple.mpegurl", data),
                    if ended {
                        "public, max-age=3600"
                    } else {
                        "no-cache"
                    },
                )
            }
            Err(_) => not_found(),
        }
    }
}

fn cors(mut r: HttpResponse) -> HttpResponse {
    r.headers_mut().insert(
        "access-control-allow-origin",
        hyper::header::HeaderValue::from_static("*"),
    );
    r
}

fn cached(mut r: HttpResponse, value: &'static str) -> HttpResponse {
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static(value),
    );
    r
}

fn not_found() -> HttpResponse {
    respond(StatusCode::NOT_FOUND, "text/plain", "not found\n")
}
