//! Helpers shared by the `media-server` end-to-end tests.
#![allow(dead_code, unused_imports)] // each test file uses a subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use videopick_flv::{FlvDemuxer, FlvItem, Tag, TagKind};
use videopick_live::rtmp_client::{RtmpClient, RtmpPlayer, RtmpPublisher};
use videopick_testkit::HookSink;

/// A running `media-server`, killed on drop.
pub(crate) struct Server {
    /// The process.
    pub(crate) child: Child,
    /// RTMP address.
    pub(crate) rtmp: String,
    /// HTTP address.
    pub(crate) http: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `chat-server`, killed on drop.
pub(crate) struct ChatServer {
    /// The process.
    pub(crate) child: Child,
    /// Its address (host:port).
    pub(crate) addr: String,
}

impl Drop for ChatServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) use videopick_testkit::chat_token;
pub(crate) use videopick_testkit::ffmpeg::decode_warnings;
pub(crate) use videopick_testkit::tags::{frame, frame_sized, headers};

/// Start `chat-server` on 127.0.0.1 port 0 with `args`; returns once it listens.
pub(crate) fn start_chat_server(args: &[&str]) -> ChatServer {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .env("RUST_LOG", "warn")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("chat-server exited").unwrap();
        if let Some(a) = line.strip_prefix("chat-server: listening on http://") {
            break a.to_string();
        }
    };
    // Keep draining stdout so the server never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    ChatServer { child, addr }
}

