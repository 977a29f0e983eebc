//! `media-server`: the platform's streaming server role — RTMP ingest and play, HTTP-FLV,
//! stream stats and metrics — over the block-storage root.

use clap::Parser;
use videopick_examples::media::{MediaArgs, run};

/// Command line (every flag also reads an environment variable).
#[derive(Debug, Parser)]
#[command(name = "media-server", version, about)]
struct Args {
    #[command(flatten)]
    media: MediaArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run("media-server", args.media).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("media-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
