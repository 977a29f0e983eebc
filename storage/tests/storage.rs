//! Behaviour of the storage root on a real file system.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use videopick_storage::{
    Area, LAYOUT_FILE, RecordingId, RetentionPolicy, Storage, StorageError, StorageOptions,
    StreamKey, SyncPolicy, UploadId, VideoId,
};

fn open(dir: &Path) -> Storage {
    Storage::open_with(dir, StorageOptions::default().min_free_bytes(0)).unwrap()
}

#[test]
fn open_creates_layout_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let s = open(&root);
    for area in Area::ALL {
        assert!(s.area_dir(area).is_dir(), "{area} missing");
    }
    assert_eq!(
        fs::read_to_string(root.join(LAYOUT_FILE)).unwrap(),
        "videopick-storage layout 1\n"
    );
    // Reopening keeps what is there.
    s.write_atomic(s.vod_dir(&VideoId::new("v").unwrap()).join("a"), b"x")
        .unwrap();
    let s2 = open(&root);
    assert_eq!(s2.usage(Area::Vod).unwrap().files, 1);
}

#[test]
fn newer_or_corrupt_layout_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(LAYOUT_FILE), "videopick-storage layout 7\n").unwrap();
    let err = Storage::open(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::NewerLayout {
                found: 7,
                supported: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade"), "{err}");

    fs::write(dir.path().join(LAYOUT_FILE), "garbage").unwrap();
    let err = Storage::open(dir.path()).unwrap_err();
    assert!(matches!(err, StorageError::CorruptLayout { .. }), "{err}");
}

#[test]
fn typed_paths_are_sharded_inside_their_area() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let up = s.upload_dir(&UploadId::new("abc").unwrap());
    let rel = up.strip_prefix(s.root()).unwrap();
    let parts: Vec<_> = rel.iter().map(|c| c.to_str().unwrap()).collect();
    assert_eq!(parts.len(), 4, "{parts:?}");
    assert_eq!(parts[0], "uploads");
    assert_eq!(parts[3], "abc");
    let rec = s.recording_dir(
        &StreamKey::new("cam1").unwrap(),
        &RecordingId::new("r1").unwrap(),
    );
    assert!(rec.starts_with(s.stream_recordings_dir(&StreamKey::new("cam1").unwrap())));
    assert!(rec.starts_with(s.area_dir(Area::Recordings)));
}

#[test]
fn writers_refuse_paths_outside_object_areas() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    for bad in [
        dir.path().join("..").join("escape"),
        s.area_dir(Area::Tmp).join("x"),
        s.area_dir(Area::Vod),
        s.area_dir(Area::Vod).join("..").join("..").join("x"),
        Path::new("/etc/passwd").to_path_buf(),
    ] {
        let err = s.atomic_file(&bad).unwrap_err();
        assert!(
            matches!(err, StorageError::OutsideRoot { .. }),
            "{bad:?}: {err}"
        );
        assert!(s.append_file(&bad, SyncPolicy::Always).is_err(), "{bad:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    /// No accepted id yields a path outside its area, whatever the string.
    #[test]
    fn accepted_ids_stay_in_their_area(s in "\\PC{0,140}|[a-zA-Z0-9._/\\\\-]{0,140}") {
        static STORE: std::sync::OnceLock<(tempfile::TempDir, Storage)> = std::sync::OnceLock::new();
        let (_, st) = STORE.get_or_init(|| {
            let d = tempfile::tempdir().unwrap();
            let s = open(d.path());
            (d, s)
        });
        let checks: Vec<(std::path::PathBuf, Area)> = [
            UploadId::new(s.as_str()).ok().map(|id| (st.upload_dir(&id), Area::Uploads)),
            VideoId::new(s.as_str()).ok().map(|id| (st.vod_dir(&id), Area::Vod)),
            VideoId::new(s.as_str()).ok().map(|id| (st.thumbnail_dir(&id), Area::Thumbnails)),
            StreamKey::new(s.as_str()).ok().zip(RecordingId::new(s.as_str()).ok())
                .map(|(k, r)| (st.recording_dir(&k, &r), Area::Recordings)),
        ].into_iter().flatten().collect();
        for (path, area) in checks {
            let rel = path.strip_prefix(st.area_dir(area)).expect("inside area");
            prop_assert!(rel.components().all(|c| matches!(c, std::path::Component::Normal(_))));
            prop_assert!(rel.components().count() >= 3);
            // Lexically normal: no component can step out.
            prop_assert!(!path.to_string_lossy().contains("/../"));
            prop_assert!(!s.contains('/') && !s.contains('\\') && s.is_ascii() && !s.is_empty());
        }
    }
}

#[test]
fn atomic_file_appears_only_on_commit() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let target = s.vod_dir(&VideoId::new("v1").unwrap()).join("index.m3u8");
    let mut f = s.atomic_file(&target).unwrap();
    f.write_all(b"part one ").unwrap();
    assert!(!target.exists(), "visible before commit");
    f.write_all(b"part two").unwrap();
    f.commit().unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"part one part two");
    assert_eq!(
        s.usage(Area::Tmp).unwrap().files,
        0,
        "tmp entry left behind"
    );

    // Replace: the old content stays until the new one is committed.
    let mut f = s.atomic_file(&target).unwrap();
    f.write_all(b"new").unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"part one part two");
    f.commit().unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"new");

    // Dropped without commit: nothing published, nothing left in tmp/.
    let mut f = s.atomic_file(&target).unwrap();
    f.write_all(b"abandoned").unwrap();
    drop(f);
    assert_eq!(fs::read(&target).unwrap(), b"new");
    assert_eq!(s.usage(Area::Tmp).unwrap().files, 0);
}

