//! Publish/play authorization for the tokio server: a static key file, HMAC-signed keys
//! with expiry, an HTTP hook, and all of them combined.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::net::{Action, AuthRequest, Authorize, BoxFuture, Grant};

/// The value of `name` in a `k=v&k2=v2` query string.
pub fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Publishing requires `?key=<secret>` with the secret listed for `app/stream` in a key
/// file; playing is open. File format: one `app/stream secret` per line, `#` comments.
#[derive(Debug, Clone, Default)]
pub struct StaticKeys {
    keys: HashMap<String, String>,
}

impl StaticKeys {
    /// Parse key-file text.
    pub fn parse(text: &str) -> Result<StaticKeys, String> {
        let mut keys = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            match (parts.next(), parts.next(), parts.next()) {
                (Some(stream), Some(secret), None) if stream.contains('/') => {
                    keys.insert(stream.to_string(), secret.to_string());
                }
                _ => return Err(format!("line {}: expected `app/stream secret`", n + 1)),
            }
        }
        Ok(StaticKeys { keys })
    }

    /// Read a key file.
    pub fn load(path: &Path) -> Result<StaticKeys, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        StaticKeys::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn check(&self, req: &AuthRequest) -> Result<(), String> {
        if req.action == Action::Play {
            return Ok(());
        }
        let key = format!("{}/{}", req.app, req.stream);
        match (
            self.keys.get(&key),
            query_param(req.query.as_deref(), "key"),
        ) {
            (Some(want), Some(got)) if constant_time_eq(want.as_bytes(), got.as_bytes()) => Ok(()),
            (None, _) => Err(format!("{key} may not be published here")),
            _ => Err("wrong or missing stream key".into()),
        }
    }
}

impl Authorize for StaticKeys {
    fn authorize<'a>(&'a self, req: &'a AuthRequest) -> BoxFuture<'a, Result<Grant, String>> {
        Box::pin(async move { self.check(req).map(|()| Grant::default()) })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// HMAC-signed keys with expiry: `stream?sign=<expiry>-<hex hmac>`, where the HMAC-SHA256
/// under the shared secret covers `/<app>/<stream>-<expiry>` and `expiry` is a Unix time in
/// seconds. The application server signs URLs; the media server only verifies.
#[derive(Clone)]
pub struct SignedKeys {
    secret: Vec<u8>,
    publish: bool,
    play: bool,
}

impl std::fmt::Debug for SignedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedKeys")
            .field("publish", &self.publish)
            .field("play", &self.play)
            .finish_non_exhaustive()
    }
}

fn mac(secret: &[u8], app: &str, stream: &str, expiry: u64) -> [u8; 32] {
    let mut m =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    m.update(format!("/{app}/{stream}-{expiry}").as_bytes());
    m.finalize().into_bytes().into()
}

impl SignedKeys {
    /// Verify signatures under `secret` for publishing and, if `play`, for playing too.
    pub fn new(secret: impl Into<Vec<u8>>, play: bool) -> SignedKeys {
        SignedKeys {
            secret: secret.into(),
            publish: true,
            play,
        }
    }

    /// The `sign` query value for `app/stream` valid until `expiry` (Unix seconds).
    pub fn sign(secret: &[u8], app: &str, stream: &str, expiry: u64) -> String {
        let mut s = format!("{expiry}-");
        for b in mac(secret, app, stream, expiry) {
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    /// Check `req` at time `now`.
    pub fn check_at(&self, req: &AuthRequest, now: SystemTime) -> Result<(), String> {
        let needed = match req.action {
            Action::Publish => self.publish,
            Action::Play => self.play,
        };
        if !needed {
            return Ok(());
        }
        let sign = query_param(req.query.as_deref(), "sign").ok_or("missing sign parameter")?;
        let (expiry, hex) = sign.split_once('-').ok_or("malformed sign parameter")?;
        let expiry: u64 = expiry.parse().map_err(|_| "malformed sign expiry")?;
        let now = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        if now > expiry {
            return Err("signature expired".into());
        }
        let want = Self::sign(&self.secret, &req.app, &req.stream, expiry);
        if constant_time_eq(want.as_bytes(), sign.as_bytes()) && hex.len() == 64 {
            Ok(())
        } else {
            Err("bad signature".into())
        }
    }
}

impl Authorize for SignedKeys {
    fn authorize<'a>(&'a self, req: &'a AuthRequest) -> BoxFuture<'a, Result<Grant, String>> {
        Box::pin(async move {
            self.check_at(req, SystemTime::now())
                .map(|()| Grant::default())
        })
    }
}

/// Escape a string as a JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// POST a JSON body to an `http://host:port/path` URL; returns the status code.
pub async fn post_json(url: &str, body: &str, timeout: Duration) -> Result<u16, String> {
    post_json_response(url, body, timeout).await.map(|(c, _)| c)
}

/// Largest response body [`post_json_response`] reads.
const MAX_HOOK_RESPONSE: usize = 64 * 1024;

/// POST a JSON body to an `http://host:port/path` URL; returns the status code and the
/// response body (at most 64 KiB, read until the server closes; `Connection: close` is sent).
pub async fn post_json_response(
    url: &str,
    body: &str,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("only http:// URLs are supported: {url}"))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(host)
            .await
            .map_err(|e| format!("{host}: {e}"))?;
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut resp = Vec::with_capacity(256);
        let mut buf = [0u8; 1024];
        loop {
            let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
            if n == 0 || resp.len() >= MAX_HOOK_RESPONSE {
                break;
            }
            resp.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&resp);
        let code = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| format!("bad HTTP response from {url}"))?;
        let body = text
            .split_once("\r\n\r\n")
            .map_or(String::new(), |(_, b)| b.to_string());
        Ok((code, body))
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| format!("{url} did not answer in {timeout:?}"))?
}

