//! `app-server`: the platform's application server role (the API on port 8080).

use videopick_examples::{APP_KEYS, Table, command, fail, load, shutdown_signal};
use videopick_server::app::AppServer;

const TABLES: &[Table] = &[Table::all("app", APP_KEYS)];

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let about = "The application server: accounts and sessions, channels and their stream keys, \
                 live sessions, the video catalog and chat tokens — the REST API at /api/v1 \
                 (OpenAPI at /api/v1/openapi.json) on SQLite or PostgreSQL, cached in process \
                 or in Redis";
    let matches = command("app-server", about, TABLES).get_matches();
    let run = async {
        let config = load(&matches, TABLES)?;
        let server = AppServer::bind(config.app)
            .await
            .map_err(|e| e.to_string())?;
        // Readiness line on stdout (scripts and tests read the bound address here).
        let addr = server.local_addr().map_err(|e| e.to_string())?;
        println!("app-server: listening on http://{addr}");
        server.run(shutdown_signal()).await;
        Ok::<(), String>(())
    };
    run.await.map_or_else(
        |e| fail("app-server", &e),
        |()| std::process::ExitCode::SUCCESS,
    )
}
