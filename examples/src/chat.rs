//! The chat role: `chat-proto`'s Engine.IO/Socket.IO server with the chat app (or the
//! protocol test suite's echo handlers) at `/socket.io/`, plus `/metrics` and `/healthz`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use videopick_chat_proto::bus::Bus;
use videopick_chat_proto::chat::ChatLimits;
use videopick_chat_proto::chat_app::{ChatApp, ChatConfig, EchoApp};
use videopick_chat_proto::redis_bus::{RedisBus, RedisConfig};
use videopick_chat_proto::server::{App, Server};
use videopick_chat_proto::session::EngineConfig;

/// `chat-server` flags (each also an environment variable).
#[derive(Debug, Clone, clap::Args)]
pub struct ChatArgs {
    /// Address to listen on.
    #[arg(long, env = "VIDEOPICK_CHAT_LISTEN", default_value = "127.0.0.1:3001")]
    pub listen: SocketAddr,
    /// HS256 secret of the connect tokens.
    #[arg(long, env = "VIDEOPICK_JWT_SECRET")]
    pub jwt_secret: Option<String>,
    /// Let clients without a token read as anonymous viewers.
    #[arg(long, env = "VIDEOPICK_CHAT_ANONYMOUS")]
    pub anonymous: bool,
    /// Longest message, in characters.
    #[arg(long, env = "VIDEOPICK_CHAT_MAX_LEN", default_value_t = 500)]
    pub max_message_len: usize,
    /// Messages per user in a burst (refilled over `--rate-window-secs`).
    #[arg(long, env = "VIDEOPICK_CHAT_RATE", default_value_t = 20)]
    pub rate: u32,
    /// The rate window in seconds.
    #[arg(long, env = "VIDEOPICK_CHAT_RATE_WINDOW_SECS", default_value_t = 30)]
    pub rate_window_secs: u64,
    /// Rooms per connection.
    #[arg(long, env = "VIDEOPICK_CHAT_MAX_ROOMS", default_value_t = 10)]
    pub max_rooms: usize,
    /// Messages of history per room.
    #[arg(long, env = "VIDEOPICK_CHAT_HISTORY", default_value_t = 50)]
    pub history: usize,
    /// Connections per client IP address.
    #[arg(long, env = "VIDEOPICK_CHAT_MAX_CONNS_PER_IP", default_value_t = 100)]
    pub max_connections_per_ip: usize,
    /// Engine.IO ping interval, ms.
    #[arg(
        long,
        env = "VIDEOPICK_CHAT_PING_INTERVAL_MS",
        default_value_t = 25_000
    )]
    pub ping_interval_ms: u64,
    /// Engine.IO ping timeout, ms.
    #[arg(long, env = "VIDEOPICK_CHAT_PING_TIMEOUT_MS", default_value_t = 20_000)]
    pub ping_timeout_ms: u64,
    /// Largest client payload, bytes.
    #[arg(long, env = "VIDEOPICK_CHAT_MAX_PAYLOAD", default_value_t = 100_000)]
    pub max_payload: usize,
    /// Messages queued for a slow client before the oldest are dropped.
    #[arg(long, env = "VIDEOPICK_CHAT_QUEUE", default_value_t = 256)]
    pub queue: usize,
    /// Redis URL: rooms span every `chat-server` on this Redis (Pub/Sub, shared history,
    /// presence and moderation). Without it the chat is one process.
    #[arg(long, env = "VIDEOPICK_CHAT_REDIS")]
    pub redis: Option<String>,
    /// Prefix of the chat's Redis keys and channels.
    #[arg(
        long,
        env = "VIDEOPICK_CHAT_REDIS_PREFIX",
        default_value = "videopick:chat"
    )]
    pub redis_prefix: String,
    /// This node's id on the bus (default: random).
    #[arg(long, env = "VIDEOPICK_CHAT_NODE_ID", default_value = "")]
    pub node_id: String,
    /// Broadcast batching, ms: in a busy room, what is broadcast within this interval
    /// reaches each member as one batch in one write (the first broadcast after a quiet
    /// interval goes at once). 0 sends each broadcast as it comes; under fan-out load,
    /// writes per second are what costs CPU.
    #[arg(long, env = "VIDEOPICK_CHAT_FLUSH_MS", default_value_t = 20)]
    pub flush_ms: u64,
    /// Bind with SO_REUSEPORT: several chat-server processes share one port (the kernel
    /// spreads connections over them; with `--redis` their rooms are one).
    #[arg(long, env = "VIDEOPICK_CHAT_REUSE_PORT")]
    pub reuse_port: bool,
    /// Serve the Socket.IO v5 protocol test suite's configuration instead of the chat:
    /// echo handlers, a `/custom` namespace, 300 ms pings with a 200 ms timeout, and a
    /// 1.5 s connect timeout.
    #[arg(long)]
    pub test_suite: bool,
}

