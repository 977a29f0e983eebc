//! Publish/play authorization: the [`Authorize`] trait the RTMP driver asks before every
//! publish and play, and its implementations — a static key file, HMAC-signed keys with
//! expiry, an HTTP hook (through [`videopick_hooks`]), and all of them combined.
//!
//! A refusal is a typed [`Denied`]; its text is what the client is told (the RTMP
//! `NetStream.Publish.BadName` / `Play.Failed` description), never a secret.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use videopick_hooks::HookClient;

/// Publish or play.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A publisher wants to send a stream.
    Publish,
    /// A viewer wants to receive one.
    Play,
}

/// What an [`Authorize`] implementation decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    /// Publish or play.
    pub action: Action,
    /// Application (`live`).
    pub app: String,
    /// Stream name without the query (`cam`).
    pub stream: String,
    /// Query string of the stream name (`key=…`, `sign=…`).
    pub query: Option<String>,
    /// The connection's `tcUrl`.
    pub tc_url: Option<String>,
    /// The peer's address.
    pub peer: SocketAddr,
}

/// A boxed future, as [`Authorize`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Decides each publish and play. `Err` carries the reason sent to the client.
pub trait Authorize: Send + Sync + 'static {
    /// Allow (with what the grant says) or deny `req` (with the reason).
    fn authorize<'a>(&'a self, req: &'a AuthRequest) -> BoxFuture<'a, Result<Grant, Denied>>;

    /// Whether the stream names asked for in `app` are secrets (stream keys): they are
    /// then never logged — only the name a publish is granted under is.
    fn secret_names(&self, _app: &str) -> bool {
        false
    }
}

/// What an allowed publish or play comes with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// Record this publish (`Some(true)`), don't (`Some(false)`), or leave it to the
    /// server's configuration (`None`).
    pub record: Option<bool>,
    /// Publish under this stream name instead of the one asked for — a secret stream
    /// key mapped to its channel's public name. The name asked for is then never logged,
    /// announced or shown.
    pub stream: Option<String>,
}

impl Grant {
    /// Combine two grants: a "don't record" wins over "record", which wins over no
    /// opinion; the first new name wins.
    #[must_use]
    pub fn and(self, other: Grant) -> Grant {
        let record = match (self.record, other.record) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), _) | (_, Some(true)) => Some(true),
            _ => None,
        };
        Grant {
            record,
            stream: self.stream.or(other.stream),
        }
    }
}

/// Whether `name` may be a stream name granted by an authorizer: 1–128 letters, digits,
/// `-`, `_` or `.`, not starting with `.`.
pub fn valid_stream_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Allows everything. Use only on loopback or behind another gate.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authorize for AllowAll {
    fn authorize<'a>(&'a self, _req: &'a AuthRequest) -> BoxFuture<'a, Result<Grant, Denied>> {
        Box::pin(async { Ok(Grant::default()) })
    }
}

/// Why a publish or play was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denied {
    /// No key is configured for this stream: it may not be published here.
    #[error("{0} may not be published here")]
    UnknownStream(String),
    /// The stream key is missing or wrong.
    #[error("wrong or missing stream key")]
    WrongKey,
    /// The `sign` parameter is missing.
    #[error("missing sign parameter")]
    MissingSignature,
    /// The `sign` parameter is not `<expiry>-<hex>`.
    #[error("malformed sign parameter")]
    MalformedSignature,
    /// The signature's expiry has passed.
    #[error("signature expired")]
    Expired,
    /// The signature does not match.
    #[error("bad signature")]
    BadSignature,
    /// The HTTP hook answered with a non-2xx status.
    #[error("denied by hook ({0})")]
    ByHook(u16),
    /// The HTTP hook could not be asked (down, slow, bad answer): refused to be safe.
    #[error("auth hook unavailable")]
    HookUnavailable,
    /// Refused for an application-specific reason (the text is shown to the client).
    #[error("{0}")]
    Other(String),
}

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

    fn check(&self, req: &AuthRequest) -> Result<(), Denied> {
        if req.action == Action::Play {
            return Ok(());
        }
        let key = format!("{}/{}", req.app, req.stream);
        match (
            self.keys.get(&key),
            query_param(req.query.as_deref(), "key"),
        ) {
            (Some(want), Some(got)) if constant_time_eq(want.as_bytes(), got.as_bytes()) => Ok(()),
            (None, _) => Err(Denied::UnknownStream(key)),
            _ => Err(Denied::WrongKey),
        }
    }
}

