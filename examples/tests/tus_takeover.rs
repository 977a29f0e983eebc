//! Two `media-server` processes share one storage root: a PATCH stalled on one of them
//! does not lock the upload out for the other — the second asks through the store, the
//! first lets go (keeping what it stored), and the upload completes byte-identical.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::start_server;
use videopick_storage::{Storage, UploadId};

fn roundtrip(addr: &str, head: &str, body: &[u8]) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(head.as_bytes()).unwrap();
    let _ = c.write_all(body);
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    out
}

fn header(resp: &str, name: &str) -> Option<String> {
    resp.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

fn patch(path: &str, offset: usize, len: usize) -> String {
    format!(
        "PATCH {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    )
}

#[test]
fn a_request_stalled_in_another_process_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let a = start_server(&data, &[]);
    let b = start_server(&data, &[]);
    let len = 8usize << 20;
    let source: Vec<u8> = (0..len).map(|i| (i % 241) as u8).collect();
    let r = roundtrip(
        &a.http,
        &format!(
            "POST /files/ HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Length: {len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        b"",
    );
    let path = header(&r, "location").unwrap();
    // On server A: send 2 MiB of the body, then stall with the connection open.
    let mut stalled = TcpStream::connect(&a.http).unwrap();
    stalled.write_all(patch(&path, 0, len).as_bytes()).unwrap();
    stalled.write_all(&source[..2 << 20]).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    // On server B: the upload is not refused for as long as A's request hangs.
    let started = Instant::now();
    let head = "HTTP/1.1";
    let r = roundtrip(&b.http, &patch(&path, 0, len), &source);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "waited {:?}",
        started.elapsed()
    );
    assert!(!r.starts_with(&format!("{head} 423")), "still locked: {r}");
    // A kept what it stored; B resumes from the recorded offset.
    let h = roundtrip(
        &b.http,
        &format!(
            "HEAD {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nConnection: close\r\n\r\n"
        ),
        b"",
    );
    let offset: usize = header(&h, "upload-offset").unwrap().parse().unwrap();
    if offset < len {
        let r = roundtrip(
            &b.http,
            &patch(&path, offset, len - offset),
            &source[offset..],
        );
        assert!(r.starts_with("HTTP/1.1 204"), "{r}");
    }
    let id = UploadId::new(path.rsplit('/').next().unwrap()).unwrap();
    let stored = std::fs::read(Storage::open(&data).unwrap().upload_dir(&id).join("data")).unwrap();
    assert!(stored == source, "not byte-identical");
    drop(stalled);
}
