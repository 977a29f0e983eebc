//! SIGKILL a writer process at random points, 12 times: the recorded offset never runs
//! ahead of the bytes on disk, every recorded byte is right, and resuming each time ends
//! in a byte-identical upload.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use videopick_storage::{Storage, SyncPolicy, UploadId};
use videopick_tus::{FileStore, UploadInfo, new_upload_id};

const LENGTH: u64 = 32 << 20;

fn byte_at(p: u64) -> u8 {
    (p.wrapping_mul(31) % 251) as u8
}

/// Child mode: append the pattern from the recorded offset until complete.
fn child(root: &str, id: &str) {
    let store = FileStore::new(
        Storage::open(root).unwrap(),
        SyncPolicy::EveryBytes(256 << 10),
    );
    let id = UploadId::new(id).unwrap();
    loop {
        let offset = store.get(&id).unwrap().offset;
        if offset == LENGTH {
            return;
        }
        let mut w = store.writer(&id, offset).unwrap();
        let mut p = offset;
        // One "request": up to 1 MiB in 37 KiB pieces.
        let end = (offset + (1 << 20)).min(LENGTH);
        while p < end {
            let n = (37 << 10).min(end - p);
            let chunk: Vec<u8> = (p..p + n).map(byte_at).collect();
            w.write(&chunk).unwrap();
            p += n;
        }
        w.finish().unwrap();
    }
}

#[test]
fn sigkill_at_random_points_then_resume() {
    if let (Ok(root), Ok(id)) = (
        std::env::var("TUS_CRASH_ROOT"),
        std::env::var("TUS_CRASH_ID"),
    ) {
        child(&root, &id);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    let store = FileStore::new(Storage::open(&root).unwrap(), SyncPolicy::Always);
    let id = new_upload_id().unwrap();
    store
        .create(UploadInfo {
            id: id.clone(),
            length: Some(LENGTH),
            metadata: String::new(),
            concat: None,
            created: std::time::SystemTime::now(),
            expires: None,
        })
        .unwrap();
    let exe = std::env::current_exe().unwrap();
    // Kill points: 12 pseudo-random offsets, killed as soon as the record passes each one
    // (so wherever the writer then is in its write / fsync / record cycle).
    let mut seed = 0x9e37_79b9_u64;
    let mut points: Vec<u64> = (0..12)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % (LENGTH - (1 << 20))
        })
        .collect();
    points.sort_unstable();
    let mut kills = 0;
    let mut offsets = Vec::new();
    let start = Instant::now();
    let mut next = points.into_iter();
    loop {
        let point = next.next();
        let mut c = Command::new(&exe)
            .args([
                "--exact",
                "sigkill_at_random_points_then_resume",
                "--nocapture",
            ])
            .env("TUS_CRASH_ROOT", &root)
            .env("TUS_CRASH_ID", id.as_str())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if let Some(point) = point {
            while c.try_wait().unwrap().is_none() {
                if store.get(&id).unwrap().offset >= point {
                    c.kill().unwrap(); // SIGKILL
                    kills += 1;
                    break;
                }
                std::thread::sleep(Duration::from_micros(500));
            }
        }
        c.wait().unwrap();
        let u = store.get(&id).unwrap();
        let data = std::fs::read(store.data_path(&id)).unwrap();
        assert!(
            u.offset <= data.len() as u64,
            "advertised bytes that are not on disk"
        );
        assert!(
            data[..u.offset as usize]
                .iter()
                .enumerate()
                .all(|(p, &b)| b == byte_at(p as u64)),
            "a recorded byte is wrong"
        );
        offsets.push(u.offset);
        if u.offset == LENGTH {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no progress: {offsets:?}"
        );
    }
    assert!(kills >= 10, "{kills} kills at {offsets:?}");
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]), "{offsets:?}");
    let data = std::fs::read(store.data_path(&id)).unwrap();
    assert_eq!(data.len() as u64, LENGTH);
    assert!(
        data.iter()
            .enumerate()
            .all(|(p, &b)| b == byte_at(p as u64))
    );
}