/// The boolean value of a top-level `"name": true|false` in a JSON text (a small scan, not
/// a JSON parser: enough for hook answers such as `{"record": true}`).
pub fn json_bool(json: &str, name: &str) -> Option<bool> {
    let pat = format!("\"{name}\"");
    let at = json.find(&pat)? + pat.len();
    let rest = json[at..].trim_start().strip_prefix(':')?.trim_start();
    if rest.starts_with("true") {
        Some(true)
    } else if rest.starts_with("false") {
        Some(false)
    } else {
        None
    }
}

/// The request as the JSON the HTTP hook and the event webhook send.
pub fn request_json(req: &AuthRequest) -> String {
    format!(
        "{{\"action\":{},\"app\":{},\"stream\":{},\"query\":{},\"tc_url\":{},\"peer\":{}}}",
        json_str(match req.action {
            Action::Publish => "publish",
            Action::Play => "play",
        }),
        json_str(&req.app),
        json_str(&req.stream),
        req.query.as_deref().map_or("null".into(), json_str),
        req.tc_url.as_deref().map_or("null".into(), json_str),
        json_str(&req.peer.to_string()),
    )
}

/// Asks an HTTP endpoint: POSTs the request as JSON; a 2xx answer allows, anything else
/// (or no answer within the timeout) denies.
#[derive(Debug, Clone)]
pub struct HttpHook {
    url: String,
    timeout: Duration,
}

impl HttpHook {
    /// A hook at `url` (http://host:port/path) answering within `timeout`.
    pub fn new(url: impl Into<String>, timeout: Duration) -> HttpHook {
        HttpHook {
            url: url.into(),
            timeout,
        }
    }
}

impl Authorize for HttpHook {
    fn authorize<'a>(&'a self, req: &'a AuthRequest) -> BoxFuture<'a, Result<Grant, String>> {
        Box::pin(async move {
            match post_json_response(&self.url, &request_json(req), self.timeout).await {
                Ok((code, body)) if (200..300).contains(&code) => Ok(Grant {
                    record: json_bool(&body, "record"),
                }),
                Ok((code, _)) => Err(format!("denied by hook ({code})")),
                Err(e) => Err(format!("auth hook failed: {e}")),
            }
        })
    }
}

/// Every authorizer must allow.
#[derive(Default)]
pub struct AllOf(pub Vec<std::sync::Arc<dyn Authorize>>);

impl std::fmt::Debug for AllOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AllOf({} authorizers)", self.0.len())
    }
}

impl Authorize for AllOf {
    fn authorize<'a>(&'a self, req: &'a AuthRequest) -> BoxFuture<'a, Result<Grant, String>> {
        Box::pin(async move {
            let mut grant = Grant::default();
            for a in &self.0 {
                grant = grant.and(a.authorize(req).await?);
            }
            Ok(grant)
        })
    }
}

