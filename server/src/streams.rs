//! Live streaming wiring: HTTP-FLV playback and stream stats over the RTMP hub.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt as _;
use hyper::{Method, StatusCode};
use videopick_flv::{
    AudioData, AudioSpecificConfig, AvcConfig, HevcConfig, OnMetaData, Tag, VideoCodec, VideoData,
};
use videopick_live::fanout::Fanout;
use videopick_live::hub::{Hub, LiveEventKind, Protocol};
use videopick_live::rtmp_server::NetStats;

fn json_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

use crate::http::{ConnectionTask, HttpResponse, Takeover, respond};

/// HTTP side of the live server: `GET /<app>/<stream>.flv`, `GET /api/streams`.
#[derive(Debug, Clone)]
pub struct LiveHttp {
    hub: Hub,
    rtmp: Arc<NetStats>,
    write_interval: Duration,
    /// Taken-over HTTP-FLV viewers are written by groups (one task, one writev each).
    fanout: Fanout,
    http_viewers: Arc<std::sync::atomic::AtomicU64>,
    api_token: Option<String>,
}

fn with_cors(mut r: HttpResponse) -> HttpResponse {
    let h = r.headers_mut();
    h.insert(
        "access-control-allow-origin",
        hyper::header::HeaderValue::from_static("*"),
    );
    h.insert(
        "access-control-expose-headers",
        hyper::header::HeaderValue::from_static("content-length, content-type"),
    );
    r
}

/// Codec details of a stream, from its sequence headers and metadata.
fn describe(meta: Option<&Tag>, video: Option<&Tag>, audio: Option<&Tag>) -> String {
    let mut fields = Vec::new();
    if let Some(v) = video.and_then(|t| VideoData::parse(&t.data).ok()) {
        match v.codec {
            VideoCodec::Avc => {
                if let Ok(c) = AvcConfig::parse(&v.body) {
                    fields.push(format!("\"video_codec\":{}", json_str(&c.codec_string())));
                    if let Ok(sps) = c.sps_info() {
                        fields.push(format!("\"width\":{},\"height\":{}", sps.width, sps.height));
                    }
                }
            }
            VideoCodec::Hevc => {
                if let Ok(c) = HevcConfig::parse(&v.body) {
                    fields.push(format!("\"video_codec\":{}", json_str(&c.codec_string())));
                    if let Ok(sps) = c.sps_info() {
                        fields.push(format!("\"width\":{},\"height\":{}", sps.width, sps.height));
                    }
                }
            }
            VideoCodec::Av1 => {
                if let Ok(c) = videopick_flv::av1::Av1Config::parse(&v.body) {
                    fields.push(format!("\"video_codec\":{}", json_str(&c.codec_string())));
                    if let Some((w, h)) = c.size() {
                        fields.push(format!("\"width\":{w},\"height\":{h}"));
                    }
                }
            }
            VideoCodec::Vp9 => {
                if let Ok(c) = videopick_flv::vp9::Vp9Config::parse(&v.body) {
                    fields.push(format!("\"video_codec\":{}", json_str(&c.codec_string())));
                }
            }
            other => fields.push(format!(
                "\"video_codec\":{}",
                json_str(&format!("{other:?}"))
            )),
        }
    }
    // The picture size from the metadata when the codec configuration has none (VP9
    // carries it only in key frames).
    let meta = meta.and_then(|t| OnMetaData::parse(&t.data).ok());
    if video.is_some()
        && !fields.iter().any(|f| f.starts_with("\"width\""))
        && let Some(m) = &meta
        && let (Some(w), Some(h)) = (m.width, m.height)
        && (1.0..=65_535.0).contains(&w)
        && (1.0..=65_535.0).contains(&h)
    {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // range checked
        fields.push(format!("\"width\":{},\"height\":{}", w as u32, h as u32));
    }
    if let Some(a) = audio.and_then(|t| AudioData::parse(&t.data).ok())
        && let Ok(asc) = AudioSpecificConfig::parse(&a.body)
    {
        fields.push(format!(
            "\"audio_codec\":{},\"sample_rate\":{},\"channels\":{}",
            json_str(&asc.codec_string()),
            asc.sample_rate,
            asc.channels()
        ));
    }
    if let Some(fps) = meta.and_then(|m| m.frame_rate) {
        fields.push(format!("\"fps\":{fps}"));
    }
    fields.join(",")
}

