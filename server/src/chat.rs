//! The chat role: `chat-proto`'s Engine.IO/Socket.IO server with the chat app (or the
//! protocol test suite's echo handlers) at `/socket.io/`, plus `/metrics` and `/healthz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use videopick_chat_proto::app::bus::Bus;
use videopick_chat_proto::app::chat::{ChatApp, ChatConfig as AppConfig};
use videopick_chat_proto::app::redis_bus::{RedisBus, RedisConfig};
use videopick_chat_proto::app::rules::ChatLimits;
use videopick_chat_proto::echo::EchoApp;
use videopick_chat_proto::server::{App, Server};
use videopick_chat_proto::wire::session::EngineConfig;

use crate::config::ChatConfig;
use crate::media::Error;
use crate::metrics::Metrics;
use videopick_live::proxy::TrustedProxies;

/// A bound chat role, ready to [`ChatServer::run`].
pub struct ChatServer {
    listener: tokio::net::TcpListener,
    config: ChatConfig,
    metrics: Metrics,
    trusted: Arc<TrustedProxies>,
}

impl std::fmt::Debug for ChatServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatServer")
            .field("addr", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl ChatServer {
    /// Check the configuration and bind the listener.
    pub fn bind(config: ChatConfig) -> Result<ChatServer, Error> {
        ChatServer::bind_with(config, Metrics::new())
    }

    /// [`ChatServer::bind`], registering its metrics in `metrics` (shared with the
    /// process's other roles).
    pub fn bind_with(config: ChatConfig, metrics: Metrics) -> Result<ChatServer, Error> {
        if config.jwt_secret.is_none() && !config.anonymous && !config.test_suite {
            return Err("the chat needs a jwt_secret (--jwt-secret), or anonymous read-only chat (--anonymous)".into());
        }
        let trusted = Arc::new(crate::config::trusted_proxies(&config.trusted_proxies)?);
        metrics.allow_from(crate::config::trusted_proxies(&config.metrics_allow)?);
        let listener = listen(config.listen, config.reuse_port)?;
        tracing::info!(addr = %listener.local_addr()?, "chat role listening");
        Ok(ChatServer {
            listener,
            config,
            metrics,
            trusted,
        })
    }

    /// The listener's address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serve until `shutdown` completes.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        let ChatServer {
            listener,
            config,
            metrics,
            trusted,
        } = self;
        if config.test_suite {
            let engine = EngineConfig {
                ping_interval: Duration::from_millis(300),
                ping_timeout: Duration::from_millis(200),
                max_payload: 1_000_000,
                connect_timeout: Duration::from_millis(1500),
                ..EngineConfig::default()
            };
            serve(
                listener,
                Server::with_unwrap(EchoApp, engine, crate::http::unwrap_upgraded),
                metrics,
                Duration::from_secs(config.header_timeout_secs.max(1)),
                trusted,
                Cors::new(&config.allowed_origins),
                shutdown,
            )
            .await;
            return Ok(());
        }
        let secret = config.jwt_secret.clone().unwrap_or_default().into_bytes();
        run_chat(listener, &config, secret, metrics, trusted, shutdown).await
    }
}

/// Bind and run the chat role until `shutdown` completes.
pub async fn run(
    config: ChatConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), Error> {
    ChatServer::bind(config)?.run(shutdown).await
}

async fn run_chat(
    listener: tokio::net::TcpListener,
    args: &ChatConfig,
    secret: Vec<u8>,
    metrics: Metrics,
    trusted: Arc<TrustedProxies>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), Error> {
    let engine = EngineConfig {
        ping_interval: Duration::from_millis(args.ping_interval_ms.max(10)),
        ping_timeout: Duration::from_millis(args.ping_timeout_ms.max(10)),
        max_payload: args.max_payload.max(1024),
        max_queue: args.queue.max(1),
        max_dropped: u32::try_from(args.queue).unwrap_or(u32::MAX),
        ..EngineConfig::default()
    };
    let config = AppConfig {
        jwt_secret: secret,
        anonymous: args.anonymous,
        limits: ChatLimits {
            max_len: args.max_message_len,
            rate_burst: args.rate,
            rate_window: Duration::from_secs(args.rate_window_secs.max(1)),
            max_rooms: args.max_rooms,
            history: args.history,
        },
        max_connections_per_ip: args.max_connections_per_ip,
        flush_interval: Duration::from_millis(args.flush_ms),
    };
    let app = match &args.redis {
        None => ChatApp::new(config),
        Some(url) => {
            let bus = RedisBus::start(RedisConfig {
                url: url.clone(),
                prefix: args.redis_prefix.clone(),
                node: args.node_id.clone(),
                ..RedisConfig::default()
            })?;
            tracing::info!(node = %bus.node(), "chat on the redis bus");
            ChatApp::with_bus(config, Arc::new(bus))
        }
    };
    let server = Server::with_unwrap(app, engine, crate::http::unwrap_upgraded);
    metrics.register_collector(crate::metrics::ChatCollector(server.clone()));
    let header_timeout = Duration::from_secs(args.header_timeout_secs.max(1));
    let cors = Cors::new(&args.allowed_origins);
    serve(
        listener,
        server,
        metrics,
        header_timeout,
        trusted,
        cors,
        shutdown,
    )
    .await;
    Ok(())
}

