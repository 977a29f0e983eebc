//! The unmodified `socket.io-client` (npm) against the server with echo handlers: the
//! default transports (polling, then the upgrade to WebSocket) and WebSocket only.

#![cfg(feature = "server")]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use videopick_chat_proto::chat_app::EchoApp;
use videopick_chat_proto::server::Server;
use videopick_chat_proto::session::EngineConfig;

async fn start() -> SocketAddr {
    let server = Server::new(
        EchoApp,
        EngineConfig {
            ping_interval: Duration::from_millis(300),
            ping_timeout: Duration::from_millis(200),
            ..EngineConfig::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let server = server.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let server = server.clone();
                    async move { Ok::<_, std::convert::Infallible>(server.handle(req, peer).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/js")
}

async fn run_client(addr: SocketAddr, mode: &str) -> Value {
    assert!(
        clients_dir().join("node_modules/socket.io-client").exists(),
        "run `npm ci` in clients/js (scripts/test.sh does)"
    );
    let out = tokio::process::Command::new("node")
        .arg(clients_dir().join("sio-echo.mjs"))
        .arg(format!("http://{addr}/"))
        .arg(mode)
        .output()
        .await
        .expect("node is installed");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(text.trim()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_io_client_with_default_transports_upgrades_to_websocket() {
    let addr = start().await;
    let out = run_client(addr, "polling").await;
    assert_eq!(out["auth"], json!({"token": "t0k3n"}));
    assert_eq!(out["echo"], json!([1, "2", {"three": 3}]));
    assert_eq!(out["ack"], json!(["a", [1, 2]]));
    assert_eq!(out["binary"], json!([1, 2, 3]));
    assert_eq!(out["transport"], "websocket", "{out}");
    assert_eq!(out["custom"], json!({"token": "t0k3n"}));
    assert_eq!(out["refused"], "Invalid namespace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_io_client_websocket_only() {
    let addr = start().await;
    let out = run_client(addr, "websocket").await;
    assert_eq!(out["echo"], json!([1, "2", {"three": 3}]));
    assert_eq!(out["ack"], json!(["a", [1, 2]]));
    assert_eq!(out["binary"], json!([1, 2, 3]));
    assert_eq!(out["transport"], "websocket");
    assert_eq!(out["refused"], "Invalid namespace");
}
