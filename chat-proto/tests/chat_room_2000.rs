//! The platform plan's target as a test: 2,000 signed-in WebSocket clients in one room
//! each receive every message, once and in order — with broadcasts batched as chat-server
//! batches them.

#![cfg(feature = "server")]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use videopick_chat_proto::app::auth::sign;
use videopick_chat_proto::app::chat::{ChatApp, ChatConfig};
use videopick_chat_proto::wire::session::EngineConfig;

const SECRET: &[u8] = b"two-thousand";
const CLIENTS: usize = 2000;
const MESSAGES: u64 = 20;

/// A WebSocket client in the test's runtime.
struct Client {
    s: TcpStream,
    buf: BytesMut,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
        let mut buf = BytesMut::new();
        loop {
            s.read_buf(&mut buf).await.unwrap();
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                assert!(buf.starts_with(b"HTTP/1.1 101"));
                buf.advance(end + 4);
                break;
            }
        }
        Client { s, buf }
    }

    async fn send(&mut self, text: &str) {
        let mask = [1u8, 2, 3, 4];
        let p = text.as_bytes();
        let mut f = vec![0x81];
        if p.len() < 126 {
            f.push(0x80 | u8::try_from(p.len()).unwrap());
        } else {
            f.push(0x80 | 0x7e);
            f.extend_from_slice(&u16::try_from(p.len()).unwrap().to_be_bytes());
        }
        f.extend_from_slice(&mask);
        f.extend(p.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.s.write_all(&f).await.unwrap();
    }

    /// The next text message that is not a ping (pings are answered).
    async fn recv(&mut self) -> String {
        loop {
            if self.buf.len() >= 2 {
                let len7 = usize::from(self.buf[1] & 0x7f);
                let (len, hl) = match len7 {
                    126 if self.buf.len() >= 4 => (
                        usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])),
                        4,
                    ),
                    126 | 127 => (usize::MAX, 0),
                    n => (n, 2),
                };
                if len != usize::MAX && self.buf.len() >= hl + len {
                    self.buf.advance(hl);
                    let t = String::from_utf8(self.buf.split_to(len).to_vec()).unwrap();
                    if t == "2" {
                        self.send("3").await;
                        continue;
                    }
                    return t;
                }
            }
            assert!(
                self.s.read_buf(&mut self.buf).await.unwrap() > 0,
                "connection closed"
            );
        }
    }

    /// Sign in and join `room`.
    async fn join(addr: SocketAddr, user: &str, room: &str) -> Client {
        let mut c = Client::connect(addr).await;
        assert!(c.recv().await.starts_with('0'));
        c.send(&format!(
            "40{}",
            json!({"token": sign(&json!({"sub": user, "exp": 4_000_000_000u64}), SECRET)})
        ))
        .await;
        assert!(c.recv().await.starts_with("40{"));
        c.send(&format!("420{}", json!(["join", {"room": room}])))
            .await;
        loop {
            let t = c.recv().await;
            if t.starts_with("430") {
                assert!(t.contains("\"ok\":true"), "{t}");
                return c;
            }
        }
    }

    /// Message ids received until `n` messages came.
    async fn collect(&mut self, n: u64) -> Vec<u64> {
        let mut ids = Vec::new();
        while (ids.len() as u64) < n {
            let t = self.recv().await;
            if let Some(body) = t.strip_prefix("42[\"message\",") {
                let v: serde_json::Value = serde_json::from_str(&body[..body.len() - 1]).unwrap();
                ids.push(v["id"].as_u64().unwrap());
            }
        }
        ids
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_clients_in_one_room_receive_every_message() {
    let addr = common::spawn_server(
        ChatApp::new(ChatConfig {
            jwt_secret: SECRET.to_vec(),
            max_connections_per_ip: CLIENTS + 10,
            // As chat-server runs: the first message goes at once, the burst after it in
            // 20 ms batches (each member takes a batch under one lock, in one write).
            flush_interval: Duration::from_millis(20),
            ..ChatConfig::default()
        }),
        EngineConfig {
            // The test's own clients share two cores with the server.
            ping_interval: Duration::from_secs(60),
            ..EngineConfig::default()
        },
    );
    let joined = Arc::new(tokio::sync::Barrier::new(CLIENTS + 1));
    let mut tasks = Vec::new();
    for i in 0..CLIENTS {
        let joined = joined.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::join(addr, &format!("viewer{i}"), "live").await;
            joined.wait().await;
            tokio::time::timeout(Duration::from_secs(60), c.collect(MESSAGES))
                .await
                .expect("every message arrives")
        }));
    }
    joined.wait().await;
    let mut sender = Client::join(addr, "broadcaster", "live").await;
    for i in 1..=MESSAGES {
        sender
            .send(&format!(
                "42{i}{}",
                json!(["message", {"room": "live", "text": format!("message {i}")}])
            ))
            .await;
    }
    let expected: Vec<u64> = (1..=MESSAGES).collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), expected, "every message, once, in order");
    }
}
