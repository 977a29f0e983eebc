//! `videopick --db postgres://…` while PostgreSQL restarts: the API answers 503 with
//! `Retry-After` meanwhile and recovers by itself; a stream already live keeps playing;
//! a new publish is refused while keys cannot be checked, and accepted again after.
//! (Its own test binary: cargo runs test binaries one at a time, so no other test sees
//! the machine's PostgreSQL go away.)

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use videopick_testkit::ffmpeg;
use videopick_testkit::http::request;

mod common;
use common::wait_for;

fn pg(action: &str) {
    let version = std::fs::read_dir("/etc/postgresql")
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let status = Command::new("pg_ctlcluster")
        .arg("--skip-systemctl-redirect")
        .arg(&version)
        .args(["main", action])
        .args(if action == "stop" {
            &["-m", "fast"][..]
        } else {
            &[][..]
        })
        .status()
        .unwrap();
    assert!(status.success(), "pg_ctlcluster {action}");
}

/// Starts PostgreSQL again however the test ends.
struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| pg("start"));
    }
}

fn api(
    http: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, String) {
    let mut extra = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    if !body.is_empty() {
        extra.push_str("Content-Type: application/json\r\n");
    }
    request(http, method, path, &extra, body.as_bytes())
}

fn raw_head(http: &str, path: &str, token: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {http}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
#[allow(clippy::too_many_lines)]
fn postgres_restarts_and_the_platform_recovers_by_itself() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (url, name) = rt.block_on(videopick_testkit::pg::fresh_db("vp_platform"));
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_videopick"))
        .env("RUST_LOG", "warn")
        .args([
            "--storage",
            dir.path().to_str().unwrap(),
            "--min-free-bytes",
            "0",
        ])
        .args([
            "--rtmp",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--chat-listen",
            "127.0.0.1:0",
        ])
        .args(["--db", &url, "--transcode-recordings", "none"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut rtmp, mut http) = (String::new(), String::new());
    while rtmp.is_empty() || http.is_empty() {
        let line = lines.next().expect("videopick exited early").unwrap();
        if let Some(a) = line.strip_prefix("videopick: rtmp on rtmp://") {
            rtmp = a.to_string();
        } else if let Some(a) = line.strip_prefix("videopick: listening on http://") {
            http = a.to_string();
        }
    }
    std::thread::spawn(move || for _ in lines {});

    let (st, body) = api(
        &http,
        "POST",
        "/api/v1/auth/signup",
        None,
        Some(
            json!({"username": "pg_user", "email": "pg@example.com", "password": "correct horse battery"}),
        ),
    );
    assert_eq!(st, 201, "{body}");
    let token = serde_json::from_str::<Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, body) = api(
        &http,
        "POST",
        "/api/v1/channels",
        Some(&token),
        Some(json!({"slug": "pg-live", "name": "PG"})),
    );
    assert_eq!(st, 201, "{body}");
    let key = serde_json::from_str::<Value>(&body).unwrap()["key"]["stream_key"]
        .as_str()
        .unwrap()
        .to_string();
    let (st, body) = api(
        &http,
        "POST",
        "/api/v1/channels",
        Some(&token),
        Some(json!({"slug": "pg-second", "name": "PG 2"})),
    );
    assert_eq!(st, 201, "{body}");
    let key2 = serde_json::from_str::<Value>(&body).unwrap()["key"]["stream_key"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("rtmp://{rtmp}/live/{key}");
    let mut publisher = ffmpeg::publish_command(&url, "320x240", 120)
        .spawn()
        .unwrap();
    wait_for("the channel to be live", 20, || {
        api(&http, "GET", "/api/v1/live", None, None)
            .1
            .contains("pg-live")
    });

    let restart = Restart;
    pg("stop");
    // The API says "unavailable, retry" — not a hang, not a 500.
    let t = Instant::now();
    let head = raw_head(&http, "/api/v1/me", &token);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "answered in {:?}",
        t.elapsed()
    );
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: "),
        "{head}"
    );
    assert!(head.contains("application/problem+json"), "{head}");
    // The live stream keeps playing.
    let flv = format!("http://{http}/live/pg-live.flv");
    let probe = ffmpeg::ffprobe(&flv, &["-show_entries", "stream=codec_name"]);
    assert!(probe.contains("h264"), "{probe}");
    assert!(
        publisher.try_wait().unwrap().is_none(),
        "the publisher was cut"
    );
    // A new publish with a valid key cannot be checked: refused, without a hang.
    let (health, _) = api(&http, "GET", "/healthz", None, None);
    assert_eq!(health, 200);
    let second = format!("rtmp://{rtmp}/live/{key2}");
    let t = Instant::now();
    assert!(
        !ffmpeg::publish_command(&second, "160x120", 3)
            .status()
            .unwrap()
            .success()
    );
    assert!(t.elapsed() < Duration::from_secs(10));

    pg("start");
    drop(restart);
    // Back by itself.
    wait_for("the API to recover", 30, || {
        api(&http, "GET", "/api/v1/me", Some(&token), None).0 == 200
    });
    let (st, _) = api(
        &http,
        "PATCH",
        "/api/v1/channels/pg-live",
        Some(&token),
        Some(json!({"live_title": "돌아왔다"})),
    );
    assert_eq!(st, 200);
    // The second channel's key works again.
    let mut second_pub = ffmpeg::publish_command(&second, "160x120", 60)
        .spawn()
        .unwrap();
    wait_for("the second channel to go live", 20, || {
        api(&http, "GET", "/api/v1/live", None, None)
            .1
            .contains("pg-second")
    });
    let _ = second_pub.kill();
    let _ = second_pub.wait();
    let _ = publisher.kill();
    let _ = publisher.wait();
    let _ = child.kill();
    let _ = child.wait();
    rt.block_on(videopick_testkit::pg::drop_db(&name));
}
