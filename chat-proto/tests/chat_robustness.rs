//! The chat server under bad input and slow clients: an oversized frame, a flooding
//! sender and a client that stops reading each get the policy's answer, and the other
//! clients carry on.

#![cfg(feature = "server")]

mod common;

use std::time::{Duration, Instant};

use common::{Frame, Ws, spawn_server};
use serde_json::{Value, json};
use videopick_chat_proto::app::auth::sign;
use videopick_chat_proto::app::chat::{ChatApp, ChatConfig};
use videopick_chat_proto::app::rules::ChatLimits;
use videopick_chat_proto::wire::session::EngineConfig;

const SECRET: &[u8] = b"robust";

fn server(limits: ChatLimits, engine: EngineConfig) -> std::net::SocketAddr {
    spawn_server(
        ChatApp::new(ChatConfig {
            jwt_secret: SECRET.to_vec(),
            limits,
            ..ChatConfig::default()
        }),
        engine,
    )
}

/// A signed-in client that joined `room`.
fn member(addr: std::net::SocketAddr, user: &str, room: &str) -> Ws {
    let mut ws = Ws::open(addr, "EIO=4&transport=websocket").unwrap();
    let _ = ws.recv(); // Engine.IO handshake
    let token = sign(&json!({"sub": user, "exp": 4_000_000_000u64}), SECRET);
    ws.text(&format!("40{}", json!({ "token": token })));
    let Frame::Text(t) = ws.recv_packet() else {
        panic!()
    };
    assert!(t.starts_with("40{\"sid\""), "{t}");
    let ack = request(&mut ws, 0, "join", &json!({ "room": room }));
    assert_eq!(ack["ok"], true, "{ack}");
    ws
}

/// Emit `event` with ack id `id`; its ack (events in between are skipped).
fn request(ws: &mut Ws, id: u64, event: &str, arg: &Value) -> Value {
    ws.text(&format!("42{id}{}", json!([event, arg])));
    let prefix = format!("43{id}");
    loop {
        match ws.recv_packet() {
            Frame::Text(t) if t.starts_with(&prefix) => {
                let v: Value = serde_json::from_str(&t[prefix.len()..]).unwrap();
                return v[0].clone();
            }
            Frame::Text(_) => {}
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn an_oversized_frame_closes_that_client_only() {
    let addr = server(
        ChatLimits::default(),
        EngineConfig {
            max_payload: 10_000,
            ..EngineConfig::default()
        },
    );
    let mut good = member(addr, "good", "r");
    let mut bad = member(addr, "bad", "r");
    bad.text(&format!(
        "42[\"message\",{{\"room\":\"r\",\"text\":\"{}\"}}]",
        "x".repeat(20_000)
    ));
    // Room events (presence) may come before the close.
    loop {
        match bad.recv() {
            Frame::Close => break,
            Frame::Text(t) if t == "1" || t == "2" || t.starts_with("42") => {}
            other => panic!("expected the connection to close, got {other:?}"),
        }
    }
    let ack = request(
        &mut good,
        1,
        "message",
        &json!({"room": "r", "text": "still here"}),
    );
    assert_eq!(ack, json!({"ok": true, "id": 1}));
}

#[test]
fn a_flooding_sender_is_rate_limited_with_retry_after() {
    let addr = server(ChatLimits::default(), EngineConfig::default());
    let mut ws = member(addr, "flood", "r");
    let mut codes = Vec::new();
    for i in 1..=25 {
        let ack = request(
            &mut ws,
            i,
            "message",
            &json!({"room": "r", "text": format!("m{i}")}),
        );
        codes.push(if ack["ok"] == true {
            "ok".to_string()
        } else {
            assert!(
                ack["error"]["retry_after"].as_f64().unwrap() >= 1.0,
                "{ack}"
            );
            ack["error"]["code"].as_str().unwrap().to_string()
        });
    }
    assert!(codes[..20].iter().all(|c| c == "ok"), "{codes:?}");
    assert!(codes[20..].iter().all(|c| c == "rate_limited"), "{codes:?}");
}

#[test]
fn a_client_that_stops_reading_is_cut_off_while_others_keep_up() {
    let addr = server(
        ChatLimits {
            rate_burst: 1_000_000,
            max_len: 32_000,
            ..ChatLimits::default()
        },
        EngineConfig {
            max_queue: 64,
            max_dropped: 64,
            ..EngineConfig::default()
        },
    );
    let _stalled = member(addr, "stalled", "r"); // never reads again
    let mut reader = member(addr, "reader", "r");
    let mut sender = member(addr, "sender", "r");
    let text = "y".repeat(30_000);
    let mut worst = Duration::ZERO;
    // ~30 MB in total: about three times what the stalled client's socket buffers and
    // its 64-message queue hold before it is cut off.
    for i in 1..=1_000u64 {
        let sent = Instant::now();
        let ack = request(
            &mut sender,
            i,
            "message",
            &json!({"room": "r", "text": text}),
        );
        assert_eq!(ack["ok"], true, "{ack}");
        // The reader sees each message promptly.
        loop {
            match reader.recv_packet() {
                Frame::Text(t) if t.starts_with("42[\"message\"") => {
                    assert!(t.contains(&format!("\"id\":{i},")), "out of order at {i}");
                    break;
                }
                Frame::Text(_) => {}
                other => panic!("reader lost its connection at {i}: {other:?}"),
            }
        }
        worst = worst.max(sent.elapsed());
    }
    assert!(
        worst < Duration::from_millis(500),
        "worst round trip {worst:?}"
    );
    // The stalled client was cut off: the room's presence dropped to the two readers.
    let ack = request(&mut sender, 999_999, "join", &json!({"room": "r"}));
    assert_eq!(ack["count"], 2, "{ack}");
}