/// One HTTP-FLV viewer's lifetime: counted and announced (`play`) when it starts,
/// uncounted and announced (`stop`) when dropped.
struct FlvViewer {
    http: LiveHttp,
    key: String,
    peer: std::net::SocketAddr,
}

impl FlvViewer {
    fn start(http: &LiveHttp, key: &str, peer: std::net::SocketAddr) -> FlvViewer {
        http.http_viewers.fetch_add(1, Ordering::Relaxed);
        http.hub
            .emit(LiveEventKind::Play, key, "http-flv", Some(peer));
        FlvViewer {
            http: http.clone(),
            key: key.to_string(),
            peer,
        }
    }
}

impl Drop for FlvViewer {
    fn drop(&mut self) {
        self.http.http_viewers.fetch_sub(1, Ordering::Relaxed);
        self.http
            .hub
            .emit(LiveEventKind::Stop, &self.key, "http-flv", Some(self.peer));
    }
}

impl LiveHttp {
    /// HTTP routes over `hub`; `rtmp` are the RTMP server's counters (for `/metrics`).
    /// `api_token` guards `DELETE /api/streams/…` (`Authorization: Bearer <token>`); without
    /// one, kicking is refused.
    pub fn new(
        hub: Hub,
        rtmp: Arc<NetStats>,
        write_interval: Duration,
        api_token: Option<String>,
    ) -> LiveHttp {
        LiveHttp {
            fanout: Fanout::new(hub.clone(), write_interval),
            hub,
            rtmp,
            write_interval,
            http_viewers: Arc::default(),
            api_token,
        }
    }

    /// Answer a request if it is one of ours.
    pub fn route<B>(
        &self,
        req: &hyper::Request<B>,
        peer: std::net::SocketAddr,
    ) -> Option<HttpResponse> {
        let (method, path) = (req.method(), req.uri().path());
        if method == Method::DELETE
            && let Some(key) = path.strip_prefix("/api/streams/")
        {
            return Some(with_cors(self.kick(req, key)));
        }
        // URL paths are case-sensitive; `.flv` is the contract.
        #[allow(clippy::case_sensitive_file_extension_comparisons)]
        let ours = path.ends_with(".flv") || path.starts_with("/api/");
        if method == Method::OPTIONS && ours {
            let mut r = with_cors(respond(StatusCode::NO_CONTENT, "text/plain", ""));
            r.headers_mut().insert(
                "access-control-allow-methods",
                hyper::header::HeaderValue::from_static("GET, OPTIONS"),
            );
            return Some(r);
        }
        if method != Method::GET {
            return None;
        }
        if path == "/api/streams" {
            return Some(with_cors(respond(
                StatusCode::OK,
                "application/json",
                self.streams_json(),
            )));
        }
        let key = path.strip_prefix('/')?.strip_suffix(".flv")?;
        if key.split('/').count() != 2 || key.split('/').any(str::is_empty) {
            return None;
        }
        // The first request of a connection is taken over before hyper sees it (see
        // `Takeover`: the bytes go straight to the socket). A later request on a keep-alive
        // connection (a page that fetched /api/streams first) is streamed through hyper.
        let Some(mut sub) = self.hub.subscribe(key) else {
            return Some(with_cors(respond(
                StatusCode::NOT_FOUND,
                "text/plain",
                format!("{key} is not live\n"),
            )));
        };
        sub.set_protocol(Protocol::HttpFlv);
        let viewer = FlvViewer::start(self, key, peer);
        let body =
            videopick_live::http_flv::flv_stream(sub, self.write_interval, 512).map(move |bytes| {
                let _ = &viewer; // ends (Stop event, counters) when the body is dropped
                Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(bytes))
            });
        let mut r = hyper::Response::new(http_body_util::BodyExt::boxed(
            http_body_util::StreamBody::new(body),
        ));
        let h = r.headers_mut();
        h.insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("video/x-flv"),
        );
        h.insert(
            hyper::header::CACHE_CONTROL,
            hyper::header::HeaderValue::from_static("no-cache"),
        );
        Some(with_cors(r))
    }

    fn kick<B>(&self, req: &hyper::Request<B>, key: &str) -> HttpResponse {
        let Some(token) = &self.api_token else {
            return respond(
                StatusCode::FORBIDDEN,
                "text/plain",
                "kicking needs --api-token on the server\n",
            );
        };
        if !crate::http::bearer_is(req.headers(), token) {
            return respond(
                StatusCode::UNAUTHORIZED,
                "text/plain",
                "bad or missing bearer token\n",
            );
        }
        if self.hub.kick(key) {
            respond(StatusCode::NO_CONTENT, "text/plain", "")
        } else {
            respond(
                StatusCode::NOT_FOUND,
                "text/plain",
                format!("{key} is not live\n"),
            )
        }
    }

    /// `GET /api/streams`: live streams with codecs, resolution, fps, bitrate and viewers.
    pub fn streams_json(&self) -> String {
        let mut items = Vec::new();
        for s in self.hub.streams() {
            let (meta, video, audio) = s.headers();
            let uptime = s.created().elapsed().as_secs_f64();
            let stats = s.stats();
            let bytes_in = stats.bytes_in.load(Ordering::Relaxed);
            let bytes_out = stats.bytes_out.load(Ordering::Relaxed);
            #[allow(clippy::cast_precision_loss)] // byte counts far below 2^52
            let kbps = |bytes: u64| {
                if uptime > 0.0 {
                    bytes as f64 * 8.0 / 1000.0 / uptime
                } else {
                    0.0
                }
            };
            let details = describe(meta.as_ref(), video.as_ref(), audio.as_ref());
            items.push(format!(
                "{{\"key\":{},\"uptime_seconds\":{uptime:.1},\"bitrate_in_kbps\":{:.0},\"bitrate_out_kbps\":{:.0},\"viewers\":{},\"viewers_rtmp\":{},\"viewers_http_flv\":{},\"bytes_in\":{bytes_in},\"bytes_out\":{bytes_out},\"skipped_tags\":{},\"dropped_slow_viewers\":{}{}{details}}}",
                json_str(s.key()),
                kbps(bytes_in),
                kbps(bytes_out),
                stats.subscribers.load(Ordering::Relaxed),
                stats.rtmp_viewers.load(Ordering::Relaxed),
                stats.http_flv_viewers.load(Ordering::Relaxed),
                stats.skipped_tags.load(Ordering::Relaxed),
                stats.dropped_slow.load(Ordering::Relaxed),
                if details.is_empty() { "" } else { "," },
            ));
        }
        format!("{{\"streams\":[{}]}}\n", items.join(","))
    }

    /// The hub.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The RTMP listener's counters and the HTTP-FLV viewers attached now.
    pub fn counters(&self) -> (Arc<NetStats>, u64) {
        (self.rtmp.clone(), self.http_viewers.load(Ordering::Relaxed))
    }
}

