//! The official Socket.IO v5 protocol test suite
//! (`docs/socket.io-protocol/v5-test-suite/test-suite.js` in the socket.io repository),
//! each of its cases written here as a Rust test against the server with the suite's
//! configuration: [`EchoApp`], 300 ms pings, 200 ms ping timeout, 1 MB max payload.
//! The clients are raw HTTP and WebSocket written in this file, as the suite's are raw
//! `fetch` and `WebSocket`.

#![cfg(feature = "server")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use common::{Frame, Ws, expect_close};
use std::sync::OnceLock;
use std::time::Duration;

use videopick_chat_proto::echo::EchoApp;
use videopick_chat_proto::wire::session::EngineConfig;

const PING_INTERVAL: u64 = 300;
const PING_TIMEOUT: u64 = 200;

/// One server for the whole suite, as the suite runs against one.
fn addr() -> SocketAddr {
    static ADDR: OnceLock<SocketAddr> = OnceLock::new();
    *ADDR.get_or_init(|| {
        common::spawn_server(
            EchoApp,
            EngineConfig {
                ping_interval: Duration::from_millis(PING_INTERVAL),
                ping_timeout: Duration::from_millis(PING_TIMEOUT),
                max_payload: 1_000_000,
                connect_timeout: Duration::from_millis(1500),
                ..EngineConfig::default()
            },
        )
    })
}

/// One HTTP request: (status, body).
fn fetch(method: &str, query: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "{method} /socket.io/?{query} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    let status = r[9..12].parse().unwrap();
    (
        status,
        r.split_once("\r\n\r\n")
            .map(|x| x.1.to_string())
            .unwrap_or_default(),
    )
}

fn init_long_polling_session() -> String {
    let (status, body) = fetch("GET", "EIO=4&transport=polling", "");
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body[1..]).unwrap();
    v["sid"].as_str().unwrap().to_string()
}

fn text(f: &Frame) -> &str {
    match f {
        Frame::Text(t) => t,
        other => panic!("expected text, got {other:?}"),
    }
}

fn handshake(data: &str, upgrades: &serde_json::Value) {
    assert!(data.starts_with('0'), "{data}");
    let v: serde_json::Value = serde_json::from_str(&data[1..]).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "maxPayload",
            "pingInterval",
            "pingTimeout",
            "sid",
            "upgrades"
        ]
    );
    assert!(v["sid"].is_string());
    assert_eq!(&v["upgrades"], upgrades);
    assert_eq!(v["pingInterval"], PING_INTERVAL);
    assert_eq!(v["pingTimeout"], PING_TIMEOUT);
    assert_eq!(v["maxPayload"], 1_000_000);
}

fn init_socket_io_connection() -> Ws {
    let mut ws = Ws::open(addr(), "EIO=4&transport=websocket").unwrap();
    let _ = ws.recv(); // Engine.IO handshake
    ws.text("40");
    assert!(text(&ws.recv_packet()).starts_with("40")); // Socket.IO handshake
    assert_eq!(text(&ws.recv_packet()), "42[\"auth\",{}]");
    ws
}

// ---- Engine.IO protocol: handshake ----

#[test]
fn polling_should_successfully_open_a_session() {
    let (status, body) = fetch("GET", "EIO=4&transport=polling", "");
    assert_eq!(status, 200);
    handshake(&body, &serde_json::json!(["websocket"]));
}

#[test]
fn polling_should_fail_with_an_invalid_eio_query_parameter() {
    assert_eq!(fetch("GET", "transport=polling", "").0, 400);
    assert_eq!(fetch("GET", "EIO=abc&transport=polling", "").0, 400);
}

#[test]
fn polling_should_fail_with_an_invalid_transport_query_parameter() {
    assert_eq!(fetch("GET", "EIO=4", "").0, 400);
    assert_eq!(fetch("GET", "EIO=4&transport=abc", "").0, 400);
}

#[test]
fn polling_should_fail_with_an_invalid_request_method() {
    assert_eq!(fetch("POST", "EIO=4&transport=polling", "").0, 400);
    assert_eq!(fetch("PUT", "EIO=4&transport=polling", "").0, 400);
}

#[test]
fn websocket_should_successfully_open_a_session() {
    let mut ws = Ws::open(addr(), "EIO=4&transport=websocket").unwrap();
    handshake(text(&ws.recv()), &serde_json::json!([]));
}

#[test]
fn websocket_should_fail_with_an_invalid_eio_query_parameter() {
    assert!(Ws::open(addr(), "transport=websocket").is_none());
    assert!(Ws::open(addr(), "EIO=abc&transport=websocket").is_none());
}

#[test]
fn websocket_should_fail_with_an_invalid_transport_query_parameter() {
    assert!(Ws::open(addr(), "EIO=4").is_none());
    assert!(Ws::open(addr(), "EIO=4&transport=abc").is_none());
}

// ---- Engine.IO protocol: heartbeat ----

