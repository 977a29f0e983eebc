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

use videopick_live::http_head::parse_request_head;

use crate::plain::PlainPath;
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

/// Takes an upgraded connection that this module served apart again: its TCP stream and
/// the bytes read past the upgrade request (for servers that write to the socket
/// themselves, as the chat's WebSockets do; see
/// [`videopick_chat_proto::server::UnwrapUpgraded`]); also plain `TokioIo<TcpStream>`
/// connections (the chat server's own listener). TLS connections are given back.
pub fn unwrap_upgraded(
    upgraded: hyper::upgrade::Upgraded,
) -> Result<(TcpStream, Bytes), hyper::upgrade::Upgraded> {
    let parts = match upgraded.downcast::<TokioIo<Prefixed>>() {
        Ok(parts) => parts,
        Err(upgraded) => return videopick_chat_proto::server::unwrap_tokio_tcp(upgraded),
    };
    let Prefixed { prefix, inner } = parts.io.into_inner();
    // hyper read everything before what it had not read yet of the prefix.
    let read = if prefix.is_empty() {
        parts.read_buf
    } else {
        let mut all = BytesMut::with_capacity(parts.read_buf.len() + prefix.len());
        all.extend_from_slice(&parts.read_buf);
        all.extend_from_slice(&prefix);
        all.freeze()
    };
    Ok((inner, read))
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

/// Answers requests whose bodies it reads straight from the socket, ahead of hyper (tus
/// PATCH: the upload's disk thread splices the body into the file; see
/// [`videopick_tus::direct`]).
pub trait BodyTaker: Send + Sync + 'static {
    /// Whether a request with this method and path and a body of `length` bytes
    /// (`Content-Length`, or 0 without one) goes this way.
    fn wants(&self, method: &str, path: &str, length: u64) -> bool;
    /// Answer the request whose complete head is `head` and whose body's first bytes
    /// (read with the head, at most `length`) are `read_ahead`; the rest of the body is on
    /// `stream`. Returns the connection when it may carry the next request.
    fn answer(
        &self,
        head: Bytes,
        length: u64,
        read_ahead: Bytes,
        stream: TcpStream,
        peer: std::net::SocketAddr,
    ) -> Pin<Box<dyn Future<Output = Option<TcpStream>> + Send>>;
}

/// Connections and requests [`serve`] answers before hyper sees them (plain HTTP only; a
/// TLS listener gives everything to hyper).
#[derive(Clone, Default)]
pub struct Shortcuts {
    /// Takes whole connections over from their first request (HTTP-FLV).
    pub takeover: Option<Arc<dyn Takeover>>,
    /// Answers simple GET requests without hyper (live HLS); see [`crate::plain`].
    pub plain: Option<Arc<dyn PlainPath>>,
    /// Reads request bodies straight from the socket (tus PATCH).
    pub body: Option<Arc<dyn BodyTaker>>,
}

impl std::fmt::Debug for Shortcuts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shortcuts")
            .field("takeover", &self.takeover.is_some())
            .field("plain", &self.plain.is_some())
            .field("body", &self.body.is_some())
            .finish()
    }
}

/// Serve `handler` (given each request and the client's address) on `listener` until
/// `shutdown` completes; then stop accepting and drain the open connections (see
/// [`ServeOptions`]).
pub async fn serve<H, F>(
    listener: TcpListener,
    handler: H,
    shortcuts: Shortcuts,
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
        let shortcuts = shortcuts.clone();
        let options = Arc::clone(&options);
        let drain = drain_rx.clone();
        let span = tracing::debug_span!("http", %peer);
        conns.spawn(connection(stream, peer, handler, shortcuts, options, drain).instrument(span));
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
    shortcuts: Shortcuts,
    options: Arc<ServeOptions>,
    mut drain: Drain,
) where
    H: Fn(Request<Incoming>, std::net::SocketAddr) -> F + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    // The task of every connection is only as large as its read-ahead state: hyper's
    // connection (some kilobytes) is boxed when a connection gets there.
    if let Some(tls) = options.tls.clone() {
        Box::pin(tls_connection(stream, tls, peer, handler, options, drain)).await;
        return;
    }
    let mut prefix = Bytes::new();
    if shortcuts.takeover.is_some() || shortcuts.plain.is_some() || shortcuts.body.is_some() {
        let Some(rest) = ahead_of_hyper(stream, peer, &shortcuts, &options, &mut drain).await
        else {
            return;
        };
        (stream, prefix) = rest;
    }
    let stream = Prefixed {
        prefix,
        inner: stream,
    };
    Box::pin(async move {
        let service = service(handler, Arc::clone(&options), peer);
        until_drained!(
            http1(options.header_timeout, options.max_read)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades(),
            drain
        );
    })
    .await;
}

