//! The HTTP listener over TLS (`--tls-cert`/`--tls-key`): curl negotiates HTTP/2 by ALPN
//! (and HTTP/1.1 when asked), a low-latency HLS blocking reload and its part arrive over
//! HTTP/2, ffprobe plays the playlist over https, HTTP-FLV streams over TLS, and a
//! connection that never finishes its handshake is dropped.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::start_server;

/// curl over https (trusting the test's own CA file); (status line info, body).
fn curl(ca: &std::path::Path, args: &[&str], url: &str) -> (String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "20", "--cacert"])
        .arg(ca)
        .args(["-w", "\n%{http_version} %{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl");
    let mut body = out.stdout;
    let at = body.iter().rposition(|&b| b == b'\n').unwrap_or(0);
    let info = String::from_utf8_lossy(&body[at + 1..]).to_string();
    body.truncate(at);
    (info, body)
}

#[test]
#[allow(clippy::too_many_lines)] // one server, checked from every client
fn https_with_http2_serves_low_latency_hls_and_http_flv() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert_pem, key_pem) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
    std::fs::write(&key_pem, cert.signing_key.serialize_pem()).unwrap();
    let server = start_server(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            cert_pem.to_str().unwrap(),
            "--tls-key",
            key_pem.to_str().unwrap(),
            "--hls-segment-ms",
            "1000",
            "--http-header-timeout-secs",
            "2",
        ],
    );
    let port = server.http.rsplit(':').next().unwrap().to_string();
    let base = format!("https://localhost:{port}");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let mut publisher = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args([
            "-t",
            "12",
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .args(["-g", "25", "-c:a", "aac", "-f", "flv"])
        .arg(format!("rtmp://{}/live/sec", server.rtmp))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();

    // HTTP/2 by default, HTTP/1.1 when the client offers only that.
    let start = Instant::now();
    let playlist = loop {
        let (info, body) = curl(
            &cert_pem,
            &["--resolve", &resolve],
            &format!("{base}/live/sec.m3u8"),
        );
        if info == "2 200" {
            break String::from_utf8(body).unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no playlist over h2: {info}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(playlist.contains("#EXT-X-PART-INF"), "{playlist}");
    let (info, _) = curl(
        &cert_pem,
        &["--resolve", &resolve, "--http1.1"],
        &format!("{base}/live/sec.m3u8"),
    );
    assert_eq!(info, "1.1 200");

    // A blocking reload for the next part, then that part, on one HTTP/2 connection.
    let (msn, part, _) = common::last_part(&playlist);
    let next = format!("{base}/live/sec.m3u8?_HLS_msn={msn}&_HLS_part={}", part + 1);
    let (info, body) = curl(&cert_pem, &["--resolve", &resolve], &next);
    assert_eq!(info, "2 200");
    let reloaded = String::from_utf8(body).unwrap();
    let hint = reloaded
        .lines()
        .find_map(|l| l.strip_prefix("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\""))
        .unwrap()
        .trim_end_matches('"')
        .to_string();
    let (info, part_bytes) = curl(
        &cert_pem,
        &["--resolve", &resolve],
        &format!("{base}/live/{hint}"),
    );
    assert_eq!(info, "2 200");
    assert_eq!(&part_bytes[4..8], b"moof");

    // ffprobe plays the low-latency playlist over https.
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
        ])
        .arg(format!("https://127.0.0.1:{port}/live/sec.m3u8"))
        .output()
        .unwrap();
    let codecs = String::from_utf8_lossy(&out.stdout);
    assert!(
        codecs.contains("h264") && codecs.contains("aac"),
        "{codecs} {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // HTTP-FLV over TLS (through hyper, on HTTP/2 and HTTP/1.1).
    for proto in ["--http2", "--http1.1"] {
        let (info, flv) = curl(
            &cert_pem,
            &["--resolve", &resolve, proto, "--max-time", "2"],
            &format!("{base}/live/sec.flv"),
        );
        assert!(info.ends_with(" 200") || info.is_empty(), "{proto}: {info}");
        assert!(
            flv.len() > 10_000 && flv.starts_with(b"FLV"),
            "{proto}: {} bytes",
            flv.len()
        );
    }

    // A connection that never completes its handshake is dropped.
    let mut idle = TcpStream::connect(&server.http).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let start = Instant::now();
    let n = idle.read(&mut [0u8; 16]).unwrap_or(0);
    assert_eq!(n, 0);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );

    assert!(publisher.wait().unwrap().success());
}
