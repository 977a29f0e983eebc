//! `chat-load`: N Socket.IO-over-WebSocket clients in one chat room (a raw client: the
//! Engine.IO handshake, CONNECT with a token, `join`, pongs), and optionally a sender
//! posting `--rate` messages a second. Reports the connect ramp, idle memory per
//! connection of the server(s) (`--server-pid`), then for the sending window: deliveries
//! a second, loss, duplicates / reorders, delivery latency percentiles (send time is in
//! the message text, wall clock, so several load processes on one machine agree), and
//! the servers' CPU.
//!
//! ```text
//! chat-server --listen 127.0.0.1:3001 --jwt-secret s --rate 1000000 --max-connections-per-ip 1000000 &
//! chat-load --url 127.0.0.1:3001 --secret s --clients 10000 --rate 100 --seconds 20 \
//!           --server-pid $(pgrep chat-server)
//! ```
//!
//! One process may hold at most ~20,000 sockets here: for more, run several, each with its
//! own `--sources` (127.0.0.x source addresses, ~28,000 ports each) and `--tag`.

#![allow(clippy::cast_precision_loss, clippy::cast_sign_loss)] // figures for humans: rates and ratios

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Buf, BytesMut};
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use videopick_benches::proc_sample;

/// Command line.
#[derive(Debug, Parser)]
#[command(name = "chat-load", about = "Socket.IO chat room load generator")]
struct Args {
    /// Server address(es), comma-separated (clients are spread over them).
    #[arg(long, default_value = "127.0.0.1:3001")]
    url: String,
    /// Source addresses to bind, comma-separated (spread like the servers).
    #[arg(long, default_value = "127.0.0.1")]
    sources: String,
    /// HS256 secret of the server's tokens.
    #[arg(long, default_value = "secret")]
    secret: String,
    /// Receiving clients.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// The room.
    #[arg(long, default_value = "bench")]
    room: String,
    /// Handshakes in flight while ramping up.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Messages per second from the sender (0: idle clients only).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Seconds of sending (or of holding the idle clients).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Bytes of text per message (at least the timestamp).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Tag of this process's sender (several load processes on one room).
    #[arg(long, default_value = "t")]
    tag: String,
    /// Server process ids to sample (CPU, RSS), comma-separated.
    #[arg(long, default_value = "")]
    server_pid: String,
    /// Runtime worker threads (1: a current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Receivers open as socket.io-client does with its default transports: the
    /// long-polling handshake (open, CONNECT posted, its answer polled), a poll held while
    /// the WebSocket probe upgrades the session, then the room joined over the WebSocket.
    #[arg(long)]
    polling: bool,
}

/// Latency histogram: 100 µs buckets up to 20 s.
const BUCKET_US: u64 = 100;
const BUCKETS: usize = 200_000;

struct Stats {
    joined: AtomicU64,
    failed: AtomicU64,
    received: AtomicU64,
    disorder: AtomicU64,
    max_seq: AtomicU64,
    hist: Vec<AtomicU64>,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(0))
}

/// A masked client frame (text).
fn frame(text: &str) -> Vec<u8> {
    let p = text.as_bytes();
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut f = vec![0x81u8];
    match p.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n < 65_536 => {
            f.push(0xfe);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0xff);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(p.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// The next unmasked server frame in `buf`: (opcode, payload).
fn next_frame(buf: &mut BytesMut) -> Option<(u8, BytesMut)> {
    if buf.len() < 2 {
        return None;
    }
    let op = buf[0] & 0x0f;
    let (len, head) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (usize::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() >= 10 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (usize::try_from(u64::from_be_bytes(b)).ok()?, 10)
        }
        126 | 127 => return None,
        n => (usize::from(n), 2),
    };
    if buf.len() < head + len {
        return None;
    }
    buf.advance(head);
    Some((op, buf.split_to(len)))
}

async fn connect(server: SocketAddr, source: IpAddr) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(source, 0))?;
    let s = sock.connect(server).await?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// One HTTP/1.1 request on `s` and its response's body (`Content-Length` framed).
async fn http(s: &mut TcpStream, request: &str) -> std::io::Result<Vec<u8>> {
    s.write_all(request.as_bytes()).await?;
    http_response(s).await
}

