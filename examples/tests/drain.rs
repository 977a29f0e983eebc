//! SIGTERM drains every role of `videopick`: the publisher (ffmpeg) and the players (ffmpeg
//! over RTMP, curl over HTTP-FLV) get a clean end, the open recording is closed to its last
//! complete segment with `EXT-X-ENDLIST`, and the process exits by itself, successfully.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use videopick_flv::{FlvDemuxer, FlvItem};
use videopick_testkit::ffmpeg;

fn find(dir: &Path, name: &str, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            find(&p, name, out);
        } else if p.file_name().is_some_and(|n| n == name) {
            out.push(p);
        }
    }
}

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < limit, "still running after {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_ends_players_closes_the_recording_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Command::new(env!("CARGO_BIN_EXE_videopick"))
        .env("RUST_LOG", "warn")
        .args(["--storage", data.to_str().unwrap(), "--min-free-bytes", "0"])
        .args(["--rtmp", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .args(["--chat-listen", "127.0.0.1:0", "--record-apps", "studio"])
        .args(["--transcode-recordings", "none"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
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

    // An app outside the platform's key-guarded `live`: loopback, so anyone may publish.
    let url = format!("rtmp://{rtmp}/studio/cam");
    let mut publisher = ffmpeg::publish_command(&url, "320x240", 60)
        .spawn()
        .unwrap();
    // Live once the HLS playlist lists a segment.
    let start = Instant::now();
    while videopick_testkit::http::get(&http, "/studio/cam.m3u8").0 != 200 {
        assert!(start.elapsed() < Duration::from_secs(15), "never went live");
        std::thread::sleep(Duration::from_millis(200));
    }
    let flv_out = dir.path().join("viewer.flv");
    let mut curl = Command::new("curl")
        .args(["-s", "--max-time", "60", "-o"])
        .arg(&flv_out)
        .arg(format!("http://{http}/studio/cam.flv"))
        .spawn()
        .unwrap();
    let rtmp_out = dir.path().join("player.flv");
    let mut player = ffmpeg::spawn(&[
        "-i",
        &url,
        "-c",
        "copy",
        "-f",
        "flv",
        rtmp_out.to_str().unwrap(),
    ]);
    std::thread::sleep(Duration::from_secs(3));

    Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    let t = Instant::now();
    let status = wait_exit(&mut server, Duration::from_secs(15));
    assert!(status.success(), "{status}");
    eprintln!("videopick drained and exited in {:?}", t.elapsed());

    // The players saw the end of the stream and stopped by themselves.
    assert!(wait_exit(&mut curl, Duration::from_secs(5)).success());
    let _ = wait_exit(&mut player, Duration::from_secs(5));
    let _ = wait_exit(&mut publisher, Duration::from_secs(5));

    // The HTTP-FLV body ends at a tag boundary.
    let body = std::fs::read(&flv_out).unwrap();
    let mut buf = BytesMut::from(&body[..]);
    let mut demux = FlvDemuxer::new();
    let mut tags = 0;
    while let Some(item) = demux.decode(&mut buf).unwrap() {
        if matches!(item, FlvItem::Tag(_)) {
            tags += 1;
        }
    }
    assert!(tags > 50, "{tags} tags");
    assert!(
        buf.is_empty(),
        "{} bytes of a cut tag at the end",
        buf.len()
    );
    // The RTMP player's file is a playable FLV.
    let warnings = ffmpeg::decode_warnings(rtmp_out.to_str().unwrap());
    assert!(warnings.is_empty(), "{warnings}");

    // The recording is closed: VOD, ended, every listed segment complete.
    let mut found = Vec::new();
    find(&data.join("recordings"), "index.m3u8", &mut found);
    assert_eq!(found.len(), 1, "{found:?}");
    let text = std::fs::read_to_string(&found[0]).unwrap();
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{text}");
    assert!(text.ends_with("#EXT-X-ENDLIST\n"), "{text}");
    assert!(text.matches("#EXTINF").count() >= 2, "{text}");
    let warnings = ffmpeg::decode_warnings(found[0].to_str().unwrap());
    assert!(warnings.is_empty(), "{warnings}");
}
