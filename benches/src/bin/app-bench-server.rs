//! `app-bench-server`: the app role seeded for load tests — live channels with viewers
//! and a catalog of ready public videos — served like `app-server`, plus the cost of a
//! sign-in (argon2id) measured before serving. Load it with `wrk` and
//! `benches/wrk/hot-reads.lua` (see docs/BENCHMARKS.md).
//!
//! ```text
//! taskset -c 0 app-bench-server --listen 127.0.0.1:18081 &            # SQLite, in-process cache
//! taskset -c 0 app-bench-server --db postgres://postgres@127.0.0.1/bench --cache redis://127.0.0.1/ &
//! WRK_INTERVAL_MS=10 taskset -c 1 wrk -t1 -c50 -d30s --latency -s benches/wrk/hot-reads.lua \
//!     http://127.0.0.1:18081 /api/v1/live /api/v1/videos/<id printed at start>
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clap::Parser;
use videopick_app::accounts::{SignIn, SignUp};
use videopick_app::channels::{NewChannel, StreamHealth};
use videopick_app::videos::{Processed, Rendition};
use videopick_server::app::AppServer;
use videopick_server::config::AppConfig;

#[derive(Parser)]
struct Args {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:18081")]
    listen: std::net::SocketAddr,
    /// Database URL (empty: SQLite in a temporary directory).
    #[arg(long, default_value = "")]
    db: String,
    /// Redis URL of the cache (empty: in process).
    #[arg(long, default_value = "")]
    cache: String,
    /// Live channels to seed.
    #[arg(long, default_value_t = 20)]
    live: usize,
    /// Ready public videos to seed.
    #[arg(long, default_value_t = 100)]
    videos: usize,
    /// Sign-ins to time before serving.
    #[arg(long, default_value_t = 20)]
    sign_ins: usize,
}

#[tokio::main]
#[allow(clippy::too_many_lines)] // seed, measure, serve: one straight sequence
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let mut config = AppConfig::default();
    config.listen = args.listen;
    config.data = dir.path().to_path_buf();
    config.db.clone_from(&args.db);
    config.cache.clone_from(&args.cache);
    config.cache_prefix = format!("vp-bench-{}:", std::process::id());
    let server = AppServer::bind(config).await?;
    let app = server.app().clone();

    let user = app
        .sign_up(SignUp {
            username: format!("bench{}", std::process::id()),
            email: format!("bench{}@example.com", std::process::id()),
            password: "correct horse battery".into(),
        })
        .await?;
    let mut t = Vec::new();
    for _ in 0..args.sign_ins {
        let start = Instant::now();
        app.sign_in(SignIn {
            login: user.user.username.clone(),
            password: "correct horse battery".into(),
        })
        .await?;
        t.push(start.elapsed());
    }
    t.sort();
    if !t.is_empty() {
        println!(
            "sign-in: {} runs, median {:.1} ms, max {:.1} ms (argon2id m=19456 KiB t=2 p=1)",
            t.len(),
            t[t.len() / 2].as_secs_f64() * 1000.0,
            t[t.len() - 1].as_secs_f64() * 1000.0
        );
    }
    let health = StreamHealth {
        video_codec: Some("avc1.64001f".into()),
        audio_codec: Some("mp4a.40.2".into()),
        width: Some(1280),
        height: Some(720),
        fps: Some(30.0),
        bitrate_kbps: Some(2600),
    };
    let mut slugs = Vec::new();
    for i in 0..args.live.max(1) {
        let slug = format!("bench-{}-{i}", std::process::id());
        // One creator per channel (an account owns at most ten); the first is the
        // signed-in one, whose channel gets the videos.
        let owner = if i == 0 {
            user.user.clone()
        } else {
            app.sign_up(SignUp {
                username: format!("creator{i}_{}", std::process::id()),
                email: format!("creator{i}_{}@example.com", std::process::id()),
                password: "correct horse battery".into(),
            })
            .await?
            .user
        };
        app.create_channel(
            &owner,
            NewChannel {
                slug: slug.clone(),
                name: format!("라이브 {i}"),
                description: "벤치마크 채널".into(),
                record: Some(false),
            },
        )
        .await?;
        if i < args.live {
            app.stream_started("live", &slug).await?;
            app.stream_stats("live", &slug, i64::try_from(i * 7).unwrap_or(0), &health)
                .await?;
        }
        slugs.push(slug);
    }
    let meta = HashMap::from([("title".to_string(), "벤치마크 영상".to_string())]);
    let mut ids = Vec::new();
    for i in 0..args.videos {
        let upload = format!("bench-upload-{i}");
        let id = app.upload_started(&user.user, &upload, &meta).await?;
        let job = format!("bench-job-{i}");
        app.attach_job(&id, &job).await?;
        app.job_finished(
            &job,
            &Processed {
                duration_ms: Some(60_000),
                renditions: vec![Rendition {
                    name: "720p".into(),
                    width: 1280,
                    height: 720,
                    bitrate_kbps: 2800,
                }],
                poster: Some(format!("/vod/{upload}/poster.jpg")),
                storyboard: Some(format!("/vod/{upload}/storyboard.vtt")),
                playlist: Some(format!("/vod/{upload}/master.m3u8")),
            },
        )
        .await?;
        ids.push(id);
    }
    println!(
        "app-bench-server: listening on http://{}",
        server.local_addr()?
    );
    println!("channel: /api/v1/channels/{}", slugs[0]);
    if let Some(id) = ids.first() {
        println!("video: /api/v1/videos/{id}");
    }
    server
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    drop(dir);
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}