#[test]
fn atomic_dir_publishes_whole_tree_and_replaces_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let target = s.vod_dir(&VideoId::new("ladder").unwrap());
    let d = s.atomic_dir(&target).unwrap();
    fs::create_dir(d.path().join("720p")).unwrap();
    fs::write(d.path().join("720p/seg0.ts"), b"ts").unwrap();
    fs::write(d.path().join("master.m3u8"), b"#EXTM3U v1").unwrap();
    assert!(!target.exists());
    d.commit().unwrap();
    assert_eq!(fs::read(target.join("720p/seg0.ts")).unwrap(), b"ts");

    // A second plain commit refuses to clobber.
    let d = s.atomic_dir(&target).unwrap();
    fs::write(d.path().join("master.m3u8"), b"#EXTM3U v2").unwrap();
    let err = d.commit().unwrap_err();
    assert!(matches!(err, StorageError::AlreadyExists { .. }), "{err}");
    assert_eq!(fs::read(target.join("master.m3u8")).unwrap(), b"#EXTM3U v1");

    // commit_replace swaps in the new tree and removes the old one entirely.
    let d = s.atomic_dir(&target).unwrap();
    fs::write(d.path().join("master.m3u8"), b"#EXTM3U v2").unwrap();
    d.commit_replace().unwrap();
    assert_eq!(fs::read(target.join("master.m3u8")).unwrap(), b"#EXTM3U v2");
    assert!(
        !target.join("720p").exists(),
        "old tree mixed into the new one"
    );
    assert_eq!(s.usage(Area::Tmp).unwrap().files, 0);
}

#[test]
fn append_file_tracks_durable_length_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let path = s.upload_dir(&UploadId::new("up").unwrap()).join("data");

    let mut a = s.append_file(&path, SyncPolicy::EveryBytes(10)).unwrap();
    a.append(b"12345").unwrap();
    assert_eq!((a.len(), a.durable_len()), (5, 0));
    a.append(b"67890").unwrap();
    assert_eq!(
        (a.len(), a.durable_len()),
        (10, 10),
        "EveryBytes(10) syncs at 10"
    );
    a.append(b"ab").unwrap();
    assert_eq!(a.durable_len(), 10);

    // A second handle on the same object is refused while the first is open.
    let err = s.append_file(&path, SyncPolicy::Always).unwrap_err();
    assert!(matches!(err, StorageError::Locked { .. }), "{err}");

    // Discard a chunk (checksum mismatch): back to 10.
    a.truncate(10).unwrap();
    assert!(a.truncate(11).is_err());
    assert_eq!(a.close().unwrap(), 10);

    // Reopen: the durable length is what is on disk, appends continue after it.
    let mut a = s.append_file(&path, SyncPolicy::Always).unwrap();
    assert_eq!((a.len(), a.durable_len()), (10, 10));
    a.append(b"XY").unwrap();
    assert_eq!(a.durable_len(), 12);
    drop(a);
    assert_eq!(fs::read(&path).unwrap(), b"1234567890XY");
}

#[test]
fn background_sync_raises_durable_length_only_for_what_it_covered() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let path = s.upload_dir(&UploadId::new("bg").unwrap()).join("data");
    let mut a = s.append_file(&path, SyncPolicy::OnClose).unwrap();
    a.append(b"0123456789").unwrap();
    let job = a.begin_sync().unwrap();
    assert_eq!(job.len(), 10);
    // Appends go on while the sync runs on another thread.
    let running = std::thread::spawn(move || job.run());
    a.append(b"abcdef").unwrap();
    let synced = running.join().unwrap().unwrap();
    assert_eq!(a.complete_sync(synced), 10, "only what the sync covered");
    assert_eq!((a.len(), a.durable_len()), (16, 10));

    // A sync begun before a truncation proves nothing about what was written after it.
    let stale = a.begin_sync().unwrap().run().unwrap();
    assert_eq!(stale.len(), 16);
    a.truncate(4).unwrap();
    a.append(b"XXXXXXXXXXXX").unwrap();
    assert_eq!(a.complete_sync(stale), 4);
    assert_eq!(a.close().unwrap(), 16);
    assert_eq!(fs::read(&path).unwrap(), b"0123XXXXXXXXXXXX");
}

