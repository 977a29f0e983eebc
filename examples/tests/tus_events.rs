//! A finished tus upload in `media-server` is announced to the event webhook (the hand-off
//! to transcoding) and counted in `/metrics`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{event_sink, http, start_server, wait_event};

fn roundtrip(addr: &str, head: &str, body: &[u8]) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(body).unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn finished_uploads_raise_an_event_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, events) = event_sink();
    let server = start_server(&dir.path().join("data"), &["--event-hook", &hook]);
    let r = roundtrip(
        &server.http,
        "POST /files/ HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Length: 5\r\nUpload-Metadata: filename Y2xpcC5tcDQ=\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        b"",
    );
    let path = r
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .unwrap()
        .trim()
        .to_string();
    let r = roundtrip(
        &server.http,
        &format!(
            "PATCH {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
        ),
        b"hello",
    );
    assert!(r.starts_with("HTTP/1.1 204"), "{r}");
    let event = wait_event(&events, "upload", Duration::from_secs(10));
    let id = path.rsplit('/').next().unwrap();
    assert!(event.contains(&format!(r#""id":"{id}""#)), "{event}");
    assert!(event.contains(r#""length":5"#), "{event}");
    assert!(
        event.contains(r#""metadata":"filename Y2xpcC5tcDQ=""#),
        "{event}"
    );
    assert!(event.contains("/data\""), "the path of the bytes: {event}");
    let (_, metrics) = http(&server.http, "GET", "/metrics", "");
    assert!(
        metrics.contains("videopick_tus_uploads_finished_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("videopick_tus_received_bytes_total 5\n"),
        "{metrics}"
    );
}
