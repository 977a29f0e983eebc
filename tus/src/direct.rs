//! PATCH bodies read by the disk writer straight from the socket.
//!
//! A server that reads request heads itself (ahead of its HTTP library) can hand a tus
//! PATCH's connection to [`TusService`](crate::service::TusService) in the request's
//! extensions, as a [`DirectBodySlot`]: the upload's disk thread then moves the body from
//! the socket into the file itself — `splice(2)` socket → pipe → file when no checksum is
//! asked for (the bytes never enter user space), otherwise reads of up to 256 KiB hashed
//! on the way — with no hand-off between the network task and the disk thread per read.
//! The same checks, hooks, offsets and durability apply as for a body read through the
//! HTTP library; the connection is put back in the slot afterwards, for the next request
//! when the whole body was read.

use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::checksum::Hasher;
use crate::store::{StoreError, UploadWriter};

/// A request body still on its connection (see the module docs).
#[derive(Debug)]
pub struct DirectBody {
    /// Out while the disk thread reads from it (as a blocking std stream).
    stream: Option<tokio::net::TcpStream>,
    read_ahead: Bytes,
    length: u64,
    consumed: u64,
    expect_continue: bool,
}

impl DirectBody {
    /// The body of `length` bytes (`Content-Length`) whose first bytes, read with the
    /// request head, are `read_ahead` (at most `length`); the rest is still on `stream`.
    /// With `expect_continue` (`Expect: 100-continue`) the client is told to go on just
    /// before the body is read.
    pub fn new(
        stream: tokio::net::TcpStream,
        read_ahead: Bytes,
        length: u64,
        expect_continue: bool,
    ) -> DirectBody {
        let consumed = (read_ahead.len() as u64).min(length);
        DirectBody {
            stream: Some(stream),
            read_ahead,
            length,
            consumed,
            expect_continue,
        }
    }

    /// The body's length.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// Whether every byte of the body was read off the connection (it may then carry the
    /// next request).
    pub fn is_complete(&self) -> bool {
        self.consumed == self.length && self.read_ahead.is_empty()
    }

    /// The connection (`None` when it was lost while the body was read).
    pub fn into_stream(self) -> Option<tokio::net::TcpStream> {
        self.stream
    }

    pub(crate) fn take_stream(&mut self) -> Option<tokio::net::TcpStream> {
        self.stream.take()
    }

    pub(crate) fn set_stream(&mut self, stream: tokio::net::TcpStream) {
        self.stream = Some(stream);
    }
}

/// A [`DirectBody`] in a request's extensions; the server keeps a clone to take the
/// connection back once the answer is ready.
#[derive(Debug, Clone)]
pub struct DirectBodySlot(Arc<Mutex<Option<DirectBody>>>);

impl DirectBodySlot {
    /// A slot holding `body`.
    pub fn new(body: DirectBody) -> DirectBodySlot {
        DirectBodySlot(Arc::new(Mutex::new(Some(body))))
    }

    /// Take the body (and its connection) out; `None` when it is gone.
    pub fn take(&self) -> Option<DirectBody> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    pub(crate) fn put(&self, body: DirectBody) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(body);
    }
}

/// A body whose sender sends nothing for this long ends (what arrived is kept).
const STALL: Duration = Duration::from_secs(120);
/// How often the disk thread looks up from a blocked read (to notice a takeover).
const WAKE: Duration = Duration::from_millis(250);
/// Read size when the bytes must be hashed.
const READ: usize = 256 * 1024;
/// The pipe between socket and file.
const PIPE: usize = 1 << 20;
/// A read that moved less than this is a trickle: the next one waits [`PAUSE`].
const TRICKLE: usize = 96 * 1024;
/// See [`TRICKLE`].
const PAUSE: Duration = Duration::from_millis(4);

/// What [`copy`] did.
pub(crate) struct Copied {
    pub(crate) failed: Option<StoreError>,
    pub(crate) read_error: Option<String>,
}

