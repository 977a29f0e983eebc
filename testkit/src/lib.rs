//! Test helpers shared by VideoPick's crates (a dev-dependency only): real `ffmpeg` and
//! `ffprobe` runs, synthetic FLV tags, chat sign-in tokens, a webhook receiver and a tiny
//! blocking HTTP client — one copy instead of one per crate's `tests/common`.
//!
//! ```
//! use std::time::Duration;
//! use videopick_testkit::{HookSink, http, tags};
//!
//! // A webhook receiver: POSTs to its URL are recorded.
//! let sink = HookSink::start();
//! let addr = sink.url().strip_prefix("http://").unwrap().split('/').next().unwrap().to_string();
//! let (status, _) = http::request(&addr, "POST", "/events", "Content-Type: application/json\r\n", br#"{"event":"publish"}"#);
//! assert_eq!(status, 204);
//! assert_eq!(sink.wait_event("publish", Duration::from_secs(5)), r#"{"event":"publish"}"#);
//!
//! // Synthetic stream: key frame every second at 25 fps.
//! assert_eq!(tags::frame(0, 7).data[0], 0x17); // key frame, AVC
//! assert_eq!(tags::frame(1, 7).data[0], 0x27); // inter frame
//! assert!(tags::frame(1, 7).data[5..].iter().all(|&b| b == 7));
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod ffmpeg;
pub mod http;
pub mod pg;
pub mod tags;

/// A chat sign-in token for user `sub` (also its display name) with `role`, valid for an
/// hour, signed with `secret` (HS256, as the app mints them).
pub fn chat_token(sub: &str, role: &str, secret: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + 3600;
    videopick_chat_proto::app::auth::sign(
        &serde_json::json!({"sub": sub, "name": sub, "role": role, "exp": exp}),
        secret.as_bytes(),
    )
}

/// A webhook receiver on loopback: records the body of every request (one request per
/// connection, answered `204` with `Connection: close`).
#[derive(Debug, Clone)]
pub struct HookSink {
    url: String,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl HookSink {
    /// Listen on a free loopback port.
    pub fn start() -> HookSink {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let url = format!("http://{}/events", l.local_addr().expect("local address"));
        let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
        let b = bodies.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                if let Some(body) = read_request_body(&mut s) {
                    b.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(body);
                }
                let _ = s.write_all(
                    b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        HookSink { url, bodies }
    }

    /// The URL to give as a hook.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every body received so far.
    pub fn bodies(&self) -> Vec<String> {
        self.bodies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The first body announcing `"event":"<kind>"`, waiting up to `limit` for it (panics
    /// after that).
    pub fn wait_event(&self, kind: &str, limit: Duration) -> String {
        let marker = format!(r#""event":"{kind}""#);
        let start = Instant::now();
        loop {
            if let Some(e) = self.bodies().into_iter().find(|b| b.contains(&marker)) {
                return e;
            }
            assert!(start.elapsed() < limit, "no {kind} event within {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Read one request from `s`: its body (by Content-Length), or `None` if it broke off.
fn read_request_body(s: &mut std::net::TcpStream) -> Option<String> {
    let mut buf = vec![0u8; 8192];
    let mut got = Vec::new();
    loop {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .and_then(|v| v.trim().parse().ok())
                })
                .unwrap_or(0);
            if body.len() >= len {
                return Some(body.to_string());
            }
        }
    }
}
