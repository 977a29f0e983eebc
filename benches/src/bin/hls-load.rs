//! `hls-load`: N low-latency HLS viewers behaving like hls.js in low-latency mode — each on
//! its own keep-alive connection loads the playlist, then loops on a blocking reload for
//! the next part (`_HLS_msn`/`_HLS_part`) and fetches the parts it names — and reports per
//! second the parts and bytes delivered, errors, the delivery spread (a part's arrival at a
//! viewer after its first arrival at any viewer) and, with `--server-pid`, the server's CPU
//! per viewer-second.
//!
//! `--poll-ms N` makes viewers poll the plain playlist every N ms instead (for servers
//! without blocking reloads, e.g. nginx serving files), and `--mirror DIR` runs one follower
//! that writes the playlist, init segments and parts into DIR (atomically), so that such a
//! server can serve the same stream.
//!
//! ```text
//! hls-load --http 127.0.0.1:8000 --playlist /live/load.m3u8 --viewers 1000 --seconds 30 \
//!          --server-pid $(pgrep media-server)
//! ```

#![allow(clippy::cast_precision_loss)] // figures for humans: rates and ratios

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use videopick_benches::proc_sample;

/// Command line.
#[derive(Debug, Parser)]
#[command(name = "hls-load", about = "Low-latency HLS viewer load generator")]
struct Args {
    /// HTTP address of the server (host:port).
    #[arg(long, default_value = "127.0.0.1:8000")]
    http: String,
    /// Path of the media playlist.
    #[arg(long, default_value = "/live/load.m3u8")]
    playlist: String,
    /// Number of viewers.
    #[arg(long, default_value_t = 100)]
    viewers: usize,
    /// Viewers opened per second while ramping up.
    #[arg(long, default_value_t = 500)]
    ramp_per_sec: u64,
    /// Seconds to measure after the ramp.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Poll the plain playlist every this many ms instead of blocking reloads.
    #[arg(long)]
    poll_ms: Option<u64>,
    /// Follow the stream with blocking reloads and write it into this directory.
    #[arg(long)]
    mirror: Option<PathBuf>,
    /// Sample this process's CPU time and RSS (the server under test).
    #[arg(long)]
    server_pid: Option<u32>,
}

#[derive(Default)]
struct Counters {
    parts: AtomicU64,
    bytes: AtomicU64,
    playlists: AtomicU64,
    errors: AtomicU64,
    /// Delivery spread samples of the current second, in ms.
    spread: Mutex<Vec<u64>>,
    /// First arrival of each part at any viewer.
    first: Mutex<HashMap<String, Instant>>,
}

type Conn = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(addr: &str) -> std::io::Result<Conn> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    Ok(send)
}

async fn get(conn: &mut Conn, addr: &str, path: &str) -> std::io::Result<(u16, Bytes)> {
    conn.ready().await.map_err(std::io::Error::other)?;
    let req = Request::get(path)
        .header("host", addr)
        .body(Empty::new())
        .map_err(std::io::Error::other)?;
    let resp = conn
        .send_request(req)
        .await
        .map_err(std::io::Error::other)?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    Ok((status, body))
}

/// The parts listed in a playlist, in order: (msn, part, uri).
fn parts(text: &str) -> Vec<(u64, u32, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-PART:"))
        .filter_map(|a| {
            let uri = a.split("URI=\"").nth(1)?.split('"').next()?;
            let tail = uri.strip_suffix(".m4s")?.rsplit('-').next()?;
            let (m, p) = tail.split_once('.')?;
            Some((m.parse().ok()?, p.parse().ok()?, uri.to_string()))
        })
        .collect()
}

fn maps(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .map(|u| u.trim_end_matches('"').to_string())
        .collect()
}

/// The directory of the playlist path, for relative URIs.
fn base_of(playlist: &str) -> &str {
    playlist.rsplit_once('/').map_or("", |(b, _)| b)
}

