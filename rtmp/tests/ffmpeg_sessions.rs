//! ffmpeg as a real RTMP publisher and player against `ServerSession`, driven by a tiny
//! blocking TCP loop in the test. The publish session's bytes are captured and replayed
//! into a fresh session; every result is compared with `ffprobe -show_packets` of the
//! source file. Set `VIDEOPICK_RTMP_CAPTURE_DIR` to keep the captured bytes
//! (`scripts/rtmp-capture.sh` does).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use videopick_flv::{AudioData, FlvDemuxer, FlvItem, Tag, TagKind, VideoData, VideoPacket};
use videopick_rtmp::{ServerConfig, ServerEvent, ServerSession};

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (is ffmpeg installed?): {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn workdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("videopick-rtmp-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn make_source(path: &Path) {
    run(Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-t", "2", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-g", "25", "-bf", "2",
        ])
        .args(["-c:a", "aac", "-ac", "1", "-f", "flv"])
        .arg(path));
}

/// (is video, dts, pts, size, key) per packet, as ffprobe sees them.
type Packet = (bool, i64, i64, usize, bool);

fn ffprobe_packets(path: &Path) -> Vec<Packet> {
    run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_packets",
            "-show_entries",
            "packet=codec_type,pts,dts,size,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(path))
    .lines()
    .map(|l| {
        let f: Vec<&str> = l.split(',').collect();
        (
            f[0] == "video",
            f[2].parse().unwrap(),
            f[1].parse().unwrap(),
            f[3].parse().unwrap(),
            f[4].starts_with('K'),
        )
    })
    .collect()
}

/// Packets as our parsers see a tag list (sequence headers, end-of-sequence and script
/// tags carry no packet).
fn packets_of(tags: &[Tag]) -> Vec<Packet> {
    let mut out = Vec::new();
    for t in tags {
        let ts = i64::from(t.timestamp);
        match t.kind {
            TagKind::Video => {
                let v = VideoData::parse(&t.data).unwrap();
                if v.is_coded_frames() {
                    out.push((
                        true,
                        ts,
                        ts + i64::from(v.composition_time),
                        v.body.len(),
                        v.is_keyframe(),
                    ));
                } else {
                    assert!(matches!(
                        v.packet,
                        VideoPacket::SequenceStart | VideoPacket::SequenceEnd
                    ));
                }
            }
            TagKind::Audio => {
                let a = AudioData::parse(&t.data).unwrap();
                if !a.is_sequence_header() {
                    out.push((false, ts, ts, a.body.len(), true));
                }
            }
            TagKind::Script => {}
        }
    }
    out
}

fn read_tags(path: &Path) -> Vec<Tag> {
    let mut buf = BytesMut::from(&std::fs::read(path).unwrap()[..]);
    let mut d = FlvDemuxer::new();
    let mut tags = Vec::new();
    while let Some(item) = d.decode(&mut buf).unwrap() {
        if let FlvItem::Tag(t) = item {
            tags.push(t);
        }
    }
    tags
}

