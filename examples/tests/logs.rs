//! Logs as a log shipper reads them: `--log-format json` gives one JSON object per line,
//! events carry their connection's span (peer, stream), and no secret — the signing secret,
//! a stream's signature, the API token — ever appears.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn json_logs_name_the_connection_and_never_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_media-server"))
        .env("RUST_LOG", "info")
        .args([
            "--log-format",
            "json",
            "--storage",
            dir.path().to_str().unwrap(),
        ])
        .args([
            "--rtmp",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--min-free-bytes",
            "0",
        ])
        .args(["--sign-secret", "s3cr3t-sign", "--api-token", "t0k3n-api"])
        .args(["--transcode-workers", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(server.stdout.take().unwrap()).lines();
    let rtmp = loop {
        let line = out.next().unwrap().unwrap();
        if let Some(a) = line.strip_prefix("media-server: rtmp on rtmp://") {
            break a.to_string();
        }
    };
    let stderr = server.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // A publish with a bad signature is refused.
    let url = format!("rtmp://{rtmp}/live/cam?sign=1999999999-deadbeefcafe");
    let status = videopick_testkit::ffmpeg::publish_command(&url, "160x120", 1)
        .status()
        .unwrap();
    assert!(!status.success());

    let mut lines = Vec::new();
    let start = Instant::now();
    let refused = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a log line");
        lines.push(line.clone());
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        if v["message"] == "publish refused" {
            break v;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{lines:?}");
    };
    assert_eq!(refused["level"], "INFO");
    assert_eq!(refused["reason"], "bad signature");
    let span = &refused["span"];
    assert_eq!(span["name"], "rtmp", "{refused}");
    assert_eq!(span["stream"], "live/cam", "{refused}");
    assert!(
        span["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{refused}"
    );
    let _ = server.kill();
    let _ = server.wait();
    while let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
        lines.push(l);
    }
    for secret in ["s3cr3t-sign", "deadbeefcafe", "t0k3n-api"] {
        assert!(
            lines.iter().all(|l| !l.contains(secret)),
            "{secret} in the logs: {lines:#?}"
        );
    }
}
