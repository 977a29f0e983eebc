//! ffmpeg as a real RTMP client: its complex handshake validates against our server
//! handshake, and the first message after it is the AMF0 `connect` command.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::BytesMut;
use videopick_flv::amf0::{self, Amf0Value};
use videopick_rtmp::chunk::{ChunkDecoder, msg_type};
use videopick_rtmp::handshake::{HandshakeKind, ServerHandshake};

#[test]
fn ffmpeg_complex_handshake_then_connect() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut ffmpeg = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x48:rate=5",
            "-t",
            "1",
            "-c:v",
            "libx264",
            "-f",
            "flv",
        ])
        .arg(format!("rtmp://127.0.0.1:{port}/live/handshake"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run ffmpeg (is it installed?)");
    let (mut sock, _) = listener.accept().unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    let mut hs = ServerHandshake::new(0, 42);
    let mut buf = BytesMut::new();
    let mut tmp = [0u8; 4096];
    while !hs.is_done() {
        let n = sock.read(&mut tmp).unwrap();
        assert!(n > 0, "ffmpeg closed during the handshake");
        buf.extend_from_slice(&tmp[..n]);
        hs.handle_input(&mut buf).unwrap();
        while let Some(out) = hs.poll_transmit() {
            sock.write_all(&out).unwrap();
        }
    }
    assert!(
        matches!(hs.kind(), Some(HandshakeKind::Complex(_))),
        "{:?}",
        hs.kind()
    );
    assert_eq!(hs.c2_valid(), Some(true), "ffmpeg's C2 signature");

    let mut dec = ChunkDecoder::default();
    let msg = loop {
        if let Some(m) = dec.decode(&mut buf).unwrap() {
            break m;
        }
        let n = sock.read(&mut tmp).unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&tmp[..n]);
    };
    assert_eq!(msg.type_id, msg_type::COMMAND_AMF0);
    let values = amf0::decode_all(&msg.payload).unwrap();
    assert_eq!(values[0], Amf0Value::String("connect".into()));
    assert_eq!(
        values[2].get("app").and_then(Amf0Value::as_str),
        Some("live")
    );
    assert_eq!(
        values[2].get("tcUrl").and_then(Amf0Value::as_str),
        Some(format!("rtmp://127.0.0.1:{port}/live").as_str())
    );
    let _ = ffmpeg.kill();
    let _ = ffmpeg.wait();
}
