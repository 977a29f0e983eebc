//! HTTP-FLV on any request of a keep-alive connection: a page that first fetches
//! `/api/streams` (or the `.m3u8`) and then opens the `.flv` on the same connection gets
//! the live stream, as mpegts.js in a browser does. The client here is curl, which reuses
//! one connection for the URLs it is given.

mod common;

use std::process::Command;
use std::time::Duration;

use bytes::BytesMut;
use common::{publisher, send_frames, start_server};
use videopick_flv::{FlvDemuxer, FlvItem, TagKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_gets_the_flv_stream_after_another_request_on_the_same_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("data"), &[]);
    let mut p = publisher(&server.rtmp, "ka").await;
    let sending = tokio::spawn(async move {
        send_frames(&mut p, 125, 9).await; // 5 s
        p
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let out = dir.path().join("out.flv");
    let base = format!("http://{}", server.http);
    let curl = tokio::task::spawn_blocking({
        let out = out.clone();
        move || {
            Command::new("curl")
                .args(["-sv", "--max-time", "2"])
                .arg(format!("{base}/api/streams"))
                .args(["-o", "/dev/null"])
                .arg(format!("{base}/live/ka.m3u8"))
                .args(["-o", "/dev/null"])
                .arg(format!("{base}/live/ka.flv"))
                .arg("-o")
                .arg(&out)
                .output()
                .expect("curl is installed")
        }
    })
    .await
    .unwrap();
    let log = String::from_utf8_lossy(&curl.stderr);
    // One connection for all three requests.
    assert_eq!(
        log.matches("Re-using existing connection").count(),
        2,
        "{log}"
    );
    assert!(
        log.contains("< Content-Type: video/x-flv") || log.contains("< content-type: video/x-flv"),
        "{log}"
    );

    let data = std::fs::read(&out).unwrap();
    assert!(
        data.starts_with(b"FLV\x01"),
        "{:?}",
        &data[..data.len().min(16)]
    );
    let mut buf = BytesMut::from(&data[..]);
    let mut demux = FlvDemuxer::new();
    let (mut seq_headers, mut frames) = (0, 0);
    while let Ok(Some(item)) = demux.decode(&mut buf) {
        if let FlvItem::Tag(t) = item {
            match (t.kind, t.data.get(1)) {
                (TagKind::Video | TagKind::Audio, Some(0)) => seq_headers += 1,
                (TagKind::Video, Some(1)) => {
                    assert!(t.data[5..].iter().all(|&b| b == 9));
                    frames += 1;
                }
                _ => {}
            }
        }
    }
    assert_eq!(seq_headers, 2);
    // About 1.5 s of a 25 fps stream reached curl within its 2 s.
    assert!(frames >= 20, "{frames} frames");
    let _ = sending.await;
}
