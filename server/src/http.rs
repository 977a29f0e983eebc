//! A minimal HTTP/1.1 server (hyper) for the binaries, with a hook that takes whole
//! connections over for streaming responses (HTTP-FLV).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tracing::Instrument as _;
use videopick_live::proxy::TrustedProxies;

/// Body type of every response.
pub type Body = BoxBody<Bytes, Infallible>;
/// Response type of a [`serve`] handler.
pub type HttpResponse = Response<Body>;

/// A response with `status`, a content type and a body.
pub fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> HttpResponse {
    let mut resp = Response::new(Full::new(body.into()).boxed());
    *resp.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

/// A response whose body is `chunks`, sent as they are (hyper writes them vectored) with
/// their total as `Content-Length`.
pub fn respond_chunks(status: StatusCode, content_type: &str, chunks: Vec<Bytes>) -> HttpResponse {
    let mut resp = Response::new(ChunksBody(chunks.into()).boxed());
    *resp.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

/// A body of buffers known in advance.
struct ChunksBody(std::collections::VecDeque<Bytes>);

impl hyper::body::Body for ChunksBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(hyper::body::Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.0.iter().map(|b| b.len() as u64).sum())
    }
}

/// Whether the request's `Authorization: Bearer <token>` is `token` (compared in constant
/// time).
pub fn bearer_is(headers: &hyper::HeaderMap, token: &str) -> bool {
    let given = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// A connection whose first bytes were already read (to look at the request head); they
/// are replayed before the rest, so hyper sees the whole stream.
#[derive(Debug)]
pub struct Prefixed {
    prefix: Bytes,
    inner: TcpStream,
}

impl tokio::io::AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let head = self.prefix.split_to(n);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Read a connection's first request head (up to 8 KiB, within `limit`). Returns what was
/// read, which may include more than the head; `None` when the peer stalled or left.
async fn read_head(stream: &mut TcpStream, limit: std::time::Duration) -> Option<BytesMut> {
    let mut buf = BytesMut::with_capacity(1024);
    let read = async {
        loop {
            if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.len() >= 8192 {
                return;
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok()?;
    Some(buf)
}

/// The value of header `name` (lower case) in a raw request head, if present once or more
/// (several lines are joined with `, `).
fn head_field(head: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(head).ok()?;
    let text = text.split("\r\n\r\n").next()?;
    let values: Vec<&str> = text
        .split("\r\n")
        .skip(1)
        .filter_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// Tells a taken-over connection that the server is draining: it should end cleanly (at a
/// message boundary) soon. `changed()` completes when draining starts.
pub type Drain = tokio::sync::watch::Receiver<bool>;

/// A task that owns a taken-over connection.
pub type ConnectionTask =
    Box<dyn FnOnce(TcpStream, Drain) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// How [`serve`] treats connections.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Largest read from a connection (at least 8 KiB): bounds each request-body frame.
    pub max_read: usize,
    /// A connection that has not sent a complete request head within this long of opening
    /// — or of its previous response, when it idles on keep-alive — is closed.
    pub header_timeout: std::time::Duration,
    /// Proxies whose `X-Forwarded-For` / `Forwarded` name the client.
    pub trusted: TrustedProxies,
    /// On shutdown, how long open connections get to finish (in-flight requests complete,
    /// taken-over streams end at a tag boundary) before they are closed.
    pub drain: std::time::Duration,
    /// Speak TLS (HTTP/2 or HTTP/1.1 by ALPN) with this configuration; see [`tls_config`].
    /// Connections are not taken over then: HTTP-FLV streams through hyper.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// A TLS configuration from PEM files (a certificate chain and its private key) that
/// offers HTTP/2 and HTTP/1.1 by ALPN.
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Takes over a whole connection for some requests (HTTP-FLV streams are written straight
/// to the socket, without hyper's per-frame chunked encoding).
pub trait Takeover: Send + Sync + 'static {
    /// Called with the first request's method, path and HTTP version; return a task that
    /// owns the connection to take it over.
    fn take(
        &self,
        method: &str,
        path: &str,
        http10: bool,
        peer: std::net::SocketAddr,
    ) -> Option<ConnectionTask>;
}

/// Serve `handler` (given each request and the client's address) on `listener` until
/// `shutdown` completes; then stop accepting and drain the open connections (see
/// [`ServeOptions`]).
pub async fn serve<H, F>(
    listener: TcpListener,
    handler: H,
    takeover: Option<Arc<dyn Takeover>>,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>, std::net::SocketAddr) -> F + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    let handler = Arc::new(handler);
    let options = Arc::new(options);
    let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "http: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let handler = Arc::clone(&handler);
        let takeover = takeover.clone();
        let options = Arc::clone(&options);
        let drain = drain_rx.clone();
        let span = tracing::debug_span!("http", %peer);
        conns.spawn(connection(stream, peer, handler, takeover, options, drain).instrument(span));
    }
    drop(listener);
    let _ = drain_tx.send(true);
    let open = conns.len();
    let drained = tokio::time::timeout(options.drain, async {
        while conns.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !drained {
        tracing::info!(
            open,
            left = conns.len(),
            "http: closing connections still open after the drain"
        );
        conns.abort_all();
    }
}

/// Drive a hyper connection until it ends; when the server drains, the request in flight
/// finishes, then the connection closes.
macro_rules! until_drained {
    ($conn:expr, $drain:expr) => {{
        let conn = $conn;
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => {}
            _ = $drain.changed() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }};
}

/// HTTP/1.1 as every listener speaks it. Request bodies arrive in frames of at most
/// `max_read` bytes (uploads stream through a small bounded queue, so memory per upload
/// stays small); a head must come within `header_timeout`.
fn http1(
    header_timeout: std::time::Duration,
    max_read: usize,
) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(max_read.max(8192));
    b
}

/// The hyper service of one connection: `handler` with the client's address.
fn service<H, F>(
    handler: Arc<H>,
    options: Arc<ServeOptions>,
    peer: std::net::SocketAddr,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = HttpResponse,
    Error = Infallible,
    Future = impl Future<Output = Result<HttpResponse, Infallible>> + Send,
> + Clone
where
    H: Fn(Request<Incoming>, std::net::SocketAddr) -> F + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    hyper::service::service_fn(move |req: Request<Incoming>| {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        let client =
            options
                .trusted
                .client_addr(peer, header("forwarded"), header("x-forwarded-for"));
        let resp = handler(req, client);
        async move { Ok::<_, Infallible>(resp.await) }
    })
}

async fn connection<H, F>(
    mut stream: TcpStream,
    peer: std::net::SocketAddr,
    handler: Arc<H>,
    takeover: Option<Arc<dyn Takeover>>,
    options: Arc<ServeOptions>,
    mut drain: Drain,
) where
    H: Fn(Request<Incoming>, std::net::SocketAddr) -> F + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    let trusted = &options.trusted;
    let header_timeout = options.header_timeout;
    let max_read = options.max_read;
    if let Some(tls) = options.tls.clone() {
        let accept = tokio_rustls::TlsAcceptor::from(tls).accept(stream);
        let Ok(Ok(stream)) = tokio::time::timeout(header_timeout, accept).await else {
            return; // a stalled or failed handshake
        };
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let service = service(handler, Arc::clone(&options), peer);
        let io = TokioIo::new(stream);
        if h2 {
            until_drained!(
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .timer(hyper_util::rt::TokioTimer::new())
                    .max_frame_size(
                        u32::try_from(max_read.clamp(16_384, 1 << 20)).unwrap_or(16_384),
                    )
                    .serve_connection(io, service),
                drain
            );
        } else {
            until_drained!(
                http1(header_timeout, max_read).serve_connection(io, service),
                drain
            );
        }
        return;
    }
    {
        {
            let mut prefix = Bytes::new();
            if let Some(t) = takeover {
                let Some(head) = read_head(&mut stream, header_timeout).await else {
                    return;
                };
                let line = head[..].split(|&b| b == b'\r').next().unwrap_or_default();
                let mut parts = std::str::from_utf8(line).unwrap_or("").split(' ');
                let (method, target, version) = (parts.next(), parts.next(), parts.next());
                if let (Some(m), Some(target), Some(v)) = (method, target, version) {
                    let path = target.split('?').next().unwrap_or(target);
                    let client = if trusted.trusts(peer.ip()) {
                        let header = |name: &str| head_field(&head, name);
                        trusted.client_addr(
                            peer,
                            header("forwarded").as_deref(),
                            header("x-forwarded-for").as_deref(),
                        )
                    } else {
                        peer
                    };
                    if let Some(task) = t.take(m, path, v == "HTTP/1.0", client) {
                        task(stream, drain).await;
                        return;
                    }
                }
                prefix = head.freeze();
            }
            let stream = Prefixed {
                prefix,
                inner: stream,
            };
            let service = service(handler, Arc::clone(&options), peer);
            until_drained!(
                http1(header_timeout, max_read).serve_connection(TokioIo::new(stream), service),
                drain
            );
        }
    }
}
