//! `media-server`: the platform's streaming and media server role.

use clap::Parser;
use videopick_examples::{CommonFlags, JobFlags, MediaFlags, shutdown_signal};

/// The streaming and media server: RTMP ingest and play, HTTP-FLV, live HLS and recordings,
/// tus uploads, transcoding jobs and VOD files, stream stats and metrics, over the
/// block-storage root.
#[derive(Debug, Parser)]
#[command(name = "media-server", version)]
struct Args {
    #[command(flatten)]
    common: CommonFlags,
    #[command(flatten)]
    media: MediaFlags,
    #[command(flatten, next_help_heading = "Transcoding")]
    jobs: JobFlags,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let result = async {
        let mut config = args.common.start()?;
        args.media.apply(&mut config.media);
        args.jobs.apply(&mut config.media.jobs);
        let server = videopick_server::media::MediaServer::bind(config.media)
            .await
            .map_err(|e| e.to_string())?;
        // Readiness lines on stdout (scripts and tests read the bound addresses here).
        println!(
            "media-server: rtmp on rtmp://{}",
            server.rtmp_addr().map_err(|e| e.to_string())?
        );
        println!(
            "media-server: listening on http://{}",
            server.http_addr().map_err(|e| e.to_string())?
        );
        server.run(shutdown_signal()).await;
        Ok::<(), String>(())
    };
    match result.await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("media-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
