//! A full disk: a small tmpfs mounted by the test (tests run as root on this project's
//! machines and CI). Writes fail with a clear no-space error, nothing at a final path is
//! damaged, and work goes on once space is freed.

use std::path::{Path, PathBuf};
use std::process::Command;

use videopick_storage::{
    Area, Storage, StorageError, StorageOptions, SyncPolicy, UploadId, VideoId,
};

struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root (as on CI): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn full_disk_gives_clear_errors_corrupts_nothing_and_recovers() {
    let fs = Tmpfs::mount("3m");
    let s = Storage::open_with(
        fs.path(),
        StorageOptions::default().min_free_bytes(512 * 1024),
    )
    .unwrap();
    let video = VideoId::new("v").unwrap();

    // The guard refuses what would eat into the reserve, before anything is written.
    let err = s.reserve(3 << 20).unwrap_err();
    assert!(
        matches!(err, StorageError::InsufficientSpace { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("insufficient space"), "{err}");

    // Fill the disk with atomically published files until it says no.
    let mut written: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let err = loop {
        let i = written.len();
        let data = pattern(i as u8, 200 * 1024);
        let target = s.vod_dir(&video).join(format!("seg{i}.ts"));
        match s.write_atomic(&target, &data) {
            Ok(_) => written.push((target, data)),
            Err(e) => {
                assert!(!target.exists(), "a failed write left {target:?} behind");
                break e;
            }
        }
        assert!(i < 100, "a 3 MiB tmpfs never filled up");
    };
    assert!(matches!(err, StorageError::DiskFull { .. }), "{err:?}");
    assert!(err.is_no_space());
    assert!(err.to_string().starts_with("disk full"), "{err}");
    assert!(!written.is_empty());
    // The failed write cleaned up after itself.
    assert_eq!(s.usage(Area::Tmp).unwrap().files, 0);

    // An append handle on the full disk fails clearly and never overstates what is stored.
    let upload = s.upload_dir(&UploadId::new("u").unwrap()).join("data");
    let mut a = s.append_file(&upload, SyncPolicy::Always).unwrap();
    let mut expected = Vec::new();
    let err = loop {
        let chunk = pattern(expected.len() as u8, 16 * 1024);
        match a.append(&chunk) {
            Ok(()) => expected.extend_from_slice(&chunk),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, StorageError::DiskFull { .. }), "{err:?}");
    let on_disk = std::fs::read(&upload).unwrap();
    assert!(a.durable_len() <= on_disk.len() as u64);
    assert_eq!(a.durable_len(), expected.len() as u64);
    assert_eq!(&on_disk[..expected.len()], &expected[..]);

    // Nothing published earlier was damaged.
    for (path, data) in &written {
        assert_eq!(&std::fs::read(path).unwrap(), data, "{path:?} corrupted");
    }

    // Free space: both writers carry on.
    for (path, _) in written.drain(..3.min(written.len())) {
        std::fs::remove_file(path).unwrap();
    }
    a.truncate(expected.len() as u64).unwrap();
    let more = pattern(7, 16 * 1024);
    a.append(&more).unwrap();
    expected.extend_from_slice(&more);
    assert_eq!(a.close().unwrap(), expected.len() as u64);
    assert_eq!(std::fs::read(&upload).unwrap(), expected);
    let target = s.vod_dir(&video).join("after.ts");
    s.write_atomic(&target, &pattern(9, 100 * 1024)).unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), pattern(9, 100 * 1024));
}
