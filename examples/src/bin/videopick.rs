//! `videopick`: the all-in-one VideoPick server on embedded defaults.

use videopick_examples::{
    APP_KEYS, CHAT_KEYS, JOBS_KEYS, MEDIA_KEYS, Table, command, fail, load, shutdown_signal,
};
use videopick_server::chat::ChatServer;
use videopick_server::media::MediaServer;
use videopick_server::metrics::Metrics;

/// The chat keys offered here; the rest come from the `[chat]` table of `--config`.
const CHAT: Table = Table {
    name: "chat",
    keys: CHAT_KEYS,
    prefix: "chat-",
    only: &["listen", "redis", "trusted_proxies", "allowed_origins"],
};
const TABLES: &[Table] = &[
    Table::all("media", MEDIA_KEYS),
    Table::all("jobs", JOBS_KEYS),
    CHAT,
    Table {
        prefix: "",
        only: &["jwt_secret"],
        ..CHAT
    },
    // The app role shares the media role's HTTP listener and storage root.
    Table {
        name: "app",
        keys: APP_KEYS,
        prefix: "",
        only: &[
            "db",
            "cache",
            "cookie_secure",
            "allowed_origins",
            "chat_url",
            "rtmp_url",
            "live_app",
            "session_ttl_hours",
            "web_dir",
        ],
    },
];

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let about = "The whole platform in one process on embedded defaults (filesystem storage, \
                 SQLite, in-process buses, queue and cache): the media role (RTMP on 1935; \
                 HTTP-FLV, HLS, tus uploads, jobs, VOD, /metrics on 8000), the app role (the \
                 web app at / and the platform API at /api/v1 on the same port: accounts, \
                 channels and their stream keys, videos) and the chat role (Socket.IO on \
                 3001; signed-in users post with tokens the API mints, anonymous viewers \
                 read). Without --jwt-secret the chat's token secret is made once and kept \
                 in the storage root";
    let matches = command("videopick", about, TABLES).get_matches();
    let run = async {
        let mut config = load(&matches, TABLES)?;
        // The site's viewers read a channel's chat without signing in; writing needs a
        // token the API mints (POST /api/v1/chat/token) with the chat's secret.
        config.chat.anonymous = true;
        if config.chat.jwt_secret.as_deref().is_none_or(str::is_empty) {
            config.chat.jwt_secret = Some(
                videopick_server::chat::kept_secret(&config.media.storage)
                    .map_err(|e| e.to_string())?,
            );
        }
        // One metrics registry: /metrics of either role shows both.
        let metrics = Metrics::new();
        let secret = config.chat.jwt_secret.clone();
        let chat =
            ChatServer::bind_with(config.chat, metrics.clone()).map_err(|e| e.to_string())?;
        // The page reaches the chat on its port of the host the browser used.
        if config.app.chat_url.is_empty() {
            let port = chat.local_addr().map_err(|e| e.to_string())?.port();
            config.app.chat_url = format!("http://{{host}}:{port}");
        }
        let media = MediaServer::bind_platform(
            config.media,
            metrics.clone(),
            &config.app,
            secret.as_deref(),
        )
        .await;
        let media = media.map_err(|e| e.to_string())?;
        let text = |r: std::io::Result<std::net::SocketAddr>| r.map_err(|e| e.to_string());
        println!("videopick: rtmp on rtmp://{}", text(media.rtmp_addr())?);
        println!(
            "videopick: listening on http://{}",
            text(media.http_addr())?
        );
        println!("videopick: chat on http://{}", text(chat.local_addr())?);
        // One signal stops both roles; each drains before the process exits.
        let (stop, _) = tokio::sync::broadcast::channel::<()>(1);
        let (mut a, mut b) = (stop.subscribe(), stop.subscribe());
        let media = tokio::spawn(media.run(async move { a.recv().await.unwrap_or(()) }));
        let chat = tokio::spawn(chat.run(async move { b.recv().await.unwrap_or(()) }));
        shutdown_signal().await;
        let _ = stop.send(());
        let (m, c) = tokio::join!(media, chat);
        m.map_err(|e| e.to_string())?;
        c.map_err(|e| e.to_string())?.map_err(|e| e.to_string())
    };
    run.await.map_or_else(
        |e| fail("videopick", &e),
        |()| std::process::ExitCode::SUCCESS,
    )
}
