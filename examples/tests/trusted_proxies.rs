//! Behind a trusted proxy the real client is known: the PROXY protocol on RTMP (ffmpeg
//! publishing through a relay that prepends the header, as HAProxy does), X-Forwarded-For
//! on HTTP-FLV (curl), and on the chat's per-address limit. Untrusted peers' headers are
//! ignored.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{event_sink, start_chat_server, start_server, wait_event};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// A TCP relay to `upstream` that sends a PROXY v1 header naming `client` first.
async fn proxy_relay(upstream: String, client: &'static str) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let (mut down, _) = l.accept().await.unwrap();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let mut up = TcpStream::connect(&upstream).await.unwrap();
                let port = upstream.rsplit(':').next().unwrap().to_string();
                let header = format!("PROXY TCP4 {client} 127.0.0.1 40000 {port}\r\n");
                up.write_all(header.as_bytes()).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_and_http_flv_clients_are_named_by_the_trusted_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, events) = event_sink();
    let server = start_server(
        &dir.path().join("data"),
        &[
            "--trusted-proxies",
            "127.0.0.0/8",
            "--proxy-protocol",
            "--event-hook",
            &hook,
        ],
    );
    let relay = proxy_relay(server.rtmp.clone(), "203.0.113.7").await;
    let mut publish = videopick_testkit::ffmpeg::publish_command(
        &format!("rtmp://{relay}/live/proxied"),
        "320x240",
        4,
    )
    .spawn()
    .unwrap();
    let ev = tokio::task::spawn_blocking(move || {
        wait_event(&events, "publish", Duration::from_secs(10));
        events
    })
    .await
    .unwrap();
    let publish_event = ev
        .bodies()
        .into_iter()
        .find(|b| b.contains(r#""event":"publish""#))
        .unwrap();
    assert!(
        publish_event.contains(r#""peer":"203.0.113.7:40000""#),
        "{publish_event}"
    );

    // HTTP-FLV with X-Forwarded-For from the trusted proxy (loopback here).
    let url = format!("http://{}/live/proxied.flv", server.http);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["-s", "--max-time", "1", "-o", "/dev/null"])
            .args(["-H", "X-Forwarded-For: 198.51.100.23, 127.0.0.1"])
            .arg(url)
            .status()
            .unwrap();
        wait_event(&ev, "play", Duration::from_secs(5))
    })
    .await
    .unwrap();
    assert!(out.contains(r#""peer":"198.51.100.23:0""#), "{out}");
    let _ = publish.kill();
    let _ = publish.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_peers_cannot_claim_another_address() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, events) = event_sink();
    let server = start_server(&dir.path().join("data"), &["--event-hook", &hook]);
    let mut p = common::publisher(&server.rtmp, "plain").await;
    let sending = tokio::spawn(async move {
        common::send_frames(&mut p, 50, 1).await;
    });
    let url = format!("http://{}/live/plain.flv", server.http);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["-s", "--max-time", "1", "-o", "/dev/null"])
            .args(["-H", "X-Forwarded-For: 198.51.100.23"])
            .arg(url)
            .status()
            .unwrap();
        wait_event(&events, "play", Duration::from_secs(5))
    })
    .await
    .unwrap();
    assert!(out.contains(r#""peer":"127.0.0.1:"#), "{out}");
    let _ = sending.await;
}

/// Open a polling Engine.IO session as `client` (X-Forwarded-For) and CONNECT to the main
/// namespace anonymously; the CONNECT answer.
fn connect_as(addr: &str, client: &str) -> String {
    let xff = format!("X-Forwarded-For: {client}\r\n");
    let (status, body) = videopick_testkit::http::request(
        addr,
        "GET",
        "/socket.io/?EIO=4&transport=polling",
        &xff,
        b"",
    );
    assert_eq!(status, 200, "{body}");
    let sid = body
        .split("\"sid\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let (status, _) = videopick_testkit::http::request(
        addr,
        "POST",
        &path,
        &format!("{xff}Content-Type: text/plain\r\n"),
        b"40",
    );
    assert_eq!(status, 200);
    videopick_testkit::http::request(addr, "GET", &path, &xff, b"").1
}

#[test]
fn the_chat_limits_connections_per_real_client() {
    let chat = start_chat_server(&[
        "--anonymous",
        "--max-connections-per-ip",
        "1",
        "--trusted-proxies",
        "127.0.0.1",
    ]);
    assert!(connect_as(&chat.addr, "203.0.113.1").starts_with("40"));
    let again = connect_as(&chat.addr, "203.0.113.1");
    assert!(again.contains("too_many_connections"), "{again}");
    assert!(connect_as(&chat.addr, "203.0.113.2").starts_with("40"));
}

/// `metrics_allow`: `/metrics` answers only clients in the listed networks (404 to others,
/// as if nothing were there) on the media and chat servers, while health stays open; behind
/// a trusted proxy the client it names is the one checked, so the proxy is no way around.
#[test]
fn metrics_answer_only_the_allowed_networks() {
    let dir = tempfile::tempdir().unwrap();
    let closed = start_server(&dir.path().join("a"), &["--metrics-allow", "10.0.0.0/8"]);
    assert_eq!(common::http(&closed.http, "GET", "/metrics", "").0, 404);
    assert_eq!(common::http(&closed.http, "GET", "/healthz", "").0, 200);
    let open = start_server(
        &dir.path().join("b"),
        &["--metrics-allow", "10.0.0.0/8,127.0.0.1"],
    );
    let (status, body) = common::http(&open.http, "GET", "/metrics", "");
    assert_eq!(status, 200);
    assert!(body.contains("videopick_build_info"), "{body}");
    let proxied = start_server(
        &dir.path().join("c"),
        &[
            "--metrics-allow",
            "127.0.0.1",
            "--trusted-proxies",
            "127.0.0.1",
        ],
    );
    let forwarded = "X-Forwarded-For: 203.0.113.9\r\n";
    assert_eq!(
        common::http(&proxied.http, "GET", "/metrics", forwarded).0,
        404
    );
    assert_eq!(common::http(&proxied.http, "GET", "/metrics", "").0, 200);

    let chat = start_chat_server(&["--jwt-secret", "s", "--metrics-allow", "10.0.0.0/8"]);
    assert_eq!(common::http(&chat.addr, "GET", "/metrics", "").0, 404);
    assert_eq!(common::http(&chat.addr, "GET", "/healthz", "").0, 200);
    let chat = start_chat_server(&["--jwt-secret", "s", "--metrics-allow", "127.0.0.0/8"]);
    let (status, body) = common::http(&chat.addr, "GET", "/metrics", "");
    assert_eq!(status, 200);
    assert!(body.contains("videopick_chat_connections"), "{body}");
}
