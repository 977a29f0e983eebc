//! `tus-load`: N concurrent tus uploads of a given size against any tus server, each one
//! POST and one streaming PATCH (as tus-js-client does by default). Reports aggregate
//! MB/s and, with `--server-pid`, the server's peak RSS and CPU seconds per GB.
//!
//! ```text
//! tus-load --endpoint http://127.0.0.1:18000/files/ --uploads 50 --size-mb 100 --server-pid $PID
//! ```

#![allow(clippy::cast_precision_loss)] // figures for humans

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use videopick_benches::proc_sample;

use clap::Parser;

/// Command line.
#[derive(Debug, Parser)]
#[command(name = "tus-load", about = "Concurrent tus uploads against a server")]
struct Args {
    /// Creation URL (`http://host:port/files/`).
    #[arg(long)]
    endpoint: String,
    /// Concurrent uploads.
    #[arg(long, default_value_t = 50)]
    uploads: usize,
    /// Size of each upload in MiB.
    #[arg(long, default_value_t = 100)]
    size_mb: u64,
    /// Sample this process's RSS and CPU (the server under test).
    #[arg(long)]
    server_pid: Option<u32>,
}

fn upload(host: &str, path: &str, size: u64) -> std::io::Result<()> {
    let mut c = TcpStream::connect(host)?;
    write!(
        c,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nTus-Resumable: 1.0.0\r\nUpload-Length: {size}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut resp = String::new();
    c.read_to_string(&mut resp)?;
    let location = resp
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("location")
                .then(|| v.trim().to_string())
        })
        .ok_or_else(|| std::io::Error::other(format!("no Location: {resp}")))?;
    let mut c = TcpStream::connect(host)?;
    write!(
        c,
        "PATCH {location} HTTP/1.1\r\nHost: {host}\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    )?;
    let block = vec![0x5a_u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        c.write_all(&block[..n])?;
        left -= n as u64;
    }
    let mut resp = String::new();
    c.read_to_string(&mut resp)?;
    if resp.starts_with("HTTP/1.1 204") {
        Ok(())
    } else {
        Err(std::io::Error::other(resp))
    }
}

fn main() {
    let a = Args::parse();
    let rest = a
        .endpoint
        .strip_prefix("http://")
        .expect("http:// endpoint");
    let (host, path) = rest.split_at(rest.find('/').expect("a path"));
    let size = a.size_mb << 20;
    let done = Arc::new(AtomicBool::new(false));
    let peak_rss = Arc::new(AtomicU64::new(0));
    let sampler = a.server_pid.map(|pid| {
        let (done, peak) = (done.clone(), peak_rss.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some((_, rss)) = proc_sample(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    });
    let before = a.server_pid.and_then(proc_sample);
    let start = Instant::now();
    let workers: Vec<_> = (0..a.uploads)
        .map(|_| {
            let (host, path) = (host.to_string(), path.to_string());
            std::thread::spawn(move || upload(&host, &path, size))
        })
        .collect();
    let mut failed = 0;
    for w in workers {
        if let Err(e) = w.join().expect("worker") {
            eprintln!("upload failed: {e}");
            failed += 1;
        }
    }
    let wall = start.elapsed();
    done.store(true, Ordering::Relaxed);
    if let Some(s) = sampler {
        let _ = s.join();
    }
    let total = size * a.uploads as u64;
    let mb = total as f64 / 1e6;
    println!(
        "{} uploads x {} MiB in {:.2} s: {:.0} MB/s aggregate, {failed} failed",
        a.uploads,
        a.size_mb,
        wall.as_secs_f64(),
        mb / wall.as_secs_f64()
    );
    if let (Some(pid), Some((t0, rss0))) = (a.server_pid, before)
        && let Some((t1, _)) = proc_sample(pid)
    {
        let cpu = (t1 - t0) as f64 / 1000.0;
        let peak = peak_rss.load(Ordering::Relaxed);
        println!(
            "server: {:.2} CPU s per GB, peak RSS {} MiB ({} KiB above idle, {:.0} KiB per active upload)",
            cpu / (total as f64 / 1e9),
            peak / 1024,
            peak.saturating_sub(rss0),
            peak.saturating_sub(rss0) as f64 / a.uploads as f64
        );
    }
}
