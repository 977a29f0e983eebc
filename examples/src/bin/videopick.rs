//! `videopick`: the all-in-one VideoPick server on embedded defaults.

use std::net::SocketAddr;

use clap::Parser;
use videopick_examples::{CommonFlags, JobFlags, MediaFlags, shutdown_signal};

/// The whole platform in one process on embedded defaults (filesystem storage, in-process
/// buses and queue): the media role (RTMP on 1935; HTTP-FLV, HLS, tus uploads, jobs, VOD,
/// `/metrics` on 8000) and the chat role (Socket.IO on 3001). Chat users sign in with
/// tokens signed by `--jwt-secret`; without one the chat is read-only for anonymous
/// viewers. Other chat settings come from the `[chat]` table of `--config`.
#[derive(Debug, Parser)]
#[command(name = "videopick", version)]
struct Args {
    #[command(flatten)]
    common: CommonFlags,
    #[command(flatten)]
    media: MediaFlags,
    #[command(flatten, next_help_heading = "Transcoding")]
    jobs: JobFlags,
    /// Address of the chat (Socket.IO) server [default: 127.0.0.1:3001].
    #[arg(long, env = "VIDEOPICK_CHAT_LISTEN", help_heading = "Chat")]
    chat_listen: Option<SocketAddr>,
    /// HS256 secret of the chat's sign-in tokens (without it, anonymous read-only chat).
    #[arg(
        long,
        env = "VIDEOPICK_JWT_SECRET",
        hide_env_values = true,
        help_heading = "Chat"
    )]
    jwt_secret: Option<String>,
    /// Redis URL: the chat's rooms span every node on this Redis.
    #[arg(
        long,
        env = "VIDEOPICK_CHAT_REDIS",
        hide_env_values = true,
        help_heading = "Chat"
    )]
    chat_redis: Option<String>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let result = async {
        let mut config = args.common.start()?;
        args.media.apply(&mut config.media);
        args.jobs.apply(&mut config.media.jobs);
        let mut chat = config.chat;
        if let Some(a) = args.chat_listen {
            chat.listen = a;
        }
        if args.jwt_secret.is_some() {
            chat.jwt_secret = args.jwt_secret;
        }
        if args.chat_redis.is_some() {
            chat.redis = args.chat_redis;
        }
        chat.anonymous = chat.anonymous || chat.jwt_secret.is_none();
        // One metrics registry: /metrics of either role shows both.
        let metrics = videopick_server::metrics::Metrics::new();
        let media = videopick_server::media::MediaServer::bind_with(config.media, metrics.clone())
            .await
            .map_err(|e| e.to_string())?;
        let chat = videopick_server::chat::ChatServer::bind_with(chat, metrics)
            .map_err(|e| e.to_string())?;
        let addr = |r: std::io::Result<SocketAddr>| r.map_err(|e| e.to_string());
        println!("videopick: rtmp on rtmp://{}", addr(media.rtmp_addr())?);
        println!(
            "videopick: listening on http://{}",
            addr(media.http_addr())?
        );
        println!("videopick: chat on http://{}", addr(chat.local_addr())?);
        // One signal stops both roles; each drains before the process exits.
        let (stop, _) = tokio::sync::broadcast::channel::<()>(1);
        let (mut stop_media, mut stop_chat) = (stop.subscribe(), stop.subscribe());
        let media = tokio::spawn(media.run(async move {
            let _ = stop_media.recv().await;
        }));
        let chat = tokio::spawn(chat.run(async move {
            let _ = stop_chat.recv().await;
        }));
        shutdown_signal().await;
        let _ = stop.send(());
        let (m, c) = tokio::join!(media, chat);
        m.map_err(|e| e.to_string())?;
        c.map_err(|e| e.to_string())?.map_err(|e| e.to_string())
    };
    match result.await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("videopick: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