#[test]
fn polling_should_send_ping_pong_packets() {
    let sid = init_long_polling_session();
    for _ in 0..3 {
        let (status, body) = fetch("GET", &format!("EIO=4&transport=polling&sid={sid}"), "");
        assert_eq!((status, body.as_str()), (200, "2"));
        let (status, _) = fetch("POST", &format!("EIO=4&transport=polling&sid={sid}"), "3");
        assert_eq!(status, 200);
    }
}

#[test]
fn polling_should_close_the_session_upon_ping_timeout() {
    let sid = init_long_polling_session();
    std::thread::sleep(Duration::from_millis(PING_INTERVAL + PING_TIMEOUT + 50));
    let (status, _) = fetch("GET", &format!("EIO=4&transport=polling&sid={sid}"), "");
    assert_eq!(status, 400);
}

#[test]
fn websocket_should_send_ping_pong_packets() {
    let mut ws = Ws::open(addr(), "EIO=4&transport=websocket").unwrap();
    let _ = ws.recv();
    for _ in 0..3 {
        assert_eq!(ws.recv(), Frame::Text("2".into()));
        ws.text("3");
    }
}

#[test]
fn websocket_should_close_the_session_upon_ping_timeout() {
    let mut ws = Ws::open(addr(), "EIO=4&transport=websocket").unwrap();
    let _ = ws.recv(); // handshake
    loop {
        match ws.recv() {
            Frame::Close => break,
            Frame::Text(t) => assert_eq!(t, "2", "only pings before the close"),
            Frame::Binary(b) => panic!("{b:?}"),
        }
    }
}

// ---- Engine.IO protocol: close ----

#[test]
fn polling_should_forcefully_close_the_session() {
    let sid = init_long_polling_session();
    let q = format!("EIO=4&transport=polling&sid={sid}");
    let poll = {
        let q = q.clone();
        std::thread::spawn(move || fetch("GET", &q, ""))
    };
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(fetch("POST", &q, "1").0, 200);
    assert_eq!(poll.join().unwrap(), (200, "6".to_string()));
    assert_eq!(fetch("GET", &q, "").0, 400);
}

#[test]
fn websocket_should_forcefully_close_the_session() {
    let mut ws = Ws::open(addr(), "EIO=4&transport=websocket").unwrap();
    let _ = ws.recv();
    ws.text("1");
    expect_close(&mut ws);
}

// ---- Engine.IO protocol: upgrade ----

#[test]
fn should_successfully_upgrade_from_polling_to_websocket() {
    let sid = init_long_polling_session();
    let mut ws = Ws::open(addr(), &format!("EIO=4&transport=websocket&sid={sid}")).unwrap();
    ws.text("2probe");
    assert_eq!(ws.recv(), Frame::Text("3probe".into()));
    ws.text("5");
}

#[test]
fn should_ignore_http_requests_with_same_sid_after_upgrade() {
    let sid = init_long_polling_session();
    let mut ws = Ws::open(addr(), &format!("EIO=4&transport=websocket&sid={sid}")).unwrap();
    ws.text("2probe");
    ws.text("5");
    let _ = ws.recv(); // 3probe: the upgrade has been seen
    std::thread::sleep(Duration::from_millis(20));
    let (status, _) = fetch("GET", &format!("EIO=4&transport=polling&sid={sid}"), "");
    assert_eq!(status, 400);
}

#[test]
fn should_ignore_websocket_connection_with_same_sid_after_upgrade() {
    let sid = init_long_polling_session();
    let mut ws = Ws::open(addr(), &format!("EIO=4&transport=websocket&sid={sid}")).unwrap();
    ws.text("2probe");
    ws.text("5");
    let _ = ws.recv();
    std::thread::sleep(Duration::from_millis(20));
    // As the suite's `ws` client sees it: the handshake completes (no HTTP error, which
    // `ws` raises as an uncaught error), then the socket is closed.
    let mut second = Ws::open(addr(), &format!("EIO=4&transport=websocket&sid={sid}"))
        .expect("the second upgrade's handshake completes");
    expect_close(&mut second);
    // The session goes on over its first WebSocket: the server's next ping comes there.
    assert_eq!(ws.recv(), Frame::Text("2".into()));
    ws.text("3");
}

// ---- Socket.IO protocol: connect ----

fn connect_case(send: &str, prefix: &str, auth: &str) {
    let mut ws = Ws::open(addr(), "EIO=4&transport=websocket").unwrap();
    let _ = ws.recv();
    ws.text(send);
    let data = ws.recv_packet();
    let data = text(&data);
    assert!(data.starts_with(prefix), "{data}");
    let v: serde_json::Value = serde_json::from_str(&data[prefix.len()..]).unwrap();
    assert_eq!(v.as_object().unwrap().len(), 1);
    assert!(v["sid"].is_string());
    assert_eq!(text(&ws.recv_packet()), auth);
}

#[test]
fn should_allow_connection_to_the_main_namespace() {
    connect_case("40", "40", "42[\"auth\",{}]");
}

#[test]
fn should_allow_connection_to_the_main_namespace_with_a_payload() {
    connect_case(
        "40{\"token\":\"123\"}",
        "40",
        "42[\"auth\",{\"token\":\"123\"}]",
    );
}