impl Takeover for LiveHttp {
    fn take(
        &self,
        method: &str,
        path: &str,
        http10: bool,
        peer: std::net::SocketAddr,
    ) -> Option<ConnectionTask> {
        if method != "GET" {
            return None;
        }
        let key = path.strip_prefix('/')?.strip_suffix(".flv")?;
        if key.split('/').count() != 2 || key.split('/').any(str::is_empty) {
            return None;
        }
        let mut sub = self.hub.subscribe(key)?;
        sub.set_protocol(Protocol::HttpFlv);
        let key = key.to_string();
        let this = self.clone();
        Some(Box::new(
            move |mut stream: tokio::net::TcpStream, drain: crate::http::Drain| {
                Box::pin(async move {
                    use tokio::io::AsyncWriteExt;
                    let viewer = FlvViewer::start(&this, &key, peer);
                    let head = format!(
                        "HTTP/1.{} 200 OK\r\nContent-Type: video/x-flv\r\nCache-Control: no-cache\r\nAccess-Control-Allow-Origin: *\r\nAccess-Control-Expose-Headers: content-length, content-type\r\nConnection: close\r\n\r\n",
                        u8::from(!http10)
                    );
                    if stream.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    // The stream's group writes to it from here; this task only waits,
                    // and stops the viewer (at a tag boundary) when the server drains.
                    let mut flv = this.fanout.join(sub, stream);
                    let mut drain = drain;
                    let finished = flv
                        .finished_or_stop(async move {
                            let _ = drain.wait_for(|d| *d).await;
                        })
                        .await;
                    if let Some(mut f) = finished {
                        let _ = f.sock.shutdown().await;
                    }
                    drop(viewer);
                })
            },
        ))
    }
}