#[test]
fn reserve_guards_free_space() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let free = s.free_bytes().unwrap();
    assert!(free > 0);
    let r = s.reserve(free / 2).unwrap();
    assert_eq!(s.reserved_bytes(), free / 2);
    // The rest minus what is reserved cannot cover another half plus a margin.
    let err = s.reserve(free / 2 + free / 4).unwrap_err();
    assert!(
        matches!(err, StorageError::InsufficientSpace { requested, .. } if requested == free / 2 + free / 4),
        "{err}"
    );
    assert!(err.is_no_space());
    drop(r);
    assert_eq!(s.reserved_bytes(), 0);

    // The configured reserve is never handed out.
    let s2 =
        Storage::open_with(dir.path(), StorageOptions::default().min_free_bytes(free)).unwrap();
    assert!(matches!(
        s2.reserve(1 << 20),
        Err(StorageError::InsufficientSpace { .. })
    ));

    let mut r = s.reserve(1000).unwrap();
    r.release(400);
    assert_eq!((r.bytes(), s.reserved_bytes()), (600, 600));
}

#[test]
fn usage_counts_each_area() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let v = VideoId::new("v").unwrap();
    s.write_atomic(s.vod_dir(&v).join("a"), &[0; 100]).unwrap();
    s.write_atomic(s.vod_dir(&v).join("b"), &[0; 50]).unwrap();
    s.write_atomic(s.thumbnail_dir(&v).join("p.jpg"), &[0; 7])
        .unwrap();
    assert_eq!(s.usage(Area::Vod).unwrap().bytes, 150);
    assert_eq!(s.usage(Area::Vod).unwrap().files, 2);
    assert_eq!(s.usage(Area::Thumbnails).unwrap().bytes, 7);
    assert_eq!(s.usage(Area::Uploads).unwrap().bytes, 0);
}

#[test]
fn tmp_sweep_removes_stale_entries_but_not_live_writers() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open_with(
        dir.path(),
        StorageOptions::default()
            .min_free_bytes(0)
            .tmp_ttl(Duration::from_secs(3600)),
    )
    .unwrap();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("keep"), b"precious").unwrap();

    // Leftovers of a crashed writer, a symlink pointing out of the root, a live writer.
    fs::write(s.area_dir(Area::Tmp).join("dead.part"), vec![1; 300]).unwrap();
    fs::create_dir(s.area_dir(Area::Tmp).join("dead.dir")).unwrap();
    fs::write(s.area_dir(Area::Tmp).join("dead.dir/f"), vec![1; 20]).unwrap();
    std::os::unix::fs::symlink(outside.path(), s.area_dir(Area::Tmp).join("link")).unwrap();
    let live = s
        .atomic_file(s.vod_dir(&VideoId::new("v").unwrap()).join("x"))
        .unwrap();

    // Young entries stay.
    let report = s.sweep_tmp(SystemTime::now()).unwrap();
    assert!(report.removed.is_empty(), "{report:?}");

    let later = SystemTime::now() + Duration::from_secs(2 * 3600);
    let report = s.sweep_tmp(later).unwrap();
    let names: Vec<_> = report
        .removed
        .iter()
        .map(|r| r.path.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"dead.part".to_string()), "{names:?}");
    assert!(names.contains(&"dead.dir".to_string()), "{names:?}");
    assert!(names.contains(&"link".to_string()), "{names:?}");
    assert_eq!(report.removed.len(), 3, "{report:?}");
    assert_eq!(
        report.skipped_locked.len(),
        1,
        "live writer must be skipped"
    );
    assert!(report.bytes_removed() >= 320);
    assert_eq!(fs::read(outside.path().join("keep")).unwrap(), b"precious");
    // The live writer still commits.
    live.commit().unwrap();
}

fn make_recording(
    s: &Storage,
    stream: &str,
    rec: &str,
    bytes: usize,
    age: Duration,
) -> std::path::PathBuf {
    let dir = s.recording_dir(
        &StreamKey::new(stream).unwrap(),
        &RecordingId::new(rec).unwrap(),
    );
    fs::create_dir_all(&dir).unwrap();
    let f = dir.join("seg0.ts");
    fs::write(&f, vec![0; bytes]).unwrap();
    let t = SystemTime::now() - age;
    File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(t)
        .unwrap();
    File::open(&dir).unwrap().set_modified(t).unwrap();
    dir
}