/// Start the `media-server` binary on free ports with `extra` flags. Transcoding workers
/// are off unless `extra` asks for them (jobs are still queued).
pub(crate) fn start_server(storage: &std::path::Path, extra: &[&str]) -> Server {
    let workers: &[&str] = if extra.contains(&"--transcode-workers") {
        &[]
    } else {
        &["--transcode-workers", "0"]
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_media-server"))
        .env("RUST_LOG", "warn")
        .args([
            "--storage",
            storage.to_str().unwrap(),
            "--rtmp",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ])
        .args(workers)
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut rtmp, mut http) = (String::new(), String::new());
    while rtmp.is_empty() || http.is_empty() {
        let line = lines.next().expect("media-server exited early").unwrap();
        if let Some(a) = line.strip_prefix("media-server: rtmp on rtmp://") {
            rtmp = a.to_string();
        } else if let Some(a) = line.strip_prefix("media-server: listening on http://") {
            http = a.to_string();
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Server { child, rtmp, http }
}

/// One HTTP/1.1 request; (status, body).
pub(crate) fn http(addr: &str, method: &str, path: &str, extra: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    (
        resp[9..12].parse().unwrap(),
        resp.split_once("\r\n\r\n")
            .map(|x| x.1.to_string())
            .unwrap_or_default(),
    )
}

/// Connect, publish `live/<key>` and send the sequence headers.
pub(crate) async fn publisher(rtmp: &str, key: &str) -> RtmpPublisher {
    let url = format!("rtmp://{rtmp}/live/{key}");
    let mut p = RtmpClient::connect(&url, Duration::from_secs(5))
        .await
        .unwrap()
        .publish()
        .await
        .unwrap();
    for t in headers() {
        p.send(&t).await.unwrap();
    }
    p
}

/// Connect and play `live/<key>`.
pub(crate) async fn player(rtmp: &str, key: &str) -> RtmpPlayer {
    let url = format!("rtmp://{rtmp}/live/{key}");
    RtmpClient::connect(&url, Duration::from_secs(5))
        .await
        .unwrap()
        .play()
        .await
        .unwrap()
}

/// Read an RTMP player until its stream ends: the payload marks of coded video tags.
pub(crate) async fn rtmp_marks(mut player: RtmpPlayer) -> Vec<u8> {
    let mut marks = Vec::new();
    while let Ok(Some(t)) = player.next_tag().await {
        if t.kind == TagKind::Video && t.data[1] == 1 {
            marks.push(t.data[5]);
        }
    }
    marks
}

/// Send `n` frames in real time (25 fps).
pub(crate) async fn send_frames(p: &mut RtmpPublisher, n: u32, mark: u8) {
    send_frames_sized(p, n, mark, 2000, |_, _| {}).await;
}

/// Send `n` frames of `size` bytes in real time, calling `on_send(timestamp, instant)`.
pub(crate) async fn send_frames_sized(
    p: &mut RtmpPublisher,
    n: u32,
    mark: u8,
    size: usize,
    on_send: impl Fn(u32, Instant),
) {
    let start = Instant::now();
    for i in 0..n {
        tokio::time::sleep_until((start + Duration::from_millis(u64::from(i) * 40)).into()).await;
        let f = frame_sized(i, mark, size);
        on_send(f.timestamp, Instant::now());
        if p.send(&f).await.is_err() {
            return;
        }
    }
}

/// Read an HTTP/1.0 (close-delimited) HTTP-FLV body and collect the payload marks of
/// coded video tags until the body ends.
pub(crate) async fn http_flv_marks(addr: String, key: &str) -> Vec<u8> {
    http_flv_frames(addr, key)
        .await
        .into_iter()
        .map(|(t, _)| t.data[5])
        .collect()
}

/// Read an HTTP/1.0 HTTP-FLV body until it ends: coded video tags with their arrival time.
pub(crate) async fn http_flv_frames(addr: String, key: &str) -> Vec<(Tag, Instant)> {
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let req = format!("GET /live/{key}.flv HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    tokio::io::AsyncWriteExt::write_all(&mut s, req.as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut body: Option<BytesMut> = None;
    let mut demux = FlvDemuxer::new();
    let mut marks = Vec::new();
    loop {
        let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            return marks;
        }
        if let Some(b) = &mut body {
            b.extend_from_slice(&buf[..n]);
        } else {
            raw.extend_from_slice(&buf[..n]);
            if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                assert!(
                    raw.starts_with(b"HTTP/1.1 200") || raw.starts_with(b"HTTP/1.0 200"),
                    "{}",
                    String::from_utf8_lossy(&raw)
                );
                body = Some(BytesMut::from(&raw[at + 4..]));
            }
        }
        if let Some(b) = &mut body {
            while let Some(item) = demux.decode(b).unwrap() {
                if let FlvItem::Tag(t) = item
                    && t.kind == TagKind::Video
                    && t.data[1] == 1
                {
                    marks.push((t, Instant::now()));
                }
            }
        }
    }
}

/// A webhook receiver (the event hook target): its URL and the receiver.
pub(crate) fn event_sink() -> (String, HookSink) {
    let sink = HookSink::start();
    (sink.url().to_string(), sink)
}

/// The first webhook body announcing `"event":"<kind>"`, waiting up to `limit` for it.
pub(crate) fn wait_event(events: &HookSink, kind: &str, limit: Duration) -> String {
    events.wait_event(kind, limit)
}

/// A JSON API call: `method path` with an optional bearer `token` and JSON `body`; the
/// status and the answer as JSON (`Null` when it is not JSON).
pub(crate) fn api_json(
    http: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut extra = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    if !body.is_empty() {
        extra.push_str("Content-Type: application/json\r\n");
    }
    let (status, text) =
        videopick_testkit::http::request(http, method, path, &extra, body.as_bytes());
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// Poll `f` every 200 ms until it holds; panic naming `what` after `secs`.
pub(crate) fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// tus-js-client (node, `clients/js/tus-upload.mjs`) uploading `file` to `endpoint` in one
/// PATCH, with a bearer `token` and extra `meta`data.
pub(crate) fn tus_js(
    endpoint: &str,
    file: &std::path::Path,
    token: Option<&str>,
    meta: &serde_json::Value,
) -> std::process::Output {
    tus_js_mode(endpoint, file, token, meta, "single")
}

/// [`tus_js`] in `mode`: `single` (one request), `parallel4` (four partial uploads joined
/// by a final one) or a chunk size in bytes.
pub(crate) fn tus_js_mode(
    endpoint: &str,
    file: &std::path::Path,
    token: Option<&str>,
    meta: &serde_json::Value,
    mode: &str,
) -> std::process::Output {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/js");
    let mut cmd = Command::new("node");
    cmd.current_dir(&dir)
        .arg("tus-upload.mjs")
        .arg(endpoint)
        .arg(file)
        .arg(mode)
        .env("TUS_METADATA", meta.to_string());
    if let Some(t) = token {
        cmd.env("TUS_TOKEN", t);
    }
    cmd.output().unwrap()
}

/// GET `path`: (status, head, body).
pub(crate) fn get(addr: &str, path: &str) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let at = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&resp[..at]).to_lowercase();
    let status = head[9..12].parse().unwrap();
    (status, head, resp[at + 4..].to_vec())
}

/// The newest part listed: (msn, part index, its URI).
pub(crate) fn last_part(playlist: &str) -> (u64, u32, String) {
    let uri = playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-PART:"))
        .filter_map(|a| a.split("URI=\"").nth(1)?.split('"').next())
        .next_back()
        .expect("a part")
        .to_string();
    let (msn, part) = part_of(&uri);
    (msn, part, uri)
}

/// `<stream>-<gen>-<msn>.<part>.m4s` → (msn, part).
pub(crate) fn part_of(uri: &str) -> (u64, u32) {
    let tail = uri.trim_end_matches(".m4s").rsplit('-').next().unwrap();
    let (m, p) = tail.split_once('.').unwrap();
    (m.parse().unwrap(), p.parse().unwrap())
}
