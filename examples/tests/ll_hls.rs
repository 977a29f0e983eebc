//! Low-latency HLS through `media-server` with ffmpeg publishing: the playlist's tags,
//! blocking reloads that answer when the part appears (and 400 / 503 where the spec says),
//! a hinted part that waits until it is complete, delta updates, many waiting players
//! answered by one part, and ffmpeg playing the playlist.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{get, last_part, part_of, start_server};

/// ffmpeg publishing 320x240 25 fps H.264 (1 s GOP) + AAC in real time.
fn publish(url: &str, secs: u32) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", &secs.to_string()])
        .args([
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .args([
            "-tune",
            "zerolatency",
            "-g",
            "25",
            "-c:a",
            "aac",
            "-f",
            "flv",
            url,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run ffmpeg")
}

fn text(addr: &str, path: &str) -> (u16, String) {
    let (status, _, body) = get(addr, path);
    (status, String::from_utf8(body).unwrap())
}

/// ffmpeg's warnings but the one its HLS demuxer causes itself: it feeds the init segment to
/// its MP4 reader again after every live playlist reload (a new EXT-X-MAP object each time,
/// ffmpeg 5.1 and 9 alike), which that reader reports as a duplicated moov. Anything else is
/// a defect of the stream.
fn beyond_reloads(warnings: &str) -> Vec<&str> {
    warnings
        .lines()
        .filter(|l| {
            !l.contains("Found duplicated MOOV Atom") && !l.contains("Last message repeated")
        })
        .collect()
}

fn hint(playlist: &str) -> String {
    playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .map(|u| u.trim_end_matches('"').to_string())
        .expect("a preload hint")
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[allow(clippy::too_many_lines)] // one broadcast, checked from every side
fn low_latency_hls_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(
        &dir.path().join("data"),
        &["--hls-segment-ms", "1000", "--hls-part-ms", "200"],
    );
    let addr = server.http.clone();
    let mut publisher = publish(&format!("rtmp://{}/live/ll", server.rtmp), 16);

    let playlist = wait_for("the LL-HLS playlist", Duration::from_secs(20), || {
        let (status, body) = text(&addr, "/live/ll.m3u8");
        (status == 200).then_some(body)
    });
    for tag in [
        "#EXT-X-VERSION:9\n",
        "#EXT-X-TARGETDURATION:1\n",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600,CAN-SKIP-UNTIL=6.000\n",
        "#EXT-X-PART-INF:PART-TARGET=0.200\n",
        "#EXT-X-INDEPENDENT-SEGMENTS\n",
        "#EXT-X-PROGRAM-DATE-TIME:",
        ",INDEPENDENT=YES\n",
        "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"ll-",
    ] {
        assert!(playlist.contains(tag), "{tag} missing:\n{playlist}");
    }
    // Parts never exceed the part target.
    for d in playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXT-X-PART:DURATION="))
    {
        let secs: f64 = d.split(',').next().unwrap().parse().unwrap();
        assert!(secs > 0.0 && secs <= 0.2, "part of {secs} s");
    }

    // The init segment and the parts are fMP4, cached as immutable.
    let map = playlist
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
        .unwrap()
        .trim_end_matches('"')
        .to_string();
    let (status, head, init) = get(&addr, &format!("/live/{map}"));
    assert_eq!(status, 200);
    assert!(head.contains("content-type: video/mp4"), "{head}");
    assert!(head.contains("immutable"), "{head}");
    assert_eq!(&init[4..8], b"ftyp");
    assert!(init.windows(4).any(|w| w == b"avcC") && init.windows(4).any(|w| w == b"esds"));
    let (_, _, uri) = last_part(&playlist);
    let (status, _, part) = get(&addr, &format!("/live/{uri}"));
    assert_eq!(status, 200);
    assert_eq!(&part[4..8], b"moof");

    // A blocking reload for the next part answers when it exists, within a part or two.
    let (msn, p, _) = last_part(&text(&addr, "/live/ll.m3u8").1);
    let start = Instant::now();
    let (status, head, body) = get(
        &addr,
        &format!("/live/ll.m3u8?_HLS_msn={msn}&_HLS_part={}", p + 1),
    );
    let waited = start.elapsed();
    assert_eq!(status, 200);
    assert!(head.contains("cache-control: public, max-age=6"), "{head}");
    let body = String::from_utf8(body).unwrap();
    let (m2, p2, _) = last_part(&body);
    assert!((m2, p2) > (msn, p), "({m2},{p2}) after ({msn},{p})");
    assert!(waited < Duration::from_millis(900), "waited {waited:?}");
    // One already there answers at once.
    let start = Instant::now();
    assert_eq!(
        get(
            &addr,
            &format!("/live/ll.m3u8?_HLS_msn={msn}&_HLS_part={p}")
        )
        .0,
        200
    );
    assert!(start.elapsed() < Duration::from_millis(150));

    // What the spec refuses: too far ahead, a part without a segment, garbage.
    for q in [
        format!("_HLS_msn={}", msn + 10),
        format!("_HLS_msn={}&_HLS_part={}", msn + 1, p + 30),
        "_HLS_part=1".to_string(),
        "_HLS_msn=x".to_string(),
        "_HLS_msn=1&_HLS_part=99999999999".to_string(),
    ] {
        let (status, _, _) = get(&addr, &format!("/live/ll.m3u8?{q}"));
        assert_eq!(status, 400, "{q}");
    }

    // The hinted part can be asked for before it exists: it comes when complete.
    let listed = text(&addr, "/live/ll.m3u8").1;
    let hinted = hint(&listed);
    let start = Instant::now();
    let (status, head, part) = get(&addr, &format!("/live/{hinted}"));
    assert_eq!(status, 200, "{hinted}");
    assert!(head.contains("immutable"));
    assert_eq!(&part[4..8], b"moof");
    assert!(start.elapsed() < Duration::from_millis(900));
    // A part that is neither held nor hinted is 404 at once.
    let (m, q) = part_of(&hinted);
    let far = hinted.replace(&format!("-{m}.{q}.m4s"), &format!("-{m}.{}.m4s", q + 3));
    let start = Instant::now();
    assert_eq!(get(&addr, &format!("/live/{far}")).0, 404);
    assert!(start.elapsed() < Duration::from_millis(150));

    // Many players waiting on the same part are all answered when it appears.
    let (msn, p, _) = last_part(&text(&addr, "/live/ll.m3u8").1);
    let waiters: Vec<_> = (0..200)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                let (s, _) = text(
                    &addr,
                    &format!("/live/ll.m3u8?_HLS_msn={msn}&_HLS_part={}", p + 1),
                );
                (s, start.elapsed())
            })
        })
        .collect();
    for w in waiters {
        let (status, waited) = w.join().unwrap();
        assert_eq!(status, 200);
        assert!(waited < Duration::from_secs(2), "waited {waited:?}");
    }

    // After more than CAN-SKIP-UNTIL (6 s) of segments, a delta update skips some.
    let delta = wait_for("a delta update", Duration::from_secs(20), || {
        let (_, body) = text(&addr, "/live/ll.m3u8?_HLS_skip=YES");
        body.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=")
            .then_some(body)
    });
    let full = text(&addr, "/live/ll.m3u8").1;
    assert!(delta.len() < full.len());
    let seq = |t: &str| {
        t.lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MEDIA-SEQUENCE:"))
            .map(|v| v.parse::<u64>().unwrap())
            .unwrap()
    };
    assert!(seq(&delta) >= seq(&full).saturating_sub(1));

    // ffmpeg plays the low-latency playlist (as plain fMP4 HLS).
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(format!("http://{addr}/live/ll.m3u8"))
        .output()
        .unwrap();
    let codecs = String::from_utf8_lossy(&out.stdout);
    assert!(
        codecs.contains("h264") && codecs.contains("aac"),
        "{codecs} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The TS variant is there for old players.
    let (status, ts) = text(&addr, "/live/ll.m3u8?format=ts");
    assert_eq!(status, 200);
    assert!(ts.contains(".ts\n") && !ts.contains("EXT-X-PART"), "{ts}");

    // A publisher that stalls: a blocking request gives up after 3 target durations.
    let pid = publisher.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    std::thread::sleep(Duration::from_millis(500));
    let (msn, p, _) = last_part(&text(&addr, "/live/ll.m3u8").1);
    let start = Instant::now();
    let (status, _, _) = get(
        &addr,
        &format!("/live/ll.m3u8?_HLS_msn={msn}&_HLS_part={}", p + 1),
    );
    let waited = start.elapsed();
    assert!(
        Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(status, 503);
    assert!(
        waited >= Duration::from_millis(2900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );

    // When the stream ends, the playlist ends and blocking directives are ignored.
    assert!(publisher.wait().unwrap().success());
    let ended = wait_for("the ended playlist", Duration::from_secs(20), || {
        let (_, body) = text(&addr, "/live/ll.m3u8");
        body.ends_with("#EXT-X-ENDLIST\n").then_some(body)
    });
    assert!(!ended.contains("PRELOAD-HINT") && !ended.contains("SERVER-CONTROL"));
    let start = Instant::now();
    let (status, _, _) = get(&addr, "/live/ll.m3u8?_HLS_msn=999999");
    assert_eq!(status, 200);
    assert!(start.elapsed() < Duration::from_millis(150));
}

/// The static ffmpeg 9 of PyPI's `imageio-ffmpeg` (clients/python/requirements.txt):
/// Debian's ffmpeg 5.1 cannot publish Enhanced RTMP.
fn ffmpeg9() -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())",
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "imageio-ffmpeg is missing: pip install -r clients/python/requirements.txt\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
#[allow(clippy::too_many_lines)] // three codecs, each checked from every side
fn hevc_av1_and_vp9_publishes_get_low_latency_hls() {
    let ffmpeg = ffmpeg9();
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(
        &dir.path().join("data"),
        &["--hls-segment-ms", "1000", "--hls-part-ms", "250"],
    );
    let addr = server.http.clone();
    let codecs: [(&str, &[&str], &str, &str); 3] = [
        (
            "hevc",
            &[
                "-c:v",
                "libx265",
                "-preset",
                "ultrafast",
                "-x265-params",
                "log-level=error:keyint=25:bframes=0",
            ],
            "hvc1",
            "hev1.|hvc1.",
        ),
        (
            "av1",
            &[
                "-c:v",
                "libsvtav1",
                "-preset",
                "12",
                "-g",
                "25",
                "-svtav1-params",
                "lp=1",
            ],
            "av01",
            "av01.0.",
        ),
        (
            "vp9",
            &[
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-g",
                "25",
                "-row-mt",
                "0",
            ],
            "vp09",
            "vp09.00.",
        ),
    ];
    for (name, args, entry, codec_prefix) in codecs {
        let mut publisher = Command::new(&ffmpeg)
            .args(["-hide_banner", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args(["-t", "6", "-pix_fmt", "yuv420p"])
            .args(args)
            .args(["-c:a", "aac", "-f", "flv"])
            .arg(format!("rtmp://{}/live/{name}", server.rtmp))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A complete segment listed.
        let playlist = wait_for(name, Duration::from_secs(30), || {
            let (status, body) = text(&addr, &format!("/live/{name}.m3u8"));
            (status == 200 && body.contains(".m4s\n#")).then_some(body)
        });
        let map = playlist
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
            .unwrap()
            .trim_end_matches('"')
            .to_string();
        let (_, _, init) = get(&addr, &format!("/live/{map}"));
        assert!(
            init.windows(4).any(|w| w == entry.as_bytes()),
            "{name}: no {entry} sample entry"
        );
        let segment = playlist
            .lines()
            .find(|l| {
                !l.starts_with('#')
                    && std::path::Path::new(l)
                        .extension()
                        .is_some_and(|e| e == "m4s")
            })
            .unwrap();
        let (status, _, media) = get(&addr, &format!("/live/{segment}"));
        assert_eq!(status, 200);
        // init + segment decodes with every frame and no warning.
        let file = dir.path().join(format!("{name}.mp4"));
        std::fs::write(&file, [init.as_slice(), media.as_slice()].concat()).unwrap();
        let out = Command::new(&ffmpeg)
            .args(["-hide_banner", "-v", "warning", "-i"])
            .arg(&file)
            .args(["-f", "null", "-"])
            .output()
            .unwrap();
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && warnings.trim().is_empty(),
            "{name}: {warnings}"
        );
        // /api/streams knows the codec (RFC 6381) and the picture size.
        let (_, streams) = common::http(&addr, "GET", "/api/streams", "");
        let ours = streams
            .split("{\"key\":")
            .find(|s| s.starts_with(&format!("\"live/{name}\"")))
            .unwrap_or_default()
            .to_string();
        assert!(
            codec_prefix
                .split('|')
                .any(|p| ours.contains(&format!("\"video_codec\":\"{p}"))),
            "{name}: {streams}"
        );
        assert!(
            ours.contains("\"width\":320,\"height\":240"),
            "{name}: {streams}"
        );
        let status = publisher.wait().unwrap();
        assert!(status.success(), "{name}: publisher failed");
    }
}

/// What the test's own reader takes from a low-latency playlist.
#[derive(Debug, Default)]
struct Parsed {
    part_target: f64,
    target: u64,
    media_sequence: u64,
    discontinuity_sequence: u64,
    skipped: u64,
    /// (msn, uri, duration, pdt in ms, discontinuity, parts listed before it)
    segments: Vec<(u64, String, f64, i64, bool, usize)>,
    /// (msn, part, duration, independent) of every EXT-X-PART, in order.
    parts: Vec<(u64, u32, f64, bool)>,
    hint: Option<(u64, u32)>,
    ended: bool,
}

fn millis_of(pdt: &str) -> i64 {
    // 2026-12-05T04:01:02.345Z → milliseconds in the day are enough to order (the test
    // runs for seconds); days are compared as well.
    let (date, time) = pdt.split_once('T').unwrap();
    let day: i64 = date.replace('-', "").parse().unwrap();
    let time = time.trim_end_matches('Z');
    let time = time.split('+').next().unwrap();
    let mut it = time.split(':');
    let h: f64 = it.next().unwrap().parse().unwrap();
    let m: f64 = it.next().unwrap().parse().unwrap();
    let s: f64 = it.next().unwrap().parse().unwrap();
    #[allow(clippy::cast_possible_truncation)] // milliseconds of a day
    let ms = ((h * 3600.0 + m * 60.0 + s) * 1000.0).round() as i64;
    day * 86_400_000 + ms
}

fn parse(text: &str) -> Parsed {
    let mut p = Parsed::default();
    let mut pdt = None;
    let mut disc = false;
    let mut extinf = None;
    let mut parts_here = 0;
    for line in text.lines() {
        let attr = |l: &str, name: &str| {
            l.split(',')
                .find_map(|a| a.strip_prefix(&format!("{name}=")))
                .map(|v| v.trim_matches('"').to_string())
        };
        if let Some(v) = line.strip_prefix("#EXT-X-PART-INF:") {
            p.part_target = attr(v, "PART-TARGET").unwrap().parse().unwrap();
        } else if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            p.target = v.parse().unwrap();
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            p.media_sequence = v.parse().unwrap();
        } else if let Some(v) = line.strip_prefix("#EXT-X-DISCONTINUITY-SEQUENCE:") {
            p.discontinuity_sequence = v.parse().unwrap();
        } else if let Some(v) = line.strip_prefix("#EXT-X-SKIP:") {
            p.skipped = attr(v, "SKIPPED-SEGMENTS").unwrap().parse().unwrap();
        } else if line == "#EXT-X-DISCONTINUITY" {
            disc = true;
        } else if let Some(v) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            pdt = Some(millis_of(v));
        } else if let Some(v) = line.strip_prefix("#EXT-X-PART:") {
            let (m, i) = part_of(&attr(v, "URI").unwrap());
            p.parts.push((
                m,
                i,
                attr(v, "DURATION").unwrap().parse().unwrap(),
                v.contains("INDEPENDENT=YES"),
            ));
            parts_here += 1;
        } else if let Some(v) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
            p.hint = Some(part_of(&attr(v, "URI").unwrap()));
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            extinf = Some(v.trim_end_matches(',').parse::<f64>().unwrap());
        } else if line == "#EXT-X-ENDLIST" {
            p.ended = true;
        } else if !line.starts_with('#') && !line.is_empty() {
            let msn: u64 = line
                .trim_end_matches(".m4s")
                .rsplit('-')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            p.segments.push((
                msn,
                line.to_string(),
                extinf.take().expect("EXTINF before a URI"),
                pdt.take().expect("a date for every segment"),
                std::mem::take(&mut disc),
                std::mem::take(&mut parts_here),
            ));
        }
    }
    p
}