/// A TLS connection: HTTP/2 or HTTP/1.1 by ALPN, all through hyper.
async fn tls_connection<H, F>(
    stream: TcpStream,
    tls: Arc<rustls::ServerConfig>,
    peer: std::net::SocketAddr,
    handler: Arc<H>,
    options: Arc<ServeOptions>,
    mut drain: Drain,
) where
    H: Fn(Request<Incoming>, std::net::SocketAddr) -> F + Send + Sync + 'static,
    F: Future<Output = HttpResponse> + Send + 'static,
{
    let (header_timeout, max_read) = (options.header_timeout, options.max_read);
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
                .max_frame_size(u32::try_from(max_read.clamp(16_384, 1 << 20)).unwrap_or(16_384))
                .serve_connection(io, service),
            drain
        );
    } else {
        until_drained!(
            http1(header_timeout, max_read).serve_connection(io, service),
            drain
        );
    }
}

/// The most header lines a request answered ahead of hyper may have (more go to hyper,
/// which answers).
const MAX_HEADERS: usize = 64;

/// A complete request `head` (as [`BodyTaker::answer`] gets it) as a request with an
/// empty body, and whether it expects `100 Continue`.
pub(crate) fn request_from_head(
    head: &[u8],
) -> Option<(Request<http_body_util::Empty<Bytes>>, bool)> {
    let mut lines = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut lines);
    let httparse::Status::Complete(_) = parsed.parse(head).ok()? else {
        return None;
    };
    let mut req = Request::builder()
        .method(parsed.method?)
        .uri(parsed.path?)
        .version(hyper::Version::HTTP_11);
    let mut expect = false;
    for h in parsed.headers.iter() {
        expect |=
            h.name.eq_ignore_ascii_case("expect") && h.value.eq_ignore_ascii_case(b"100-continue");
        req = req.header(h.name, h.value);
    }
    Some((req.body(http_body_util::Empty::new()).ok()?, expect))
}

