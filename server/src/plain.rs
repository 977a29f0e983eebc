//! The plain path: GET and HEAD requests over HTTP/1.1 whose answer is known from the path
//! and query alone (live HLS playlists, parts, segments), read with `httparse` and written
//! straight to the socket — without hyper's per-request header maps, body polling and
//! dispatch — and, for media, sent with `sendfile` from an in-memory file written once per
//! part, so the bytes are not copied into every viewer's socket.
//!
//! [`crate::http::serve`] reads each request head of a plain-HTTP connection itself; a
//! request the [`PlainPath`] declines (another path, a body, an upgrade, anything unusual)
//! hands the connection, with the bytes already read, to hyper for the rest of its life.

use std::fs::File;
use std::future::Future;
use std::io::{IoSlice, Write as _};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use hyper::StatusCode;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::http::{HttpResponse, respond};

/// A response the plain path writes itself.
#[derive(Debug, Clone)]
pub struct PlainResponse {
    /// Status.
    pub status: StatusCode,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// `Cache-Control`.
    pub cache_control: &'static str,
    /// The body.
    pub body: PlainBody,
}

/// The body of a [`PlainResponse`].
#[derive(Debug, Clone)]
pub enum PlainBody {
    /// One buffer.
    Bytes(Bytes),
    /// Buffers written with one vectored write.
    Buffers(Arc<[Bytes]>),
    /// An in-memory file sent with `sendfile`.
    File(Arc<MemFile>),
}

impl PlainBody {
    fn len(&self) -> usize {
        match self {
            PlainBody::Bytes(b) => b.len(),
            PlainBody::Buffers(b) => b.iter().map(Bytes::len).sum(),
            PlainBody::File(f) => f.len,
        }
    }
}

impl PlainResponse {
    /// The same response for hyper (a file body is read back: hyper cannot `sendfile`).
    pub fn into_hyper(self) -> HttpResponse {
        let mut r = match self.body {
            PlainBody::Bytes(b) => respond(self.status, self.content_type, b),
            PlainBody::Buffers(b) => {
                crate::http::respond_chunks(self.status, self.content_type, b.to_vec())
            }
            PlainBody::File(f) => respond(self.status, self.content_type, f.read_all()),
        };
        let h = r.headers_mut();
        h.insert(
            hyper::header::CACHE_CONTROL,
            hyper::header::HeaderValue::from_static(self.cache_control),
        );
        h.insert(
            hyper::header::ACCESS_CONTROL_ALLOW_ORIGIN,
            hyper::header::HeaderValue::from_static("*"),
        );
        r
    }
}

/// A read-only file in memory (`memfd`) holding a copy of some buffers, written once and
/// then sent to any number of sockets with `sendfile`: the kernel hands its pages to the
/// sockets instead of copying the bytes from user memory for each of them.
#[derive(Debug)]
pub struct MemFile {
    file: File,
    len: usize,
}

impl MemFile {
    /// A file holding `bufs`, one after another.
    pub fn new<'a>(bufs: impl IntoIterator<Item = &'a Bytes>) -> std::io::Result<MemFile> {
        let fd = rustix::fs::memfd_create("videopick-part", rustix::fs::MemfdFlags::CLOEXEC)?;
        let mut file = File::from(fd);
        let mut len = 0;
        for b in bufs {
            file.write_all(b)?;
            len += b.len();
        }
        Ok(MemFile { file, len })
    }

    /// Its size.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Its bytes, read back (for a writer that cannot `sendfile`).
    fn read_all(&self) -> Bytes {
        use std::os::unix::fs::FileExt as _;
        let mut buf = vec![0; self.len];
        match self.file.read_exact_at(&mut buf, 0) {
            Ok(()) => Bytes::from(buf),
            Err(_) => Bytes::new(),
        }
    }
}

/// Answers to requests the plain path takes.
pub type PlainAnswer = Pin<Box<dyn Future<Output = PlainResponse> + Send>>;

/// What the plain path serves.
pub trait PlainPath: Send + Sync + 'static {
    /// The answer to a GET (or HEAD) of `path` with `query` (without `?`), or `None` to
    /// pass the request — and the connection — to hyper.
    fn answer(&self, path: &str, query: &str) -> Option<PlainAnswer>;
}

