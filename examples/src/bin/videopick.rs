//! `videopick`: the all-in-one VideoPick server on embedded defaults (filesystem storage,
//! in-process buses, no database).
//!
//! Today it opens the block-storage root, keeps it (stale `tmp/` sweep, recording retention)
//! and serves `GET /metrics` and `GET /healthz` on the HTTP port. Live streaming, uploads,
//! chat and transcoding join this binary as their crates land.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use hyper::{Method, StatusCode};
use videopick_examples::Housekeeper;
use videopick_examples::http::{respond, serve};
use videopick_storage::{RetentionPolicy, Storage, StorageOptions};

/// Command line (every flag also reads an environment variable).
#[derive(Debug, Parser)]
#[command(name = "videopick", version, about)]
struct Args {
    /// Storage root (production: /mnt/storage).
    #[arg(long, env = "VIDEOPICK_STORAGE", default_value = "./data")]
    storage: std::path::PathBuf,
    /// HTTP listen address (HTTP-FLV, HLS, TUS and /metrics share it).
    #[arg(long, env = "VIDEOPICK_HTTP", default_value = "127.0.0.1:8000")]
    http: SocketAddr,
    /// Bytes always left free on the storage file system by space reservations.
    #[arg(long, env = "VIDEOPICK_MIN_FREE_BYTES", default_value_t = 1 << 30)]
    min_free_bytes: u64,
    /// Seconds after which an abandoned entry in tmp/ is swept.
    #[arg(long, env = "VIDEOPICK_TMP_TTL_SECS", default_value_t = 86_400)]
    tmp_ttl_secs: u64,
    /// Remove recordings older than this many days (unset: keep forever).
    #[arg(long, env = "VIDEOPICK_RECORDINGS_MAX_AGE_DAYS")]
    recordings_max_age_days: Option<u64>,
    /// Remove the oldest recordings beyond this many bytes in total (unset: no limit).
    #[arg(long, env = "VIDEOPICK_RECORDINGS_MAX_BYTES")]
    recordings_max_bytes: Option<u64>,
    /// Seconds between housekeeping passes.
    #[arg(long, env = "VIDEOPICK_HOUSEKEEPING_SECS", default_value_t = 60)]
    housekeeping_secs: u64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("videopick: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let options = StorageOptions::default()
        .min_free_bytes(args.min_free_bytes)
        .tmp_ttl(Duration::from_secs(args.tmp_ttl_secs));
    let storage = Storage::open_with(&args.storage, options)?;
    let retention = RetentionPolicy {
        max_age: args
            .recordings_max_age_days
            .map(|d| Duration::from_secs(d * 86_400)),
        max_total_bytes: args.recordings_max_bytes,
    };
    let keeper = Housekeeper::new(storage.clone(), retention);
    tokio::spawn(
        keeper
            .clone()
            .run_every(Duration::from_secs(args.housekeeping_secs.max(1))),
    );

    let listener = tokio::net::TcpListener::bind(args.http).await?;
    println!("videopick: storage {}", storage.root().display());
    println!("videopick: listening on http://{}", listener.local_addr()?);

    let handler =
        move |req: &hyper::Request<hyper::body::Incoming>| match (req.method(), req.uri().path()) {
            (&Method::GET, "/metrics") => respond(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                keeper.render_metrics(),
            ),
            (&Method::GET, "/healthz") => respond(StatusCode::OK, "text/plain", "ok\n"),
            _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
        };
    serve(listener, handler, shutdown_signal()).await;
    println!("videopick: shut down");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return ctrl_c.await.unwrap_or(());
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