/// Post every lifecycle event of `hub` to `url` as JSON (`{"event","key","protocol","peer",
/// "at_ms"}`), retrying up to 3 times with backoff (0.5 s, 1 s, 2 s); gives up on an event
/// after that. Runs until the hub is dropped.
pub fn spawn_event_webhook(hub: &crate::hub::Hub, url: String) -> tokio::task::JoinHandle<()> {
    let mut rx = hub.events();
    tokio::spawn(async move {
        loop {
            let ev = match rx.recv().await {
                Ok(ev) => ev,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            let at_ms = ev
                .at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let body = format!(
                "{{\"event\":{},\"key\":{},\"protocol\":{},\"peer\":{},\"at_ms\":{at_ms}}}",
                json_str(ev.kind.as_str()),
                json_str(&ev.key),
                json_str(ev.protocol),
                ev.peer.map_or("null".into(), |p| json_str(&p.to_string())),
            );
            post_json_with_retries(&url, &body).await;
        }
    })
}

/// POST `body` to `url`, retrying up to 3 times with backoff (0.5 s, 1 s, 2 s) until a 2xx
/// answer; true if one came.
pub async fn post_json_with_retries(url: &str, body: &str) -> bool {
    let mut backoff = Duration::from_millis(500);
    for attempt in 0..4 {
        match post_json(url, body, Duration::from_secs(5)).await {
            Ok(code) if (200..300).contains(&code) => return true,
            _ if attempt < 3 => {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(action: Action, query: Option<&str>) -> AuthRequest {
        AuthRequest {
            action,
            app: "live".into(),
            stream: "cam".into(),
            query: query.map(str::to_owned),
            tc_url: None,
            peer: "127.0.0.1:1".parse().unwrap(),
        }
    }

    #[test]
    fn static_keys() {
        let k = StaticKeys::parse("# keys\nlive/cam s3cret\n\nlive/other x\n").unwrap();
        assert!(k.check(&req(Action::Publish, Some("key=s3cret"))).is_ok());
        assert!(
            k.check(&req(Action::Publish, Some("a=1&key=s3cret")))
                .is_ok()
        );
        assert!(k.check(&req(Action::Publish, Some("key=wrong"))).is_err());
        assert!(k.check(&req(Action::Publish, None)).is_err());
        assert!(k.check(&req(Action::Play, None)).is_ok());
        assert!(StaticKeys::parse("nokey").is_err());
        assert!(StaticKeys::parse("live/a b c").is_err());
    }

    #[test]
    fn signed_keys() {
        let s = SignedKeys::new(b"secret".to_vec(), false);
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let good = SignedKeys::sign(b"secret", "live", "cam", 1_000_060);
        assert!(
            s.check_at(&req(Action::Publish, Some(&format!("sign={good}"))), now)
                .is_ok()
        );
        let later = UNIX_EPOCH + Duration::from_secs(1_000_061);
        assert_eq!(
            s.check_at(&req(Action::Publish, Some(&format!("sign={good}"))), later),
            Err("signature expired".into())
        );
        let other = SignedKeys::sign(b"other", "live", "cam", 1_000_060);
        assert!(
            s.check_at(&req(Action::Publish, Some(&format!("sign={other}"))), now)
                .is_err()
        );
        // Signed for another stream.
        let cam2 = SignedKeys::sign(b"secret", "live", "cam2", 1_000_060);
        assert!(
            s.check_at(&req(Action::Publish, Some(&format!("sign={cam2}"))), now)
                .is_err()
        );
        assert!(s.check_at(&req(Action::Publish, None), now).is_err());
        assert!(
            s.check_at(&req(Action::Publish, Some("sign=abc")), now)
                .is_err()
        );
        // Play is open unless asked for.
        assert!(s.check_at(&req(Action::Play, None), now).is_ok());
        assert!(
            SignedKeys::new(b"secret".to_vec(), true)
                .check_at(&req(Action::Play, None), now)
                .is_err()
        );
    }

    #[test]
    fn request_json_escapes() {
        let mut r = req(Action::Publish, Some("key=\"x\""));
        r.tc_url = Some("rtmp://h/live".into());
        assert_eq!(
            request_json(&r),
            r#"{"action":"publish","app":"live","stream":"cam","query":"key=\"x\"","tc_url":"rtmp://h/live","peer":"127.0.0.1:1"}"#
        );
    }

    #[test]
    fn json_bool_finds_top_level_answers() {
        assert_eq!(json_bool(r#"{"record": true}"#, "record"), Some(true));
        assert_eq!(
            json_bool(r#"{"ok":1,"record" :false}"#, "record"),
            Some(false)
        );
        assert_eq!(json_bool(r#"{"record": "yes"}"#, "record"), None);
        assert_eq!(json_bool("", "record"), None);
        assert_eq!(json_bool(r#"{"recording": true}"#, "record"), None);
    }

    #[test]
    fn grants_combine_with_no_winning() {
        let g = |record| Grant { record };
        assert_eq!(g(None).and(g(None)), g(None));
        assert_eq!(g(None).and(g(Some(true))), g(Some(true)));
        assert_eq!(g(Some(true)).and(g(Some(false))), g(Some(false)));
        assert_eq!(g(Some(false)).and(g(None)), g(Some(false)));
    }

    /// One-shot HTTP server answering `response`.
    fn answer(response: &'static str) -> String {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(response.as_bytes());
        });
        url
    }

    #[tokio::test]
    async fn http_hook_reads_the_record_answer() {
        let r = req(Action::Publish, None);
        let ok = answer("HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n{\"record\": true}");
        let grant = HttpHook::new(ok, Duration::from_secs(5))
            .authorize(&r)
            .await;
        assert_eq!(grant, Ok(Grant { record: Some(true) }));
        let plain = answer("HTTP/1.1 204 No Content\r\n\r\n");
        let grant = HttpHook::new(plain, Duration::from_secs(5))
            .authorize(&r)
            .await;
        assert_eq!(grant, Ok(Grant::default()));
        let denied = answer("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
        let err = HttpHook::new(denied, Duration::from_secs(5))
            .authorize(&r)
            .await
            .unwrap_err();
        assert!(err.contains("403"), "{err}");
    }
}
