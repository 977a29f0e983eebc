//! HTTP routes of live HLS and recordings: `/<app>/<stream>.m3u8` and its parts and
//! segments from the live origin ([`videopick_live::hls::LiveHls`]), `/recordings/<id>/…`
//! from storage.
//!
//! `/<app>/<stream>.m3u8` is low-latency HLS (CMAF) when the origin makes it, with
//! blocking reloads (`_HLS_msn`, `_HLS_part`), delta updates (`_HLS_skip=YES`) and hinted
//! parts that wait until they are complete; players that do not speak LL-HLS play the same
//! playlist as plain fMP4 HLS. `?format=ts` gives the MPEG-TS variant for old players.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use hyper::{Method, StatusCode};
use videopick_hls::LiveOrigin;
use videopick_hls::origin::{Blocking, Chunks, LlResource};
use videopick_live::recorder::recording_dir;
use videopick_storage::Storage;

use crate::http::{HttpResponse, respond};
use crate::plain::{MemFile, PlainAnswer, PlainBody, PlainResponse};

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
        if !is_hls_path(path) {
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
        if let Some(rec) = path.strip_prefix("/recordings/") {
            return Some(cors(self.recording_file(rec).await));
        }
        let live = self.live(path, req.uri().query().unwrap_or(""), false)?;
        Some(live.await.into_hyper())
    }

    /// The plain path's answer to a GET of `path?query` (see [`crate::plain`]): live
    /// playlists, parts and segments, the media sent from memory files with `sendfile`.
    /// `None` for anything else (recordings, other routes).
    pub fn plain(&self, path: &str, query: &str) -> Option<PlainAnswer> {
        if !is_hls_path(path) || path.starts_with("/recordings/") {
            return None;
        }
        Some(Box::pin(self.live(path, query, true)?))
    }

    /// A live resource (`/<app>/<file>`): a playlist, part, segment or init segment.
    fn live(
        &self,
        path: &str,
        query: &str,
        sendfile: bool,
    ) -> Option<impl Future<Output = PlainResponse> + Send + 'static> {
        let (app, file) = path.strip_prefix('/')?.split_once('/')?;
        if app.is_empty() || file.contains('/') {
            return None;
        }
        #[allow(clippy::case_sensitive_file_extension_comparisons)] // the URL contract
        let target = if file.ends_with(".m4s") || file.ends_with(".mp4") {
            let (stream, generation, what) = ll_name(file)?;
            Live::File(format!("{app}/{stream}"), generation, what)
        } else if let Some(stream) = file.strip_suffix(".m3u8") {
            let key = format!("{app}/{stream}");
            let ts = query_value(query, "format") == Some("ts");
            if ts || self.origin.config().part_target.is_none() {
                Live::TsPlaylist(key)
            } else {
                Live::Playlist(key, query.to_owned())
            }
        } else {
            Live::Ts(app.to_owned(), file.to_owned())
        };
        let origin = Arc::clone(&self.origin);
        Some(async move {
            match target {
                Live::File(key, generation, what) => {
                    ll_file(&origin, &key, generation, what, sendfile).await
                }
                Live::Playlist(key, query) => ll_playlist(&origin, &key, &query).await,
                Live::TsPlaylist(key) => ts_playlist(&origin, &key),
                Live::Ts(app, file) => live_file(&origin, &app, &file),
            }
        })
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

/// Whether `path` names an HLS resource: a playlist, a TS segment, or a CMAF part, segment
/// or init segment (the URL contract; the metrics label them `hls` too).
#[allow(clippy::case_sensitive_file_extension_comparisons)] // the URL contract
pub(crate) fn is_hls_path(path: &str) -> bool {
    path.ends_with(".m3u8")
        || path.ends_with(".ts")
        || path.ends_with(".m4s")
        || path.ends_with(".mp4")
}

/// What a low-latency resource name (`<stream>-<gen>-…`) names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LlName {
    Init(u32),
    Part(u64, u32),
    Segment(u64),
}

/// `<stream>-<gen>-init<n>.mp4`, `<stream>-<gen>-<msn>.<part>.m4s`, `<stream>-<gen>-<msn>.m4s`.
fn ll_name(file: &str) -> Option<(&str, u64, LlName)> {
    let (name, init) = match file.strip_suffix(".mp4") {
        Some(n) => (n, true),
        None => (file.strip_suffix(".m4s")?, false),
    };
    let mut it = name.rsplitn(3, '-');
    let last = it.next()?;
    let generation: u64 = it.next()?.parse().ok()?;
    let stream = it.next().filter(|s| !s.is_empty())?;
    let what = if init {
        LlName::Init(last.strip_prefix("init")?.parse().ok()?)
    } else if let Some((msn, part)) = last.split_once('.') {
        LlName::Part(msn.parse().ok()?, part.parse().ok()?)
    } else {
        LlName::Segment(last.parse().ok()?)
    };
    Some((stream, generation, what))
}

/// The value of `name` in a query string (first occurrence, not percent-decoded: the
/// values read here are plain tokens and numbers).
fn query_value<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A live resource named by a request.
enum Live {
    /// An init segment, part or segment of the low-latency variant of a stream (key).
    File(String, u64, LlName),
    /// The low-latency playlist of a stream, with the request's query.
    Playlist(String, String),
    /// The TS playlist of a stream.
    TsPlaylist(String),
    /// A TS segment: app, file name.
    Ts(String, String),
}

