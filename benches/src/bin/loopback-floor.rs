//! `loopback-floor`: the kernel's cost of fanning shared bytes out to N TCP viewers, the
//! floor any live server's per-viewer CPU is measured against.
//!
//! It accepts N HTTP-FLV viewers (any request gets `200 OK` and an FLV header) and, every
//! interval, writes each of them the bytes a stream of the given bitrate produced in that
//! interval: one `writev` per viewer of the newest bytes of one shared, pre-muxed buffer of
//! FLV tags (the live edge advances with the clock, so every viewer sends the same recent,
//! cache-hot bytes, as in a live server), viewers taken in turn across the interval, no
//! runtime, no per-viewer state but a byte count. It
//! reports its own CPU time per viewer-second. Read it with `live-load` (without
//! `--publish`) on the other core, exactly as a real server is read:
//!
//! ```text
//! taskset -c 0 loopback-floor --listen 127.0.0.1:19400 --viewers 1000 --interval-ms 20 &
//! taskset -c 1 live-load --http 127.0.0.1:19400 --protocol http --viewers 1000 --seconds 15
//! ```

#![allow(clippy::cast_precision_loss, clippy::cast_sign_loss)] // figures for humans

use std::io::{ErrorKind, IoSlice, Read as _, Write as _};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use clap::Parser;

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
}

/// 4 MiB of FLV video tags of 1..8 KiB (a cycle that ends on a tag boundary).
fn tag_cycle() -> Vec<u8> {
    let mut out = Vec::with_capacity(4 << 20);
    let mut i = 0u32;
    while out.len() < 4 << 20 {
        let body = 1024 + (i as usize * 2654) % 7168;
        out.push(9);
        out.extend_from_slice(&(body as u32).to_be_bytes()[1..]);
        out.extend_from_slice(&(i * 40).to_be_bytes()[1..]);
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.push(0x27);
        out.extend(std::iter::repeat_n(0x5a, body - 1));
        out.extend_from_slice(&(body as u32 + 11).to_be_bytes());
        i += 1;
    }
    out
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

fn serve(
    listen: &str,
    viewers: usize,
    interval: Duration,
    kbps: u64,
    seconds: u64,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen)?;
    let mut socks = Vec::with_capacity(viewers);
    while socks.len() < viewers {
        let (mut s, _) = listener.accept()?;
        // Read the request head, answer it, then go non-blocking.
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        s.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\n\r\nFLV\x01\x05\0\0\0\x09\0\0\0\0",
        )?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        socks.push((s, 0u64));
    }
    let bytes_per_sec = (kbps * 1000 / 8) as f64;
    let shared = tag_cycle();
    let len = shared.len() as u64;
    // Viewers are written in turn, spread evenly over the interval (as viewers who joined
    // at different times are), sleeping at 1 ms granularity between turns.
    let t0 = Instant::now();
    let mut due: Vec<Instant> = (0..viewers)
        .map(|i| t0 + interval.mul_f64(i as f64 / viewers as f64))
        .collect();
    let mut turn = 0usize;
    let mut start: Option<(Instant, Duration)> = None;
    let warmup = t0 + Duration::from_secs(2);
    let mut behind_writes = 0u64;
    loop {
        let now = Instant::now();
        if due[turn] > now {
            std::thread::sleep((due[turn] - now).max(Duration::from_millis(1)));
        }
        if start.is_none() && Instant::now() >= warmup {
            start = Some((Instant::now(), cpu_time()));
        }
        let now = Instant::now();
        while due[turn] <= now {
            due[turn] += interval;
            let (s, sent) = &mut socks[turn];
            turn = (turn + 1) % viewers;
            // Everything up to the live edge that this viewer has not had yet.
            let edge = (t0.elapsed().as_secs_f64() * bytes_per_sec) as u64;
            while *sent < edge {
                let offset = (*sent % len) as usize;
                let pending = (edge - *sent) as usize;
                let first = pending.min(shared.len() - offset);
                let second = (pending - first).min(offset);
                let slices = [
                    IoSlice::new(&shared[offset..offset + first]),
                    IoSlice::new(&shared[..second]),
                ];
                match s.write_vectored(&slices) {
                    Ok(w) => *sent += w as u64,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        behind_writes += 1;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if let Some((t0, c0)) = start {
            let wall = t0.elapsed();
            if wall >= Duration::from_secs(seconds) {
                let cpu = cpu_time().saturating_sub(c0);
                let vs = viewers as f64 * wall.as_secs_f64();
                println!(
                    "floor: {:.3} ms CPU per viewer-second ({} viewers, {} ms interval, {} kbit/s, core {:.0} %, {} writes would block)",
                    cpu.as_secs_f64() * 1000.0 / vs,
                    viewers,
                    interval.as_millis(),
                    kbps,
                    cpu.as_secs_f64() * 100.0 / wall.as_secs_f64(),
                    behind_writes
                );
                return Ok(());
            }
        }
    }
}

fn main() -> std::io::Result<()> {
    let a = Args::parse();
    serve(
        &a.listen,
        a.viewers,
        Duration::from_millis(a.interval_ms),
        a.bitrate_kbps,
        a.seconds,
    )
}