/// Total duration of `moof` samples per track in a part, with its tfdt: (track, tfdt, total).
fn fragments(bytes: &[u8]) -> Vec<(u32, u64, u64)> {
    use mp4_atom::{Any, DecodeMaybe};
    let mut cur = std::io::Cursor::new(bytes);
    let mut out = Vec::new();
    while let Some(atom) = Any::decode_maybe(&mut cur).unwrap() {
        if let Any::Moof(m) = atom {
            for traf in &m.traf {
                let total = traf
                    .trun
                    .iter()
                    .flat_map(|r| r.samples.iter())
                    .map(|s| u64::from(s.duration.unwrap_or(0)))
                    .sum();
                let tfdt = traf.tfdt.as_ref().unwrap().base_media_decode_time;
                out.push((traf.tfhd.track_id, tfdt, total));
            }
        }
    }
    assert_eq!(cur.position() as usize, bytes.len(), "whole boxes");
    out
}

#[test]
#[allow(clippy::too_many_lines, clippy::cast_precision_loss)] // every rule, on every reload
fn playlist_rules_hold_across_live_reloads_and_a_republish() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(
        &dir.path().join("data"),
        &[
            "--hls-segment-ms",
            "1000",
            "--hls-part-ms",
            "250",
            "--republish-grace-secs",
            "5",
        ],
    );
    let addr = server.http.clone();
    let url = format!("rtmp://{}/live/rules", server.rtmp);
    let mut first = publish(&url, 9);
    wait_for("the playlist", Duration::from_secs(20), || {
        (text(&addr, "/live/rules.m3u8").0 == 200).then_some(())
    });
    // ffmpeg decodes the whole live broadcast from the LL-HLS playlist, with no warning.
    let decoder = {
        let url = format!("http://{addr}/live/rules.m3u8");
        std::thread::spawn(move || common::decode_warnings(&url))
    };

    let mut seen: std::collections::HashMap<u64, (String, f64, i64)> =
        std::collections::HashMap::new();
    let mut fetched = std::collections::HashSet::new();
    let mut track_end: [Option<u64>; 3] = [None; 3];
    let mut last_media_sequence = 0;
    let mut last_disc_sequence = 0;
    let mut second = None;
    let mut discontinuities = 0;
    let mut skips = 0;
    let start = Instant::now();
    let ended = loop {
        if second.is_none() && first.try_wait().unwrap().is_some() {
            // The same stream published again within the grace: a discontinuity.
            second = Some(publish(&url, 6));
        }
        let (status, body) = text(&addr, "/live/rules.m3u8");
        assert_eq!(status, 200);
        let p = parse(&body);
        assert!(p.part_target > 0.0 && p.part_target <= 0.25, "{body}");
        // Media and discontinuity sequences never go back.
        assert!(p.media_sequence >= last_media_sequence);
        assert!(p.discontinuity_sequence >= last_disc_sequence);
        last_media_sequence = p.media_sequence;
        last_disc_sequence = p.discontinuity_sequence;
        for (i, (msn, uri, d, pdt, disc, _)) in p.segments.iter().enumerate() {
            // Numbered from the media sequence without gaps.
            assert_eq!(*msn, p.media_sequence + i as u64, "{body}");
            assert!(
                *d <= p.target as f64 + 0.5,
                "{d} s segment, target {}",
                p.target
            );
            discontinuities += usize::from(*disc);
            // A segment is the same on every reload.
            let prev = seen.entry(*msn).or_insert((uri.clone(), *d, *pdt));
            assert_eq!(prev, &(uri.clone(), *d, *pdt), "segment {msn} changed");
        }
        // Dates run forward.
        assert!(p.segments.windows(2).all(|w| w[0].3 <= w[1].3), "{body}");
        // Parts: within the part target, only for the last segments (a suffix of them),
        // numbered in order, the hint naming the next one.
        for (m, i, d, _) in &p.parts {
            assert!(
                *d > 0.0 && *d <= p.part_target + 0.0005,
                "part {m}.{i} of {d} s"
            );
        }
        let with_parts: Vec<_> = p.segments.iter().map(|s| s.5 > 0).collect();
        if let Some(first_with) = with_parts.iter().position(|w| *w) {
            assert!(
                with_parts[first_with..].iter().all(|w| *w),
                "parts not a suffix: {body}"
            );
            let listed: f64 = p.segments[first_with..].iter().map(|s| s.2).sum();
            assert!(
                listed <= 3.0 * p.target as f64 + p.target as f64 + 0.5,
                "parts listed for {listed} s: {body}"
            );
        }
        for w in p.parts.windows(2) {
            let ((m0, i0, ..), (m1, i1, ..)) = (w[0], w[1]);
            assert!(
                (m1 == m0 && i1 == i0 + 1) || (m1 == m0 + 1 && i1 == 0),
                "{body}"
            );
        }
        if let (Some(&(m, i, ..)), Some(h)) = (p.parts.last(), p.hint) {
            assert_eq!(h, (m, i + 1), "the hint names the next part");
        }
        if let Some((m, i, _, independent)) = p.parts.first()
            && *i == 0
        {
            assert!(*independent, "part {m}.0 starts a segment: INDEPENDENT=YES");
        }
        // A delta update skips exactly what it says.
        let (_, delta) = text(&addr, "/live/rules.m3u8?_HLS_skip=YES");
        let d = parse(&delta);
        if !d.ended {
            if let Some(first) = d.segments.first() {
                assert_eq!(first.0, d.media_sequence + d.skipped, "{delta}");
            }
            skips += usize::from(d.skipped > 0);
        }
        // Every part, fetched once in order: whole boxes, decode times continuous.
        for &(m, i, ..) in &p.parts {
            if !fetched.insert((m, i)) {
                continue;
            }
            let uri = format!("/live/rules-{}-{m}.{i}.m4s", generation(&body));
            let (status, _, bytes) = get(&addr, &uri);
            assert_eq!(status, 200, "{uri}");
            for (track, tfdt, total) in fragments(&bytes) {
                let slot = &mut track_end[track as usize];
                if let Some(end) = *slot {
                    assert!(tfdt >= end, "track {track} went back at {m}.{i}");
                }
                *slot = Some(tfdt + total);
            }
        }
        if p.ended {
            break p;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the stream never ended"
        );
        std::thread::sleep(Duration::from_millis(150));
    };
    assert!(second.unwrap().wait().unwrap().success());
    assert!(discontinuities > 0, "the republish is a discontinuity");
    assert!(skips > 0, "delta updates skipped segments");
    assert!(ended.segments.len() > 5);
    assert!(fetched.len() > 40, "{} parts", fetched.len());
    let warnings = decoder.join().unwrap();
    let other: Vec<&str> = warnings
        .lines()
        .filter(|l| {
            !l.contains("Found duplicated MOOV Atom") && !l.contains("Last message repeated")
        })
        .collect();
    assert!(other.is_empty(), "ffmpeg warned: {warnings}");
}