/// On the disk thread: move `body` (with `socket`, its connection in blocking mode) into
/// `w`, hashing with `hashers` when there are any, until the body ends, the store fails,
/// the sender stalls or `stop` is raised (another request took the upload over).
pub(crate) fn copy(
    body: &mut DirectBody,
    socket: &mut std::net::TcpStream,
    w: &mut UploadWriter,
    hashers: &mut [Hasher],
    stop: &AtomicBool,
) -> Copied {
    let mut out = Copied {
        failed: None,
        read_error: None,
    };
    let ahead = std::mem::take(&mut body.read_ahead);
    if !ahead.is_empty() {
        for h in hashers.iter_mut() {
            h.update(&ahead);
        }
        if let Err(e) = w.write(&ahead) {
            out.failed = Some(e);
            return out;
        }
    }
    if body.consumed == body.length {
        return out;
    }
    if body.expect_continue && socket.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").is_err() {
        out.read_error = Some("the connection closed before the body".into());
        return out;
    }
    if let Err(e) = socket.set_read_timeout(Some(WAKE)) {
        out.read_error = Some(e.to_string());
        return out;
    }
    if hashers.is_empty() {
        match rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC) {
            Ok((r, wr)) => {
                // As large as allowed (1 MiB by default); the default 64 KiB works too.
                let _ = rustix::pipe::fcntl_setpipe_size(&wr, PIPE);
                splice_body(body, socket, w, stop, (&r, &wr), &mut out);
            }
            Err(_) => read_body(body, socket, w, hashers, stop, &mut out),
        }
    } else {
        read_body(body, socket, w, hashers, stop, &mut out);
    }
    out
}

/// The sender has sent nothing for a while: `Some(reason)` once that is a stall.
fn stalled(last: Instant, body: &DirectBody) -> Option<String> {
    (last.elapsed() >= STALL).then(|| {
        format!(
            "the client sent nothing for {} s ({} of {} bytes arrived)",
            STALL.as_secs(),
            body.consumed,
            body.length
        )
    })
}

fn ended(body: &DirectBody) -> String {
    format!(
        "the connection closed after {} of {} bytes",
        body.consumed, body.length
    )
}

/// socket → pipe → file, no copy through user space.
fn splice_body(
    body: &mut DirectBody,
    socket: &std::net::TcpStream,
    w: &mut UploadWriter,
    stop: &AtomicBool,
    (pipe_r, pipe_w): (&std::os::fd::OwnedFd, &std::os::fd::OwnedFd),
    out: &mut Copied,
) {
    let cap = rustix::pipe::fcntl_getpipe_size(pipe_w).unwrap_or(64 * 1024);
    let mut last = Instant::now();
    while body.consumed < body.length && !stop.load(Ordering::Relaxed) {
        let want = usize::try_from(body.length - body.consumed)
            .unwrap_or(usize::MAX)
            .min(cap);
        let n = match rustix::pipe::splice(
            socket,
            None,
            pipe_w,
            None,
            want,
            rustix::pipe::SpliceFlags::MOVE,
        ) {
            Ok(0) => {
                out.read_error = Some(ended(body));
                return;
            }
            Ok(n) => n,
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => {
                if let Some(reason) = stalled(last, body) {
                    out.read_error = Some(reason);
                    return;
                }
                continue;
            }
            Err(e) => {
                out.read_error = Some(std::io::Error::from(e).to_string());
                return;
            }
        };
        last = Instant::now();
        body.consumed += n as u64;
        // A trickle (many uploads at once share the link): let more arrive before the
        // next read, so a thread wakes per ~100 KiB rather than per segment.
        let pause = n < TRICKLE && body.consumed < body.length;
        let mut in_pipe = n;
        while in_pipe > 0 {
            match w.append_from_pipe(pipe_r, in_pipe) {
                Ok(0) => {
                    out.failed = Some(StoreError::Storage(
                        videopick_storage::StorageError::Invalid(
                            "the file took no bytes from the pipe".into(),
                        ),
                    ));
                    return;
                }
                Ok(m) => in_pipe -= m,
                Err(e) => {
                    out.failed = Some(e);
                    return;
                }
            }
        }
        if pause {
            std::thread::sleep(PAUSE);
        }
    }
}

/// socket → buffer (hashed) → file.
fn read_body(
    body: &mut DirectBody,
    socket: &mut std::net::TcpStream,
    w: &mut UploadWriter,
    hashers: &mut [Hasher],
    stop: &AtomicBool,
    out: &mut Copied,
) {
    let mut buf = vec![0u8; READ];
    let mut last = Instant::now();
    while body.consumed < body.length && !stop.load(Ordering::Relaxed) {
        let want = usize::try_from(body.length - body.consumed)
            .unwrap_or(usize::MAX)
            .min(READ);
        let n = match socket.read(&mut buf[..want]) {
            Ok(0) => {
                out.read_error = Some(ended(body));
                return;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                if let Some(reason) = stalled(last, body) {
                    out.read_error = Some(reason);
                    return;
                }
                continue;
            }
            Err(e) => {
                out.read_error = Some(e.to_string());
                return;
            }
        };
        last = Instant::now();
        body.consumed += n as u64;
        for h in hashers.iter_mut() {
            h.update(&buf[..n]);
        }
        if let Err(e) = w.write(&buf[..n]) {
            out.failed = Some(e);
            return;
        }
    }
}
