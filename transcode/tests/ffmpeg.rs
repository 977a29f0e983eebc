//! The transcode crate against the real ffmpeg/ffprobe binaries, on small generated inputs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::make_input;

use videopick_storage::{Storage, VideoId};
use videopick_transcode::plan::LadderConfig;
use videopick_transcode::probe::ProbeError;
use videopick_transcode::progress::Progress;
use videopick_transcode::runner::{RunError, RunOptions, Runner, RunnerConfig};
use videopick_transcode::{Cancel, JobError, Transcoder, TranscoderConfig};

fn transcoder(root: &Path, rungs: &[u32]) -> Transcoder {
    let storage = Storage::open(root).unwrap();
    let runner = Runner::new(RunnerConfig {
        max_concurrent: 2,
        ..RunnerConfig::default()
    });
    Transcoder::new(
        storage,
        runner,
        TranscoderConfig {
            ladder: LadderConfig {
                rungs: rungs.to_vec(),
                segment_seconds: 2,
                ..LadderConfig::default()
            },
            ..TranscoderConfig::default()
        },
    )
}

/// `ffmpeg -v warning` decoding `input` completely: what it printed (nothing = clean).
fn decode_warnings(input: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "warning", "-i"])
        .arg(input)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ffprobe(args: &[&str], input: &Path) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(input)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Attribute `name` of an EXT-X-STREAM-INF line.
fn attr(line: &str, name: &str) -> Option<String> {
    let i = line.find(&format!("{name}="))? + name.len() + 1;
    let rest = &line[i..];
    if let Some(q) = rest.strip_prefix('"') {
        Some(q[..q.find('"')?].to_string())
    } else {
        Some(rest.split(',').next()?.to_string())
    }
}

fn extinf(playlist: &Path) -> Vec<f64> {
    std::fs::read_to_string(playlist)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|l| {
            l.trim_end_matches(',')
                .split(',')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)] // one scenario, checked end to end
