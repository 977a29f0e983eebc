//! Job queues: the same contract checked on the embedded queue and on the local
//! PostgreSQL (a fresh database per test), PostgreSQL under 8 concurrent workers, and the
//! embedded queue across a kill -9 of the process running a real ffmpeg job.

#![cfg(feature = "postgres")]

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use videopick_storage::{Storage, VideoId};
use videopick_transcode::plan::LadderConfig;
use videopick_transcode::queue::{Backoff, FileQueue, JobQueue, JobState, Lease, NewJob, PgQueue};
use videopick_transcode::runner::{Runner, RunnerConfig};
use videopick_transcode::worker::{Worker, WorkerConfig, ladder_job};
use videopick_transcode::{Transcoder, TranscoderConfig};

fn quick() -> Backoff {
    Backoff {
        base: Duration::from_millis(100),
        max: Duration::from_millis(400),
    }
}

async fn fresh_db() -> (String, String) {
    videopick_testkit::pg::fresh_db("vp_jobs").await
}

async fn drop_db(name: &str) {
    videopick_testkit::pg::drop_db(name).await;
}

/// The behaviour every queue must have.
#[allow(clippy::too_many_lines)] // one contract, step by step
async fn contract<Q: JobQueue + Clone>(q: &Q) {
    // Priority first, then age.
    let low = q.enqueue(NewJob::new("t", json!({"n": 1}))).await.unwrap();
    let high = q
        .enqueue(NewJob::new("t", json!({"n": 2})).priority(5))
        .await
        .unwrap();
    let low2 = q.enqueue(NewJob::new("t", json!({"n": 3}))).await.unwrap();
    let lease = Duration::from_secs(30);
    let order: Vec<i64> = [
        q.claim("w1", lease).await.unwrap().unwrap(),
        q.claim("w1", lease).await.unwrap().unwrap(),
        q.claim("w1", lease).await.unwrap().unwrap(),
    ]
    .iter()
    .map(videopick_transcode::queue::Claim::id)
    .collect();
    assert_eq!(order, [high, low, low2]);
    assert!(
        q.claim("w1", lease).await.unwrap().is_none(),
        "nothing left"
    );
    for id in order {
        assert!(q.cancel(id).await.unwrap());
    }

    // Failures retry with backoff until attempts run out; the last error is kept.
    let id = q
        .enqueue(NewJob::new("t", json!({})).max_attempts(2))
        .await
        .unwrap();
    let c1 = q.claim("w1", lease).await.unwrap().unwrap();
    assert_eq!((c1.id(), c1.attempt()), (id, 1));
    assert_eq!(q.fail(&c1, "first").await.unwrap(), Some(JobState::Queued));
    assert!(q.claim("w1", lease).await.unwrap().is_none(), "backing off");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let c2 = q.claim("w2", lease).await.unwrap().unwrap();
    assert_eq!((c2.id(), c2.attempt()), (id, 2));
    // The first attempt's claim is stale: it can neither finish nor fail the job.
    assert!(!q.complete(&c1, json!({})).await.unwrap());
    assert_eq!(q.fail(&c1, "stale").await.unwrap(), None);
    assert_eq!(q.heartbeat(&c1, lease, 50.0).await.unwrap(), Lease::Lost);
    assert_eq!(q.heartbeat(&c2, lease, 40.0).await.unwrap(), Lease::Held);
    assert!((q.get(id).await.unwrap().unwrap().progress - 40.0).abs() < 1e-9);
    assert_eq!(q.fail(&c2, "second").await.unwrap(), Some(JobState::Failed));
    let j = q.get(id).await.unwrap().unwrap();
    assert_eq!(
        (j.state, j.attempts, j.last_error.as_deref()),
        (JobState::Failed, 2, Some("second"))
    );
    // One failed job retried by hand: fresh attempts, claimable at once.
    assert!(q.retry(id).await.unwrap());
    assert!(!q.retry(id).await.unwrap(), "only failed or cancelled jobs");
    let again = q.claim("w3", lease).await.unwrap().unwrap();
    assert_eq!((again.id(), again.attempt()), (id, 1));
    assert!(q.complete(&again, json!({})).await.unwrap());
    assert_eq!(q.get(id).await.unwrap().unwrap().state, JobState::Succeeded);

    // A running job cancelled: its worker learns at the next heartbeat.
    let id = q.enqueue(NewJob::new("t", json!({}))).await.unwrap();
    let c = q.claim("w1", lease).await.unwrap().unwrap();
    assert!(q.cancel(id).await.unwrap());
    assert!(!q.cancel(id).await.unwrap(), "already ended");
    assert_eq!(
        q.heartbeat(&c, lease, 10.0).await.unwrap(),
        Lease::Cancelled
    );
    assert!(!q.complete(&c, json!({})).await.unwrap());
    assert_eq!(q.get(id).await.unwrap().unwrap().state, JobState::Cancelled);

    // A lease not renewed: the job goes back and another worker takes it.
    let id = q.enqueue(NewJob::new("t", json!({}))).await.unwrap();
    let dead = q
        .claim("dies", Duration::from_millis(200))
        .await
        .unwrap()
        .unwrap();
    assert!(q.claim("w2", lease).await.unwrap().is_none());
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(
        q.claim("w2", lease).await.unwrap().is_none(),
        "re-queued, backing off"
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    let next = q.claim("w2", lease).await.unwrap().unwrap();
    assert_eq!((next.id(), next.attempt()), (id, 2));
    assert_eq!(
        q.get(id).await.unwrap().unwrap().last_error.as_deref(),
        Some("lease expired: the worker stopped renewing it")
    );
    assert_eq!(q.heartbeat(&dead, lease, 0.0).await.unwrap(), Lease::Lost);
    assert!(q.complete(&next, json!({"ok": true})).await.unwrap());
    let j = q.get(id).await.unwrap().unwrap();
    assert_eq!(
        (j.state, j.result),
        (JobState::Succeeded, Some(json!({"ok": true})))
    );

    // Lists, newest first, filtered by state.
    let done = q.list(Some(JobState::Succeeded), 10).await.unwrap();
    assert_eq!(done.len(), 2, "the retried job and the taken-over one");
    let all = q.list(None, 100).await.unwrap();
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));
    assert_eq!(all.len(), 6);

    // wait() returns promptly when a job is enqueued.
    let waiter = {
        let q = q.clone();
        tokio::spawn(async move {
            let t = std::time::Instant::now();
            q.wait(Duration::from_secs(10)).await;
            t.elapsed()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    q.enqueue(NewJob::new("t", json!({}))).await.unwrap();
    let waited = waiter.await.unwrap();
    assert!(waited < Duration::from_secs(3), "{waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_queue_contract() {
    let dir = tempfile::tempdir().unwrap();
    let q = FileQueue::open_with(dir.path(), quick()).unwrap();
    contract(&q).await;
    // A second process (or handle) cannot open the same queue.
    let err = FileQueue::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
    // Everything survives a reopen.
    let before = q.list(None, 100).await.unwrap();
    drop(q);
    let q = FileQueue::open_with(dir.path(), quick()).unwrap();
    assert_eq!(q.list(None, 100).await.unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_queue_contract() {
    let (url, name) = fresh_db().await;
    let q = PgQueue::connect(&url, quick()).await.unwrap();
    contract(&q).await;
    drop(q);
    drop_db(&name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_200_jobs_8_workers_each_runs_exactly_once() {
    let (url, name) = fresh_db().await;
    let q = PgQueue::connect(&url, quick()).await.unwrap();
    for i in 0..200 {
        q.enqueue(NewJob::new("t", json!({"i": i})).priority(i % 3))
            .await
            .unwrap();
    }
    let mut workers = Vec::new();
    for w in 0..8 {
        // Each worker its own connection pool, as on separate machines.
        let q = PgQueue::connect(&url, quick()).await.unwrap();
        workers.push(tokio::spawn(async move {
            let mut ran = Vec::new();
            while let Some(c) = q
                .claim(&format!("worker-{w}"), Duration::from_secs(30))
                .await
                .unwrap()
            {
                ran.push(c.job.payload["i"].as_i64().unwrap());
                assert!(q.complete(&c, json!({"by": w})).await.unwrap());
            }
            ran
        }));
    }
    let mut runs: HashMap<i64, usize> = HashMap::new();
    let mut busy = 0;
    for w in workers {
        let ran = w.await.unwrap();
        busy += usize::from(!ran.is_empty());
        for i in ran {
            *runs.entry(i).or_default() += 1;
        }
    }
    assert_eq!(runs.len(), 200, "every job ran");
    assert!(runs.values().all(|&n| n == 1), "no job ran twice");
    assert!(busy >= 2, "the work was shared ({busy} workers ran jobs)");
    let done = q.list(Some(JobState::Succeeded), 1000).await.unwrap();
    assert_eq!(done.len(), 200);
    assert!(done.iter().all(|j| j.attempts == 1));
    drop(q);
    drop_db(&name).await;
}

fn transcoder(root: &Path) -> Transcoder {
    Transcoder::new(
        Storage::open(root).unwrap(),
        Runner::new(RunnerConfig::default()),
        TranscoderConfig {
            ladder: LadderConfig {
                rungs: vec![720, 360],
                segment_seconds: 2,
                // Slow enough that the kill lands while ffmpeg runs.
                preset: "medium".into(),
                ..LadderConfig::default()
            },
            ..TranscoderConfig::default()
        },
    )
}

/// Whether a live (not zombie) process has `input` on its command line.
fn ffmpeg_on(input: &Path) -> bool {
    let needle = input.to_string_lossy().into_owned();
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        let p = e.path();
        let running = std::fs::read_to_string(p.join("stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| !r.trim_start().starts_with('Z'))
        });
        running
            && std::fs::read(p.join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
    })
}

/// Not a test by itself: the worker process [`a_job_running_at_kill_9_is_retried_after_restart`]
/// starts and kills (`VP_QUEUE_CHILD` names the directory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process for a_job_running_at_kill_9_is_retried_after_restart"]
async fn worker_process() {
    let dir = std::path::PathBuf::from(std::env::var("VP_QUEUE_CHILD").unwrap());
    let q = FileQueue::open_with(dir.join("queue"), quick()).unwrap();
    let w = Worker::new(
        q,
        transcoder(&dir.join("data")),
        WorkerConfig::named("child"),
    );
    w.run(std::future::pending()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_running_at_kill_9_is_retried_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let input = common::make_input(dir.path(), "in.mp4", "1280x720", 8);
    let video = VideoId::new("crash").unwrap();
    {
        let q = FileQueue::open_with(dir.path().join("queue"), quick()).unwrap();
        q.enqueue(ladder_job(&video, &input)).await.unwrap();
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["worker_process", "--exact", "--ignored", "--nocapture"])
        .env("VP_QUEUE_CHILD", dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the child runs the job (its record says so), then let ffmpeg work a bit.
    let record = dir.path().join("queue/jobs/1.json");
    let t0 = std::time::Instant::now();
    loop {
        let text = std::fs::read_to_string(&record).unwrap_or_default();
        if text.contains("\"state\":\"running\"") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "never claimed: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(700));
    assert!(ffmpeg_on(&input), "ffmpeg runs the job");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // ffmpeg does not outlive the worker (setpriv --pdeathsig).
    let t0 = std::time::Instant::now();
    while ffmpeg_on(&input) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "an orphaned ffmpeg kept running"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let storage = Storage::open(dir.path().join("data")).unwrap();
    assert!(
        !storage.vod_dir(&video).exists(),
        "nothing published by the killed run"
    );

    // Restart: the job is back in the queue and a new worker completes it.
    let q = FileQueue::open_with(dir.path().join("queue"), quick()).unwrap();
    let j = q.get(1).await.unwrap().unwrap();
    assert_eq!((j.state, j.attempts), (JobState::Queued, 1), "{j:?}");
    assert!(j.last_error.unwrap().contains("interrupted"));
    let w = Worker::new(
        q.clone(),
        transcoder(&dir.path().join("data")),
        WorkerConfig::named("restarted"),
    );
    let t0 = std::time::Instant::now();
    while !w.run_next().await {
        assert!(t0.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let j = q.get(1).await.unwrap().unwrap();
    assert_eq!((j.state, j.attempts), (JobState::Succeeded, 2), "{j:?}");
    assert_eq!(j.result.unwrap()["master"], "/vod/crash/master.m3u8");
    let master = std::fs::read_to_string(storage.vod_dir(&video).join("master.m3u8")).unwrap();
    assert_eq!(master.matches("#EXT-X-STREAM-INF").count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_file_job_fails_with_the_probe_error_after_its_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("video.mp4");
    std::fs::write(&input, "not a video at all").unwrap();
    let q = FileQueue::open_with(dir.path().join("queue"), quick()).unwrap();
    let id = q
        .enqueue(ladder_job(&VideoId::new("bad").unwrap(), &input).max_attempts(3))
        .await
        .unwrap();
    let w = Worker::new(
        q.clone(),
        transcoder(&dir.path().join("data")),
        WorkerConfig::named("w"),
    );
    let t0 = std::time::Instant::now();
    loop {
        w.run_next().await;
        let j = q.get(id).await.unwrap().unwrap();
        if j.state.is_final() {
            assert_eq!((j.state, j.attempts), (JobState::Failed, 3), "{j:?}");
            let e = j.last_error.unwrap();
            assert!(e.starts_with("probe: not a media file"), "{e}");
            assert!(e.contains("Invalid data"), "{e}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
