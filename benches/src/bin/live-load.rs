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

use bytes::{Bytes, BytesMut};
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use videopick_benches::proc_sample;
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

/// Frame `i` of the synthetic stream: 25 fps video (key frame every 2 s, 6× a delta
/// frame) and AAC-sized audio at 128 kbit/s included in the budget.
fn stream_tags(i: u32, kbps: u64) -> Vec<Tag> {
    let video_bytes_per_frame = (kbps.saturating_sub(128) * 1000 / 8 / 25) as usize;
    let key = i.is_multiple_of(50);
    // Average over a GOP of 50: one key at 6x, 49 deltas at d: 6d + 49d = 50*avg.
    let delta = video_bytes_per_frame * 50 / 55;
    let size = if key { delta * 6 } else { delta };
    let mut v = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
    v.resize(size.max(6), (i % 251) as u8);
    let ts = i * 40;
    let mut out = vec![Tag::new(TagKind::Video, ts, Bytes::from(v))];
    // ~43 AAC frames per second of 372 bytes: interleave about 2 per video frame.
    for k in 0..2 {
        if (i * 2 + k) % 25 < 22 {
            out.push(Tag::new(
                TagKind::Audio,
                ts + k * 20,
                Bytes::from([0xaf, 1, 0x21, 0, 0, 0].repeat(62)),
            ));
        }
    }
    out
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
    for i in 0.. {
        let at = start + Duration::from_millis(u64::from(i) * 40);
        tokio::time::sleep_until(at.into()).await;
        for t in stream_tags(i, args.bitrate_kbps) {
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

async fn http_viewer(addr: String, key: String, c: Arc<Counters>, start: Instant, timed: bool) {
    let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await else {
        c.errors.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let req = format!("GET /{key}.flv HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        c.errors.fetch_add(1, Ordering::Relaxed);
        return;
    }
    c.connected.fetch_add(1, Ordering::Relaxed);
    let mut buf = BytesMut::with_capacity(256 * 1024);
    let mut header_done = false;
    let mut demux = FlvDemuxer::new();
    let mut behind = false;
    loop {
        match s.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                c.bytes.fetch_add(n as u64, Ordering::Relaxed);
                if !header_done {
                    let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    if !buf.starts_with(b"HTTP/1.1 200") && !buf.starts_with(b"HTTP/1.0 200") {
                        c.errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    let _ = buf.split_to(at + 4);
                    header_done = true;
                }
                loop {
                    match demux.decode(&mut buf) {
                        Ok(Some(FlvItem::Tag(t))) => {
                            if timed && t.kind == TagKind::Video {
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
    let timed = args.publish;
    for i in 0..args.viewers {
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
