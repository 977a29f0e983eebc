//! The unmodified `socket.io-client` (npm) against the server with echo handlers: the
//! default transports (polling, then the upgrade to WebSocket) and WebSocket only.

#![cfg(feature = "server")]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use videopick_chat_proto::echo::EchoApp;
use videopick_chat_proto::wire::session::EngineConfig;

fn start() -> SocketAddr {
    common::spawn_server(
        EchoApp,
        EngineConfig {
            ping_interval: Duration::from_millis(300),
            ping_timeout: Duration::from_millis(200),
            ..EngineConfig::default()
        },
    )
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
    let addr = start();
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
    let addr = start();
    let out = run_client(addr, "websocket").await;
    assert_eq!(out["echo"], json!([1, "2", {"three": 3}]));
    assert_eq!(out["ack"], json!(["a", [1, 2]]));
    assert_eq!(out["binary"], json!([1, 2, 3]));
    assert_eq!(out["transport"], "websocket");
    assert_eq!(out["refused"], "Invalid namespace");
}
