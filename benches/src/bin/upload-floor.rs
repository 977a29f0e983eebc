//! `upload-floor`: the floor of a durable upload, the line a tus server's CPU per GiB is
//! measured against.
//!
//! A minimal tus 1.0.0 server (creation, HEAD, one or more PATCHes; no checksums, no
//! metadata, no locks, no offset record) with one blocking thread per connection. A
//! PATCH body is read straight from the socket into a 1 MiB buffer (each `read` takes
//! what the kernel has, up to the space left), written when the buffer is full, and
//! `fdatasync`ed at the same points as media-server's store: every `--sync-mib` MiB
//! written and at the end of the request, before the answer. Nothing else runs: no
//! runtime, no readiness polling, no hand-off between threads. Feed it with the same
//! clients as the server under test (tus-js-client, curl, `tus-load`) and sample both
//! processes' CPU time the same way (`scripts/upload-floor.sh` does).
//!
//! ```text
//! upload-floor --listen 127.0.0.1:18101 --dir /tmp/upload-floor
//! ```

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Parser;

/// Command line.
#[derive(Debug, Parser)]
#[command(name = "upload-floor", about = "Floor of a durable tus upload")]
struct Args {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:18101")]
    listen: String,
    /// Where uploads are written (emptied at start).
    #[arg(long, default_value = "/tmp/upload-floor")]
    dir: PathBuf,
    /// Read buffer (and write size) in KiB.
    #[arg(long, default_value_t = 1024)]
    buffer_kib: usize,
    /// fdatasync after every this many MiB written (and at the end of each PATCH).
    #[arg(long, default_value_t = 8)]
    sync_mib: u64,
}

/// The longest request head accepted.
const MAX_HEAD: usize = 16 * 1024;

struct Shared {
    dir: PathBuf,
    buffer: usize,
    sync_every: u64,
    next_id: AtomicU64,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let _ = std::fs::remove_dir_all(&args.dir);
    std::fs::create_dir_all(&args.dir)?;
    let listener = TcpListener::bind(&args.listen)?;
    eprintln!("upload-floor listening on {}", listener.local_addr()?);
    let shared = Arc::new(Shared {
        dir: args.dir,
        buffer: args.buffer_kib.max(4) * 1024,
        sync_every: args.sync_mib.max(1) << 20,
        next_id: AtomicU64::new(1),
    });
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let shared = shared.clone();
        std::thread::spawn(move || {
            if let Err(e) = serve(&shared, conn)
                && e.kind() != ErrorKind::UnexpectedEof
            {
                eprintln!("upload-floor: {e}");
            }
        });
    }
    Ok(())
}

/// One request head, parsed.
struct Head {
    method: String,
    path: String,
    upload_length: Option<u64>,
    content_length: u64,
    upload_offset: Option<u64>,
    close: bool,
}

