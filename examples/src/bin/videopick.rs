//! `videopick`: the all-in-one VideoPick server on embedded defaults.

use videopick_examples::{
    CHAT_KEYS, JOBS_KEYS, MEDIA_KEYS, Table, command, fail, load, shutdown_signal,
};
use videopick_server::chat::ChatServer;
use videopick_server::media::MediaServer;
use videopick_server::metrics::Metrics;

/// The chat keys offered here; the rest come from the `[chat]` table of `--config`.
const CHAT: Table = Table {
    name: "chat",
    keys: CHAT_KEYS,
    prefix: "chat-",
    only: &["listen", "redis", "trusted_proxies"],
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
];

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let about = "The whole platform in one process on embedded defaults (filesystem storage, \
                 in-process buses and queue): the media role (RTMP on 1935; HTTP-FLV, HLS, tus \
                 uploads, jobs, VOD, /metrics on 8000) and the chat role (Socket.IO on 3001). \
                 Without --jwt-secret the chat is read-only for anonymous viewers";
    let matches = command("videopick", about, TABLES).get_matches();
    let run = async {
        let mut config = load(&matches, TABLES)?;
        config.chat.anonymous |= config.chat.jwt_secret.is_none();
        // One metrics registry: /metrics of either role shows both.
        let metrics = Metrics::new();
        let media = MediaServer::bind_with(config.media, metrics.clone()).await;
        let media = media.map_err(|e| e.to_string())?;
        let chat = ChatServer::bind_with(config.chat, metrics).map_err(|e| e.to_string())?;
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