/// Write `resp`, a small and complete response, to `stream` with one write when the socket
/// takes it (its body collected first; a body that fails is sent empty); `close` says so in
/// a `Connection` header.
pub(crate) async fn write_response<B: hyper::body::Body>(
    stream: &TcpStream,
    resp: Response<B>,
    close: bool,
) -> std::io::Result<()> {
    use http_body_util::BodyExt as _;
    use std::fmt::Write as _;
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    let mut head = String::with_capacity(256);
    let _ = write!(
        head,
        "HTTP/1.1 {} {}\r\n",
        parts.status.as_u16(),
        parts.status.canonical_reason().unwrap_or("")
    );
    for (name, value) in &parts.headers {
        if name == hyper::header::CONTENT_LENGTH
            || (name == hyper::header::CONNECTION
                && parts.status != StatusCode::SWITCHING_PROTOCOLS)
        {
            continue;
        }
        let _ = write!(head, "{name}: {}\r\n", value.to_str().unwrap_or(""));
    }
    let _ = write!(
        head,
        "date: {}\r\n",
        videopick_tus::headers::http_date(std::time::SystemTime::now()),
    );
    if parts.status != StatusCode::SWITCHING_PROTOCOLS {
        let _ = write!(head, "content-length: {}\r\n", body.len());
    }
    let _ = write!(
        head,
        "{}\r\n",
        if close { "connection: close\r\n" } else { "" }
    );
    let mut out = BytesMut::with_capacity(head.len() + body.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(&body);
    let mut at = 0;
    while at < out.len() {
        stream.writable().await?;
        match stream.try_write(&out[at..]) {
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Largest request head read ahead of hyper; a longer one goes to hyper, which refuses it.
const MAX_HEAD: usize = 8192;

/// Room made for each read of a request head.
const HEAD_READ: usize = 1024;

/// Read more of a request head into `buf` by `deadline`: `false` when the connection
/// ended, stalled, or idles (nothing read yet) while the server drains. A connection with
/// nothing read holds no buffer while it waits (one is taken when bytes arrive), and the
/// wait holds no read future: this state is what every waiting connection's task holds.
async fn more_head(
    stream: &TcpStream,
    buf: &mut BytesMut,
    deadline: tokio::time::Instant,
    drain: &mut Drain,
) -> bool {
    if buf.is_empty() {
        *buf = BytesMut::new();
    }
    let ready = std::future::poll_fn(|cx| stream.poll_read_ready(cx));
    let idle = buf.is_empty();
    let ready = tokio::time::timeout_at(deadline, async {
        tokio::select! {
            r = ready => r.is_ok(),
            _ = drain.changed(), if idle => false,
        }
    });
    if !ready.await.unwrap_or(false) {
        return false;
    }
    if buf.capacity() - buf.len() < HEAD_READ / 2 {
        buf.reserve(HEAD_READ);
    }
    match stream.try_read_buf(buf) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
    }
}

/// Read request heads ahead of hyper: the first may be taken over (HTTP-FLV); then as long
/// as the plain path answers them, answer them here. Returns the connection and the bytes
/// read but not answered when hyper should go on, `None` when the connection is done.
async fn ahead_of_hyper(
    mut stream: TcpStream,
    peer: std::net::SocketAddr,
    shortcuts: &Shortcuts,
    options: &ServeOptions,
    drain: &mut Drain,
) -> Option<(TcpStream, Bytes)> {
    // Thousands of clients connecting at once each have a connection or three open: a
    // waiting one holds no buffer (see `more_head`).
    let mut buf = BytesMut::new();
    let mut first = true;
    let mut deadline = tokio::time::Instant::now() + options.header_timeout;
    loop {
        // The next head, complete within the header timeout of the connection's opening or
        // of the previous answer; a connection idle between requests closes when the
        // server drains. Anything but a complete head of at most MAX_HEAD bytes goes to
        // hyper, which answers it.
        let head = match parse_request_head(&buf) {
            Ok(Some(head)) => head,
            Ok(None) if buf.len() < MAX_HEAD => {
                if *drain.borrow() && buf.is_empty() {
                    return None;
                }
                if !more_head(&stream, &mut buf, deadline, drain).await {
                    return None;
                }
                continue;
            }
            _ => return Some((stream, buf.freeze())),
        };
        let path = head.target.split('?').next().unwrap_or(head.target);
        let trusted = &options.trusted;
        let client = if trusted.trusts(peer.ip()) {
            trusted.client_addr(
                peer,
                head.forwarded.as_deref(),
                head.x_forwarded_for.as_deref(),
            )
        } else {
            peer
        };
        if std::mem::take(&mut first)
            && let Some(t) = &shortcuts.takeover
            && let Some(task) = t.take(head.method, path, head.http10, client)
        {
            task(stream, drain.clone()).await;
            return None;
        }
        if let Some(taker) = &shortcuts.body
            && let Some(length) = head.body_length
            && !head.http10
            && taker.wants(head.method, path, length)
        {
            let (len, close) = (head.len, head.close);
            let head = buf.split_to(len).freeze();
            let ahead = usize::try_from(length).map_or(buf.len(), |l| l.min(buf.len()));
            let read_ahead = if ahead == 0 {
                Bytes::new() // not a slice of `buf`, which it would keep alive
            } else {
                buf.split_to(ahead).freeze()
            };
            if buf.is_empty() {
                // The head's buffer is then the head's alone: freed once it is parsed.
                buf = BytesMut::new();
            }
            let back = taker
                .answer(head, length, read_ahead, stream, client)
                .await?;
            if close || *drain.borrow() {
                return None;
            }
            stream = back;
            deadline = tokio::time::Instant::now() + options.header_timeout;
            continue;
        }
        let answer = match &shortcuts.plain {
            Some(p) if head.plain => {
                let query = head.target.split_once('?').map_or("", |(_, q)| q);
                p.answer(path, query)
            }
            _ => None,
        };
        let Some(answer) = answer else {
            return Some((stream, buf.freeze()));
        };
        let (len, head_only, close) = (head.len, head.method == "HEAD", head.close);
        let _ = buf.split_to(len);
        let resp = answer.await;
        let close = close || *drain.borrow();
        if crate::plain::write(&stream, &resp, head_only, close)
            .await
            .is_err()
            || close
        {
            return None;
        }
        deadline = tokio::time::Instant::now() + options.header_timeout;
    }
}