async fn http_response(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let bad = |m: &str| std::io::Error::other(m.to_string());
    let mut got = Vec::with_capacity(512);
    let at = loop {
        let mut chunk = [0u8; 512];
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(bad("closed before a response"));
        }
        got.extend_from_slice(&chunk[..n]);
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    if !got.starts_with(b"HTTP/1.1 200") {
        return Err(bad(&String::from_utf8_lossy(&got[..at])));
    }
    let head = String::from_utf8_lossy(&got[..at]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| bad("no content-length"))?;
    let mut body = got.split_off(at);
    while body.len() < length {
        let mut chunk = [0u8; 512];
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(bad("closed mid-body"));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(body)
}

/// The long-polling half of socket.io-client's handshake: open, post CONNECT, poll its
/// answer; returns the session id and the connection whose next poll is held.
async fn open_polling(
    server: SocketAddr,
    source: IpAddr,
    token: &str,
) -> std::io::Result<(String, TcpStream)> {
    let bad = |m: &str| std::io::Error::other(m.to_string());
    let mut s = connect(server, source).await?;
    let base = "/socket.io/?EIO=4&transport=polling";
    let body = http(
        &mut s,
        &format!("GET {base} HTTP/1.1\r\nHost: {server}\r\n\r\n"),
    )
    .await?;
    let open: serde_json::Value = serde_json::from_slice(body.strip_prefix(b"0").unwrap_or(&body))
        .map_err(|_| bad("bad open packet"))?;
    let sid = open["sid"]
        .as_str()
        .ok_or_else(|| bad("no sid"))?
        .to_string();
    let path = format!("{base}&sid={sid}");
    let connect = format!("40{{\"token\":\"{token}\"}}");
    let ok = http(
        &mut s,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {server}\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n{connect}",
            connect.len()
        ),
    )
    .await?;
    if ok != b"ok" {
        return Err(bad("post refused"));
    }
    let answer = http(
        &mut s,
        &format!("GET {path} HTTP/1.1\r\nHost: {server}\r\n\r\n"),
    )
    .await?;
    if !answer.starts_with(b"40") {
        return Err(bad("connect refused"));
    }
    // The next poll is held until the upgrade ends it.
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {server}\r\n\r\n").as_bytes())
        .await?;
    Ok((sid, s))
}

