//! `videopick`: the all-in-one VideoPick server on embedded defaults (filesystem storage,
//! in-process hub, no database).
//!
//! Today it runs the media role: RTMP ingest and play on 1935, HTTP-FLV, `/api/streams`,
//! `/metrics` and `/healthz` on 8000, and storage housekeeping. Uploads, chat and
//! transcoding join this binary as their crates land.

use clap::Parser;
use videopick_examples::media::{MediaArgs, run};

/// Command line (every flag also reads an environment variable).
#[derive(Debug, Parser)]
#[command(name = "videopick", version, about)]
struct Args {
    #[command(flatten)]
    media: MediaArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run("videopick", args.media).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("videopick: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
