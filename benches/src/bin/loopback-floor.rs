//! `loopback-floor`: the kernel's cost of fanning one live stream out to N TCP viewers,
//! the floor any live server's per-viewer CPU is measured against.
//!
//! It accepts N HTTP-FLV viewers (any request gets `200 OK` and an FLV header) and, once
//! per interval, muxes the tags of the synthetic stream `live-load --publish` sends (the
//! same frames, [`videopick_benches::live_frame`], each due at its timestamp) that became
//! due in that interval into one shared buffer, then writes it to every viewer back to
//! back: exactly one `writev` per viewer per interval that has tags, no runtime, no timers
//! per viewer, no readiness polling. A
//! viewer whose socket would not take everything keeps the rest queued for its next
//! turn (and is counted). It reports its own CPU time per viewer-second.
//!
//! `--message-bytes N` writes one N-byte message per interval instead: the floor of a
//! chat server's deliveries (one small write per message per client).
//!
//! `--spread` takes the viewers in turn across the interval instead (sleeping at 1 ms
//! granularity), as this tool did before: each write then wakes the receiving side on
//! its own, which costs the writer about twice as much (see docs/BENCHMARKS.md).
//!
//! Read it with `live-load` (without `--publish`) on the other core, as a server is read:
//!
//! ```text
//! taskset -c 0 loopback-floor --listen 127.0.0.1:19400 --viewers 1000 --interval-ms 20 &
//! taskset -c 1 live-load --http 127.0.0.1:19400 --protocol http --viewers 1000 --seconds 15
//! ```

#![allow(clippy::cast_precision_loss)] // figures for humans

use std::collections::VecDeque;
use std::io::{ErrorKind, IoSlice, Write as _};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Buf as _, Bytes, BytesMut};
use clap::Parser;
use videopick_benches::live_frame;
use videopick_flv::FlvMuxer;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "loopback-floor",
    about = "Kernel floor of live fan-out over TCP"
)]
struct Args {
    /// Listen address.
    #[arg(long, default_value = "127.0.0.1:19400")]
    listen: String,
    /// Number of viewers to wait for.
    #[arg(long, default_value_t = 1000)]
    viewers: usize,
    /// One write per viewer per this many milliseconds.
    #[arg(long, default_value_t = 20)]
    interval_ms: u64,
    /// Stream bitrate in kbit/s.
    #[arg(long, default_value_t = 2500)]
    bitrate_kbps: u64,
    /// Seconds to measure (after 2 s of warm-up).
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Frame the body with HTTP/1.1 chunked transfer coding (one chunk per interval)
    /// instead of a close-delimited body as media-server sends.
    #[arg(long)]
    chunked: bool,
    /// Spread the viewers' writes evenly across the interval instead of one burst.
    #[arg(long)]
    spread: bool,
    /// Instead of the live stream, write one message of this many bytes per interval
    /// (the kernel's floor for chat deliveries: one small write per message per client).
    #[arg(long)]
    message_bytes: Option<usize>,
}