impl Authorize for StaticKeys {
    fn authorize<'a>(&'a self, req: &'a AuthRequest) -> BoxFuture<'a, Result<Grant, Denied>> {
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
    pub fn check_at(&self, req: &AuthRequest, now: SystemTime) -> Result<(), Denied> {
        let needed = match req.action {
            Action::Publish => self.publish,
            Action::Play => self.play,
        };
        if !needed {
            return Ok(());
        }
        let sign = query_param(req.query.as_deref(), "sign").ok_or(Denied::MissingSignature)?;
        let (expiry, hex) = sign.split_once('-').ok_or(Denied::MalformedSignature)?;
        let expiry: u64 = expiry.parse().map_err(|_| Denied::MalformedSignature)?;
        let now = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        if now > expiry {
            return Err(Denied::Expired);
        }
        let want = Self::sign(&self.secret, &req.app, &req.stream, expiry);
        if constant_time_eq(want.as_bytes(), sign.as_bytes()) && hex.len() == 64 {
            Ok(())
        } else {
            Err(Denied::BadSignature)
        }
    }
}

impl Authorize for SignedKeys {
    fn authorize<'a>(&'a self, req: &'a AuthRequest) -> BoxFuture<'a, Result<Grant, Denied>> {
        Box::pin(async move {
            self.check_at(req, SystemTime::now())
                .map(|()| Grant::default())
        })
    }
}

/// The JSON the HTTP hook is sent for a publish or play: `{"action", "app", "stream",
/// "query", "tc_url", "peer"}`.
#[derive(Debug, serde::Serialize)]
struct HookRequest<'a> {
    action: &'static str,
    app: &'a str,
    stream: &'a str,
    query: Option<&'a str>,
    tc_url: Option<&'a str>,
    peer: String,
}

/// What the HTTP hook may answer (every field optional; an empty body is fine).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct HookGrant {
    record: Option<bool>,
    stream: Option<String>,
}

/// Asks an HTTP endpoint: POSTs the request as JSON; a 2xx answer allows (an answer
/// `{"record": true|false}` also decides recording, `{"stream": "name"}` renames the
/// publish — see [`Grant::stream`]), anything else — or no answer within the client's
/// timeout — denies.
#[derive(Debug, Clone)]
pub struct HttpHook {
    url: String,
    client: HookClient,
    secret_apps: Vec<String>,
}

impl HttpHook {
    /// A hook at `url` (`http://` or `https://`), asked through `client`.
    pub fn new(url: impl Into<String>, client: HookClient) -> HttpHook {
        HttpHook {
            url: url.into(),
            client,
            secret_apps: Vec::new(),
        }
    }

    /// The stream names of `apps` are secret keys the hook maps to public names: they
    /// are never logged (see [`Authorize::secret_names`]).
    #[must_use]
    pub fn secret_apps(mut self, apps: Vec<String>) -> HttpHook {
        self.secret_apps = apps;
        self
    }
}

impl Authorize for HttpHook {
    fn secret_names(&self, app: &str) -> bool {
        self.secret_apps.iter().any(|a| a == app)
    }