/// A listening socket on `addr` (backlog 4096), shared with other processes when
/// `reuse_port`.
fn listen(addr: SocketAddr, reuse_port: bool) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(4096)
}

async fn serve<A: App>(
    listener: tokio::net::TcpListener,
    server: Server<A>,
    metrics: Metrics,
    header_timeout: Duration,
    trusted: Arc<TrustedProxies>,
    cors: Cors,
    shutdown: impl std::future::Future<Output = ()>,
) {
    // Engine.IO requests on plain connections are read and answered here, ahead of hyper
    // (a held poll costs its connection a few hundred bytes instead of hyper's buffers:
    // this is most of a client's memory while 5,000 of them connect at once); the rest
    // (preflights, /metrics, anything unusual) goes through hyper.
    let direct = EngineIoDirect {
        server: server.clone(),
        cors: cors.clone(),
        metrics: metrics.clone(),
        stall: header_timeout,
    };
    let shortcuts = crate::http::Shortcuts {
        body: Some(Arc::new(direct)),
        ..crate::http::Shortcuts::default()
    };
    let options = crate::http::ServeOptions {
        max_read: 16 * 1024,
        header_timeout,
        trusted: (*trusted).clone(),
        drain: Duration::from_secs(1),
        tls: None,
    };
    let handler = move |req: Request<hyper::body::Incoming>, peer: SocketAddr| {
        let (server, metrics, cors) = (server.clone(), metrics.clone(), cors.clone());
        async move {
            let started = std::time::Instant::now();
            let path = req.uri().path();
            let (route, resp) = if is_socket_io(path) {
                ("socket_io", cors.serve(req, peer, &server).await)
            } else if path == "/metrics" && metrics.allows(peer.ip()) {
                let mut r = text(StatusCode::OK, metrics.render());
                r.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
                );
                ("metrics", r)
            } else if path == "/healthz" || path == "/readyz" {
                ("healthz", text(StatusCode::OK, "ok\n".into()))
            } else {
                ("other", text(StatusCode::NOT_FOUND, "not found\n".into()))
            };
            metrics.observe_http("chat", route, resp.status().as_u16(), started.elapsed());
            resp.map(http_body_util::BodyExt::boxed)
        }
    };
    crate::http::serve(listener, handler, shortcuts, options, shutdown).await;
}

/// Whether `path` is the Engine.IO endpoint (with or without its trailing slash).
fn is_socket_io(path: &str) -> bool {
    path == "/socket.io/" || path == "/socket.io"
}

/// Engine.IO's long-polling requests and WebSocket upgrades answered ahead of hyper
/// ([`crate::http::BodyTaker`]): the head parsed once, a poll's payload read to its
/// `Content-Length`, the answer written with one write; an upgraded socket goes straight
/// to the chat's WebSocket reader.
struct EngineIoDirect<A: App> {
    server: Server<A>,
    cors: Cors,
    metrics: Metrics,
    /// How long a request body may stall.
    stall: Duration,
}

impl<A: App> crate::http::BodyTaker for EngineIoDirect<A> {
    fn wants(&self, method: &str, path: &str, length: u64) -> bool {
        is_socket_io(path)
            && match method {
                "GET" => length == 0,
                // A larger payload goes to hyper, which refuses it (413) like any other.
                "POST" => usize::try_from(length).is_ok_and(|l| l <= self.server.max_payload()),
                _ => false,
            }
    }

    fn answer(
        &self,
        head: Bytes,
        length: u64,
        read_ahead: Bytes,
        mut stream: tokio::net::TcpStream,
        peer: SocketAddr,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<tokio::net::TcpStream>> + Send>>
    {
        let (server, cors, metrics, stall) = (
            self.server.clone(),
            self.cors.clone(),
            self.metrics.clone(),
            self.stall,
        );
        Box::pin(async move {
            use videopick_chat_proto::server::Answer;
            let started = std::time::Instant::now();
            let (req, expect) = crate::http::request_from_head(&head)?;
            drop(head);
            let (parts, ()) = req.map(|_| ()).into_parts();
            let close = parts
                .headers
                .get(hyper::header::CONNECTION)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("close"));
            let body = read_body(&mut stream, read_ahead, length, expect, stall).await?;
            let (resp, upgrade) = match cors.check(&parts.headers) {
                Err(origin) => (Cors::refuse(&origin), None),
                Ok(origin) => match server.handle_direct(&parts, body, peer).await {
                    Answer::Response(r) => (Cors::finish(r, origin.as_deref()), None),
                    Answer::Upgrade(r, up) => (Cors::finish(r, origin.as_deref()), Some(up)),
                },
            };
            let status = resp.status().as_u16();
            metrics.observe_http("chat", "socket_io", status, started.elapsed());
            let close = close && upgrade.is_none();
            crate::http::write_response(&stream, resp, close)
                .await
                .ok()?;
            if let Some(upgrade) = upgrade {
                // The socket lives on its own task: the connection's is done.
                tokio::spawn(upgrade.run_tcp(stream, Bytes::new()));
                return None;
            }
            (!close).then_some(stream)
        })
    }
}

