//! The `videopick` binary as a user runs it: start, scrape /metrics, stop with SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use videopick_storage::{Area, RecordingId, Storage, StorageOptions, StreamKey, VideoId};

/// Start `videopick`; its HTTP and chat addresses.
fn start(args: &[&str]) -> (Child, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_videopick"))
        .args(args)
        .args(["--rtmp", "127.0.0.1:0", "--chat-listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut addr, mut chat) = (None, None);
    while addr.is_none() || chat.is_none() {
        let line = lines
            .next()
            .expect("videopick exited before listening")
            .unwrap();
        if let Some(a) = line.strip_prefix("videopick: listening on http://") {
            addr = Some(a.to_string());
        }
        if let Some(a) = line.strip_prefix("videopick: chat on http://") {
            chat = Some(a.to_string());
        }
    }
    // Keep draining stdout so the server never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    (child, addr.unwrap(), chat.unwrap())
}

fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp[9..12].parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    (status, body)
}

fn age(path: &std::path::Path, by: Duration) {
    let t = SystemTime::now() - by;
    std::fs::File::open(path).unwrap().set_modified(t).unwrap();
}

/// One registry for both roles: either port shows the media and the chat figures, as
/// OpenMetrics with HELP and TYPE on every family.
fn check_one_registry(addr: &str, chat: &str) {
    let (_, chat_metrics) = get(chat, "/metrics");
    let (_, media_metrics) = get(addr, "/metrics");
    for text in [&chat_metrics, &media_metrics] {
        for needle in [
            "videopick_build_info{version=\"",
            "videopick_storage_area_bytes{area=\"vod\"} 8",
            "videopick_chat_connections ",
            "videopick_rtmp_connections_total 0",
            "videopick_tus_received_bytes_total 0",
            "videopick_http_request_duration_seconds_count{role=\"media\",route=\"healthz\",status=\"2xx\"} 1",
            "videopick_http_request_duration_seconds_count{role=\"media\",route=\"other\",status=\"4xx\"} 1",
        ] {
            assert!(text.contains(needle), "{needle} missing:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
        for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
            let name = line.split(' ').nth(2).unwrap();
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "no HELP for {name}"
            );
        }
    }
    let head = {
        let mut s = TcpStream::connect(addr).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
        r.split("\r\n\r\n").next().unwrap().to_ascii_lowercase()
    };
    assert!(
        head.contains("content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "{head}"
    );
}

#[test]
fn serves_storage_metrics_sweeps_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    {
        let s = Storage::open_with(&root, StorageOptions::default().min_free_bytes(0)).unwrap();
        s.write_atomic(
            s.vod_dir(&VideoId::new("v1").unwrap()).join("master.m3u8"),
            b"#EXTM3U\n",
        )
        .unwrap();
        let rec = s.recording_dir(
            &StreamKey::new("cam").unwrap(),
            &RecordingId::new("old").unwrap(),
        );
        std::fs::create_dir_all(&rec).unwrap();
        std::fs::write(rec.join("seg0.ts"), vec![0u8; 4096]).unwrap();
        age(&rec.join("seg0.ts"), Duration::from_secs(10 * 86_400));
        age(&rec, Duration::from_secs(10 * 86_400));
        let stale = s.area_dir(Area::Tmp).join("crashed.part");
        std::fs::write(&stale, b"half").unwrap();
        age(&stale, Duration::from_secs(3 * 86_400));
    }

    let root_arg = root.to_str().unwrap();
    let (child, addr, chat) = start(&[
        "--storage",
        root_arg,
        "--http",
        "127.0.0.1:0",
        "--min-free-bytes",
        "0",
        "--recordings-max-age-days",
        "7",
    ]);

    let deadline = Instant::now() + Duration::from_secs(20);
    let metrics = loop {
        let (status, body) = get(&addr, "/metrics");
        assert_eq!(status, 200);
        if body.contains("videopick_storage_housekeeping_runs_total 1")
            || body.contains("videopick_storage_housekeeping_runs_total 2")
        {
            break body;
        }
        assert!(Instant::now() < deadline, "housekeeping never ran:\n{body}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        metrics.contains("videopick_storage_area_files{area=\"vod\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("videopick_storage_area_bytes{area=\"vod\"} 8"),
        "{metrics}"
    );
    assert!(
        metrics.contains("videopick_storage_sweep_removed_total{sweep=\"recordings\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("videopick_storage_sweep_removed_bytes_total{sweep=\"recordings\"} 4096"),
        "{metrics}"
    );
    assert!(
        metrics.contains("videopick_storage_area_files{area=\"tmp\"} 0"),
        "stale tmp not swept:\n{metrics}"
    );
    assert!(
        metrics.contains("# TYPE videopick_storage_free_bytes gauge"),
        "{metrics}"
    );

    assert_eq!(get(&addr, "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(get(&addr, "/nope").0, 404);

    check_one_registry(&addr, &chat);

    // The chat role: an Engine.IO handshake over long-polling, as socket.io-client opens.
    let (status, body) = get(&chat, "/socket.io/?EIO=4&transport=polling");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("0{\"sid\":"), "{body}");
    assert!(body.contains("\"upgrades\":[\"websocket\"]"), "{body}");
    assert!(
        get(&chat, "/metrics")
            .1
            .contains("videopick_chat_connections 1")
    );

    // SIGTERM: clean exit.
    let status = Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit status {:?}", out.status);
}

#[test]
fn refuses_a_newer_layout_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("VIDEOPICK_LAYOUT"),
        "videopick-storage layout 99\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_videopick"))
        .args([
            "--storage",
            dir.path().to_str().unwrap(),
            "--http",
            "127.0.0.1:0",
            "--chat-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("layout version 99"), "{err}");
}

#[test]
fn public_listeners_publish_only_with_a_channel_key_or_a_chosen_authorization() {
    let dir = tempfile::tempdir().unwrap();
    // A public RTMP listener without flags: the platform's stream keys guard the `live`
    // app, and every other app is refused (nobody chose who may publish there).
    let mut child = Command::new(env!("CARGO_BIN_EXE_videopick"))
        .args(["--storage", dir.path().to_str().unwrap()])
        .args(["--rtmp", "0.0.0.0:0", "--http", "127.0.0.1:0"])
        .args(["--chat-listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("{line}"));
    for stream in ["test/cam", "live/cam"] {
        let url = format!("rtmp://127.0.0.1:{port}/{stream}");
        let status = videopick_testkit::ffmpeg::publish_command(&url, "160x120", 3)
            .status()
            .unwrap();
        assert!(!status.success(), "{stream} was accepted");
    }
    let _ = child.kill();
    let _ = child.wait();

    // A public HTTP listener needs an API token too, even when publishing is open.
    let public_http = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_videopick"))
            .args(["--storage", dir.path().to_str().unwrap()])
            .args(["--rtmp", "127.0.0.1:0", "--http", "0.0.0.0:0"])
            .args(["--chat-listen", "127.0.0.1:0", "--allow-all"])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let out = public_http(&[]).wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--api-token"), "{err}");
    // With one it starts (and says where it listens).
    let mut child = public_http(&["--api-token", "t0ken"]);
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("videopick: rtmp on rtmp://"), "{line}");
}
