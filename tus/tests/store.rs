//! The upload store on a real storage root: creation, appends with offset and length
//! checks, locking, crash leftovers, deferred length, termination.

use std::time::{Duration, SystemTime};

use videopick_storage::{Storage, SyncPolicy};
use videopick_tus::{ConcatRole, FileStore, StoreError, UploadInfo, new_upload_id};

fn store(policy: SyncPolicy) -> (tempfile::TempDir, FileStore) {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path().join("data")).unwrap();
    (dir, FileStore::new(storage, policy))
}

fn info(length: Option<u64>) -> UploadInfo {
    UploadInfo {
        id: new_upload_id().unwrap(),
        length,
        metadata: "filename bW92aWUubXA0".into(),
        concat: None,
        created: SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_680_911_123),
        expires: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_767_311_123)),
    }
}

#[test]
fn create_write_and_read_back() {
    let (_d, s) = store(SyncPolicy::Always);
    let mut i = info(Some(10));
    i.concat = Some(ConcatRole::Partial);
    let u = s.create(i.clone()).unwrap();
    assert_eq!(u.offset, 0);
    assert_eq!(s.get(&i.id).unwrap().info, i, "info round-trips");

    let mut w = s.writer(&i.id, 0).unwrap();
    w.write(b"hello").unwrap();
    assert_eq!(w.finish().unwrap(), 5);
    assert_eq!(s.get(&i.id).unwrap().offset, 5);

    // Offset mismatch: nothing is modified.
    match s.writer(&i.id, 3) {
        Err(StoreError::OffsetMismatch {
            current: 5,
            requested: 3,
        }) => {}
        other => panic!("{other:?}"),
    }
    // Past the length: refused, nothing written.
    let mut w = s.writer(&i.id, 5).unwrap();
    assert!(matches!(
        w.write(b"world!"),
        Err(StoreError::PastLength { length: 10 })
    ));
    w.write(b"world").unwrap();
    assert_eq!(w.finish().unwrap(), 10);
    let u = s.get(&i.id).unwrap();
    assert!(u.is_complete());
    assert_eq!(std::fs::read(s.data_path(&i.id)).unwrap(), b"helloworld");
}

#[test]
fn one_writer_at_a_time() {
    let (_d, s) = store(SyncPolicy::Always);
    let i = info(None);
    s.create(i.clone()).unwrap();
    let w = s.writer(&i.id, 0).unwrap();
    assert!(matches!(s.writer(&i.id, 0), Err(StoreError::Locked(_))));
    assert!(matches!(s.terminate(&i.id), Err(StoreError::Locked(_))));
    drop(w);
    assert!(s.writer(&i.id, 0).is_ok());
}

#[test]
fn bytes_past_the_recorded_offset_are_never_advertised() {
    let (_d, s) = store(SyncPolicy::OnClose);
    let i = info(Some(100));
    s.create(i.clone()).unwrap();
    let mut w = s.writer(&i.id, 0).unwrap();
    w.write(&[1; 30]).unwrap();
    assert_eq!(w.finish().unwrap(), 30);
    // A crash after writing, before fsync + record: the bytes are in the file, not in the
    // record.
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(s.data_path(&i.id))
            .unwrap();
        f.write_all(&[2; 20]).unwrap();
    }
    assert_eq!(
        s.get(&i.id).unwrap().offset,
        30,
        "only the recorded offset counts"
    );
    // The next writer cuts them away and resumes at 30.
    let mut w = s.writer(&i.id, 30).unwrap();
    w.write(&[3; 70]).unwrap();
    assert_eq!(w.finish().unwrap(), 100);
    let data = std::fs::read(s.data_path(&i.id)).unwrap();
    assert_eq!(data.len(), 100);
    assert!(data[..30].iter().all(|&b| b == 1) && data[30..].iter().all(|&b| b == 3));
}

#[test]
fn rewind_drops_a_chunk_even_after_an_fsync() {
    let (_d, s) = store(SyncPolicy::EveryBytes(8));
    let i = info(None);
    s.create(i.clone()).unwrap();
    let mut w = s.writer(&i.id, 0).unwrap();
    w.write(b"good").unwrap();
    let start = w.finish().unwrap();
    let mut w = s.writer(&i.id, start).unwrap();
    w.write(b"bad chunk, fsynced midway").unwrap();
    // The policy's fsync runs on a helper thread and records part of the chunk.
    let t0 = std::time::Instant::now();
    while s.get(&i.id).unwrap().offset <= start {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "no offset recorded"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert_eq!(w.rewind(start).unwrap(), 4);
    assert_eq!(w.finish().unwrap(), 4);
    assert_eq!(s.get(&i.id).unwrap().offset, 4);
    assert_eq!(std::fs::read(s.data_path(&i.id)).unwrap(), b"good");
}

#[test]
fn deferred_length_and_termination() {
    let (_d, s) = store(SyncPolicy::Always);
    let i = info(None);
    s.create(i.clone()).unwrap();
    let mut w = s.writer(&i.id, 0).unwrap();
    w.write(b"abc").unwrap();
    w.finish().unwrap();
    assert!(matches!(
        s.declare_length(&i.id, 2),
        Err(StoreError::PastLength { .. })
    ));
    assert_eq!(s.declare_length(&i.id, 3).unwrap().info.length, Some(3));
    assert!(s.get(&i.id).unwrap().is_complete());
    assert!(matches!(
        s.declare_length(&i.id, 4),
        Err(StoreError::LengthAlreadySet)
    ));
    s.terminate(&i.id).unwrap();
    assert!(matches!(s.get(&i.id), Err(StoreError::NotFound(_))));
    assert!(matches!(s.writer(&i.id, 0), Err(StoreError::NotFound(_))));
    assert!(matches!(s.terminate(&i.id), Err(StoreError::NotFound(_))));
}

#[test]
fn ids_are_unique_and_valid() {
    let ids: std::collections::HashSet<String> = (0..1000)
        .map(|_| new_upload_id().unwrap().into_string())
        .collect();
    assert_eq!(ids.len(), 1000);
    assert!(ids.iter().all(|i| i.len() == 32));
}

#[test]
fn expired_unfinished_uploads_are_swept_others_kept() {
    let (_d, s) = store(SyncPolicy::Always);
    let stale = info(Some(10));
    let done = info(Some(3));
    let busy = info(Some(10));
    for i in [&stale, &done, &busy] {
        s.create(i.clone()).unwrap();
    }
    let mut w = s.writer(&done.id, 0).unwrap();
    w.write(b"abc").unwrap();
    w.finish().unwrap();
    let writer = s.writer(&busy.id, 0).unwrap();
    let mut all = s.list().unwrap();
    all.sort();
    assert_eq!(all.len(), 3);

    let later = SystemTime::now() + Duration::from_secs(3600);
    // Not yet: a day's TTL keeps everything.
    assert!(
        s.sweep_expired(Duration::from_secs(86_400), later)
            .unwrap()
            .is_empty()
    );
    // With a 10-minute TTL an hour later: only the idle unfinished upload goes.
    let removed = s.sweep_expired(Duration::from_secs(600), later).unwrap();
    assert_eq!(removed, vec![stale.id.clone()]);
    assert!(matches!(s.get(&stale.id), Err(StoreError::NotFound(_))));
    assert!(
        s.get(&done.id).unwrap().is_complete(),
        "finished uploads are kept"
    );
    assert!(
        s.get(&busy.id).is_ok(),
        "an upload being written is skipped"
    );
    drop(writer);
}