#[test]
fn should_allow_connection_to_a_custom_namespace() {
    connect_case("40/custom,", "40/custom,", "42/custom,[\"auth\",{}]");
}

#[test]
fn should_allow_connection_to_a_custom_namespace_with_a_payload() {
    connect_case(
        "40/custom,{\"token\":\"abc\"}",
        "40/custom,",
        "42/custom,[\"auth\",{\"token\":\"abc\"}]",
    );
}

#[test]
fn should_disallow_connection_to_an_unknown_namespace() {
    let mut ws = Ws::open(addr(), "EIO=4&transport=websocket").unwrap();
    let _ = ws.recv();
    ws.text("40/random");
    assert_eq!(
        ws.recv_packet(),
        Frame::Text("44/random,{\"message\":\"Invalid namespace\"}".into())
    );
}

#[test]
fn should_disallow_connection_with_an_invalid_handshake() {
    let mut ws = Ws::open(addr(), "EIO=4&transport=websocket").unwrap();
    let _ = ws.recv();
    ws.text("4abc");
    expect_close(&mut ws);
}

#[test]
fn should_close_the_connection_if_no_handshake_is_received() {
    let mut ws = Ws::open(addr(), "EIO=4&transport=websocket").unwrap();
    let _ = ws.recv();
    let start = std::time::Instant::now();
    loop {
        match ws.recv() {
            Frame::Close => break,
            Frame::Text(t) if t == "2" => ws.text("3"), // alive: only the handshake is missing
            Frame::Text(t) if t == "1" => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(start.elapsed() < Duration::from_secs(3));
}

// ---- Socket.IO protocol: disconnect ----

#[test]
fn should_disconnect_from_the_main_namespace() {
    let mut ws = init_socket_io_connection();
    ws.text("41");
    assert_eq!(
        ws.recv(),
        Frame::Text("2".into()),
        "the connection stays open"
    );
}

#[test]
fn should_connect_then_disconnect_from_a_custom_namespace() {
    let mut ws = init_socket_io_connection();
    ws.text("40/custom");
    let _ = ws.recv_packet(); // Socket.IO handshake
    let _ = ws.recv_packet(); // auth packet
    ws.text("41/custom");
    ws.text("42[\"message\",\"message to main namespace\"]");
    assert_eq!(
        ws.recv_packet(),
        Frame::Text("42[\"message-back\",\"message to main namespace\"]".into())
    );
}

// ---- Socket.IO protocol: message ----

#[test]
fn should_send_a_plain_text_packet() {
    let mut ws = init_socket_io_connection();
    ws.text("42[\"message\",1,\"2\",{\"3\":[true]}]");
    assert_eq!(
        ws.recv_packet(),
        Frame::Text("42[\"message-back\",1,\"2\",{\"3\":[true]}]".into())
    );
}

#[test]
fn should_send_a_packet_with_binary_attachments() {
    let mut ws = init_socket_io_connection();
    ws.text(
        "452-[\"message\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]",
    );
    ws.binary(&[1, 2, 3]);
    ws.binary(&[4, 5, 6]);
    assert_eq!(
        ws.recv_packet(),
        Frame::Text(
            "452-[\"message-back\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]".into()
        )
    );
    assert_eq!(ws.recv_packet(), Frame::Binary(vec![1, 2, 3]));
    assert_eq!(ws.recv_packet(), Frame::Binary(vec![4, 5, 6]));
}

#[test]
fn should_send_a_plain_text_packet_with_an_ack() {
    let mut ws = init_socket_io_connection();
    ws.text("42456[\"message-with-ack\",1,\"2\",{\"3\":[false]}]");
    assert_eq!(
        ws.recv_packet(),
        Frame::Text("43456[1,\"2\",{\"3\":[false]}]".into())
    );
}

#[test]
fn should_send_a_packet_with_binary_attachments_and_an_ack() {
    let mut ws = init_socket_io_connection();
    ws.text("452-789[\"message-with-ack\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]");
    ws.binary(&[1, 2, 3]);
    ws.binary(&[4, 5, 6]);
    assert_eq!(
        ws.recv_packet(),
        Frame::Text(
            "462-789[{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]".into()
        )
    );
    assert_eq!(ws.recv_packet(), Frame::Binary(vec![1, 2, 3]));
    assert_eq!(ws.recv_packet(), Frame::Binary(vec![4, 5, 6]));
}

#[test]
fn should_close_the_connection_upon_invalid_format_unknown_packet_type() {
    let mut ws = init_socket_io_connection();
    ws.text("4abc");
    expect_close(&mut ws);
}

#[test]
fn should_close_the_connection_upon_invalid_format_invalid_payload_format() {
    let mut ws = init_socket_io_connection();
    ws.text("42{}");
    expect_close(&mut ws);
}

#[test]
fn should_close_the_connection_upon_invalid_format_invalid_ack_id() {
    let mut ws = init_socket_io_connection();
    ws.text("42abc[\"message-with-ack\",1,\"2\",{\"3\":[false]}]");
    expect_close(&mut ws);
}