    fn authorize<'a>(&'a self, req: &'a AuthRequest) -> BoxFuture<'a, Result<Grant, Denied>> {
        Box::pin(async move {
            let body = HookRequest {
                action: match req.action {
                    Action::Publish => "publish",
                    Action::Play => "play",
                },
                app: &req.app,
                stream: &req.stream,
                query: req.query.as_deref(),
                tc_url: req.tc_url.as_deref(),
                peer: req.peer.to_string(),
            };
            match self.client.post_json(&self.url, &body).await {
                Ok(a) if a.is_success() => match a.json::<Option<HookGrant>>() {
                    Ok(g) => {
                        let g = g.unwrap_or_default();
                        if g.stream.as_deref().is_some_and(|n| !valid_stream_name(n)) {
                            tracing::warn!("auth hook granted an invalid stream name");
                            return Err(Denied::HookUnavailable);
                        }
                        Ok(Grant {
                            record: g.record,
                            stream: g.stream,
                        })
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "auth hook answer unreadable");
                        Err(Denied::HookUnavailable)
                    }
                },
                Ok(a) => Err(Denied::ByHook(a.status)),
                Err(e) => {
                    tracing::warn!(error = %e, "auth hook failed");
                    Err(Denied::HookUnavailable)
                }
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
    fn secret_names(&self, app: &str) -> bool {
        self.0.iter().any(|a| a.secret_names(app))
    }

    fn authorize<'a>(&'a self, req: &'a AuthRequest) -> BoxFuture<'a, Result<Grant, Denied>> {
        Box::pin(async move {
            let mut grant = Grant::default();
            for a in &self.0 {
                grant = grant.and(a.authorize(req).await?);
            }
            Ok(grant)
        })
    }
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
        assert_eq!(
            k.check(&req(Action::Publish, Some("key=wrong"))),
            Err(Denied::WrongKey)
        );
        assert_eq!(k.check(&req(Action::Publish, None)), Err(Denied::WrongKey));
        let mut unknown = req(Action::Publish, Some("key=s3cret"));
        unknown.stream = "nope".into();
        assert_eq!(
            k.check(&unknown),
            Err(Denied::UnknownStream("live/nope".into()))
        );
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
            Err(Denied::Expired)
        );
        let other = SignedKeys::sign(b"other", "live", "cam", 1_000_060);
        assert_eq!(
            s.check_at(&req(Action::Publish, Some(&format!("sign={other}"))), now),
            Err(Denied::BadSignature)
        );
        // Signed for another stream.
        let cam2 = SignedKeys::sign(b"secret", "live", "cam2", 1_000_060);
        assert_eq!(
            s.check_at(&req(Action::Publish, Some(&format!("sign={cam2}"))), now),
            Err(Denied::BadSignature)
        );
        assert_eq!(
            s.check_at(&req(Action::Publish, None), now),
            Err(Denied::MissingSignature)
        );
        assert_eq!(
            s.check_at(&req(Action::Publish, Some("sign=abc")), now),
            Err(Denied::MalformedSignature)
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
    fn grants_combine_with_no_winning() {
        let g = |record| Grant {
            record,
            stream: None,
        };
        assert_eq!(g(None).and(g(None)), g(None));
        assert_eq!(g(None).and(g(Some(true))), g(Some(true)));
        assert_eq!(g(Some(true)).and(g(Some(false))), g(Some(false)));
        assert_eq!(g(Some(false)).and(g(None)), g(Some(false)));
    }

    /// One-shot HTTP server answering `response`; the request it got comes on the channel.
    fn answer(response: &'static str) -> (String, std::sync::mpsc::Receiver<String>) {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head and the body (its length from Content-Length).
            loop {
                let n = s.read(&mut buf).unwrap_or(0);
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if body.len() >= len {
                        let _ = tx.send(text);
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let _ = s.write_all(response.as_bytes());
        });
        (url, rx)
    }

    fn client() -> HookClient {
        HookClient::new(videopick_hooks::HookConfig::default().timeout(Duration::from_secs(5)))
            .unwrap()
    }

    #[tokio::test]
    async fn http_hook_sends_json_and_reads_the_record_answer() {
        let mut r = req(Action::Publish, Some("key=\"x\""));
        r.tc_url = Some("rtmp://h/live".into());
        let (ok, got) = answer("HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n{\"record\": true}");
        let grant = HttpHook::new(ok, client()).authorize(&r).await;
        assert_eq!(
            grant,
            Ok(Grant {
                record: Some(true),
                stream: None
            })
        );
        let text = got.recv().unwrap();
        assert!(text.starts_with("POST /hook HTTP/1.1\r\n"), "{text}");
        assert!(
            text.to_ascii_lowercase()
                .contains("content-type: application/json")
        );
        let body = text.split_once("\r\n\r\n").unwrap().1;
        assert_eq!(
            body,
            r#"{"action":"publish","app":"live","stream":"cam","query":"key=\"x\"","tc_url":"rtmp://h/live","peer":"127.0.0.1:1"}"#
        );
        let (plain, _) = answer("HTTP/1.1 204 No Content\r\n\r\n");
        let grant = HttpHook::new(plain, client()).authorize(&r).await;
        assert_eq!(grant, Ok(Grant::default()));
        // "record" nested deeper or of another type is not a top-level boolean.
        let (odd, _) = answer(
            "HTTP/1.1 200 OK\r\nContent-Length: 28\r\n\r\n{\"x\":{\"record\":true},\"y\":1} ",
        );
        let grant = HttpHook::new(odd, client()).authorize(&r).await;
        assert_eq!(grant, Ok(Grant::default()));
        let (denied, _) = answer("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
        let err = HttpHook::new(denied, client())
            .authorize(&r)
            .await
            .unwrap_err();
        assert_eq!(err, Denied::ByHook(403));
        assert_eq!(err.to_string(), "denied by hook (403)");
        let err = HttpHook::new("http://127.0.0.1:9/", client())
            .authorize(&r)
            .await
            .unwrap_err();
        assert_eq!(err, Denied::HookUnavailable);
    }
}