/// What the test server does with one connection.
enum Role<'a> {
    /// Accept a publish and collect its tags.
    Ingest(&'a mut Vec<Tag>),
    /// Accept a play and send these tags, then end the stream.
    Serve(&'a [Tag]),
}

/// Drive one accepted connection to its end. Returns the bytes the client sent.
fn serve(mut sock: TcpStream, mut role: Role<'_>) -> Vec<u8> {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut session = ServerSession::new(ServerConfig::default().handshake(0, 77));
    let mut input = BytesMut::new();
    let mut captured = Vec::new();
    let mut tmp = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut finished_serving = false;
    loop {
        assert!(Instant::now() < deadline, "session did not finish in time");
        match sock.read(&mut tmp) {
            Ok(0) => break,
            Ok(n) => {
                captured.extend_from_slice(&tmp[..n]);
                input.extend_from_slice(&tmp[..n]);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read: {e}"),
        }
        loop {
            session.handle_input(Instant::now(), &mut input).unwrap();
            let mut answered = false;
            while let Some(ev) = session.poll_event() {
                match ev {
                    ServerEvent::Connect(r) => {
                        assert_eq!(r.app, "live");
                        session.accept_connect(r.id).unwrap();
                        answered = true;
                    }
                    ServerEvent::Publish(r) => {
                        assert_eq!(
                            (r.name.as_str(), r.query.as_deref()),
                            ("cam", Some("key=k1"))
                        );
                        session.accept_publish(r.id).unwrap();
                        answered = true;
                    }
                    ServerEvent::Play(r) => {
                        assert_eq!(r.name, "cam");
                        session.accept_play(r.id).unwrap();
                        answered = true;
                        if let Role::Serve(tags) = &role {
                            for t in *tags {
                                session.send_tag(r.stream_id, t).unwrap();
                            }
                            session.notify_unpublish(r.stream_id);
                            finished_serving = true;
                        }
                    }
                    ServerEvent::Media { tag, .. } => {
                        if let Role::Ingest(tags) = &mut role {
                            tags.push(tag);
                        }
                    }
                    _ => {}
                }
            }
            while let Some(out) = session.poll_transmit() {
                sock.write_all(&out).unwrap();
            }
            if !answered {
                break;
            }
        }
        if finished_serving {
            // Everything is written; closing ends the player's input.
            break;
        }
    }
    captured
}

fn spawn(args: &[&str]) -> Child {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ffmpeg")
}

#[test]
fn ffmpeg_publish_yields_exactly_the_source_packets() {
    let dir = workdir("publish");
    let src = dir.join("src.flv");
    make_source(&src);
    let expected = ffprobe_packets(&src);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "rtmp://127.0.0.1:{}/live/cam?key=k1",
        listener.local_addr().unwrap().port()
    );
    let mut ffmpeg = spawn(&["-i", src.to_str().unwrap(), "-c", "copy", "-f", "flv", &url]);
    let (sock, _) = listener.accept().unwrap();
    let mut tags = Vec::new();
    let captured = serve(sock, Role::Ingest(&mut tags));
    let status = ffmpeg.wait().unwrap();
    assert!(status.success(), "ffmpeg publish failed");

    assert!(
        tags.iter().any(|t| t.kind == TagKind::Script),
        "no onMetaData"
    );
    assert_eq!(packets_of(&tags), expected);

    // Replaying the captured bytes into a fresh session gives the same tags.
    let mut replayed = Vec::new();
    let mut s = ServerSession::new(ServerConfig::default().handshake(0, 77));
    let mut buf = BytesMut::from(&captured[..]);
    loop {
        s.handle_input(Instant::now(), &mut buf).unwrap();
        let mut answered = false;
        while let Some(ev) = s.poll_event() {
            match ev {
                ServerEvent::Connect(r) => {
                    s.accept_connect(r.id).unwrap();
                    answered = true;
                }
                ServerEvent::Publish(r) => {
                    s.accept_publish(r.id).unwrap();
                    answered = true;
                }
                ServerEvent::Media { tag, .. } => replayed.push(tag),
                _ => {}
            }
        }
        if !answered {
            break;
        }
    }
    assert_eq!(replayed, tags);
    if let Some(keep) = std::env::var_os("VIDEOPICK_RTMP_CAPTURE_DIR") {
        std::fs::write(Path::new(&keep).join("ffmpeg-publish.bin"), &captured).unwrap();
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn ffmpeg_plays_what_the_server_sends() {
    let dir = workdir("play");
    let src = dir.join("src.flv");
    make_source(&src);
    let tags = read_tags(&src);
    let out = dir.join("out.flv");

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "rtmp://127.0.0.1:{}/live/cam",
        listener.local_addr().unwrap().port()
    );
    let ffmpeg = spawn(&["-i", &url, "-c", "copy", "-f", "flv", out.to_str().unwrap()]);
    let (sock, _) = listener.accept().unwrap();
    let captured = serve(sock, Role::Serve(&tags));
    let result = ffmpeg.wait_with_output().unwrap();
    assert!(
        result.status.success(),
        "ffmpeg play failed: {}",
        String::from_utf8_lossy(&result.stderr)
    );

    assert_eq!(ffprobe_packets(&out), ffprobe_packets(&src));
    if let Some(keep) = std::env::var_os("VIDEOPICK_RTMP_CAPTURE_DIR") {
        std::fs::write(Path::new(&keep).join("ffmpeg-play.bin"), &captured).unwrap();
    }
    std::fs::remove_dir_all(dir).unwrap();
}
