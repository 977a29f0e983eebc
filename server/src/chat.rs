//! The chat role: `chat-proto`'s Engine.IO/Socket.IO server with the chat app (or the
//! protocol test suite's echo handlers) at `/socket.io/`, plus `/metrics` and `/healthz`.

use std::convert::Infallible;
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
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "chat: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (server, metrics, trusted, cors) = (
            server.clone(),
            metrics.clone(),
            trusted.clone(),
            cors.clone(),
        );
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let (server, metrics, cors) = (server.clone(), metrics.clone(), cors.clone());
                let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
                let peer =
                    trusted.client_addr(peer, header("forwarded"), header("x-forwarded-for"));
                async move {
                    let started = std::time::Instant::now();
                    let path = req.uri().path();
                    let (route, resp) = if path == "/socket.io/" || path == "/socket.io" {
                        ("socket_io", cors.serve(req, peer, &server).await)
                    } else if path == "/metrics" {
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
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(16 * 1024)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
        });
    }
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

    /// Answer a `/socket.io/` request: a preflight here, the rest by `server`, with the
    /// CORS headers a browser needs when the origin is allowed; a disallowed origin gets 403.
    async fn serve<A: App>(
        &self,
        req: Request<hyper::body::Incoming>,
        peer: SocketAddr,
        server: &Server<A>,
    ) -> Response<Full<Bytes>> {
        use hyper::header::{self, HeaderValue};
        let Some(origin) = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
        else {
            // Not a browser's cross-origin request.
            return server.handle(req, peer).await;
        };
        if !self.allows(&origin) {
            return text(
                StatusCode::FORBIDDEN,
                format!("origin {origin} may not use this chat\n"),
            );
        }
        let preflight = req.method() == hyper::Method::OPTIONS;
        let asked_headers = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned();
        let mut resp = if preflight {
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
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&origin) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        resp
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