async fn a_720p_source_becomes_a_three_rung_ladder_with_thumbnails() {
    let dir = tempfile::tempdir().unwrap();
    let input = make_input(dir.path(), "in.mp4", "1280x720", 6);
    let t = transcoder(&dir.path().join("data"), &[1080, 720, 480, 360]);
    let video = VideoId::new("v720").unwrap();
    let mut reports: Vec<Progress> = Vec::new();
    let out = t
        .ladder(
            &video,
            &input,
            Some(Duration::from_secs(120)),
            &Cancel::new(),
            |p| {
                reports.push(p);
            },
        )
        .await
        .unwrap();
    assert_eq!(out.dir, t.storage().vod_dir(&video));
    let names: Vec<_> = out.plan.rungs.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["720p", "480p", "360p"], "no rung above the source");

    // Progress: monotonic, ending at exactly 100 with `done`.
    let percents: Vec<f64> = reports.iter().filter_map(|p| p.percent).collect();
    assert!(percents.len() >= 2, "{reports:?}");
    assert!(percents.windows(2).all(|w| w[0] <= w[1]), "{percents:?}");
    let last = reports.last().unwrap();
    assert!(last.done && last.percent == Some(100.0), "{last:?}");
    assert_eq!(reports.iter().filter(|p| p.done).count(), 1);

    // The master playlist lists the three variants with their real sizes and codecs.
    let master = std::fs::read_to_string(out.dir.join("master.m3u8")).unwrap();
    let infs: Vec<&str> = master
        .lines()
        .filter(|l| l.starts_with("#EXT-X-STREAM-INF:"))
        .collect();
    assert_eq!(infs.len(), 3, "{master}");
    let mut seen = Vec::new();
    for (inf, (name, size)) in infs.iter().zip([
        ("720p", "1280x720"),
        ("480p", "854x480"),
        ("360p", "640x360"),
    ]) {
        assert_eq!(attr(inf, "RESOLUTION").as_deref(), Some(size), "{inf}");
        let bandwidth: u64 = attr(inf, "BANDWIDTH").unwrap().parse().unwrap();
        assert!(bandwidth > 100_000, "{inf}");
        let codecs = attr(inf, "CODECS").unwrap();
        let variant = out.dir.join(name).join("index.m3u8");
        // CODECS matches the profile and level the stream actually has.
        let profile = ffprobe(
            &[
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=profile,level,width,height",
                "-of",
                "csv=p=0",
            ],
            &variant,
        );
        let expect_profile = if name == "360p" { "Main" } else { "High" };
        assert!(profile.starts_with(expect_profile), "{name}: {profile}");
        assert_eq!(
            profile.split(',').skip(1).take(2).collect::<Vec<_>>(),
            size.split('x').collect::<Vec<_>>(),
            "{name}"
        );
        let level: u32 = profile.rsplit(',').next().unwrap().parse().unwrap();
        let idc = if name == "360p" { "4d" } else { "64" };
        assert!(
            codecs.starts_with(&format!("avc1.{idc}"))
                && codecs.ends_with(&format!("{level:02x},mp4a.40.2")),
            "{name}: CODECS={codecs}, stream {profile}"
        );
        // Every variant decodes without a single warning.
        let warnings = decode_warnings(&variant);
        assert!(warnings.is_empty(), "{name}: {warnings}");
        seen.push(extinf(&variant));
    }
    // Segment boundaries line up across variants (aligned key frames).
    assert!(seen[0].len() >= 3, "{seen:?}");
    for s in &seen[1..] {
        assert_eq!(s.len(), seen[0].len(), "{seen:?}");
        for (a, b) in s.iter().zip(&seen[0]) {
            assert!((a - b).abs() < 0.05, "{seen:?}");
        }
    }
    let total: f64 = seen[0].iter().sum();
    assert!((total - 6.0).abs() < 0.2, "{total}");

    // Poster and storyboard.
    assert_eq!(
        ffprobe(
            &["-show_entries", "stream=width,height", "-of", "csv=p=0"],
            &out.dir.join("poster.jpg")
        ),
        "1280,720"
    );
    assert_eq!(
        ffprobe(
            &["-show_entries", "stream=width,height", "-of", "csv=p=0"],
            &out.dir.join("storyboard.jpg")
        ),
        "960,90",
        "6 thumbnails of 160x90 in one row"
    );
    let vtt = std::fs::read_to_string(out.dir.join("storyboard.vtt")).unwrap();
    assert!(vtt.starts_with("WEBVTT\n"));
    assert_eq!(vtt.matches("storyboard.jpg#xywh=").count(), 6, "{vtt}");
    // Nothing left behind in tmp/.
    let tmp: Vec<_> = std::fs::read_dir(dir.path().join("data").join("tmp"))
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".lock"))
        .collect();
    assert!(tmp.is_empty(), "{tmp:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_360p_source_gets_no_larger_rungs_and_a_new_ladder_keeps_other_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = make_input(dir.path(), "small.mp4", "640x360", 3);
    let t = transcoder(&dir.path().join("data"), &[1080, 720, 480, 360]);
    let video = VideoId::new("small").unwrap();
    // A file already published for this video (as a recording's remux would be).
    let keep = t.storage().vod_dir(&video).join("video.mp4");
    t.storage().write_atomic(&keep, b"remuxed").unwrap();
    let out = t
        .ladder(&video, &input, None, &Cancel::new(), |_| {})
        .await
        .unwrap();
    let mut dirs: Vec<String> = std::fs::read_dir(&out.dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    assert_eq!(dirs, ["360p"]);
    let master = std::fs::read_to_string(out.dir.join("master.m3u8")).unwrap();
    assert_eq!(master.matches("#EXT-X-STREAM-INF").count(), 1, "{master}");
    assert!(!master.contains("720"), "{master}");
    assert_eq!(std::fs::read(&keep).unwrap(), b"remuxed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_file_fails_with_the_probe_error() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("notes.mp4");
    std::fs::write(&input, "this is not a video\n").unwrap();
    let t = transcoder(&dir.path().join("data"), &[360]);
    let err = t
        .ladder(
            &VideoId::new("txt").unwrap(),
            &input,
            None,
            &Cancel::new(),
            |_| {},
        )
        .await
        .unwrap_err();
    match &err {
        JobError::Probe(ProbeError::NotMedia { message, .. }) => {
            assert!(message.contains("Invalid data"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("not a media file"), "{err}");
    assert!(!t.storage().vod_dir(&VideoId::new("txt").unwrap()).exists());
}

/// A stand-in for ffmpeg that starts a child of its own (as a filter script or a
/// hardware helper might) and records its nice level, then runs the real ffmpeg.
fn wrapper(dir: &Path) -> (String, PathBuf, PathBuf) {
    let script = dir.join("ffmpeg-wrapper.sh");
    let (child, nice) = (dir.join("child.pid"), dir.join("nice"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nsleep 0.3\ncut -d' ' -f19 /proc/$$/stat > {}\nsleep 600 &\necho $! > {}\nexec ffmpeg \"$@\"\n",
            nice.display(),
            child.display()
        ),
    )
    .unwrap();
    let status = Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    assert!(status.success());
    (script.display().to_string(), child, nice)
}

fn alive(pid: u32) -> bool {
    // A killed child of ours may linger as a zombie until reaped: that is not running.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.split(' ').nth(2).is_none_or(|st| st != "Z"))
}

fn endless() -> Vec<std::ffi::OsString> {
    [
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-re",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-f",
        "null",
        "-",
    ]
    .iter()
    .map(Into::into)
    .collect()
}

async fn wait_for(path: &Path) -> String {
    for _ in 0..200 {
        if let Ok(s) = std::fs::read_to_string(path)
            && !s.trim().is_empty()
        {
            return s.trim().to_string();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{} never appeared", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_kills_ffmpeg_and_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let (program, child_pid, nice) = wrapper(dir.path());
    let runner = Runner::new(RunnerConfig {
        ffmpeg: program,
        nice: Some(7),
        ..RunnerConfig::default()
    });
    let cancel = Cancel::new();
    let run = {
        let (runner, cancel) = (runner.clone(), cancel.clone());
        tokio::spawn(async move {
            let mut reports = 0;
            let r = runner
                .run(
                    endless(),
                    &RunOptions::default(),
                    cancel.cancelled(),
                    |_| reports += 1,
                )
                .await;
            (r, reports)
        })
    };
    let pid: u32 = wait_for(&child_pid).await.parse().unwrap();
    assert_eq!(wait_for(&nice).await, "7", "the nice level applies");
    assert!(alive(pid));
    tokio::time::sleep(Duration::from_millis(1200)).await; // some progress first
    cancel.cancel();
    let (result, reports) = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("cancel ends the run promptly")
        .unwrap();
    assert!(matches!(result, Err(RunError::Cancelled)), "{result:?}");
    assert!(reports >= 1, "progress was reported while it ran");
    for _ in 0..100 {
        if !alive(pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !alive(pid),
        "the wrapper's child was killed with its process group"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_fails_the_run_with_a_clear_reason() {
    let runner = Runner::new(RunnerConfig::default());
    let started = std::time::Instant::now();
    let err = runner
        .run(
            endless(),
            &RunOptions {
                duration: None,
                timeout: Some(Duration::from_millis(800)),
            },
            std::future::pending(),
            |_| {},
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, RunError::Timeout(d) if d == Duration::from_millis(800)),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "timed out after 800ms");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_ffmpeg_reports_the_end_of_its_stderr() {
    let runner = Runner::new(RunnerConfig::default());
    let args = [
        "-hide_banner",
        "-nostdin",
        "-i",
        "/nonexistent/input.mp4",
        "-f",
        "null",
        "-",
    ]
    .iter()
    .map(Into::into)
    .collect();
    let err = runner
        .run(args, &RunOptions::default(), std::future::pending(), |_| {})
        .await
        .unwrap_err();
    match &err {
        RunError::Failed { stderr, .. } => {
            assert!(stderr.contains("No such file or directory"), "{stderr}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_concurrency_limit_queues_runs() {
    let runner = Runner::new(RunnerConfig {
        max_concurrent: 1,
        ..RunnerConfig::default()
    });
    let short = || -> Vec<std::ffi::OsString> {
        [
            "-hide_banner",
            "-nostdin",
            "-v",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x120:rate=25:duration=0.6",
            "-f",
            "null",
            "-",
        ]
        .iter()
        .map(Into::into)
        .collect()
    };
    let opts = RunOptions::default();
    let started = std::time::Instant::now();
    let (a, b) = tokio::join!(
        runner.run(short(), &opts, std::future::pending(), |_| {}),
        runner.run(short(), &opts, std::future::pending(), |_| {}),
    );
    a.unwrap();
    b.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(1150),
        "two 0.6 s real-time runs, one at a time: {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_is_remuxed_to_faststart_mp4_without_reencoding() {
    let dir = tempfile::tempdir().unwrap();
    let src = make_input(dir.path(), "rec.mp4", "640x360", 4);
    // A recording as media-server writes it: TS segments and an HLS playlist.
    let rec = dir.path().join("rec");
    std::fs::create_dir(&rec).unwrap();
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(&src)
        .args([
            "-c",
            "copy",
            "-f",
            "hls",
            "-hls_time",
            "1",
            "-hls_playlist_type",
            "vod",
        ])
        .arg(rec.join("index.m3u8"))
        .status()
        .unwrap();
    assert!(status.success());
    let t = transcoder(&dir.path().join("data"), &[360]);
    let video = VideoId::new("rec1").unwrap();
    let mut last = None;
    let mp4 = t
        .remux(
            &video,
            &rec.join("index.m3u8"),
            Some(Duration::from_secs(60)),
            &Cancel::new(),
            |p| {
                last = Some(p);
            },
        )
        .await
        .unwrap();
    assert_eq!(mp4, t.storage().vod_dir(&video).join("video.mp4"));
    assert!(last.is_some_and(|p| p.done), "{last:?}");
    assert_eq!(
        ffprobe(
            &["-show_entries", "stream=codec_name", "-of", "csv=p=0"],
            &mp4
        ),
        "h264\naac"
    );
    let secs: f64 = ffprobe(
        &["-show_entries", "format=duration", "-of", "csv=p=0"],
        &mp4,
    )
    .parse()
    .unwrap();
    assert!((secs - 4.0).abs() < 0.2, "{secs}");
    let warnings = decode_warnings(&mp4);
    assert!(warnings.is_empty(), "{warnings}");
    // faststart: the index (moov) comes before the media (mdat).
    let bytes = std::fs::read(&mp4).unwrap();
    let find = |tag: &[u8]| bytes.windows(4).position(|w| w == tag).unwrap();
    assert!(find(b"moov") < find(b"mdat"));
    // Same frames as the source: copied, not re-encoded.
    let packets = |p: &Path| {
        ffprobe(
            &[
                "-select_streams",
                "v:0",
                "-count_packets",
                "-show_entries",
                "stream=nb_read_packets",
                "-of",
                "csv=p=0",
            ],
            p,
        )
    };
    assert_eq!(packets(&mp4), packets(&src));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fmp4_segments_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let input = make_input(dir.path(), "in.mp4", "640x360", 3);
    let storage = Storage::open(dir.path().join("data")).unwrap();
    let t = Transcoder::new(
        storage,
        Runner::new(RunnerConfig::default()),
        TranscoderConfig {
            ladder: LadderConfig {
                rungs: vec![360],
                segment_seconds: 1,
                segment_type: videopick_transcode::plan::SegmentType::Fmp4,
                ..LadderConfig::default()
            },
            thumbnails: false,
            ..TranscoderConfig::default()
        },
    );
    let out = t
        .ladder(
            &VideoId::new("f").unwrap(),
            &input,
            None,
            &Cancel::new(),
            |_| {},
        )
        .await
        .unwrap();
    let variant = out.dir.join("360p").join("index.m3u8");
    let playlist = std::fs::read_to_string(&variant).unwrap();
    assert!(
        playlist.contains("#EXT-X-MAP:URI=\"init.mp4\""),
        "{playlist}"
    );
    assert!(playlist.contains(".m4s"), "{playlist}");
    assert!(out.dir.join("360p").join("init.mp4").exists());
    assert!(!out.dir.join("poster.jpg").exists(), "thumbnails off");
    let master = std::fs::read_to_string(out.dir.join("master.m3u8")).unwrap();
    assert!(master.contains("CODECS=\"avc1.4d"), "{master}");
    let warnings = decode_warnings(&variant);
    assert!(warnings.is_empty(), "{warnings}");
}
