//! Transcoding through `media-server`: an upload by tus-js-client becomes a ladder job
//! whose `/vod/<id>/master.m3u8` ffmpeg plays over HTTP; a recording published by ffmpeg
//! becomes a remux job whose `/vod/<id>/video.mp4` is served with byte ranges.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{decode_warnings, event_sink, http, start_server, wait_event};

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/js")
}

/// Poll `GET /api/jobs/<id>` until the job ends; its JSON.
fn wait_job(addr: &str, id: u64, limit: Duration) -> serde_json::Value {
    let start = Instant::now();
    let mut progress = Vec::new();
    loop {
        let (status, body) = http(addr, "GET", &format!("/api/jobs/{id}"), "");
        assert_eq!(status, 200, "{body}");
        let job: serde_json::Value = serde_json::from_str(&body).unwrap();
        progress.push(job["progress"].as_f64().unwrap());
        let state = job["state"].as_str().unwrap().to_string();
        if matches!(state.as_str(), "succeeded" | "failed" | "cancelled") {
            assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
            return job;
        }
        assert!(start.elapsed() < limit, "job {id} still {state}: {job}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[allow(clippy::too_many_lines)] // one scenario, checked end to end
fn an_uploaded_video_becomes_a_playable_ladder() {
    assert!(
        clients_dir().join("node_modules/tus-js-client").exists(),
        "run `npm ci` in clients/js (scripts/test.sh does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let video = videopick_testkit::ffmpeg::make_input(dir.path(), "clip.mp4", "854x480", 4);
    let (hook, events) = event_sink();
    let server = start_server(
        &dir.path().join("data"),
        &[
            "--event-hook",
            &hook,
            "--transcode-workers",
            "1",
            "--ladder",
            "720,480,360",
        ],
    );
    let endpoint = format!("http://{}/files/", server.http);
    let out = Command::new("node")
        .arg(clients_dir().join("tus-upload.mjs"))
        .arg(&endpoint)
        .arg(&video)
        .arg("single")
        .output()
        .expect("node is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8(out.stdout).unwrap();
    let upload_id = url.trim().rsplit('/').next().unwrap().to_string();

    // The upload event names the job it became.
    let event = wait_event(&events, "upload", Duration::from_secs(10));
    let event: serde_json::Value = serde_json::from_str(&event).unwrap();
    let job_id = event["job"].as_u64().expect("a job id in the upload event");

    let job = wait_job(&server.http, job_id, Duration::from_secs(120));
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["kind"], "ladder");
    assert_eq!(job["progress"].as_f64(), Some(100.0));
    let master = format!("/vod/{upload_id}/master.m3u8");
    assert_eq!(job["result"]["master"], master.as_str());
    let rungs: Vec<&str> = job["result"]["rungs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(rungs, ["480p", "360p"], "no rung above the 480p source");

    let (status, body) = http(&server.http, "GET", &master, "");
    assert_eq!(status, 200);
    assert_eq!(body.matches("#EXT-X-STREAM-INF").count(), 2, "{body}");
    // ffmpeg plays the ladder over HTTP with no warnings.
    let warnings = decode_warnings(&format!("http://{}{master}", server.http));
    assert!(warnings.is_empty(), "{warnings}");
    let (status, _) = http(
        &server.http,
        "HEAD",
        &format!("/vod/{upload_id}/poster.jpg"),
        "",
    );
    assert_eq!(status, 200);
    for bad in [
        "/vod/../etc/passwd",
        "/vod/x/../../a.m3u8",
        "/vod/.x/a.m3u8",
        "/vod/a/b/c/d.ts",
    ] {
        assert_eq!(http(&server.http, "GET", bad, "").0, 404, "{bad}");
    }
    assert_eq!(http(&server.http, "GET", "/api/jobs/999999", "").0, 404);
    // Only failed or cancelled jobs can be retried.
    let (status, body) = http(
        &server.http,
        "POST",
        &format!("/api/jobs/{job_id}/retry"),
        "Content-Length: 0\r\n",
    );
    assert_eq!((status, body.trim()), (200, r#"{"ok":false}"#));
    let (status, list) = http(&server.http, "GET", "/api/jobs?state=succeeded", "");
    assert_eq!(status, 200);
    assert!(list.contains(&format!("\"id\":{job_id}")), "{list}");
}

#[test]
#[allow(clippy::too_many_lines)] // one scenario, checked end to end
fn a_recording_is_remuxed_to_a_served_mp4() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, events) = event_sink();
    let server = start_server(
        &dir.path().join("data"),
        &[
            "--event-hook",
            &hook,
            "--record-apps",
            "live",
            "--republish-grace-secs",
            "0",
            "--transcode-workers",
            "1",
        ],
    );
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg("testsrc2=size=640x360:rate=25:duration=4")
        .args(["-f", "lavfi", "-i", "sine=frequency=440:duration=4"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            "-f",
            "flv",
        ])
        .arg(format!("rtmp://{}/live/cam", server.rtmp))
        .status()
        .unwrap();
    assert!(status.success());
    let recording: serde_json::Value =
        serde_json::from_str(&wait_event(&events, "recording", Duration::from_secs(20))).unwrap();
    let rec_id = recording["id"].as_str().unwrap().to_string();
    // The job list shows the remux job for it.
    let start = Instant::now();
    let job_id = loop {
        let (_, list) = http(&server.http, "GET", "/api/jobs", "");
        let jobs: Vec<serde_json::Value> = serde_json::from_str(&list).unwrap();
        if let Some(j) = jobs.iter().find(|j| j["video_id"] == rec_id.as_str()) {
            assert_eq!(j["kind"], "remux");
            break j["id"].as_u64().unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no job for {rec_id}: {list}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // The event names the job, so an app on another machine can follow it.
    assert_eq!(recording["job"].as_u64(), Some(job_id), "{recording}");
    let job = wait_job(&server.http, job_id, Duration::from_secs(60));
    assert_eq!(job["state"], "succeeded", "{job}");
    let path = format!("/vod/{rec_id}/video.mp4");
    // The public answer names the public URL, never a server path.
    assert_eq!(job["result"]["mp4"], path.as_str(), "{job}");
    let (_, list) = http(&server.http, "GET", "/api/jobs", "");
    let root = dir.path().to_string_lossy().to_string();
    assert!(
        !list.contains(&root) && !list.contains("\"input\""),
        "{list}"
    );

    let url = format!("http://{}{path}", server.http);
    let warnings = decode_warnings(&url);
    assert!(warnings.is_empty(), "{warnings}");
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            &url,
        ])
        .output()
        .unwrap();
    let secs: f64 = String::from_utf8_lossy(&probe.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!((secs - 4.0).abs() < 1.0, "{secs}");
    // Byte ranges, as browsers seek in MP4.
    let mut s = std::net::TcpStream::connect(&server.http).unwrap();
    std::io::Write::write_all(
        &mut s,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nRange: bytes=4-11\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut resp = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut resp).unwrap();
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 206"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-range: bytes 4-11/"),
        "{text}"
    );
    assert!(
        resp.ends_with(b"ftypisom"),
        "the MP4's first box type and brand: {:?}",
        String::from_utf8_lossy(&resp[resp.len().saturating_sub(16)..])
    );
}

#[test]
fn a_finished_upload_without_a_job_is_queued_at_start() {
    use videopick_storage::{Storage, SyncPolicy};
    use videopick_tus::store::{ConcatRole, FileStore, UploadInfo, new_upload_id};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Uploads that finished while no job could be queued (the process died in between).
    let store = FileStore::new(Storage::open(&data).unwrap(), SyncPolicy::Always);
    let mut ids = Vec::new();
    for concat in [None, Some(ConcatRole::Partial)] {
        let info = UploadInfo {
            id: new_upload_id().unwrap(),
            length: Some(5),
            metadata: String::new(),
            concat,
            created: std::time::SystemTime::now(),
            expires: None,
        };
        store.create(info.clone()).unwrap();
        let mut w = store.writer(&info.id, 0).unwrap();
        w.write(b"hello").unwrap();
        assert_eq!(w.finish().unwrap(), 5);
        ids.push(info.id.to_string());
    }
    let jobs_for = |server: &common::Server| -> Vec<serde_json::Value> {
        let (_, list) = http(&server.http, "GET", "/api/jobs", "");
        serde_json::from_str(&list).unwrap()
    };
    let server = start_server(&data, &[]);
    let start = Instant::now();
    while jobs_for(&server).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the missed upload was not queued"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let jobs = jobs_for(&server);
    assert_eq!(
        jobs.len(),
        1,
        "only the whole upload, not the partial: {jobs:?}"
    );
    assert_eq!(jobs[0]["kind"], "ladder");
    assert_eq!(jobs[0]["video_id"], ids[0].as_str());
    drop(server);
    // Once queued it is not queued again.
    let server = start_server(&data, &[]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(jobs_for(&server).len(), 1);
}