/// Socket.IO handshake up to the join ack: over WebSocket, or (`polling`) as
/// socket.io-client does it by default.
async fn open(
    server: SocketAddr,
    source: IpAddr,
    token: &str,
    room: &str,
    polling: bool,
) -> std::io::Result<(TcpStream, BytesMut)> {
    let (sid, mut poll) = if polling {
        let (sid, poll) = open_polling(server, source, token).await?;
        (format!("&sid={sid}"), Some(poll))
    } else {
        (String::new(), None)
    };
    let mut s = connect(server, source).await?;
    s.write_all(
        format!(
            "GET /socket.io/?EIO=4&transport=websocket{sid} HTTP/1.1\r\nHost: {server}\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    )
    .await?;
    let mut buf = BytesMut::with_capacity(1024);
    let bad = |m: &str| std::io::Error::other(m.to_string());
    loop {
        if s.read_buf(&mut buf).await? == 0 {
            return Err(bad("closed during the upgrade"));
        }
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            if !buf.starts_with(b"HTTP/1.1 101") {
                return Err(bad("upgrade refused"));
            }
            buf.advance(at + 4);
            break;
        }
    }
    let mut step = 0;
    if let Some(poll) = &mut poll {
        // The probe over the WebSocket.
        s.write_all(&frame("2probe")).await?;
        loop {
            if let Some((op, p)) = next_frame(&mut buf) {
                if op == 1 && &p[..] == b"3probe" {
                    break;
                }
                continue;
            }
            if s.read_buf(&mut buf).await? == 0 {
                return Err(bad("closed during the probe"));
            }
        }
        // As the client does: polling paused (the held poll ended by the server's noop),
        // then the upgrade.
        if http_response(poll).await? != b"6" {
            return Err(bad("the held poll did not end with a noop"));
        }
        s.write_all(&frame("5")).await?;
        s.write_all(&frame(&format!("420[\"join\",{{\"room\":\"{room}\"}}]")))
            .await?;
        step = 2;
    }
    drop(poll);
    loop {
        while let Some((op, p)) = next_frame(&mut buf) {
            if op != 1 {
                continue;
            }
            match (step, &p[..]) {
                (0, [b'0', ..]) => {
                    s.write_all(&frame(&format!("40{{\"token\":\"{token}\"}}")))
                        .await?;
                    step = 1;
                }
                (1, [b'4', b'0', ..]) => {
                    s.write_all(&frame(&format!("421[\"join\",{{\"room\":\"{room}\"}}]")))
                        .await?;
                    step = 2;
                }
                (_, [b'4', b'4', ..]) => return Err(bad("connect refused")),
                (2, [b'4', b'3', b'1' | b'0', ..]) => {
                    if !p.windows(9).any(|w| w == b"\"ok\":true") {
                        return Err(bad("join refused"));
                    }
                    return Ok((s, buf));
                }
                (_, b"2") => s.write_all(&frame("3")).await?,
                _ => {}
            }
        }
        if s.read_buf(&mut buf).await? == 0 {
            return Err(bad("closed during the handshake"));
        }
    }
}

/// `"text":"<tag>:<seq>:<ns>:…"` in a message event: (seq, send time).
fn parse_message(p: &[u8], tag: &[u8]) -> Option<(u64, u64)> {
    const KEY: &[u8] = b"\"text\":\"";
    let at = p.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = p[at..].strip_prefix(tag)?.strip_prefix(b":")?;
    let mut it = rest.split(|b| *b == b':');
    let num = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<u64>().ok();
    Some((num(it.next()?)?, num(it.next()?)?))
}

/// A receiving client: counts messages, checks their order, records latency.
async fn receive(mut s: TcpStream, mut buf: BytesMut, tag: Arc<[u8]>, stats: Arc<Stats>) {
    let mut last: Option<u64> = None;
    loop {
        while let Some((op, p)) = next_frame(&mut buf) {
            match (op, &p[..]) {
                (8, _) => return,
                (1, b"2") if s.write_all(&frame("3")).await.is_err() => return,
                (1, [b'4', b'2', b'[', b'"', b'm', ..]) => {
                    let Some((seq, sent)) = parse_message(&p, &tag) else {
                        continue;
                    };
                    if last.is_some_and(|l| seq <= l) {
                        stats.disorder.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    last = Some(seq);
                    stats.received.fetch_add(1, Ordering::Relaxed);
                    stats.max_seq.fetch_max(seq, Ordering::Relaxed);
                    let us = now_ns().saturating_sub(sent) / 1000;
                    let b = usize::try_from(us / BUCKET_US)
                        .unwrap_or(BUCKETS - 1)
                        .min(BUCKETS - 1);
                    stats.hist[b].fetch_add(1, Ordering::Relaxed);
                }
                _ => {}
            }
        }
        if buf.capacity() - buf.len() < 512 {
            buf.reserve(4096);
        }
        match s.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn percentile(hist: &[u64], total: u64, q: f64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let want = ((total as f64) * q).ceil() as u64;
    let mut seen = 0;
    for (i, n) in hist.iter().enumerate() {
        seen += n;
        if seen >= want {
            return ((i as u64 + 1) * BUCKET_US) as f64 / 1000.0;
        }
    }
    f64::INFINITY
}

/// Loss, disorder and latency of `sent` messages to `joined` clients.
fn report_deliveries(stats: &Stats, sent: u64, joined: u64, before: u64) {
    let got = stats.received.load(Ordering::Relaxed) - before;
    let expected = sent * joined;
    let hist: Vec<u64> = stats
        .hist
        .iter()
        .map(|h| h.load(Ordering::Relaxed))
        .collect();
    let hn: u64 = hist.iter().sum();
    println!(
        "{sent} messages to {joined} clients: {got} of {expected} deliveries ({:.3} % lost), \
         {} duplicated or out of order",
        100.0 * expected.saturating_sub(got) as f64 / expected.max(1) as f64,
        stats.disorder.load(Ordering::Relaxed),
    );
    println!(
        "delivery latency: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms",
        percentile(&hist, hn, 0.50),
        percentile(&hist, hn, 0.90),
        percentile(&hist, hn, 0.99),
        percentile(&hist, hn, 0.999),
        percentile(&hist, hn, 1.0)
    );
}

fn sample_all(pids: &[u32]) -> (u64, u64) {
    pids.iter()
        .filter_map(|p| proc_sample(*p))
        .fold((0, 0), |a, s| (a.0 + s.0, a.1 + s.1))
}

fn main() {
    let args = Args::parse();
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(args.threads);
        b
    }
    .enable_all()
    .build()
    .expect("a runtime");
    rt.block_on(run(args));
}

#[allow(clippy::too_many_lines)] // one measured scenario, phase by phase
async fn run(args: Args) {
    let servers: Vec<SocketAddr> = args
        .url
        .split(',')
        .map(|a| a.trim().parse().expect("host:port"))
        .collect();
    let sources: Vec<IpAddr> = args
        .sources
        .split(',')
        .map(|a| a.trim().parse().expect("an IP address"))
        .collect();
    let pids: Vec<u32> = args
        .server_pid
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| p.trim().parse().expect("a pid"))
        .collect();
    let stats = Arc::new(Stats {
        joined: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        received: AtomicU64::new(0),
        disorder: AtomicU64::new(0),
        max_seq: AtomicU64::new(0),
        hist: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
    });
    let tag: Arc<[u8]> = Arc::from(args.tag.as_bytes());
    let token = |sub: &str| {
        videopick_chat_proto::app::auth::sign(
            &serde_json::json!({"sub": sub, "role": "viewer", "exp": 4_000_000_000u64}),
            args.secret.as_bytes(),
        )
    };
    let (_, rss0) = sample_all(&pids);

    // Ramp up.
    let t0 = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let polling = args.polling;
    for i in 0..args.clients {
        let (server, source) = (servers[i % servers.len()], sources[i % sources.len()]);
        let (token, room, tag, stats, gate) = (
            token(&format!("{}-{i}", args.tag)),
            args.room.clone(),
            tag.clone(),
            stats.clone(),
            gate.clone(),
        );
        tokio::spawn(async move {
            let permit = gate.acquire_owned().await;
            match open(server, source, &token, &room, polling).await {
                Ok((s, buf)) => {
                    drop(permit);
                    stats.joined.fetch_add(1, Ordering::Relaxed);
                    receive(s, buf, tag, stats).await;
                }
                Err(e) => {
                    if stats.failed.fetch_add(1, Ordering::Relaxed) < 5 {
                        eprintln!("client {i}: {e}");
                    }
                }
            }
        });
    }
    let n = args.clients as u64;
    while stats.joined.load(Ordering::Relaxed) + stats.failed.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ramp = t0.elapsed();
    let joined = stats.joined.load(Ordering::Relaxed);
    println!(
        "{joined} clients joined `{}` in {:.1} s ({:.0}/s), {} failed",
        args.room,
        ramp.as_secs_f64(),
        joined as f64 / ramp.as_secs_f64(),
        stats.failed.load(Ordering::Relaxed)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    if !pids.is_empty() {
        let (_, rss) = sample_all(&pids);
        println!(
            "server RSS {} MiB ({} KiB before the clients): {:.2} KiB per connection",
            rss / 1024,
            rss0,
            rss.saturating_sub(rss0) as f64 / joined.max(1) as f64
        );
    }
    if args.rate == 0 {
        // Hold the clients (and count what another process's sender with the same --tag
        // posts: until --seconds, or 3 s after its messages stop).
        let start = Instant::now();
        let (mut last, mut quiet_since) = (0, Instant::now());
        while start.elapsed() < Duration::from_secs(args.seconds) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = stats.received.load(Ordering::Relaxed);
            if now != last {
                (last, quiet_since) = (now, Instant::now());
            } else if now > 0 && quiet_since.elapsed() > Duration::from_secs(3) {
                break;
            }
        }
        if !pids.is_empty() {
            let (_, rss) = sample_all(&pids);
            println!(
                "after {:.0} s: server RSS {} MiB, {:.2} KiB per connection",
                start.elapsed().as_secs_f64(),
                rss / 1024,
                rss.saturating_sub(rss0) as f64 / joined.max(1) as f64
            );
        }
        if last > 0 {
            let sent = stats.max_seq.load(Ordering::Relaxed);
            report_deliveries(&stats, sent, joined, 0);
        }
        return;
    }

    // Send.
    let (mut sender, _) = open(servers[0], sources[0], &token("sender"), &args.room, false)
        .await
        .expect("the sender joins");
    let (cpu0, _) = sample_all(&pids);
    let received0 = stats.received.load(Ordering::Relaxed);
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / args.rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = args.rate * args.seconds;
    let pad = "x".repeat(args.size.saturating_sub(40));
    let mut sink = [0u8; 4096];
    for seq in 1..=total {
        tick.tick().await;
        let text = format!("{}:{seq}:{}:{pad}", args.tag, now_ns());
        let msg = format!(
            "42[\"message\",{{\"room\":\"{}\",\"text\":\"{text}\"}}]",
            args.room
        );
        if sender.write_all(&frame(&msg)).await.is_err() {
            eprintln!("the sender was cut off after {seq} messages");
            break;
        }
        // The sender's own copies and pings: read and drop (answer pings).
        while let Ok(k) = sender.try_read(&mut sink) {
            if k == 0 {
                break;
            }
            if sink[..k].windows(3).any(|w| w == [0x81, 0x01, b'2']) {
                let _ = sender.write_all(&frame("3")).await;
            }
        }
    }
    let sending = start.elapsed();
    // Stragglers.
    let expected = total * joined;
    let drain = Instant::now();
    while stats.received.load(Ordering::Relaxed) - received0 < expected
        && drain.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let wall = start.elapsed();
    let (cpu1, rss1) = sample_all(&pids);
    let got = stats.received.load(Ordering::Relaxed) - received0;
    println!("sent {total} messages in {:.2} s", sending.as_secs_f64());
    println!(
        "{:.0} deliveries/s over the sending window",
        got as f64 / sending.as_secs_f64()
    );
    report_deliveries(&stats, total, joined, received0);
    if !pids.is_empty() {
        let cpu = (cpu1 - cpu0) as f64 / 1000.0;
        println!(
            "server: {:.2} CPU s over {:.1} s ({:.0} % of a core), {:.2} µs CPU per delivery, RSS {} MiB",
            cpu,
            wall.as_secs_f64(),
            100.0 * cpu / wall.as_secs_f64(),
            cpu * 1e6 / got.max(1) as f64,
            rss1 / 1024
        );
    }
}
