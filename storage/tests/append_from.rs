//! `AppendFile::append_from`: bytes copied by the kernel land exactly, count toward the
//! lengths and sync policy, and a short source is an error that leaves the handle usable.

use std::io::{Seek, SeekFrom, Write};

use videopick_storage::{Storage, SyncPolicy, UploadId};

#[test]
fn append_from_copies_in_kernel_and_keeps_the_books() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(dir.path().join("data")).unwrap();
    let target = s.upload_dir(&UploadId::new("u").unwrap()).join("data");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let mut src = tempfile::tempfile().unwrap();
    let pattern: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 253) as u8).collect();
    src.write_all(&pattern).unwrap();

    let mut f = s
        .append_file(&target, SyncPolicy::EveryBytes(1 << 20))
        .unwrap();
    f.append(b"head:").unwrap();
    src.seek(SeekFrom::Start(0)).unwrap();
    f.append_from(&mut src, 2 << 20).unwrap();
    assert_eq!(f.len(), 5 + (2 << 20));
    assert_eq!(f.durable_len(), f.len(), "the 1 MiB policy synced");
    // Asking for more than the source holds: an error, the handle stays consistent.
    assert!(f.append_from(&mut src, 2 << 20).is_err());
    let len = f.len();
    f.truncate(5 + (2 << 20)).unwrap();
    assert!(len >= 5 + (2 << 20));
    f.close().unwrap();

    let stored = std::fs::read(&target).unwrap();
    assert_eq!(&stored[..5], b"head:");
    assert_eq!(&stored[5..], &pattern[..2 << 20]);
}

/// `AppendFile::append_from_pipe` (how tus PATCH bodies spliced from a socket land): what
/// the pipe holds goes in after the bytes appended before it, in order, counted, and what
/// is appended afterwards follows it (an append-mode file and the positional descriptor
/// `splice` needs agree on where the end is).
#[test]
fn append_from_pipe_moves_what_the_pipe_holds_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(dir.path().join("data")).unwrap();
    let target = s.upload_dir(&UploadId::new("p").unwrap()).join("data");
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    let pattern: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (r, w) = rustix::pipe::pipe().unwrap();

    let mut f = s
        .append_file(&target, SyncPolicy::EveryBytes(128 << 10))
        .unwrap();
    f.append(b"head:").unwrap();
    for chunk in pattern.chunks(40_000) {
        let mut sent = 0;
        while sent < chunk.len() {
            sent += rustix::io::write(&w, &chunk[sent..]).unwrap();
        }
        let mut left = chunk.len();
        while left > 0 {
            let n = f.append_from_pipe(&r, left).unwrap();
            assert!(n > 0);
            left -= n;
        }
    }
    assert_eq!(f.len(), 5 + pattern.len() as u64);
    assert!(f.durable_len() >= 128 << 10, "the 128 KiB policy synced");
    f.append(b":tail").unwrap();
    assert_eq!(f.close().unwrap(), 10 + pattern.len() as u64);

    let stored = std::fs::read(&target).unwrap();
    assert_eq!(&stored[..5], b"head:");
    assert_eq!(&stored[5..5 + pattern.len()], &pattern[..]);
    assert_eq!(&stored[5 + pattern.len()..], b":tail");
}
