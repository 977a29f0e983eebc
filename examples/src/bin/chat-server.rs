//! `chat-server`: the platform's chat role.

use clap::Parser;
use videopick_examples::{ChatFlags, CommonFlags, shutdown_signal};

/// The chat server: Socket.IO-compatible rooms beside each stream, with history,
/// moderation, slow mode and rate limits; several nodes share rooms through Redis.
#[derive(Debug, Parser)]
#[command(name = "chat-server", version)]
struct Args {
    #[command(flatten)]
    common: CommonFlags,
    #[command(flatten, next_help_heading = "Chat")]
    chat: ChatFlags,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let result = async {
        let mut config = args.common.start()?;
        args.chat.apply(&mut config.chat);
        let server =
            videopick_server::chat::ChatServer::bind(config.chat).map_err(|e| e.to_string())?;
        // Readiness line on stdout (scripts and tests read the bound address here).
        println!(
            "chat-server: listening on http://{}",
            server.local_addr().map_err(|e| e.to_string())?
        );
        server
            .run(shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    };
    match result.await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