fn header_u64(h: &httparse::Request<'_, '_>, name: &str) -> Option<u64> {
    h.headers
        .iter()
        .find(|x| x.name.eq_ignore_ascii_case(name))
        .and_then(|x| std::str::from_utf8(x.value).ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Read one request head; returns it and the body bytes read past it.
fn read_head(conn: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Option<Head>> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(n)) => {
                let close = req.headers.iter().any(|x| {
                    x.name.eq_ignore_ascii_case("connection")
                        && x.value.eq_ignore_ascii_case(b"close")
                });
                let head = Head {
                    method: req.method.unwrap_or("").to_string(),
                    path: req.path.unwrap_or("").to_string(),
                    upload_length: header_u64(&req, "upload-length"),
                    content_length: header_u64(&req, "content-length").unwrap_or(0),
                    upload_offset: header_u64(&req, "upload-offset"),
                    close,
                };
                buf.drain(..n);
                return Ok(Some(head));
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            _ => {
                return Err(std::io::Error::new(
                    ErrorKind::InvalidData,
                    "bad request head",
                ));
            }
        }
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn answer(conn: &mut TcpStream, status: &str, extra: &str) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 {status}\r\nTus-Resumable: 1.0.0\r\nTus-Version: 1.0.0\r\nTus-Extension: creation\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

fn upload_path(shared: &Shared, path: &str) -> Option<PathBuf> {
    let id: u64 = path.strip_prefix("/files/")?.parse().ok()?;
    Some(shared.dir.join(id.to_string()))
}

fn serve(shared: &Shared, mut conn: TcpStream) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let _ = conn.set_nodelay(true);
    let mut pending = Vec::with_capacity(4096);
    let mut body = vec![0u8; shared.buffer];
    while let Some(head) = read_head(&mut conn, &mut pending)? {
        match head.method.as_str() {
            "OPTIONS" => answer(&mut conn, "204 No Content", "")?,
            "POST" => {
                let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
                let path = shared.dir.join(id.to_string());
                File::create(&path)?.sync_all()?;
                let len = head.upload_length.unwrap_or(0);
                std::fs::write(shared.dir.join(format!("{id}.len")), len.to_string())?;
                answer(
                    &mut conn,
                    "201 Created",
                    &format!("Location: /files/{id}\r\nUpload-Offset: 0\r\n"),
                )?;
            }
            "HEAD" => match upload_path(shared, &head.path) {
                Some(p) if p.exists() => {
                    let off = std::fs::metadata(&p)?.len();
                    let len = std::fs::read_to_string(p.with_extension("len")).unwrap_or_default();
                    answer(
                        &mut conn,
                        "200 OK",
                        &format!(
                            "Upload-Offset: {off}\r\nUpload-Length: {len}\r\nCache-Control: no-store\r\n"
                        ),
                    )?;
                }
                _ => answer(&mut conn, "404 Not Found", "")?,
            },
            "PATCH" => {
                let Some(p) = upload_path(shared, &head.path) else {
                    answer(&mut conn, "404 Not Found", "")?;
                    continue;
                };
                let file = OpenOptions::new().write(true).open(&p)?;
                let start = file.metadata()?.len();
                if head.upload_offset != Some(start) {
                    answer(&mut conn, "409 Conflict", "")?;
                    return Ok(());
                }
                let end = patch(
                    shared,
                    &mut conn,
                    &file,
                    start,
                    head.content_length,
                    &mut pending,
                    &mut body,
                )?;
                answer(
                    &mut conn,
                    "204 No Content",
                    &format!("Upload-Offset: {end}\r\n"),
                )?;
            }
            _ => answer(&mut conn, "405 Method Not Allowed", "")?,
        }
        if head.close {
            break;
        }
    }
    Ok(())
}

/// Stream `len` body bytes (the first of them already in `pending`) into `file` at
/// `start`: 1 MiB writes, an fdatasync every `sync_every` bytes and at the end.
fn patch(
    shared: &Shared,
    conn: &mut TcpStream,
    file: &File,
    start: u64,
    len: u64,
    pending: &mut Vec<u8>,
    body: &mut [u8],
) -> std::io::Result<u64> {
    let mut left = len;
    let mut at = start;
    let mut unsynced = 0u64;
    let from_pending = pending
        .len()
        .min(usize::try_from(len).unwrap_or(usize::MAX));
    body[..from_pending].copy_from_slice(&pending[..from_pending]);
    pending.drain(..from_pending);
    let mut filled = from_pending;
    left -= from_pending as u64;
    loop {
        while filled < body.len() && left > 0 {
            let want = body
                .len()
                .min(filled + usize::try_from(left).unwrap_or(usize::MAX));
            let n = conn.read(&mut body[filled..want])?;
            if n == 0 {
                return Err(ErrorKind::UnexpectedEof.into());
            }
            filled += n;
            left -= n as u64;
        }
        file.write_all_at(&body[..filled], at)?;
        at += filled as u64;
        unsynced += filled as u64;
        filled = 0;
        if unsynced >= shared.sync_every || left == 0 {
            file.sync_data()?;
            unsynced = 0;
        }
        if left == 0 {
            return Ok(at);
        }
    }
}