/// The generation in the playlist's URIs (`<stream>-<gen>-…`).
fn generation(playlist: &str) -> String {
    let uri = playlist
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .unwrap();
    let mut it = uri.rsplit('-');
    it.next();
    it.next().unwrap().to_string()
}

#[test]
fn hevc_audio_only_and_video_only_live_playlists_decode_without_warnings() {
    let ffmpeg = ffmpeg9();
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(
        &dir.path().join("data"),
        &["--hls-segment-ms", "1000", "--hls-part-ms", "250"],
    );
    let video = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"];
    let audio = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"];
    let cases: [(&str, Vec<&str>); 3] = [
        (
            "hevc",
            [
                &video[..],
                &audio[..],
                &["-c:v", "libx265", "-preset", "ultrafast"],
            ]
            .concat(),
        ),
        ("audio", audio.to_vec()),
        (
            "video",
            [&video[..], &["-c:v", "libx264", "-preset", "ultrafast"]].concat(),
        ),
    ];
    let mut running = Vec::new();
    for (name, inputs) in &cases {
        let publisher = Command::new(&ffmpeg)
            .args(["-hide_banner", "-loglevel", "error", "-re"])
            .args(inputs)
            .args(["-t", "9", "-pix_fmt", "yuv420p", "-g", "25", "-c:a", "aac"])
            .args(["-x265-params", "log-level=error:keyint=25", "-f", "flv"])
            .arg(format!("rtmp://{}/live/{name}", server.rtmp))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        running.push((*name, publisher));
    }
    let mut decoders = Vec::new();
    for (name, _) in &running {
        let path = format!("/live/{name}.m3u8");
        wait_for(&path, Duration::from_secs(20), || {
            (text(&server.http, &path).0 == 200).then_some(())
        });
        let url = format!("http://{}{path}", server.http);
        decoders.push((
            *name,
            std::thread::spawn(move || common::decode_warnings(&url)),
        ));
    }
    for (name, decoder) in decoders {
        let warnings = decoder.join().unwrap();
        assert!(
            beyond_reloads(&warnings).is_empty(),
            "{name}: ffmpeg warned: {warnings}"
        );
    }
    for (name, mut p) in running {
        assert!(p.wait().unwrap().success(), "{name}: publisher failed");
    }
}