impl ChatArgs {
    /// The settings `chat-server` runs with when given no flags (environment variables
    /// still apply).
    pub fn defaults() -> ChatArgs {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            chat: ChatArgs,
        }
        <Only as clap::Parser>::parse_from(["chat"]).chat
    }
}

/// Run the chat server until Ctrl-C or SIGTERM.
pub async fn run(name: &str, args: ChatArgs) -> Result<(), Box<dyn std::error::Error>> {
    let listener = listen(args.listen, args.reuse_port)?;
    println!("{name}: listening on http://{}", listener.local_addr()?);
    if args.test_suite {
        let engine = EngineConfig {
            ping_interval: Duration::from_millis(300),
            ping_timeout: Duration::from_millis(200),
            max_payload: 1_000_000,
            connect_timeout: Duration::from_millis(1500),
            ..EngineConfig::default()
        };
        serve(
            listener,
            Server::new(EchoApp, engine),
            Arc::new(|_: &Server<EchoApp>| String::new()),
        )
        .await;
        return Ok(());
    }
    let Some(secret) = args.jwt_secret.clone() else {
        if !args.anonymous {
            return Err("--jwt-secret (or --anonymous for read-only chat) is required".into());
        }
        return run_chat(listener, &args, Vec::new()).await;
    };
    run_chat(listener, &args, secret.into_bytes()).await
}

async fn run_chat(
    listener: tokio::net::TcpListener,
    args: &ChatArgs,
    secret: Vec<u8>,
) -> Result<(), Box<dyn std::error::Error>> {
    let engine = EngineConfig {
        ping_interval: Duration::from_millis(args.ping_interval_ms.max(10)),
        ping_timeout: Duration::from_millis(args.ping_timeout_ms.max(10)),
        max_payload: args.max_payload.max(1024),
        max_queue: args.queue.max(1),
        max_dropped: u32::try_from(args.queue).unwrap_or(u32::MAX),
        ..EngineConfig::default()
    };
    let config = ChatConfig {
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
            println!("chat: redis bus {url} as node {}", bus.node());
            ChatApp::with_bus(config, Arc::new(bus))
        }
    };
    let metrics = Arc::new(|s: &Server<ChatApp>| s.app().render_metrics(s.connections()));
    serve(listener, Server::new(app, engine), metrics).await;
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

type Metrics<A> = Arc<dyn Fn(&Server<A>) -> String + Send + Sync>;

async fn serve<A: App>(listener: tokio::net::TcpListener, server: Server<A>, metrics: Metrics<A>) {
    let shutdown = crate::media::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("chat: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (server, metrics) = (server.clone(), metrics.clone());
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let (server, metrics) = (server.clone(), metrics.clone());
                async move {
                    let path = req.uri().path();
                    let resp = if path == "/socket.io/" || path == "/socket.io" {
                        server.handle(req, peer).await
                    } else if path == "/metrics" {
                        text(StatusCode::OK, metrics(&server))
                    } else if path == "/healthz" {
                        text(StatusCode::OK, "ok\n".into())
                    } else {
                        text(StatusCode::NOT_FOUND, "not found\n".into())
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .max_buf_size(16 * 1024)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
        });
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}
