//! Live HLS and recordings through `media-server`, with real ffmpeg publishing and real
//! ffmpeg/ffprobe reading: the live playlist while the stream runs, the recording after
//! it ends (decoded with no warnings at all), republish discontinuities, audio-only and
//! video-only publishes, and a recording interrupted by `kill -9`.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{decode_warnings, event_sink, get, start_server, wait_event};

/// ffmpeg publishing a generated stream in real time to `url`.
fn publish(url: &str, secs: u32, video: bool, audio: bool) -> Child {
    let t = secs.to_string();
    let mut args: Vec<&str> = vec!["-hide_banner", "-loglevel", "error", "-re"];
    if video {
        args.extend(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"]);
    }
    if audio {
        args.extend(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]);
    }
    args.extend(["-t", &t]);
    if video {
        args.extend([
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
        ]);
    }
    if audio {
        args.extend(["-c:a", "aac", "-b:a", "96k"]);
    }
    args.extend(["-f", "flv", url]);
    Command::new("ffmpeg")
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ffmpeg")
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every recording directory (with an index.m3u8) under `data`.
fn recordings(data: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![data.join("recordings")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "index.m3u8") {
                out.push(d.clone());
            }
        }
    }
    out.sort();
    out
}

fn ended(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("index.m3u8")).is_ok_and(|t| t.ends_with("#EXT-X-ENDLIST\n"))
}

/// (duration in seconds, codec names) from ffprobe.
fn probe(input: &str) -> (f64, Vec<String>) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_name",
            "-of",
            "default=noprint_wrappers=1",
            input,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut duration = 0.0;
    let mut codecs = Vec::new();
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("duration=") {
            duration = d.parse().unwrap_or(0.0);
        } else if let Some(c) = line.strip_prefix("codec_name=") {
            // HLS input lists its streams under the program too: keep each once.
            if !codecs.iter().any(|x| x == c) {
                codecs.push(c.to_string());
            }
        }
    }
    (duration, codecs)
}