/// A keep-alive HTTP/1.1 connection read response by response.
struct KeepAlive {
    stream: std::net::TcpStream,
    buf: Vec<u8>,
}

impl KeepAlive {
    fn open(addr: &str) -> KeepAlive {
        let stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        KeepAlive {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, raw: &str) {
        std::io::Write::write_all(&mut self.stream, raw.as_bytes()).unwrap();
    }

    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 16384];
        let n = std::io::Read::read(&mut self.stream, &mut chunk).unwrap();
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// The next response: status, head (lower case), body (none for a HEAD request).
    fn response(&mut self, head_request: bool) -> (u16, String, Vec<u8>) {
        let at = loop {
            if let Some(at) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            assert!(self.fill(), "the connection closed before a response");
        };
        let head = String::from_utf8_lossy(&self.buf[..at]).to_lowercase();
        let status = head[9..12].parse().unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |v| v.trim().parse().unwrap());
        let len = if head_request { 0 } else { len };
        while self.buf.len() < at + 4 + len {
            assert!(self.fill(), "the connection closed inside a body");
        }
        let body = self.buf[at + 4..at + 4 + len].to_vec();
        self.buf.drain(..at + 4 + len);
        (status, head, body)
    }

    /// Whether the server closed the connection (after everything read so far).
    fn closed(&mut self) -> bool {
        self.buf.is_empty() && !self.fill()
    }
}

