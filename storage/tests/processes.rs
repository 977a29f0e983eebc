//! Tests across processes: SIGKILL during writes, and lock contention.
//!
//! The child processes are this same test binary, re-run with `--exact child_process` and an
//! environment variable that says what to do.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use videopick_storage::{
    Area, RecordingId, RetentionPolicy, Storage, StorageError, StorageOptions, StreamKey,
    SyncPolicy, UploadId, VideoId,
};

const CHILD_ENV: &str = "VIDEOPICK_STORAGE_TEST_CHILD";

fn open(root: &Path) -> Storage {
    Storage::open_with(root, StorageOptions::default().min_free_bytes(0)).unwrap()
}

/// Entry point of the child processes; does nothing unless started by a test below.
#[test]
#[ignore = "helper run as a child process by the tests in this file"]
fn child_process() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.splitn(3, ':');
    let mode = parts.next().unwrap();
    let arg = parts.next().unwrap().to_string();
    let root = PathBuf::from(parts.next().unwrap());
    match mode {
        "writer" => writer(&root, arg.parse().unwrap()),
        "locker" => locker(&root),
        other => panic!("unknown child mode {other}"),
    }
}

fn spawn_child(mode: &str, arg: &str, root: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{mode}:{arg}:{}", root.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The text after `tag` in a line of the child's output (libtest may print
/// `test child_process ... ` in front of the child's first line).
fn marker<'a>(line: &'a str, tag: &str) -> Option<&'a str> {
    line.find(tag).map(|at| &line[at + tag.len()..])
}

// ---------------------------------------------------------------- crash safety

fn object_size(round: u64, i: u64) -> usize {
    1024 + ((round * 7919 + i * 104_729) % 300_000) as usize
}

fn object_byte(round: u64, i: u64, j: usize) -> u8 {
    ((j as u64 * 7 + i * 13 + round * 101) % 251) as u8
}

fn append_byte(offset: u64) -> u8 {
    ((offset % 251) as u8) ^ ((offset / 251) as u8)
}

fn append_path(s: &Storage) -> PathBuf {
    s.upload_dir(&UploadId::new("crash-upload").unwrap())
        .join("data")
}

fn object_path(s: &Storage, round: u64, i: u64) -> PathBuf {
    s.vod_dir(&VideoId::new(format!("r{round}")).unwrap())
        .join(format!("obj-{i}"))
}

/// Child: publish objects atomically in several writes each, and append to one upload,
/// printing what has been committed and what the append handle says is durable, until
/// killed.
fn writer(root: &Path, round: u64) {
    use std::io::Write;
    let s = open(root);
    let mut append = s
        .append_file(append_path(&s), SyncPolicy::EveryBytes(48 * 1024))
        .unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "DURABLE {}", append.durable_len()).unwrap();
    for i in 0.. {
        let size = object_size(round, i);
        let data: Vec<u8> = (0..size).map(|j| object_byte(round, i, j)).collect();
        let mut f = s.atomic_file(object_path(&s, round, i)).unwrap();
        for chunk in data.chunks(16 * 1024) {
            f.write_all(chunk).unwrap();
        }
        f.commit().unwrap();
        writeln!(out, "COMMITTED {i}").unwrap();

        for _ in 0..3 {
            let start = append.len();
            let n = 5000 + (i * 977 % 20_000);
            let chunk: Vec<u8> = (start..start + n).map(append_byte).collect();
            let before = append.durable_len();
            append.append(&chunk).unwrap();
            if append.durable_len() != before {
                writeln!(out, "DURABLE {}", append.durable_len()).unwrap();
            }
        }
        out.flush().unwrap();
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn sigkill_never_leaves_partial_objects_or_overstated_durable_length() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng(seed);
    let s = open(root);
    let rounds = 60;
    let (mut total_committed, mut max_durable_seen) = (0usize, 0u64);

    for round in 0..rounds {
        let mut child = spawn_child("writer", &round.to_string(), root);
        let stdout = child.stdout.take().unwrap();
        // Read the child's reports on a thread so the child never blocks on a full pipe.
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            BufReader::new(stdout).read_to_string(&mut text).ok();
            text
        });
        // Kill at a random point: usually mid-write, sometimes during start-up.
        std::thread::sleep(Duration::from_millis(5 + rng.next() % 80));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let text = reader.join().unwrap();

        let mut committed = Vec::new();
        let mut durable = 0;
        for line in text.lines() {
            if let Some(i) = marker(line, "COMMITTED ") {
                committed.push(i.parse::<u64>().unwrap());
            } else if let Some(d) = marker(line, "DURABLE ") {
                durable = durable.max(d.parse::<u64>().unwrap());
            }
        }
        total_committed += committed.len();
        max_durable_seen = max_durable_seen.max(durable);

        // Every committed object is there, complete.
        for &i in &committed {
            let got = std::fs::read(object_path(&s, round, i))
                .unwrap_or_else(|e| panic!("round {round}: committed obj-{i} missing: {e}"));
            assert_eq!(got.len(), object_size(round, i), "round {round} obj-{i}");
        }
        // Every object at a final path is complete and correct (committed or not).
        let vod_dir = s.vod_dir(&VideoId::new(format!("r{round}")).unwrap());
        if let Ok(entries) = std::fs::read_dir(&vod_dir) {
            for e in entries {
                let e = e.unwrap();
                let name = e.file_name().into_string().unwrap();
                let i: u64 = name.strip_prefix("obj-").unwrap().parse().unwrap();
                let got = std::fs::read(e.path()).unwrap();
                assert_eq!(
                    got.len(),
                    object_size(round, i),
                    "round {round}: partial {name}"
                );
                assert!(
                    got.iter()
                        .enumerate()
                        .all(|(j, &b)| b == object_byte(round, i, j)),
                    "round {round}: corrupt {name}"
                );
            }
        }
        // The append file holds at least what was reported durable, and only correct bytes.
        let data = std::fs::read(append_path(&s)).unwrap_or_default();
        assert!(
            data.len() as u64 >= durable,
            "round {round}: durable {durable} reported but only {} bytes on disk",
            data.len()
        );
        assert!(
            data.iter()
                .enumerate()
                .all(|(o, &b)| b == append_byte(o as u64)),
            "round {round}: append file corrupt"
        );
    }
    eprintln!(
        "{rounds} kills: {total_committed} objects committed, max durable {max_durable_seen}"
    );
    assert!(
        total_committed > 0,
        "the writer never got to commit anything"
    );
    assert!(max_durable_seen > 0, "the append handle never synced");

    // Killed writers leave only unlocked tmp/ entries; the sweep clears them all.
    let later = SystemTime::now() + Duration::from_secs(3 * 86_400);
    let report = s.sweep_tmp(later).unwrap();
    assert!(report.skipped_locked.is_empty(), "{report:?}");
    assert_eq!(s.usage(Area::Tmp).unwrap().files, 0);
    // And the upload resumes where it stopped.
    let a = s.append_file(append_path(&s), SyncPolicy::Always).unwrap();
    assert_eq!(
        a.durable_len(),
        std::fs::metadata(append_path(&s)).unwrap().len()
    );
}

