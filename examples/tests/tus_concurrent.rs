//! 50 concurrent tus uploads of 20 MB each into one `media-server`, each in 4 MB PATCHes
//! from its own connection: every stored file is byte-identical to its source.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::start_server;
use videopick_storage::{Storage, UploadId};

const UPLOADS: usize = 50;
const LEN: usize = 20 << 20;

fn roundtrip(addr: &str, head: &str, body: &[u8]) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(body).unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out
}

fn source(n: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_u64 + n as u64;
    let mut v = vec![0u8; LEN];
    for c in v.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.copy_from_slice(&x.to_le_bytes());
    }
    v
}

#[test]
fn fifty_concurrent_uploads_are_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_server(&data, &["--min-free-bytes", "0"]);
    let workers: Vec<_> = (0..UPLOADS)
        .map(|n| {
            let addr = server.http.clone();
            std::thread::spawn(move || {
                let src = source(n);
                let r = roundtrip(
                    &addr,
                    &format!("POST /files/ HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Length: {LEN}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
                    b"",
                );
                assert!(r.starts_with("HTTP/1.1 201"), "{r}");
                let path = r
                    .lines()
                    .find_map(|l| l.strip_prefix("location: "))
                    .unwrap()
                    .trim()
                    .to_string();
                for (i, chunk) in src.chunks(4 << 20).enumerate() {
                    let offset = i * (4 << 20);
                    let r = roundtrip(
                        &addr,
                        &format!("PATCH {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", chunk.len()),
                        chunk,
                    );
                    assert!(r.starts_with("HTTP/1.1 204"), "{r}");
                }
                (path, src)
            })
        })
        .collect();
    let storage = Storage::open(&data).unwrap();
    for w in workers {
        let (path, src) = w.join().unwrap();
        let id = UploadId::new(path.rsplit('/').next().unwrap()).unwrap();
        let stored = std::fs::read(storage.upload_dir(&id).join("data")).unwrap();
        assert!(stored == src, "upload {path} differs");
    }
}
