//! kill -9 of `media-server` in the middle of a tus PATCH, at 10 pseudo-random moments:
//! after each restart HEAD reports an offset whose bytes are all on disk and right, the
//! upload resumes from it, and the result is byte-identical.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::start_server;
use videopick_storage::{Storage, UploadId};

const LENGTH: usize = 96 << 20;

fn pattern() -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let mut v = vec![0u8; LENGTH];
    for c in v.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.copy_from_slice(&x.to_le_bytes());
    }
    v
}

/// Send a request head and `body` (ignoring write errors: the server may die midway);
/// returns the response text, if any.
fn send(addr: &str, head: &str, body: &[u8]) -> Option<String> {
    let mut c = TcpStream::connect(addr).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    c.write_all(head.as_bytes()).ok()?;
    // Paced like a fast client (~200 MB/s) so kills land mid-upload, not after it.
    for chunk in body.chunks(1 << 20) {
        c.write_all(chunk).ok()?;
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut out = String::new();
    c.read_to_string(&mut out).ok()?;
    Some(out)
}

fn header(resp: &str, name: &str) -> Option<u64> {
    resp.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name)
            .then(|| v.trim().parse().ok())?
    })
}

fn head_offset(addr: &str, path: &str) -> u64 {
    let r = send(
        addr,
        &format!(
            "HEAD {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nConnection: close\r\n\r\n"
        ),
        b"",
    )
    .unwrap();
    header(&r, "upload-offset").unwrap_or_else(|| panic!("{r}"))
}

fn patch_head(path: &str, offset: u64, len: usize) -> String {
    format!(
        "PATCH {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    )
}

fn data_file(data: &Path, path: &str) -> Vec<u8> {
    let id = UploadId::new(path.rsplit('/').next().unwrap()).unwrap();
    std::fs::read(Storage::open(data).unwrap().upload_dir(&id).join("data")).unwrap()
}

#[test]
fn kill_9_mid_patch_then_resume_ten_times() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let source = pattern();
    let mut server = start_server(&data, &[]);
    let r = send(
        &server.http,
        &format!("POST /files/ HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Length: {LENGTH}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        b"",
    )
    .unwrap();
    let path = r
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .unwrap()
        .trim()
        .to_string();
    let mut seed = 0x2545_f491_u64;
    let mut offsets = Vec::new();
    for _ in 0..10 {
        let offset = head_offset(&server.http, &path);
        let addr = server.http.clone();
        let (p, body) = (path.clone(), source[offset as usize..].to_vec());
        let sender = std::thread::spawn(move || {
            send(&addr, &patch_head(&p, offset, body.len()), &body);
        });
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(20 + seed % 60));
        drop(server); // SIGKILL, mid-request
        sender.join().unwrap();
        server = start_server(&data, &[]);
        let now = head_offset(&server.http, &path);
        let stored = data_file(&data, &path);
        assert!(
            now as usize <= stored.len(),
            "offset {now} > {} bytes on disk",
            stored.len()
        );
        assert!(
            stored[..now as usize] == source[..now as usize],
            "a stored byte is wrong"
        );
        offsets.push(now);
    }
    eprintln!("offsets after each kill: {offsets:?}");
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{offsets:?}");
    // Finish the upload.
    let offset = head_offset(&server.http, &path);
    let r = send(
        &server.http,
        &patch_head(&path, offset, LENGTH - offset as usize),
        &source[offset as usize..],
    )
    .unwrap();
    assert!(r.starts_with("HTTP/1.1 204"), "{r}");
    assert_eq!(head_offset(&server.http, &path), LENGTH as u64);
    assert!(data_file(&data, &path) == source, "not byte-identical");
    assert!(
        offsets.iter().any(|&o| o > 0),
        "some progress survived: {offsets:?}"
    );
}
