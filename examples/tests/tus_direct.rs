//! tus PATCH bodies read straight from the socket (ahead of hyper, spliced into the
//! file): what a client sees is the same as through hyper. curl with its default
//! `Expect: 100-continue`; creation, PATCH and HEAD on one keep-alive connection with a
//! pipelined request right behind the body; a body cut off midway (the offset covers
//! only stored bytes and the upload resumes); a checksum (the hashing read path) that
//! does not match.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::start_server;
use sha2::{Digest, Sha256};
use videopick_storage::{Storage, UploadId};

fn source(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
        })
        .collect()
}

fn header(resp: &str, name: &str) -> Option<String> {
    resp.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

fn stored(data: &Path, location: &str) -> Vec<u8> {
    let id = UploadId::new(location.rsplit('/').next().unwrap()).unwrap();
    std::fs::read(Storage::open(data).unwrap().upload_dir(&id).join("data")).unwrap()
}

/// Read one response (head and `Content-Length` body) from `c`.
fn response(c: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(c.read(&mut byte).unwrap(), 1, "closed mid-answer: {buf:?}");
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let len: usize = header(&head, "content-length").map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0u8; len];
    c.read_exact(&mut body).unwrap();
    head + &String::from_utf8_lossy(&body)
}

fn create(c: &mut TcpStream, length: usize) -> String {
    c.write_all(
        format!(
            "POST /files/ HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Length: {length}\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let r = response(c);
    assert!(r.starts_with("HTTP/1.1 201"), "{r}");
    header(&r, "location").unwrap()
}

fn patch_head(location: &str, offset: usize, len: usize, extra: &str) -> String {
    format!(
        "PATCH {location} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\nContent-Length: {len}\r\n{extra}\r\n"
    )
}

fn head_offset(c: &mut TcpStream, location: &str) -> usize {
    c.write_all(
        format!("HEAD {location} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(c.read(&mut byte).unwrap(), 1);
        buf.push(byte[0]);
    }
    header(&String::from_utf8(buf).unwrap(), "upload-offset")
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
#[allow(clippy::too_many_lines)] // one server, four scenarios told in order
fn patch_bodies_from_the_socket_behave_as_through_hyper() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_server(&data, &[]);
    let addr = server.http.clone();

    // curl: a 3 MiB body in one PATCH with its default `Expect: 100-continue`.
    let body = source(3 << 20, 7);
    let file = dir.path().join("curl.bin");
    std::fs::write(&file, &body).unwrap();
    let mut c = TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let location = create(&mut c, body.len());
    let out = Command::new("curl")
        .args(["-sS", "-i", "-X", "PATCH", "-H", "Tus-Resumable: 1.0.0"])
        .args(["-H", "Content-Type: application/offset+octet-stream"])
        .args(["-H", "Upload-Offset: 0", "--data-binary"])
        .arg(format!("@{}", file.display()))
        .arg(format!("http://{addr}{location}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("HTTP/1.1 100 Continue"), "{text}");
    assert!(text.contains("HTTP/1.1 204"), "{text}");
    assert_eq!(
        header(
            &text.replace("HTTP/1.1 100 Continue\r\n\r\n", ""),
            "upload-offset"
        )
        .as_deref(),
        Some("3145728")
    );
    assert_eq!(
        Sha256::digest(stored(&data, &location)),
        Sha256::digest(&body)
    );

    // One keep-alive connection: creation, a PATCH in two writes with a HEAD pipelined
    // right behind its body, then the rest of the upload.
    let body = source(1_500_000, 11);
    let location = create(&mut c, body.len());
    let first = 1_000_000;
    c.write_all(patch_head(&location, 0, first, "").as_bytes())
        .unwrap();
    c.write_all(&body[..400_000]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut rest = body[400_000..first].to_vec();
    rest.extend_from_slice(
        format!("HEAD {location} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\n\r\n").as_bytes(),
    );
    c.write_all(&rest).unwrap();
    let r = response(&mut c);
    assert!(r.starts_with("HTTP/1.1 204"), "{r}");
    assert_eq!(header(&r, "upload-offset").as_deref(), Some("1000000"));
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(c.read(&mut byte).unwrap(), 1);
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(header(&head, "upload-offset").as_deref(), Some("1000000"));
    c.write_all(patch_head(&location, first, body.len() - first, "").as_bytes())
        .unwrap();
    c.write_all(&body[first..]).unwrap();
    let r = response(&mut c);
    assert_eq!(
        header(&r, "upload-offset").as_deref(),
        Some("1500000"),
        "{r}"
    );
    assert_eq!(stored(&data, &location), body);

    // A body cut off midway: the offset covers only what is stored (and right), and the
    // upload resumes from it to an identical file.
    let body = source(4 << 20, 13);
    let location = create(&mut c, body.len());
    let mut cut = TcpStream::connect(&addr).unwrap();
    cut.write_all(patch_head(&location, 0, body.len(), "").as_bytes())
        .unwrap();
    cut.write_all(&body[..2_500_000]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(cut);
    let mut offset = head_offset(&mut c, &location);
    for _ in 0..50 {
        if offset > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        offset = head_offset(&mut c, &location);
    }
    assert!(offset <= 2_500_000, "{offset}");
    assert_eq!(stored(&data, &location)[..offset], body[..offset]);
    c.write_all(patch_head(&location, offset, body.len() - offset, "").as_bytes())
        .unwrap();
    c.write_all(&body[offset..]).unwrap();
    let r = response(&mut c);
    assert!(r.starts_with("HTTP/1.1 204"), "{r}");
    assert_eq!(stored(&data, &location), body);

    // A checksum that does not match (read and hashed on the way): 460, nothing kept.
    let body = source(600_000, 17);
    let location = create(&mut c, body.len());
    let wrong = "sha1 2jmj7l5rSw0yVb/vlWAYkK/YBwk=";
    c.write_all(
        patch_head(
            &location,
            0,
            body.len(),
            &format!("Upload-Checksum: {wrong}\r\n"),
        )
        .as_bytes(),
    )
    .unwrap();
    c.write_all(&body).unwrap();
    let r = response(&mut c);
    assert!(r.starts_with("HTTP/1.1 460"), "{r}");
    assert_eq!(head_offset(&mut c, &location), 0);
}