/// This thread's CPU time (the writer is single-threaded).
fn cpu_time() -> Duration {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns: u64 = s
        .split_whitespace()
        .next()
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

/// One viewer: its socket and what it has not taken yet (normally nothing).
struct Viewer {
    sock: TcpStream,
    queued: VecDeque<Bytes>,
}

impl Viewer {
    /// One `writev` of the queue followed by `fresh`; what is not taken is queued.
    /// Returns whether the socket refused part of it.
    fn write(&mut self, fresh: &[Bytes]) -> std::io::Result<bool> {
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(self.queued.len() + fresh.len());
        slices.extend(self.queued.iter().map(|b| IoSlice::new(b)));
        slices.extend(fresh.iter().map(|b| IoSlice::new(b)));
        let mut n = match self.sock.write_vectored(&slices[..slices.len().min(1024)]) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        };
        let all = self
            .queued
            .iter()
            .chain(fresh)
            .map(Bytes::len)
            .sum::<usize>();
        let short = n < all;
        self.queued.extend(fresh.iter().cloned());
        while n > 0 {
            let Some(front) = self.queued.front_mut() else {
                break;
            };
            if n >= front.len() {
                n -= front.len();
                self.queued.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
        Ok(short)
    }
}

/// Accept viewers until `viewers` have come, or none came for 8 s (a load tool that
/// failed to open some). Accepting is all it does meanwhile (the request heads wait in
/// the sockets; nothing needs them), so a burst of connects does not overflow the
/// listen queue.
fn accept(listener: &TcpListener, viewers: usize) -> std::io::Result<Vec<Viewer>> {
    listener.set_nonblocking(true)?;
    let mut out = Vec::with_capacity(viewers);
    let mut last = Instant::now();
    while out.len() < viewers && (out.is_empty() || last.elapsed() < Duration::from_secs(8)) {
        match listener.accept() {
            Ok((sock, _)) => {
                last = Instant::now();
                out.push(Viewer {
                    sock,
                    queued: VecDeque::new(),
                });
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e),
        }
    }
    if out.len() < viewers {
        eprintln!(
            "loopback-floor: only {} of {viewers} viewers came",
            out.len()
        );
    }
    Ok(out)
}

/// The tags of the synthetic stream, in order, from frame `next.0` on: each is due at
/// its timestamp (audio between video frames is due between them, as a publisher pacing
/// by timestamp sends it).
struct Source {
    kbps: u64,
    frame: u32,
    pending: VecDeque<videopick_flv::Tag>,
    mux: FlvMuxer,
}

impl Source {
    /// The shared bytes of the tags due by `now_ms` (stream time), framed; empty when none.
    fn due(&mut self, now_ms: u64, chunked: bool) -> Vec<Bytes> {
        let mut body = BytesMut::new();
        loop {
            if self.pending.is_empty() {
                self.pending.extend(live_frame(self.frame, self.kbps));
                self.frame += 1;
            }
            let Some(t) = self.pending.front() else { break };
            if u64::from(t.timestamp) > now_ms {
                break;
            }
            // Tags of this stream are far below FLV's 16 MiB limit.
            let _ = self.mux.write_tag(t, &mut body);
            self.pending.pop_front();
        }
        if body.is_empty() {
            return Vec::new();
        }
        if chunked {
            vec![
                Bytes::from(format!("{:x}\r\n", body.len())),
                body.freeze(),
                Bytes::from_static(b"\r\n"),
            ]
        } else {
            vec![body.freeze()]
        }
    }
}

fn serve(a: &Args) -> std::io::Result<()> {
    let interval = Duration::from_millis(a.interval_ms.max(1));
    let listener = TcpListener::bind(&a.listen)?;
    let mut viewers = accept(&listener, a.viewers)?;
    let head: &[u8] = if a.chunked {
        b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\n\r\nd\r\nFLV\x01\x05\0\0\0\x09\0\0\0\0\r\n"
    } else {
        b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nConnection: close\r\n\r\nFLV\x01\x05\0\0\0\x09\0\0\0\0"
    };
    // A viewer that went away before its answer is left out.
    viewers.retain_mut(|v| {
        v.sock.set_nonblocking(false).is_ok()
            && v.sock.write_all(head).is_ok()
            && v.sock.set_nodelay(true).is_ok()
            && v.sock.set_nonblocking(true).is_ok()
    });
    let t0 = Instant::now();
    let warmup = t0 + Duration::from_secs(2);
    let mut start: Option<(Instant, Duration)> = None;
    let mut source = Source {
        kbps: a.bitrate_kbps,
        frame: 0,
        pending: VecDeque::new(),
        mux: FlvMuxer::new(),
    };
    let mut short_writes = 0u64;
    let mut writes = 0u64;
    let mut tick = t0;
    let n = viewers.len();
    loop {
        tick += interval;
        if let Some(wait) = tick.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if start.is_none() && Instant::now() >= warmup {
            start = Some((Instant::now(), cpu_time()));
        }
        // Tags due by now, muxed once for everybody; nothing to write without them.
        let now_ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
        let fresh = match a.message_bytes {
            Some(n) => vec![Bytes::from(vec![b'm'; n])],
            None => source.due(now_ms, a.chunked),
        };
        if fresh.is_empty() {
            continue;
        }
        if start.is_some() {
            writes += n as u64;
        }
        if a.spread {
            // Viewer i at tick + i/n of the interval, 1 ms sleeps between groups.
            let begun = Instant::now();
            for (i, v) in viewers.iter_mut().enumerate() {
                let at = begun + interval.mul_f64(i as f64 / n as f64);
                let now = Instant::now();
                if at > now {
                    std::thread::sleep((at - now).max(Duration::from_millis(1)));
                }
                short_writes += u64::from(v.write(&fresh)?);
            }
        } else {
            for v in &mut viewers {
                short_writes += u64::from(v.write(&fresh)?);
            }
        }
        if let Some((s0, c0)) = start {
            let wall = s0.elapsed();
            if wall >= Duration::from_secs(a.seconds) {
                let cpu = cpu_time().saturating_sub(c0);
                let vs = n as f64 * wall.as_secs_f64();
                println!(
                    "floor: {:.3} ms CPU per viewer-second, {:.2} µs per write ({} viewers, {} ms interval, {} kbit/s, {}, {}, core {:.0} %, {} short writes)",
                    cpu.as_secs_f64() * 1000.0 / vs,
                    cpu.as_secs_f64() * 1e6 / writes.max(1) as f64,
                    n,
                    interval.as_millis(),
                    a.bitrate_kbps,
                    if a.spread { "spread" } else { "burst" },
                    if a.chunked {
                        "chunked"
                    } else {
                        "close-delimited"
                    },
                    cpu.as_secs_f64() * 100.0 / wall.as_secs_f64(),
                    short_writes
                );
                return Ok(());
            }
        }
    }
}

fn main() -> std::io::Result<()> {
    serve(&Args::parse())
}
