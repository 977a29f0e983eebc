//! Test helpers: a raw WebSocket client for the Engine.IO server, and a server in a
//! background runtime.
#![allow(dead_code)] // each test file uses a subset

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use videopick_chat_proto::server::{App, Server};
use videopick_chat_proto::wire::session::EngineConfig;

/// Serve `app` with `config` on 127.0.0.1 from a background thread; its address.
pub(crate) fn spawn_server<A: App>(app: A, config: EngineConfig) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let server = Server::new(app, config);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let Ok((stream, peer)) = listener.accept().await else { continue };
                // As server::chat does: without it, Nagle holds a broadcast written
                // right after an ack until the client's delayed ACK.
                let _ = stream.set_nodelay(true);
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
    });
    rx.recv().unwrap()
}

#[derive(Debug, PartialEq)]
pub(crate) enum Frame {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// The connection closed.
    Close,
}

/// A minimal WebSocket client (masked frames out, unmasked frames in).
pub(crate) struct Ws {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Ws {
    /// Open `query`; `None` when the server refuses the upgrade.
    pub(crate) fn open(addr: SocketAddr, query: &str) -> Option<Ws> {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        write!(
            s,
            "GET /socket.io/?{query} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut byte).ok()? == 0 {
                return None;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        if !head.starts_with("HTTP/1.1 101") {
            return None;
        }
        assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
        Some(Ws { s, buf: Vec::new() })
    }

    pub(crate) fn send(&mut self, op: u8, payload: &[u8]) {
        let mask = [9u8, 8, 7, 6];
        let mut f = vec![0x80 | op];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n => {
                f.push(0x80 | 0x7e);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        let _ = self.s.write_all(&f);
    }

    pub(crate) fn text(&mut self, t: &str) {
        self.send(1, t.as_bytes());
    }

    pub(crate) fn binary(&mut self, b: &[u8]) {
        self.send(2, b);
    }

    /// The next frame; `Close` also when the connection ends.
    pub(crate) fn recv(&mut self) -> Frame {
        loop {
            if self.buf.len() >= 2 {
                let (op, len7) = (self.buf[0] & 0x0f, usize::from(self.buf[1] & 0x7f));
                let (len, hl) = match len7 {
                    126 if self.buf.len() >= 4 => (
                        usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])),
                        4,
                    ),
                    127 if self.buf.len() >= 10 => {
                        let mut b = [0u8; 8];
                        b.copy_from_slice(&self.buf[2..10]);
                        (usize::try_from(u64::from_be_bytes(b)).unwrap(), 10)
                    }
                    126 | 127 => (usize::MAX, 0),
                    n => (n, 2),
                };
                if len != usize::MAX && self.buf.len() >= hl + len {
                    let payload: Vec<u8> = self.buf.drain(..hl + len).skip(hl).collect();
                    return match op {
                        1 => Frame::Text(String::from_utf8(payload).unwrap()),
                        2 => Frame::Binary(payload),
                        8 => Frame::Close,
                        _ => continue,
                    };
                }
            }
            let mut chunk = [0u8; 4096];
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => return Frame::Close,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next frame that is not a ping (`2`); pings are answered (`3`) as a real
    /// client does, so a long test is not cut off by the heartbeat.
    pub(crate) fn recv_packet(&mut self) -> Frame {
        loop {
            match self.recv() {
                Frame::Text(t) if t == "2" => self.text("3"),
                f => return f,
            }
        }
    }
}

/// Wait for the connection to close, as the suite's `waitFor(socket, "close")` does
/// (pings and an Engine.IO close packet may come first).
pub(crate) fn expect_close(ws: &mut Ws) {
    loop {
        match ws.recv() {
            Frame::Close => return,
            Frame::Text(t) if t == "1" || t == "2" => {}
            other => panic!("expected the connection to close, got {other:?}"),
        }
    }
}
