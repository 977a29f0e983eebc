//! Real tus clients against `media-server` at `/files/`: tus-js-client (npm, run by node)
//! uploading 200 MB as one PATCH, in 5 MB chunks, as 4 parallel parts concatenated, and
//! with an abort and resume midway, and
//! tuspy (PyPI) uploading with sha1 checksums on every chunk; the stored bytes' sha256 must
//! equal the source's.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::start_server;
use sha2::{Digest, Sha256};
use videopick_storage::{Storage, UploadId};

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/js")
}

/// `size` bytes of a pseudo-random pattern (so a misplaced block changes the hash).
fn source_file(dir: &Path, size: usize) -> (PathBuf, Vec<u8>) {
    let path = dir.join("source.bin");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut hasher = Sha256::new();
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let mut block = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for b in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(block.len());
        f.write_all(&block[..n]).unwrap();
        hasher.update(&block[..n]);
        left -= n;
    }
    f.flush().unwrap();
    (path, hasher.finalize().to_vec())
}

fn stored_sha256(data: &Path, url: &str) -> Vec<u8> {
    let id = UploadId::new(url.trim().rsplit('/').next().unwrap()).unwrap();
    let storage = Storage::open(data).unwrap();
    let mut f = std::fs::File::open(storage.upload_dir(&id).join("data")).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    h.finalize().to_vec()
}

fn tus_js(endpoint: &str, file: &Path, chunk: &str, abort_at: Option<&str>) -> String {
    let script = clients_dir().join("tus-upload.mjs");
    assert!(
        clients_dir().join("node_modules/tus-js-client").exists(),
        "run `npm ci` in clients/js (scripts/test.sh does)"
    );
    let mut cmd = Command::new("node");
    cmd.arg(script).arg(endpoint).arg(file).arg(chunk);
    if let Some(a) = abort_at {
        cmd.arg(a);
    }
    let out = cmd.output().expect("node is installed");
    assert!(
        out.status.success(),
        "tus-js-client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn tus_js_client_uploads_are_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_server(&data, &[]);
    let endpoint = format!("http://{}/files/", server.http);
    let (file, want) = source_file(dir.path(), 200 << 20);

    // One PATCH of 200 MB (tus-js-client's default chunkSize is Infinity).
    let url = tus_js(&endpoint, &file, "single", None);
    assert!(url.contains("/files/"), "{url}");
    assert_eq!(stored_sha256(&data, &url), want, "single PATCH");

    // 5 MB chunks.
    let url = tus_js(&endpoint, &file, &(5 << 20).to_string(), None);
    assert_eq!(stored_sha256(&data, &url), want, "5 MB chunks");

    // Four parallel partial uploads concatenated into a final one.
    let url = tus_js(&endpoint, &file, "parallel4", None);
    assert_eq!(stored_sha256(&data, &url), want, "parallelUploads: 4");

    // Aborted at 40 % of a single PATCH, resumed from the server's offset.
    let url = tus_js(&endpoint, &file, "single", Some("0.4"));
    assert_eq!(stored_sha256(&data, &url), want, "abort and resume");
}

#[test]
fn tuspy_uploads_with_sha1_checksums() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_server(&data, &[]);
    let endpoint = format!("http://{}/files/", server.http);
    let (file, want) = source_file(dir.path(), 48 << 20);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/python/tus_upload.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&endpoint)
        .arg(&file)
        .arg((4 << 20).to_string())
        .output()
        .expect("python3 is installed");
    assert!(
        out.status.success(),
        "tuspy failed (pip install -r clients/python/requirements.txt): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stored_sha256(&data, &url), want);
}
