//! `videopick`: the all-in-one VideoPick server on embedded defaults (filesystem storage,
//! in-process buses, no database).
//!
//! The media role — RTMP ingest and play on 1935; HTTP-FLV, HLS, tus uploads, transcoding
//! jobs, `/api/…`, `/metrics` and `/healthz` on 8000; storage housekeeping — and the chat
//! role — Socket.IO-compatible chat on 3001 (`/socket.io/`, `/metrics`). Chat users sign
//! in with tokens signed by `--jwt-secret`; without one the chat is read-only for
//! anonymous viewers.

use std::net::SocketAddr;

use clap::Parser;
use videopick_examples::chat::{self, ChatArgs};
use videopick_examples::media::{self, MediaArgs};

/// Command line (every flag also reads an environment variable).
#[derive(Debug, Parser)]
#[command(name = "videopick", version, about)]
struct Args {
    #[command(flatten)]
    media: MediaArgs,
    /// Address of the chat (Socket.IO) server.
    #[arg(long, env = "VIDEOPICK_CHAT_LISTEN", default_value = "127.0.0.1:3001")]
    chat_listen: SocketAddr,
    /// HS256 secret of the chat's sign-in tokens (without it, anonymous read-only chat).
    #[arg(long, env = "VIDEOPICK_JWT_SECRET")]
    jwt_secret: Option<String>,
    /// Redis URL: the chat's rooms span every node on this Redis.
    #[arg(long, env = "VIDEOPICK_CHAT_REDIS")]
    chat_redis: Option<String>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // The chat role's other settings keep chat-server's defaults (and environment).
    let mut chat_args = ChatArgs::defaults();
    chat_args.listen = args.chat_listen;
    chat_args.anonymous = args.jwt_secret.is_none();
    chat_args.jwt_secret = args.jwt_secret;
    chat_args.redis = args.chat_redis;
    let result = tokio::select! {
        biased; // the media role's start-up errors (storage, listeners) come first
        r = media::run("videopick", args.media) => r,
        r = chat::run("videopick chat", chat_args) => r,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("videopick: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