/// How long writing one response may take before the connection is dropped (a viewer that
/// stopped reading).
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Write `resp` (only its head for a HEAD request) to `stream`.
pub(crate) async fn write(
    stream: &TcpStream,
    resp: &PlainResponse,
    head_only: bool,
    close: bool,
) -> std::io::Result<()> {
    let head = response_head(resp, close);
    let write = async {
        if head_only {
            return write_all(stream, &[&head]).await;
        }
        match &resp.body {
            PlainBody::Bytes(b) => write_all(stream, &[&head, b]).await,
            PlainBody::Buffers(bufs) => {
                let mut all: Vec<&[u8]> = Vec::with_capacity(1 + bufs.len());
                all.push(&head);
                all.extend(bufs.iter().map(|b| &b[..]));
                write_all(stream, &all).await
            }
            PlainBody::File(file) => {
                send_more(stream, &head).await?;
                send_file(stream, file).await
            }
        }
    };
    tokio::time::timeout(WRITE_TIMEOUT, write)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

fn response_head(resp: &PlainResponse, close: bool) -> BytesMut {
    let mut h = BytesMut::with_capacity(256);
    let mut put = |s: &[u8]| h.extend_from_slice(s);
    put(b"HTTP/1.1 ");
    put(resp.status.as_str().as_bytes());
    put(b" ");
    put(resp.status.canonical_reason().unwrap_or("").as_bytes());
    put(b"\r\ncontent-type: ");
    put(resp.content_type.as_bytes());
    put(b"\r\ncache-control: ");
    put(resp.cache_control.as_bytes());
    put(b"\r\naccess-control-allow-origin: *\r\ncontent-length: ");
    put(resp.body.len().to_string().as_bytes());
    put(b"\r\ndate: ");
    date(|d| put(d.as_bytes()));
    if close {
        put(b"\r\nconnection: close");
    }
    put(b"\r\n\r\n");
    h
}

/// The current HTTP date, formatted once a second per thread.
fn date(f: impl FnOnce(&str)) {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs || d.1.is_empty() {
            *d = (secs, httpdate::fmt_http_date(now));
        }
        f(&d.1);
    });
}

/// Write every byte of `bufs` with vectored writes.
async fn write_all(stream: &TcpStream, bufs: &[&[u8]]) -> std::io::Result<()> {
    let (mut i, mut off) = (0, 0); // the first buffer not fully written, and how far
    while i < bufs.len() {
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(bufs.len() - i);
        slices.push(IoSlice::new(&bufs[i][off..]));
        slices.extend(bufs[i + 1..].iter().map(|b| IoSlice::new(b)));
        stream.writable().await?;
        let mut n = match stream.try_write_vectored(&slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        while i < bufs.len() && n >= bufs[i].len() - off {
            n -= bufs[i].len() - off;
            i += 1;
            off = 0;
        }
        off += n;
    }
    Ok(())
}

/// Send `bytes` with `MSG_MORE`: the kernel holds them for the body that follows, so a
/// small response goes out as one packet with it.
async fn send_more(stream: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_io(Interest::WRITABLE, || {
            rustix::net::send(stream, bytes, rustix::net::SendFlags::MORE).map_err(Into::into)
        }) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Send all of `file` with `sendfile`.
async fn send_file(stream: &TcpStream, file: &MemFile) -> std::io::Result<()> {
    let mut offset = 0u64;
    let len = file.len as u64;
    while offset < len {
        stream.writable().await?;
        let left = usize::try_from(len - offset).unwrap_or(usize::MAX);
        match stream.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(stream, &file.file, Some(&mut offset), left).map_err(Into::into)
        }) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_body_goes_out_whole_after_its_head() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body: Vec<Bytes> = (0..40u8).map(|i| Bytes::from(vec![i; 10_000])).collect();
        let file = Arc::new(MemFile::new(&body).unwrap());
        assert_eq!(file.len(), 400_000);
        let resp = PlainResponse {
            status: StatusCode::OK,
            content_type: "video/mp4",
            cache_control: "public, max-age=31536000, immutable",
            body: PlainBody::File(file),
        };
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            write(&s, &resp, false, false).await.unwrap();
            write(&s, &resp, true, true).await.unwrap();
        });
        let mut c = TcpStream::connect(addr).await.unwrap();
        let mut got = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut c, &mut got)
            .await
            .unwrap();
        server.await.unwrap();
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\ncontent-type: video/mp4\r\n"),
            "{text:.200}"
        );
        assert!(text.contains("\r\ncontent-length: 400000\r\n"));
        let start = text.find("\r\n\r\n").unwrap() + 4;
        let want: Vec<u8> = body.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(&got[start..start + 400_000], &want[..]);
        // Then the HEAD answer: the same head, no body, and the connection closes.
        let second = &got[start + 400_000..];
        let second = String::from_utf8_lossy(second);
        assert!(second.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(second.ends_with("connection: close\r\n\r\n"), "{second}");
    }
}