/// The `length` bytes of a request body, `read_ahead` first; `None` when the client
/// stalls for `stall` or goes away before the end.
async fn read_body(
    stream: &mut tokio::net::TcpStream,
    read_ahead: Bytes,
    length: u64,
    expect: bool,
    stall: Duration,
) -> Option<Bytes> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let length = usize::try_from(length).ok()?;
    if length == 0 {
        return Some(Bytes::new());
    }
    if read_ahead.len() >= length {
        return Some(read_ahead.slice(..length));
    }
    if expect {
        stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .ok()?;
    }
    let mut body = bytes::BytesMut::with_capacity(length);
    body.extend_from_slice(&read_ahead);
    while body.len() < length {
        let mut rest = (&mut *stream).take((length - body.len()) as u64);
        match tokio::time::timeout(stall, rest.read_buf(&mut body)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return None,
        }
    }
    Some(body.freeze())
}

/// Which pages may use the chat from a browser: CORS for long-polling (and its
/// preflights), and the origin check of every `/socket.io/` request that has one.
#[derive(Debug, Clone)]
struct Cors {
    any: bool,
    origins: Arc<[String]>,
}

impl Cors {
    fn new(list: &[String]) -> Cors {
        Cors {
            any: list.iter().any(|o| o == "*"),
            origins: list
                .iter()
                .filter(|o| *o != "*")
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect(),
        }
    }

    fn allows(&self, origin: &str) -> bool {
        self.any || self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// The request's origin (`None`: not a browser's cross-origin request); `Err` with an
    /// origin that may not use the chat (see [`Cors::refuse`]).
    fn check(&self, headers: &hyper::HeaderMap) -> Result<Option<String>, String> {
        let Some(origin) = headers
            .get(hyper::header::ORIGIN)
            .and_then(|v| v.to_str().ok())
        else {
            return Ok(None);
        };
        if self.allows(origin) {
            Ok(Some(origin.to_string()))
        } else {
            Err(origin.to_string())
        }
    }

    /// The answer to a page of an `origin` that may not use the chat.
    fn refuse(origin: &str) -> Response<Full<Bytes>> {
        text(
            StatusCode::FORBIDDEN,
            format!("origin {origin} may not use this chat\n"),
        )
    }

    /// `resp` with the CORS headers a browser needs for the (allowed) `origin`.
    fn finish(mut resp: Response<Full<Bytes>>, origin: Option<&str>) -> Response<Full<Bytes>> {
        use hyper::header::{self, HeaderValue};
        let Some(origin) = origin else {
            return resp;
        };
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(origin) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        resp
    }

    /// Answer a `/socket.io/` request: a preflight here, the rest by `server`, with the
    /// CORS headers a browser needs when the origin is allowed; a disallowed origin gets 403.
    async fn serve<A: App>(
        &self,
        req: Request<hyper::body::Incoming>,
        peer: SocketAddr,
        server: &Server<A>,
    ) -> Response<Full<Bytes>> {
        use hyper::header::{self, HeaderValue};
        let origin = match self.check(req.headers()) {
            Ok(Some(origin)) => origin,
            Ok(None) => return server.handle(req, peer).await,
            Err(origin) => return Cors::refuse(&origin),
        };
        let resp = if req.method() == hyper::Method::OPTIONS {
            let asked_headers = req
                .headers()
                .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
                .cloned();
            let mut r = text(StatusCode::NO_CONTENT, String::new());
            let h = r.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, OPTIONS"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                asked_headers.unwrap_or(HeaderValue::from_static("content-type")),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("86400"),
            );
            r
        } else {
            server.handle(req, peer).await
        };
        Cors::finish(resp, Some(&origin))
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

/// The chat's token secret kept in the storage root (`chat-secret`, made once, readable by
/// the owner only), so chat tokens stay valid across restarts.
pub fn kept_secret(storage: &std::path::Path) -> Result<String, Error> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = storage.join("chat-secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim().to_string();
        if s.len() >= 32 {
            return Ok(s);
        }
    }
    std::fs::create_dir_all(storage).map_err(|e| format!("{}: {e}", storage.display()))?;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("random: {e}"))?;
    let secret = bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    });
    let tmp = storage.join("chat-secret.tmp");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(secret.as_bytes())
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_kept_secret_is_made_once_and_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let a = super::kept_secret(dir.path()).unwrap();
        assert_eq!(a.len(), 64);
        assert_eq!(super::kept_secret(dir.path()).unwrap(), a);
        let mode = std::fs::metadata(dir.path().join("chat-secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(super::kept_secret(other.path()).unwrap(), a);
    }
}