#[test]
fn retention_sweep_by_age_and_size_skips_locked_and_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let day = Duration::from_secs(86_400);
    let old = make_recording(&s, "cam", "old", 1000, day * 10);
    let mid = make_recording(&s, "cam", "mid", 1000, day * 3);
    let new = make_recording(&s, "cam2", "new", 1000, day);
    let busy = make_recording(&s, "cam2", "busy", 1000, day * 20);
    let _busy_lock = s.try_lock(&busy).unwrap();

    // A symlink inside recordings/ pointing outside must never be followed.
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("keep"), b"x").unwrap();
    let stream_dir = s.stream_recordings_dir(&StreamKey::new("cam").unwrap());
    std::os::unix::fs::symlink(outside.path(), stream_dir.join("evil")).unwrap();

    let now = SystemTime::now();
    let report = s
        .sweep_recordings(
            &RetentionPolicy {
                max_age: Some(day * 7),
                max_total_bytes: None,
            },
            now,
        )
        .unwrap();
    assert_eq!(report.removed.len(), 1, "{report:?}");
    assert_eq!(report.removed[0].path, old);
    assert_eq!(report.removed[0].bytes, 1000);
    assert_eq!(report.skipped_locked, vec![busy.clone()]);
    assert!(!old.exists() && mid.exists() && new.exists() && busy.exists());

    // Size: 3000 bytes left (busy counts but cannot go) → remove oldest until ≤ 2000.
    let report = s
        .sweep_recordings(
            &RetentionPolicy {
                max_age: None,
                max_total_bytes: Some(2000),
            },
            now,
        )
        .unwrap();
    assert_eq!(
        report
            .removed
            .iter()
            .map(|r| r.path.clone())
            .collect::<Vec<_>>(),
        vec![mid.clone()]
    );
    assert!(new.exists() && busy.exists());
    assert_eq!(fs::read(outside.path().join("keep")).unwrap(), b"x");
}

#[test]
fn locks_exclude_other_handles_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let obj = s.vod_dir(&VideoId::new("v").unwrap());
    let l = s.try_lock(&obj).unwrap();
    assert!(matches!(s.try_lock(&obj), Err(StorageError::Locked { .. })));
    // An atomic dir publish to a locked target is refused, not interleaved.
    let d = s.atomic_dir(&obj).unwrap();
    assert!(matches!(d.commit(), Err(StorageError::Locked { .. })));
    drop(l);
    assert!(s.try_lock(&obj).is_ok());
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn async_writers() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let target = s
        .thumbnail_dir(&VideoId::new("v").unwrap())
        .join("poster.jpg");
    let mut f = s.atomic_file_async(&target).await.unwrap();
    f.write_all(b"jpeg bytes").await.unwrap();
    assert!(!target.exists());
    f.commit().await.unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"jpeg bytes");

    let path = s.upload_dir(&UploadId::new("u").unwrap()).join("data");
    let mut a = s
        .append_file_async(&path, SyncPolicy::OnClose)
        .await
        .unwrap();
    a.append(b"abc").await.unwrap();
    assert_eq!((a.len(), a.durable_len()), (3, 0));
    assert!(matches!(
        s.append_file_async(&path, SyncPolicy::OnClose).await,
        Err(StorageError::Locked { .. })
    ));
    a.append(b"def").await.unwrap();
    a.truncate(4).await.unwrap();
    assert_eq!(a.close().await.unwrap(), 4);
    assert_eq!(fs::read(&path).unwrap(), b"abcd");
}

#[test]
fn removing_an_object_takes_its_lock_files_and_is_refused_while_locked() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let v = s.vod_dir(&VideoId::new("gone").unwrap());
    s.write_atomic(v.join("720p").join("index.m3u8"), b"#EXTM3U\n")
        .unwrap();
    // Locks of the object and of one inside it leave lock files behind.
    drop(s.try_lock(&v).unwrap());
    drop(s.try_lock(&v.join("720p")).unwrap());
    let locks = |root: &Path| {
        let mut n = 0;
        let mut todo = vec![root.join("locks")];
        while let Some(d) = todo.pop() {
            for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().unwrap().is_dir() {
                    todo.push(e.path());
                } else {
                    n += 1;
                }
            }
        }
        n
    };
    assert_eq!(locks(dir.path()), 2);
    // Someone holds it: refused, nothing removed.
    let held = s.try_lock(&v).unwrap();
    assert!(matches!(
        s.remove_object(&v),
        Err(StorageError::Locked { .. })
    ));
    assert!(v.join("720p").join("index.m3u8").exists());
    drop(held);
    assert!(s.remove_object(&v).unwrap());
    assert!(!v.exists());
    assert_eq!(locks(dir.path()), 0, "lock files stay behind");
    assert!(!s.remove_object(&v).unwrap());
    // Nothing outside the object areas.
    assert!(s.remove_object(dir.path()).is_err());
}
