//! `live-load`: open N RTMP and/or HTTP-FLV viewers against a live server, optionally
//! publish the test stream too, and report per second: viewers connected, delivered
//! bitrate, viewers behind, errors, delivery delay, and (with `--server-pid`) the server's
//! CPU and RSS.
//!
//! ```text
//! live-load --rtmp 127.0.0.1:1935 --http 127.0.0.1:8000 --publish --viewers 1000 \
//!           --protocol mixed --seconds 30 --server-pid $(pgrep media-server)
//! ```

#![allow(clippy::cast_precision_loss)] // figures for humans: rates and ratios

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use videopick_benches::{live_frame, proc_sample};
use videopick_flv::{FlvDemuxer, FlvItem, Tag, TagKind};
use videopick_live::rtmp_client::RtmpClient;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "live-load",
    about = "Viewer load generator for RTMP / HTTP-FLV servers"
)]
struct Args {
    /// RTMP address of the server (host:port).
    #[arg(long, default_value = "127.0.0.1:1935")]
    rtmp: String,
    /// HTTP address of the server (host:port), for HTTP-FLV viewers.
    #[arg(long, default_value = "127.0.0.1:8000")]
    http: String,
    /// Stream key (app/stream).
    #[arg(long, default_value = "live/load")]
    stream: String,
    /// Number of viewers.
    #[arg(long, default_value_t = 100)]
    viewers: usize,
    /// rtmp, http or mixed (half each).
    #[arg(long, default_value = "mixed")]
    protocol: String,
    /// Viewers opened per second while ramping up.
    #[arg(long, default_value_t = 1000)]
    ramp_per_sec: u64,
    /// Seconds to measure after the ramp.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Also publish a synthetic stream (25 fps H.264-like + AAC-like tags) at this bitrate.
    #[arg(long)]
    publish: bool,
    /// Bitrate of the published stream in kbit/s.
    #[arg(long, default_value_t = 2500)]
    bitrate_kbps: u64,
    /// With --publish, every this many-th viewer parses the tags it gets to note their
    /// delivery delay; the others only read (as a player's network stack does).
    #[arg(long, default_value_t = 10)]
    timed_every: usize,
    /// Sample this process's CPU time and RSS (the server under test).
    #[arg(long)]
    server_pid: Option<u32>,
}

#[derive(Default)]
struct Counters {
    connected: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    behind: AtomicU64,
    /// Max delivery delay (ms) seen in the current second, across viewers.
    max_lag_ms: AtomicU64,
    lag_sum_ms: AtomicU64,
    lag_count: AtomicU64,
}