#[test]
#[allow(clippy::too_many_lines)] // one end-to-end story
fn live_playlist_while_publishing_then_a_clean_recording() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_server(&data, &["--republish-grace-secs", "1"]);
    let mut publisher = publish(
        &format!("rtmp://{}/live/show?record=1", server.rtmp),
        12,
        true,
        true,
    );

    // Unknown streams and segments are 404.
    assert_eq!(get(&server.http, "/live/nothing.m3u8").0, 404);
    assert_eq!(get(&server.http, "/live/nothing-1-0.ts").0, 404);

    // While live: the TS playlist (the variant for old players) appears once a segment is
    // complete.
    let (head, body) = wait_for("the live playlist", Duration::from_secs(20), || {
        let (status, head, body) = get(&server.http, "/live/show.m3u8?format=ts");
        (status == 200).then_some((head, body))
    });
    let text = String::from_utf8(body).unwrap();
    assert!(
        head.contains("content-type: application/vnd.apple.mpegurl"),
        "{head}"
    );
    assert!(head.contains("cache-control: no-cache"), "{head}");
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    assert!(text.starts_with("#EXTM3U\n"), "{text}");
    assert!(
        !text.contains("#EXT-X-ENDLIST"),
        "a live playlist does not end: {text}"
    );
    assert!(text.contains("#EXT-X-PROGRAM-DATE-TIME:"), "{text}");
    let first = text
        .lines()
        .find(|l| !l.starts_with('#'))
        .unwrap()
        .to_string();
    let (status, head, seg) = get(&server.http, &format!("/live/{first}"));
    assert_eq!(status, 200);
    assert!(
        head.contains("cache-control: public, max-age=31536000, immutable"),
        "{head}"
    );
    assert!(head.contains("content-type: video/mp2t"), "{head}");
    assert!(!seg.is_empty() && seg.len() % 188 == 0 && seg[0] == 0x47);
    // A segment that is not complete yet is not served.
    let (name, seq) = first.trim_end_matches(".ts").rsplit_once('-').unwrap();
    let future = format!("/live/{name}-{}.ts", seq.parse::<u64>().unwrap() + 50);
    assert_eq!(get(&server.http, &future).0, 404);

    // ffprobe reads both live playlists over HTTP: low-latency (fMP4) and TS.
    for path in ["/live/show.m3u8", "/live/show.m3u8?format=ts"] {
        let live_url = format!("http://{}{path}", server.http);
        let (_, codecs) = probe(&live_url);
        assert!(
            codecs.contains(&"h264".to_string()) && codecs.contains(&"aac".to_string()),
            "{path}: {codecs:?}"
        );
    }

    let status = publisher.wait().unwrap();
    assert!(status.success(), "publisher failed");

    // After the stream ends (and the 1 s republish grace), the recording is closed.
    let rec = wait_for("the closed recording", Duration::from_secs(20), || {
        recordings(&data).into_iter().find(|d| ended(d))
    });
    let id = rec.file_name().unwrap().to_str().unwrap().to_string();
    assert!(id.starts_with("live.show."), "{id}");
    let text = std::fs::read_to_string(rec.join("index.m3u8")).unwrap();
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"), "{text}");

    // It decodes with no warnings at all, and lasts what was published (within a segment).
    let index = rec.join("index.m3u8");
    let warnings = decode_warnings(index.to_str().unwrap());
    assert!(
        warnings.is_empty(),
        "ffmpeg warned on the recording:\n{warnings}"
    );
    let (duration, codecs) = probe(index.to_str().unwrap());
    assert!(
        (duration - 12.0).abs() <= 2.0,
        "recording lasts {duration} s"
    );
    assert_eq!(codecs, vec!["h264".to_string(), "aac".to_string()]);

    // And it is served over HTTP, segments included.
    let (status, head, body) = get(&server.http, &format!("/recordings/{id}/index.m3u8"));
    assert_eq!(status, 200);
    assert!(head.contains("application/vnd.apple.mpegurl"));
    assert_eq!(String::from_utf8(body).unwrap(), text);
    let url = format!("http://{}/recordings/{id}/index.m3u8", server.http);
    let (duration, _) = probe(&url);
    assert!(
        (duration - 12.0).abs() <= 2.0,
        "served recording lasts {duration} s"
    );
    assert_eq!(
        get(&server.http, &format!("/recordings/{id}/../../x.ts")).0,
        404
    );
    assert_eq!(get(&server.http, "/recordings/nope.x.1/index.m3u8").0, 404);

    // The ended live playlists linger with EXT-X-ENDLIST for late players.
    for path in ["/live/show.m3u8", "/live/show.m3u8?format=ts"] {
        let (status, _, body) = get(&server.http, path);
        assert_eq!(status, 200);
        assert!(
            String::from_utf8(body)
                .unwrap()
                .ends_with("#EXT-X-ENDLIST\n"),
            "{path}"
        );
    }
}

