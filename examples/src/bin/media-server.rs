//! `media-server`: the platform's streaming and media server role.

use videopick_examples::{JOBS_KEYS, MEDIA_KEYS, Table, command, fail, load, shutdown_signal};
use videopick_server::media::MediaServer;

const TABLES: &[Table] = &[
    Table::all("media", MEDIA_KEYS),
    Table::all("jobs", JOBS_KEYS),
];

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let about = "The streaming and media server: RTMP ingest and play, HTTP-FLV, live HLS and \
                 recordings, tus uploads, transcoding jobs and VOD files, stream stats and \
                 metrics, over the block-storage root";
    let matches = command("media-server", about, TABLES).get_matches();
    let run = async {
        let config = load(&matches, TABLES)?;
        let server = MediaServer::bind(config.media)
            .await
            .map_err(|e| e.to_string())?;
        // Readiness lines on stdout (scripts and tests read the bound addresses here).
        let (rtmp, http) = (server.rtmp_addr(), server.http_addr());
        println!(
            "media-server: rtmp on rtmp://{}",
            rtmp.map_err(|e| e.to_string())?
        );
        println!(
            "media-server: listening on http://{}",
            http.map_err(|e| e.to_string())?
        );
        server.run(shutdown_signal()).await;
        Ok::<(), String>(())
    };
    run.await.map_or_else(
        |e| fail("media-server", &e),
        |()| std::process::ExitCode::SUCCESS,
    )
}