async fn viewer(args: Arc<Args>, counters: Arc<Counters>, stop: Arc<AtomicU64>) {
    let addr = args.http.as_str();
    let base = base_of(&args.playlist);
    'reconnect: while stop.load(Ordering::Relaxed) == 0 {
        let Ok(mut conn) = connect(addr).await else {
            counters.errors.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut last: Option<(u64, u32)> = None;
        while stop.load(Ordering::Relaxed) == 0 {
            let path = match (last, args.poll_ms) {
                (Some((m, p)), None) => {
                    format!("{}?_HLS_msn={m}&_HLS_part={}", args.playlist, p + 1)
                }
                _ => args.playlist.clone(),
            };
            if let (Some(_), Some(ms)) = (last, args.poll_ms) {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let Ok((status, body)) = get(&mut conn, addr, &path).await else {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                continue 'reconnect;
            };
            if status != 200 {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            counters.playlists.fetch_add(1, Ordering::Relaxed);
            let text = String::from_utf8_lossy(&body);
            let listed = parts(&text);
            let new: Vec<_> = match last {
                // Start at the live edge, like a player holding back a few parts.
                None => listed.iter().rev().take(1).cloned().collect(),
                Some(l) => listed
                    .iter()
                    .filter(|(m, p, _)| (*m, *p) > l)
                    .cloned()
                    .collect(),
            };
            for (m, p, uri) in new {
                let Ok((status, bytes)) = get(&mut conn, addr, &format!("{base}/{uri}")).await
                else {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    continue 'reconnect;
                };
                let now = Instant::now();
                if status != 200 {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                counters.parts.fetch_add(1, Ordering::Relaxed);
                counters
                    .bytes
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                let first = *counters
                    .first
                    .lock()
                    .unwrap()
                    .entry(uri.clone())
                    .or_insert(now);
                let spread = now.duration_since(first).as_millis() as u64;
                counters.spread.lock().unwrap().push(spread);
                last = Some((m, p));
            }
            if last.is_none() {
                last = listed.last().map(|(m, p, _)| (*m, *p));
            }
        }
    }
}

/// Follow the stream and write it into `dir`: init segments and parts once, then the
/// playlist (as served, without the blocking-reload attributes a file server cannot honour).
async fn mirror(args: Arc<Args>, dir: PathBuf) {
    let addr = args.http.as_str();
    let base = base_of(&args.playlist);
    let name = args
        .playlist
        .rsplit('/')
        .next()
        .unwrap_or("index.m3u8")
        .to_string();
    std::fs::create_dir_all(&dir).expect("mirror directory");
    let mut conn = connect(addr).await.expect("connect");
    let mut have = std::collections::HashSet::new();
    let mut last: Option<(u64, u32)> = None;
    loop {
        let path = match last {
            Some((m, p)) => format!("{}?_HLS_msn={m}&_HLS_part={}", args.playlist, p + 1),
            None => args.playlist.clone(),
        };
        let Ok((200, body)) = get(&mut conn, addr, &path).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            conn = connect(addr).await.expect("reconnect");
            continue;
        };
        let text = String::from_utf8_lossy(&body).to_string();
        let listed = parts(&text);
        let uris = maps(&text)
            .into_iter()
            .chain(listed.iter().map(|(_, _, u)| u.clone()));
        for uri in uris {
            if have.insert(uri.clone()) {
                let Ok((200, bytes)) = get(&mut conn, addr, &format!("{base}/{uri}")).await else {
                    have.remove(&uri);
                    continue;
                };
                let tmp = dir.join(format!(".{uri}"));
                std::fs::write(&tmp, &bytes).expect("write");
                std::fs::rename(&tmp, dir.join(&uri)).expect("rename");
            }
        }
        let mut plain = String::with_capacity(text.len());
        for l in text.lines().filter(|l| {
            !l.starts_with("#EXT-X-SERVER-CONTROL") && !l.starts_with("#EXT-X-PRELOAD-HINT")
        }) {
            plain.push_str(l);
            plain.push('\n');
        }
        let tmp = dir.join(format!(".{name}"));
        std::fs::write(&tmp, plain).expect("write");
        std::fs::rename(&tmp, dir.join(&name)).expect("rename");
        // Forget what left the playlist (and its file), keeping the directory small.
        let listed_now: std::collections::HashSet<_> =
            listed.iter().map(|(_, _, u)| u.clone()).collect();
        have.retain(|u| {
            let keep = listed_now.contains(u)
                || std::path::Path::new(u)
                    .extension()
                    .is_some_and(|e| e == "mp4");
            if !keep {
                let _ = std::fs::remove_file(dir.join(u));
            }
            keep
        });
        last = listed.last().map(|(m, p, _)| (*m, *p)).or(last);
    }
}

fn quantile(v: &mut [u64], q: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // an index
    let i = ((v.len() as f64 * q) as usize).min(v.len() - 1);
    v[i]
}

#[tokio::main]
async fn main() {
    let args = Arc::new(Args::parse());
    if let Some(dir) = args.mirror.clone() {
        mirror(args, dir).await;
        return;
    }
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let ramp = Duration::from_secs_f64(1.0 / args.ramp_per_sec.max(1) as f64);
    for _ in 0..args.viewers {
        tasks.push(tokio::spawn(viewer(
            args.clone(),
            counters.clone(),
            stop.clone(),
        )));
        tokio::time::sleep(ramp).await;
    }
    // Let everyone reach the live edge.
    tokio::time::sleep(Duration::from_secs(3)).await;
    counters.spread.lock().unwrap().clear();
    let start = Instant::now();
    let cpu0 = args.server_pid.and_then(proc_sample);
    let own0 = proc_sample(std::process::id());
    let mut all_spread = Vec::new();
    let (mut parts0, mut bytes0, mut pl0) = (
        counters.parts.load(Ordering::Relaxed),
        counters.bytes.load(Ordering::Relaxed),
        counters.playlists.load(Ordering::Relaxed),
    );
    let (parts_start, playlists_start) = (parts0, pl0);
    println!("  s   parts/s   Mbit/s  playlists/s  errors  spread p50/p99 ms");
    for sec in 1..=args.seconds {
        tokio::time::sleep_until((start + Duration::from_secs(sec)).into()).await;
        let parts = counters.parts.load(Ordering::Relaxed);
        let bytes = counters.bytes.load(Ordering::Relaxed);
        let pls = counters.playlists.load(Ordering::Relaxed);
        let mut spread = std::mem::take(&mut *counters.spread.lock().unwrap());
        let (p50, p99) = (quantile(&mut spread, 0.5), quantile(&mut spread, 0.99));
        all_spread.extend(spread);
        println!(
            "{sec:>3} {:>9} {:>8.1} {:>12} {:>7} {:>7}/{}",
            parts - parts0,
            (bytes - bytes0) as f64 * 8.0 / 1e6,
            pls - pl0,
            counters.errors.load(Ordering::Relaxed),
            p50,
            p99
        );
        (parts0, bytes0, pl0) = (parts, bytes, pls);
        // Old first-arrival entries are not needed.
        if sec % 10 == 0 {
            counters
                .first
                .lock()
                .unwrap()
                .retain(|_, t| t.elapsed() < Duration::from_secs(30));
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let total_parts = counters.parts.load(Ordering::Relaxed) - parts_start;
    let playlists = counters.playlists.load(Ordering::Relaxed) - playlists_start;
    let per_viewer = |n: u64| n as f64 / elapsed / args.viewers as f64;
    println!(
        "viewers {}  per viewer: parts/s {:.2}, requests/s {:.2}  delivery spread p50 {} ms p99 {} ms  errors {}",
        args.viewers,
        per_viewer(total_parts),
        per_viewer(total_parts + playlists),
        quantile(&mut all_spread, 0.5),
        quantile(&mut all_spread, 0.99),
        counters.errors.load(Ordering::Relaxed)
    );
    if let (Some(pid), Some((ms0, _))) = (args.server_pid, cpu0)
        && let Some((ms1, rss)) = proc_sample(pid)
    {
        let cpu = (ms1 - ms0) as f64;
        println!(
            "server CPU {:.0} ms over {elapsed:.1} s: {:.4} ms per viewer-second ({:.0} % of a core), RSS {} MiB",
            cpu,
            cpu / elapsed / args.viewers as f64,
            cpu / elapsed / 10.0,
            rss / 1024
        );
    }
    if let (Some((a, _)), Some((b, _))) = (own0, proc_sample(std::process::id())) {
        println!(
            "load tool CPU {:.0} % of a core (near 100 %: the tool, not the server, sets the pace)",
            (b - a) as f64 / elapsed / 10.0
        );
    }
    stop.store(1, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
}
