//! `chat-server`: the platform's chat role.

use videopick_examples::{CHAT_KEYS, Table, command, fail, load, shutdown_signal};
use videopick_server::chat::ChatServer;

const TABLES: &[Table] = &[Table::all("chat", CHAT_KEYS)];

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let about = "The chat server: Socket.IO-compatible rooms beside each stream, with history, \
                 moderation, slow mode and rate limits; several nodes share rooms through Redis";
    let matches = command("chat-server", about, TABLES).get_matches();
    let run = async {
        let config = load(&matches, TABLES)?;
        let server = ChatServer::bind(config.chat).map_err(|e| e.to_string())?;
        // Readiness line on stdout (scripts and tests read the bound address here).
        let addr = server.local_addr().map_err(|e| e.to_string())?;
        println!("chat-server: listening on http://{addr}");
        server
            .run(shutdown_signal())
            .await
            .map_err(|e| e.to_string())
    };
    run.await.map_or_else(
        |e| fail("chat-server", &e),
        |()| std::process::ExitCode::SUCCESS,
    )
}