// ---------------------------------------------------------------- lock contention

fn locked_recording(s: &Storage) -> PathBuf {
    s.recording_dir(
        &StreamKey::new("cam").unwrap(),
        &RecordingId::new("live").unwrap(),
    )
}

/// Child: hold the recording's lock and its append handle until killed.
fn locker(root: &Path) {
    let s = open(root);
    let rec = locked_recording(&s);
    let _lock = s.lock(&rec).unwrap();
    let _append = s
        .append_file(
            s.upload_dir(&UploadId::new("shared").unwrap()).join("data"),
            SyncPolicy::Always,
        )
        .unwrap();
    println!("LOCKED");
    let mut buf = String::new();
    // Wait until the parent closes stdin (or kills us).
    let _ = std::io::stdin().read_line(&mut buf);
}

#[test]
fn locks_are_exclusive_across_processes_and_released_by_death() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let rec = locked_recording(&s);
    std::fs::create_dir_all(&rec).unwrap();
    std::fs::write(rec.join("seg0.ts"), b"old").unwrap();

    let mut child = spawn_child("locker", "-", dir.path());
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = lines.next().expect("child exited before locking").unwrap();
        if marker(&line, "LOCKED").is_some() {
            break;
        }
        assert!(Instant::now() < deadline);
    }

    assert!(matches!(s.try_lock(&rec), Err(StorageError::Locked { .. })));
    let upload = s.upload_dir(&UploadId::new("shared").unwrap()).join("data");
    assert!(matches!(
        s.append_file(&upload, SyncPolicy::Always),
        Err(StorageError::Locked { .. })
    ));
    // A retention sweep leaves the locked recording alone however old it is.
    let far = SystemTime::now() + Duration::from_secs(365 * 86_400);
    let policy = RetentionPolicy {
        max_age: Some(Duration::from_secs(1)),
        max_total_bytes: Some(0),
    };
    let report = s.sweep_recordings(&policy, far).unwrap();
    assert!(report.removed.is_empty(), "{report:?}");
    assert_eq!(report.skipped_locked, vec![rec.clone()]);
    assert!(rec.join("seg0.ts").exists());

    // SIGKILL releases the locks: the kernel drops a dead process's flocks.
    child.kill().unwrap();
    child.wait().unwrap();
    let lock = s.lock(&rec).unwrap();
    drop(lock);
    assert!(s.append_file(&upload, SyncPolicy::Always).is_ok());
    let report = s.sweep_recordings(&policy, far).unwrap();
    assert_eq!(report.removed.len(), 1);
    assert!(!rec.exists());
}
