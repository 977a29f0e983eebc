//! `media-server` end to end with real ffmpeg: publish over RTMP, play over RTMP and
//! HTTP-FLV, stream stats, 404s, clean shutdown.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{http, start_server};

fn get(addr: &str, path: &str) -> (u16, String) {
    http(addr, "GET", path, "")
}

use videopick_testkit::ffmpeg::spawn as ffmpeg;

struct Probe {
    codecs: Vec<String>,
    size: (u32, u32),
    frames: usize,
    first_key: bool,
    monotonic: bool,
}

fn probe(path: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut p = Probe {
        codecs: vec![],
        size: (0, 0),
        frames: 0,
        first_key: false,
        monotonic: true,
    };
    for l in text.lines() {
        let f: Vec<&str> = l.split(',').collect();
        p.codecs.push(f[0].to_string());
        if f.len() >= 3 && !f[1].is_empty() {
            p.size = (f[1].parse().unwrap(), f[2].parse().unwrap());
        }
    }
    p.codecs.sort();
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_entries",
            "packet=dts,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .unwrap();
    let mut last = i64::MIN;
    for (i, l) in String::from_utf8(out.stdout).unwrap().lines().enumerate() {
        let f: Vec<&str> = l.split(',').collect();
        let dts: i64 = f[0].parse().unwrap();
        if i == 0 {
            p.first_key = f[1].starts_with('K');
        }
        p.monotonic &= dts > last;
        last = dts;
        p.frames += 1;
    }
    p
}

#[test]
#[allow(clippy::too_many_lines)] // one end-to-end story
fn publish_then_play_over_rtmp_and_http_flv() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start_server(&dir.path().join("data"), &["--republish-grace-secs", "1"]);
    let publish_url = format!("rtmp://{}/live/cam", server.rtmp);
    let publisher = ffmpeg(&[
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        "6",
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "25",
        "-c:a",
        "aac",
        "-f",
        "flv",
        &publish_url,
    ]);

    // Wait for the stream to be listed with its codecs.
    let deadline = Instant::now() + Duration::from_secs(20);
    let streams = loop {
        let (status, body) = get(&server.http, "/api/streams");
        assert_eq!(status, 200);
        if body.contains("\"width\":320") {
            break body;
        }
        assert!(Instant::now() < deadline, "stream never listed: {body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(streams.contains("\"key\":\"live/cam\""), "{streams}");
    assert!(streams.contains("\"video_codec\":\"avc1."), "{streams}");
    assert!(
        streams.contains("\"audio_codec\":\"mp4a.40.2\""),
        "{streams}"
    );
    assert!(streams.contains("\"height\":240"), "{streams}");
    assert_eq!(get(&server.http, "/live/nope.flv").0, 404);

    let http_out = dir.path().join("http.flv");
    let rtmp_out = dir.path().join("rtmp.flv");
    let http_url = format!("http://{}/live/cam.flv", server.http);
    let http_player = ffmpeg(&[
        "-i",
        &http_url,
        "-c",
        "copy",
        "-f",
        "flv",
        http_out.to_str().unwrap(),
    ]);
    let rtmp_player = ffmpeg(&[
        "-i",
        &publish_url,
        "-c",
        "copy",
        "-f",
        "flv",
        rtmp_out.to_str().unwrap(),
    ]);

    // Both viewers show up per protocol, with bytes flowing out.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = get(&server.http, "/api/streams");
        if body.contains("\"viewers_rtmp\":1") && body.contains("\"viewers_http_flv\":1") {
            assert!(!body.contains("\"bytes_out\":0,"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "viewers never listed: {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = publisher.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "publisher: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, player) in [("http", http_player), ("rtmp", rtmp_player)] {
        let out = player.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{name} player: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for path in [&http_out, &rtmp_out] {
        let p = probe(path);
        assert_eq!(p.codecs, ["aac", "h264"], "{path:?}");
        assert_eq!(p.size, (320, 240), "{path:?}");
        assert!(
            p.first_key,
            "{path:?}: first video frame must be a key frame"
        );
        assert!(p.monotonic, "{path:?}: timestamps must increase");
        // Players joined ~1 s into a 6 s stream with 1 s GOPs.
        assert!(p.frames >= 100, "{path:?}: only {} frames", p.frames);
    }

    let (_, metrics) = get(&server.http, "/metrics");
    assert!(
        metrics.contains("videopick_rtmp_connections_total 2"),
        "{metrics}"
    );
    Command::new("kill")
        .arg(server.child.id().to_string())
        .status()
        .unwrap();
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}
