//! `chat-server`: the platform's chat role — Socket.IO-compatible chat rooms with
//! moderation, for `socket.io-client`, at `http://HOST:3001/socket.io/`.

use clap::Parser;
use videopick_examples::chat::{ChatArgs, run};

/// Command line (every flag also reads an environment variable).
#[derive(Debug, Parser)]
#[command(name = "chat-server", version, about)]
struct Args {
    #[command(flatten)]
    chat: ChatArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run("chat-server", Args::parse().chat).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