/// A live response with a text or TS body (`no-cache` until [`cached`] says otherwise).
fn answer(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> PlainResponse {
    PlainResponse {
        status,
        content_type,
        cache_control: "no-cache",
        body: PlainBody::Bytes(body.into()),
    }
}

/// `resp` with `Cache-Control: cache`.
fn cached_answer(mut resp: PlainResponse, cache: &'static str) -> PlainResponse {
    resp.cache_control = cache;
    resp
}

/// CMAF media: its memory file when `sendfile` will write it (made on the first request for
/// it and kept as long as the origin holds the part), else its buffers.
fn media(chunks: &Chunks, sendfile: bool) -> PlainResponse {
    let file = sendfile
        .then(|| chunks.attachment(|c| MemFile::new(c.iter()).ok()))
        .flatten();
    PlainResponse {
        status: StatusCode::OK,
        content_type: "video/mp4",
        cache_control: IMMUTABLE,
        body: match file {
            Some(f) => PlainBody::File(f),
            None => PlainBody::Buffers(chunks.iter().cloned().collect()),
        },
    }
}

const PLAYLIST: &str = "application/vnd.apple.mpegurl";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The low-latency playlist, after waiting for what a blocking reload names.
async fn ll_playlist(origin: &LiveOrigin, key: &str, query: &str) -> PlainResponse {
    let number = |name: &str| query_value(query, name).map(str::parse::<u64>);
    let msn = match number("_HLS_msn") {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => return bad_request("_HLS_msn is not a number"),
    };
    let part = match number("_HLS_part") {
        None => None,
        Some(Ok(n)) => match u32::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => return bad_request("_HLS_part is too large"),
        },
        Some(Err(_)) => return bad_request("_HLS_part is not a number"),
    };
    let skip = matches!(query_value(query, "_HLS_skip"), Some("YES" | "v2"));
    if part.is_some() && msn.is_none() {
        return bad_request("_HLS_part without _HLS_msn");
    }
    let mut cache = "no-cache";
    if let Some(msn) = msn {
        match origin.blocking(key, msn, part) {
            None => return not_found_answer(),
            Some(Blocking::TooFar) => {
                return bad_request("_HLS_msn/_HLS_part is too far ahead of the live edge");
            }
            Some(Blocking::Wait) => {
                let wait = origin.part_ready(key, msn, part);
                if tokio::time::timeout(origin.block_timeout(key), wait)
                    .await
                    .is_err()
                {
                    return answer(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "text/plain",
                        "the requested part did not appear in time\n",
                    );
                }
            }
            Some(Blocking::Ready) => {}
        }
        // The answer to a blocking request names a fixed point of the stream: a CDN may
        // keep it (by its query) for a while.
        cache = "public, max-age=6";
    }
    match origin.ll_playlist(key, skip) {
        Some(text) => cached_answer(answer(StatusCode::OK, PLAYLIST, text), cache),
        None => not_found_answer(),
    }
}

/// An init segment, part or segment of the low-latency variant; a hinted part waits until
/// it is complete (RFC 8216bis §6.2.6: no byte of a part before all of it).
async fn ll_file(
    origin: &LiveOrigin,
    key: &str,
    generation: u64,
    what: LlName,
    sendfile: bool,
) -> PlainResponse {
    let found = match what {
        LlName::Init(n) => {
            return match origin.ll_init(key, generation, n) {
                Some(b) => cached_answer(answer(StatusCode::OK, "video/mp4", b), IMMUTABLE),
                None => not_found_answer(),
            };
        }
        LlName::Segment(msn) => origin.ll_segment(key, generation, msn),
        LlName::Part(msn, part) => match origin.ll_part_or_hint(key, generation, msn, part) {
            Some(LlResource::Ready(c)) => Some(c),
            Some(LlResource::Pending) => {
                let wait = origin.part_ready(key, msn, Some(part));
                let _ = tokio::time::timeout(origin.block_timeout(key), wait).await;
                origin.ll_part(key, generation, msn, part)
            }
            None => None,
        },
    };
    found.map_or_else(not_found_answer, |c| media(&c, sendfile))
}

/// A TS segment: `<stream>-<generation>-<sequence>.ts`.
fn live_file(origin: &LiveOrigin, app: &str, file: &str) -> PlainResponse {
    let found = file.strip_suffix(".ts").and_then(|name| {
        let mut it = name.rsplitn(3, '-');
        let seq: u64 = it.next()?.parse().ok()?;
        let generation: u64 = it.next()?.parse().ok()?;
        let stream = it.next()?;
        origin.segment(&format!("{app}/{stream}"), generation, seq)
    });
    match found {
        Some(data) => cached_answer(answer(StatusCode::OK, "video/mp2t", data), IMMUTABLE),
        None => not_found_answer(),
    }
}

fn ts_playlist(origin: &LiveOrigin, key: &str) -> PlainResponse {
    match origin.playlist(key) {
        Some(text) => answer(StatusCode::OK, PLAYLIST, text),
        None => not_found_answer(),
    }
}

fn bad_request(why: &str) -> PlainResponse {
    answer(StatusCode::BAD_REQUEST, "text/plain", format!("{why}\n"))
}

fn not_found_answer() -> PlainResponse {
    answer(StatusCode::NOT_FOUND, "text/plain", "not found\n")
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