/// Live HLS requests are answered ahead of hyper (media from memory files with sendfile):
/// pipelined requests answer in order, HEAD gives the length without the body, a segment is
/// exactly its parts, another route on the same connection hands it to hyper, which goes on
/// answering, `Connection: close` closes, and the metrics count every request.
#[test]
#[allow(clippy::too_many_lines)] // one connection, request after request
fn one_keep_alive_connection_mixes_plain_and_hyper_requests() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(
        &dir.path().join("data"),
        &["--hls-segment-ms", "1000", "--hls-part-ms", "200"],
    );
    let addr = server.http.clone();
    let mut publisher = publish(&format!("rtmp://{}/live/mix", server.rtmp), 10);
    // Two complete segments, so a whole one and its parts are listed.
    let playlist = wait_for("two segments", Duration::from_secs(20), || {
        let (status, body) = text(&addr, "/live/mix.m3u8");
        (status == 200 && body.matches("#EXTINF:").count() >= 2).then_some(body)
    });
    let parsed = parse(&playlist);
    // The newest complete segment whose parts are all listed (from part 0).
    let (msn, segment_uri, _, _, _, count) = parsed
        .segments
        .iter()
        .rev()
        .find(|s| s.5 > 0 && parsed.parts.iter().any(|p| (p.0, p.1) == (s.0, 0)))
        .cloned()
        .expect("a complete segment with its parts listed");
    let parts: Vec<String> = (0..count)
        .map(|i| segment_uri.replace(&format!("-{msn}.m4s"), &format!("-{msn}.{i}.m4s")))
        .collect();

    let mut c = KeepAlive::open(&addr);
    let host = format!("Host: {addr}\r\n");
    let part_uri = &parts[0];
    c.send(&format!(
        "GET /live/mix.m3u8 HTTP/1.1\r\n{host}\r\nHEAD /live/{part_uri} HTTP/1.1\r\n{host}\r\nGET /live/{part_uri} HTTP/1.1\r\n{host}\r\n"
    ));
    let (status, head, body) = c.response(false);
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: application/vnd.apple.mpegurl"),
        "{head}"
    );
    assert!(head.contains("access-control-allow-origin: *"), "{head}");
    assert!(head.contains("\r\ndate: "), "{head}");
    assert!(String::from_utf8(body).unwrap().starts_with("#EXTM3U\n"));
    let (status, head_of_head, nothing) = c.response(true);
    assert_eq!((status, nothing.len()), (200, 0));
    let (status, head, part) = c.response(false);
    assert_eq!(status, 200);
    assert!(
        head.contains("cache-control: public, max-age=31536000, immutable"),
        "{head}"
    );
    assert!(head_of_head.contains(&format!("content-length: {}\r\n", part.len())));
    assert_eq!(&part[4..8], b"moof");

    // The segment is exactly its parts, one after another (each has its own memory file).
    let mut joined = Vec::new();
    for uri in &parts {
        c.send(&format!("GET /live/{uri} HTTP/1.1\r\n{host}\r\n"));
        let (status, _, bytes) = c.response(false);
        assert_eq!(status, 200, "{uri}");
        joined.extend(bytes);
    }
    c.send(&format!("GET /live/{segment_uri} HTTP/1.1\r\n{host}\r\n"));
    let (status, _, whole) = c.response(false);
    assert_eq!(status, 200);
    assert_eq!(whole, joined);

    // A blocking reload for the next part, then another route: hyper takes the connection
    // over (with the bytes already read) and answers the HLS requests after it.
    let (m, p, _) = last_part(&text(&addr, "/live/mix.m3u8").1);
    c.send(&format!(
        "GET /live/mix.m3u8?_HLS_msn={m}&_HLS_part={} HTTP/1.1\r\n{host}\r\nGET /api/streams HTTP/1.1\r\n{host}\r\nGET /live/mix.m3u8 HTTP/1.1\r\n{host}\r\n",
        p + 1
    ));
    let (status, head, body) = c.response(false);
    assert_eq!(status, 200);
    assert!(head.contains("cache-control: public, max-age=6"), "{head}");
    let blocked = String::from_utf8(body).unwrap();
    assert!(
        last_part(&blocked).0 * 100 + u64::from(last_part(&blocked).1) > m * 100 + u64::from(p)
    );
    let (status, _, streams) = c.response(false);
    assert_eq!(status, 200);
    assert!(String::from_utf8(streams).unwrap().contains("live/mix"));
    let (status, head, _) = c.response(false);
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: application/vnd.apple.mpegurl"),
        "{head}"
    );

    // `Connection: close` on a plain request closes after its answer.
    let mut once = KeepAlive::open(&addr);
    once.send(&format!(
        "GET /live/{part_uri} HTTP/1.1\r\n{host}Connection: close\r\n\r\n"
    ));
    let (status, head, again) = once.response(false);
    assert_eq!((status, again), (200, part));
    assert!(head.contains("connection: close"), "{head}");
    assert!(once.closed());

    // Every one of them is in the request metrics, as route `hls`.
    let (_, metrics) = text(&addr, "/metrics");
    let hls_requests: u64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("videopick_http_request_duration_seconds_count")
                && l.contains("route=\"hls\"")
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    let made = 3 + parts.len() + 1 + 2 + 1;
    assert!(
        hls_requests >= made as u64,
        "{hls_requests} < {made}:\n{metrics}"
    );
    let _ = publisher.kill();
    let _ = publisher.wait();
}