#[test]
fn republish_within_grace_continues_the_recording_with_a_discontinuity() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (hook, events) = event_sink();
    let server = start_server(
        &data,
        &[
            "--republish-grace-secs",
            "4",
            "--record-apps",
            "live",
            "--record-flv",
            "--event-hook",
            &hook,
        ],
    );
    let url = format!("rtmp://{}/live/again", server.rtmp);
    assert!(publish(&url, 4, true, true).wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(500));
    assert!(publish(&url, 4, true, true).wait().unwrap().success());
    let rec = wait_for("the closed recording", Duration::from_secs(20), || {
        recordings(&data).into_iter().find(|d| ended(d))
    });
    assert_eq!(
        recordings(&data).len(),
        1,
        "one recording for both publishes"
    );
    let text = std::fs::read_to_string(rec.join("index.m3u8")).unwrap();
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
    let index = rec.join("index.m3u8");
    let warnings = decode_warnings(index.to_str().unwrap());
    assert!(warnings.is_empty(), "ffmpeg warned:\n{warnings}");
    let (duration, _) = probe(index.to_str().unwrap());
    assert!(
        (duration - 8.0).abs() <= 2.0,
        "two 4 s publishes: {duration} s"
    );
    // The FLV recording (parity with Node Media Server) holds both publishes too.
    let flv = rec.join("stream.flv");
    let (flv_duration, codecs) = probe(flv.to_str().unwrap());
    assert!(codecs.contains(&"h264".to_string()), "{codecs:?}");
    assert!(flv_duration > 3.0, "flv lasts {flv_duration} s");
    // The closed recording was announced to the webhook (the hand-off to transcoding).
    let id = rec.file_name().unwrap().to_str().unwrap().to_string();
    let announced = wait_event(&events, "recording", Duration::from_secs(10));
    assert!(
        announced.contains(&format!(r#""id":"{id}""#)),
        "{announced}"
    );
    assert!(
        announced.contains(r#""stream":"live/again""#),
        "{announced}"
    );
    assert!(announced.contains(r#""recovered":false"#), "{announced}");
}

#[test]
fn audio_only_and_video_only_publishes_get_live_hls() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("data"), &["--hls-segment-ms", "1000"]);
    let mut a = publish(&format!("rtmp://{}/radio/a", server.rtmp), 5, false, true);
    let mut v = publish(&format!("rtmp://{}/live/v", server.rtmp), 5, true, false);
    for (path, codec) in [("/radio/a.m3u8", "aac"), ("/live/v.m3u8", "h264")] {
        wait_for(path, Duration::from_secs(20), || {
            (get(&server.http, path).0 == 200).then_some(())
        });
        let url = format!("http://{}{path}", server.http);
        let (_, codecs) = probe(&url);
        assert_eq!(codecs, vec![codec.to_string()], "{path}");
    }
    assert!(a.wait().unwrap().success() && v.wait().unwrap().success());
}

#[test]
fn a_recording_interrupted_by_kill_9_is_closed_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = start_server(&data, &["--record-apps", "*", "--hls-segment-ms", "1000"]);
    let mut publisher = publish(
        &format!("rtmp://{}/live/crash", server.rtmp),
        30,
        true,
        true,
    );
    // Wait until a few segments are on disk, then kill -9 the server mid-recording.
    let rec = wait_for("recorded segments", Duration::from_secs(20), || {
        recordings(&data).into_iter().find(|d| {
            std::fs::read_to_string(d.join("index.m3u8"))
                .is_ok_and(|t| t.matches("#EXTINF").count() >= 3)
        })
    });
    drop(server); // SIGKILL
    let _ = publisher.kill();
    let _ = publisher.wait();
    assert!(!ended(&rec), "not closed before the restart");

    let (hook, events) = event_sink();
    let _server = start_server(&data, &["--event-hook", &hook]);
    // Closed at start-up, before the server listens.
    assert!(ended(&rec), "closed at restart");
    let index = rec.join("index.m3u8");
    let text = std::fs::read_to_string(&index).unwrap();
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD\n"), "{text}");
    let warnings = decode_warnings(index.to_str().unwrap());
    assert!(warnings.is_empty(), "ffmpeg warned:\n{warnings}");
    let (duration, _) = probe(index.to_str().unwrap());
    assert!(
        duration >= 2.5,
        "plays to the last complete segment: {duration} s"
    );
    let announced = wait_for(
        "the recovered recording event",
        Duration::from_secs(10),
        || events.bodies().first().cloned(),
    );
    assert!(announced.contains(r#""recovered":true"#), "{announced}");
    assert!(
        announced.contains(r#""stream":"live/crash""#),
        "{announced}"
    );
}

/// An auth hook allowing everything, asking to record streams named `hooked`.
fn record_hook() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/auth", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&got).contains('}') {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let body = if String::from_utf8_lossy(&got).contains(r#""stream":"hooked""#) {
                r#"{"record": true}"#
            } else {
                "{}"
            };
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn the_auth_hook_can_ask_for_a_recording() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hook = record_hook();
    let server = start_server(
        &data,
        &[
            "--auth-hook",
            &hook,
            "--republish-grace-secs",
            "1",
            "--hls-segment-ms",
            "1000",
        ],
    );
    let mut a = publish(
        &format!("rtmp://{}/live/hooked", server.rtmp),
        3,
        true,
        true,
    );
    let mut b = publish(&format!("rtmp://{}/live/plain", server.rtmp), 3, true, true);
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    let rec = wait_for("the hooked recording", Duration::from_secs(20), || {
        recordings(&data).into_iter().find(|d| ended(d))
    });
    let name = rec.file_name().unwrap().to_str().unwrap().to_string();
    assert!(name.starts_with("live.hooked."), "{name}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        recordings(&data).len(),
        1,
        "only the stream the hook asked for"
    );
}
