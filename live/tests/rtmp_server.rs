//! The tokio server with a hub, against real ffmpeg: publish over RTMP, play over RTMP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::process::Command;
use videopick_live::auth::AllowAll;
use videopick_live::hub::{Hub, HubConfig};
use videopick_live::rtmp_server::{NetConfig, RtmpServer};

fn workdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("videopick-live-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn start(hub: Hub) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    start_with(hub, Arc::new(AllowAll)).await
}

fn publish_cmd(url: &str, seconds: u32) -> Command {
    let mut c = Command::new("ffmpeg");
    c.args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-t",
            &seconds.to_string(),
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .args(["-g", "25", "-c:a", "aac", "-f", "flv", url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// ffmpeg playing `url` into the FLV file `out`.
fn play_cmd(url: &str, out: &Path) -> tokio::process::Child {
    Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-i",
            url,
            "-c",
            "copy",
            "-f",
            "flv",
        ])
        .arg(out)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait (up to 5 s) until `key` is live in `hub`.
async fn wait_live(hub: &Hub, key: &str) {
    for _ in 0..100 {
        if hub.streams().iter().any(|s| s.key() == key) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{key} never went live");
}

struct Probe {
    video_codec: String,
    audio_codec: String,
    width: u32,
    height: u32,
    video_dts: Vec<i64>,
    first_video_key: bool,
}

async fn probe(path: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .await
        .unwrap();
    let streams = String::from_utf8(out.stdout).unwrap();
    let mut p = Probe {
        video_codec: String::new(),
        audio_codec: String::new(),
        width: 0,
        height: 0,
        video_dts: vec![],
        first_video_key: false,
    };
    for l in streams.lines() {
        let f: Vec<&str> = l.split(',').collect();
        match f[1] {
            "video" => {
                p.video_codec = f[0].into();
                p.width = f[2].parse().unwrap();
                p.height = f[3].parse().unwrap();
            }
            "audio" => p.audio_codec = f[0].into(),
            _ => {}
        }
    }
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
        .await
        .unwrap();
    for (i, l) in String::from_utf8(out.stdout).unwrap().lines().enumerate() {
        let f: Vec<&str> = l.split(',').collect();
        if i == 0 {
            p.first_video_key = f[1].starts_with('K');
        }
        p.video_dts.push(f[0].parse().unwrap());
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publishes_and_ffmpeg_plays_over_rtmp() {
    let dir = workdir("rtmp");
    let hub = Hub::new(HubConfig::default());
    let (addr, stop) = start(hub.clone()).await;
    let url = format!("rtmp://{addr}/live/cam");

    let publisher = publish_cmd(&url, 5).spawn().unwrap();
    // Wait until the stream is live, then attach a player mid-stream.
    wait_live(&hub, "live/cam").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let out = dir.join("played.flv");
    let player = play_cmd(&url, &out);

    let pub_out = publisher.wait_with_output().await.unwrap();
    assert!(
        pub_out.status.success(),
        "publisher: {}",
        String::from_utf8_lossy(&pub_out.stderr)
    );
    let played = tokio::time::timeout(Duration::from_secs(30), player.wait_with_output())
        .await
        .expect("player did not end after the publisher left")
        .unwrap();
    assert!(
        played.status.success(),
        "player: {}",
        String::from_utf8_lossy(&played.stderr)
    );

    let p = probe(&out).await;
    assert_eq!(
        (p.video_codec.as_str(), p.audio_codec.as_str()),
        ("h264", "aac")
    );
    assert_eq!((p.width, p.height), (320, 240));
    assert!(
        p.first_video_key,
        "the first video frame a player gets must be a key frame"
    );
    assert!(
        p.video_dts.windows(2).all(|w| w[0] < w[1]),
        "video timestamps must increase"
    );
    // Joined ~0.7 s in with a 1 s GOP: the GOP cache gives everything since the last key
    // frame, so at most one GOP of the 125 frames is missing.
    assert!(
        p.video_dts.len() >= 125 - 25,
        "only {} frames played",
        p.video_dts.len()
    );
    let _ = stop.send(());
    std::fs::remove_dir_all(dir).unwrap();
}

async fn start_with(
    hub: Hub,
    auth: Arc<dyn videopick_live::auth::Authorize>,
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let server = RtmpServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        hub,
        auth,
        NetConfig::default(),
    )
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server.serve(
        async {
            let _ = rx.await;
        },
        Duration::from_secs(2),
    ));
    (addr, tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_keys_gate_publishing() {
    use videopick_live::auth::SignedKeys;
    let hub = Hub::default();
    let (addr, stop) = start_with(
        hub.clone(),
        Arc::new(SignedKeys::new(b"topsecret".to_vec(), false)),
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();

    let valid = SignedKeys::sign(b"topsecret", "live", "cam", now + 600);
    let expired = SignedKeys::sign(b"topsecret", "live", "cam", now - 1);
    let forged = SignedKeys::sign(b"guess", "live", "cam", now + 600);
    for (what, query, ok) in [
        ("valid", valid.as_str(), true),
        ("expired", &expired, false),
        ("forged", &forged, false),
    ] {
        let url = format!("rtmp://{addr}/live/cam?sign={query}");
        let out = publish_cmd(&url, 1)
            .spawn()
            .unwrap()
            .wait_with_output()
            .await
            .unwrap();
        assert_eq!(
            out.status.success(),
            ok,
            "{what} key: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = publish_cmd(&format!("rtmp://{addr}/live/cam"), 1)
        .spawn()
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    assert!(!out.status.success(), "unsigned publish must fail");
    let _ = stop.send(());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_publisher_is_rejected_and_killing_the_first_ends_players() {
    let mut cfg = HubConfig::default();
    cfg.republish_grace = Duration::from_secs(1);
    let hub = Hub::new(cfg);
    let (addr, stop) = start(hub.clone()).await;
    let url = format!("rtmp://{addr}/live/dup");
    let mut first = publish_cmd(&url, 30).spawn().unwrap();
    wait_live(&hub, "live/dup").await;
    let second = publish_cmd(&url, 2)
        .spawn()
        .unwrap()
        .wait_with_output()
        .await
        .unwrap();
    assert!(
        !second.status.success(),
        "a second publisher on a live key must be refused"
    );
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("already being published"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );

    let dir = workdir("kill");
    let out = dir.join("p.flv");
    let player = play_cmd(&url, &out);
    tokio::time::sleep(Duration::from_secs(2)).await;
    first.start_kill().unwrap(); // SIGKILL: no clean unpublish from the publisher
    let _ = first.wait().await;
    let played = tokio::time::timeout(Duration::from_secs(15), player.wait_with_output())
        .await
        .expect("player must end after its publisher dies")
        .unwrap();
    assert!(
        played.status.success(),
        "player: {}",
        String::from_utf8_lossy(&played.stderr)
    );
    let p = probe(&out).await;
    assert!(p.video_dts.len() > 10 && p.first_video_key);
    let _ = stop.send(());
    std::fs::remove_dir_all(dir).unwrap();
}