async fn publish(args: &Args, start: Instant) -> Result<(), String> {
    let url = format!("rtmp://{}/{}", args.rtmp, args.stream);
    let mut p = RtmpClient::connect(&url, Duration::from_secs(10))
        .await
        .map_err(|e| e.to_string())?
        .publish()
        .await
        .map_err(|e| e.to_string())?;
    let headers = [
        Tag::new(
            TagKind::Video,
            0,
            &b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f\xff\xe1\x00\x00\x01\x00\x00"[..],
        ),
        Tag::new(TagKind::Audio, 0, &b"\xaf\x00\x12\x10"[..]),
    ];
    for t in &headers {
        p.send(t).await.map_err(|e| e.to_string())?;
    }
    // Each tag at its timestamp, as a publisher pacing by timestamps (`ffmpeg -re`, OBS)
    // sends it: audio between video frames arrives between them.
    for i in 0.. {
        for t in live_frame(i, args.bitrate_kbps) {
            let at = start + Duration::from_millis(u64::from(t.timestamp));
            tokio::time::sleep_until(at.into()).await;
            p.send(&t).await.map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Record one received video tag's delivery delay.
fn note_lag(c: &Counters, start: Instant, ts: u32, behind: &mut bool) {
    let due = start + Duration::from_millis(u64::from(ts));
    let lag = Instant::now().saturating_duration_since(due).as_millis() as u64;
    c.max_lag_ms.fetch_max(lag, Ordering::Relaxed);
    c.lag_sum_ms.fetch_add(lag, Ordering::Relaxed);
    c.lag_count.fetch_add(1, Ordering::Relaxed);
    let now_behind = lag > 1000;
    if now_behind != *behind {
        if now_behind {
            c.behind.fetch_add(1, Ordering::Relaxed);
        } else {
            c.behind.fetch_sub(1, Ordering::Relaxed);
        }
        *behind = now_behind;
    }
}

async fn rtmp_viewer(url: String, c: Arc<Counters>, start: Instant, timed: bool) {
    let Ok(client) = RtmpClient::connect(&url, Duration::from_secs(20)).await else {
        c.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let Ok(mut player) = client.play().await else {
        c.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    c.connected.fetch_add(1, Ordering::Relaxed);
    let mut behind = false;
    loop {
        match player.next_tag().await {
            Ok(Some(t)) => {
                c.bytes.fetch_add(t.data.len() as u64, Ordering::Relaxed);
                if timed && t.kind == TagKind::Video {
                    note_lag(&c, start, t.timestamp, &mut behind);
                }
            }
            Ok(None) => break,
            Err(_) => {
                c.errors.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
    c.connected.fetch_sub(1, Ordering::Relaxed);
}

/// An HTTP-FLV viewer that reads as a browser player does: large reads into one reused
/// buffer as soon as bytes arrive. Only `timed` viewers (a sample) also parse the tags to
/// note delivery delay; the rest do nothing per tag, so the tool's own work does not shape
/// when and how the server's writes are taken off the socket.
async fn http_viewer(addr: String, key: String, c: Arc<Counters>, start: Instant, timed: bool) {
    let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await else {
        c.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let req = format!("GET /{key}.flv HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        c.errors.fetch_add(1, Ordering::Relaxed);
        return;
    }
    c.connected.fetch_add(1, Ordering::Relaxed);
    let mut buf = vec![0u8; 256 * 1024];
    let mut head: Option<Vec<u8>> = Some(Vec::new());
    let mut chunked = false;
    let mut flv = BytesMut::new();
    let mut demux = FlvDemuxer::new();
    let mut behind = false;
    loop {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        c.bytes.fetch_add(n as u64, Ordering::Relaxed);
        let mut body = &buf[..n];
        if let Some(h) = head.as_mut() {
            h.extend_from_slice(body);
            let Some(at) = h.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            if !h.starts_with(b"HTTP/1.1 200") && !h.starts_with(b"HTTP/1.0 200") {
                c.errors.fetch_add(1, Ordering::Relaxed);
                break;
            }
            chunked = String::from_utf8_lossy(&h[..at])
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked");
            let consumed = h.len() - n;
            body = &buf[(at + 4 - consumed).min(n)..n];
            head = None;
        }
        // A chunked body (servers other than ours) is counted, not timed.
        if !timed || chunked {
            continue;
        }
        flv.extend_from_slice(body);
        loop {
            match demux.decode(&mut flv) {
                Ok(Some(FlvItem::Tag(t))) => {
                    if t.kind == TagKind::Video {
                        note_lag(&c, start, t.timestamp, &mut behind);
                    }
                }
                Ok(Some(FlvItem::Header(_))) => {}
                Ok(None) => break,
                Err(_) => {
                    c.errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
    c.connected.fetch_sub(1, Ordering::Relaxed);
}

#[tokio::main]
async fn main() {
    let args = Arc::new(Args::parse());
    let c = Arc::new(Counters::default());
    let start = Instant::now();
    if args.publish {
        let a = args.clone();
        tokio::spawn(async move {
            if let Err(e) = publish(&a, start).await {
                eprintln!("publisher: {e}");
                std::process::exit(1);
            }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for i in 0..args.viewers {
        let timed = args.publish && i.is_multiple_of(args.timed_every.max(1));
        let rtmp = match args.protocol.as_str() {
            "rtmp" => true,
            "http" => false,
            _ => i % 2 == 0,
        };
        let c2 = c.clone();
        if rtmp {
            let url = format!("rtmp://{}/{}", args.rtmp, args.stream);
            tokio::spawn(rtmp_viewer(url, c2, start, timed));
        } else {
            tokio::spawn(http_viewer(
                args.http.clone(),
                args.stream.clone(),
                c2,
                start,
                timed,
            ));
        }
        if (i as u64 + 1).is_multiple_of(args.ramp_per_sec.max(1) / 10 + 1) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let ramp_done = Instant::now();
    let mut last_bytes = 0;
    let first = args.server_pid.and_then(proc_sample);
    let mut last_cpu = first.map(|s| s.0);
    let mut totals = (0u64, 0u64); // (viewer-seconds, cpu ms) over the measured window
    for sec in 1..=args.seconds {
        tokio::time::sleep_until((ramp_done + Duration::from_secs(sec)).into()).await;
        let bytes = c.bytes.load(Ordering::Relaxed);
        let viewers = c.connected.load(Ordering::Relaxed);
        let lag_n = c.lag_count.swap(0, Ordering::Relaxed).max(1);
        let lag_avg = c.lag_sum_ms.swap(0, Ordering::Relaxed) / lag_n;
        let lag_max = c.max_lag_ms.swap(0, Ordering::Relaxed);
        let mut line = format!(
            "t={sec:>3}s viewers={viewers}/{} behind={} errors={} delivered={:.1} Mbit/s per_viewer={} kbit/s lag_avg={lag_avg}ms lag_max={lag_max}ms",
            args.viewers,
            c.behind.load(Ordering::Relaxed),
            c.errors.load(Ordering::Relaxed),
            (bytes - last_bytes) as f64 * 8.0 / 1e6,
            ((bytes - last_bytes) * 8 / 1000)
                .checked_div(viewers)
                .unwrap_or(0),
        );
        last_bytes = bytes;
        if let Some((cpu, rss)) = args.server_pid.and_then(proc_sample) {
            let used = cpu - last_cpu.unwrap_or(cpu);
            last_cpu = Some(cpu);
            totals.0 += viewers;
            totals.1 += used;
            let _ = write!(
                line,
                " server_cpu={:.1}% server_rss={:.1}MB",
                used as f64 / 10.0,
                rss as f64 / 1024.0
            );
        }
        println!("{line}");
    }
    if args.server_pid.is_some() && totals.0 > 0 {
        println!(
            "summary: {:.3} ms server CPU per viewer-second over {} viewer-seconds",
            totals.1 as f64 / totals.0 as f64,
            totals.0
        );
    }
}
