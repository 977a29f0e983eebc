//! 500 concurrent viewers of one stream through `media-server`, half RTMP (`RtmpClient`),
//! half HTTP-FLV: every viewer receives every frame in order, each within 100 ms, while two
//! viewers (one of each protocol) stop reading — and the server's memory stays bounded.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{http_flv_frames, publisher, send_frames_sized, start_server};
use tokio::io::AsyncWriteExt;
use videopick_flv::TagKind;
use videopick_live::rtmp_client::RtmpClient;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_mixed_viewers_and_two_stalled_ones() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_server(&dir.path().join("data"), &["--republish-grace-secs", "1"]);
    let mut p = publisher(&server.rtmp, "crowd").await;
    let rss_before = rss_kib(server.child.id());

    let url = format!("rtmp://{}/live/crowd", server.rtmp);
    let mut rtmp_viewers = Vec::new();
    let mut http_viewers = Vec::new();
    for i in 0..500 {
        if i % 2 == 0 {
            let player = RtmpClient::connect(&url, Duration::from_secs(20))
                .await
                .unwrap()
                .play()
                .await
                .unwrap();
            rtmp_viewers.push(tokio::spawn(async move {
                let mut player = player;
                let mut got = Vec::new();
                while let Some(t) = player.next_tag().await.unwrap() {
                    if t.kind == TagKind::Video && t.data[1] == 1 {
                        got.push((t.timestamp, Instant::now()));
                    }
                }
                got
            }));
        } else {
            let addr = server.http.clone();
            http_viewers.push(tokio::spawn(async move {
                http_flv_frames(addr, "crowd")
                    .await
                    .into_iter()
                    .map(|(t, at)| (t.timestamp, at))
                    .collect::<Vec<_>>()
            }));
        }
    }
    // Two viewers that stop reading right away.
    let stalled_rtmp = RtmpClient::connect(&url, Duration::from_secs(5))
        .await
        .unwrap()
        .play()
        .await
        .unwrap();
    let mut stalled_http = tokio::net::TcpStream::connect(&server.http).await.unwrap();
    stalled_http
        .write_all(b"GET /live/crowd.flv HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    // Let every viewer's subscription settle before the frames start.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let sent: Arc<Mutex<HashMap<u32, Instant>>> = Arc::default();
    let s2 = sent.clone();
    // 5 s at 25 fps with 5 KB frames (~1 Mbit/s): 125 frames.
    send_frames_sized(&mut p, 125, 0x55, 5000, move |ts, at| {
        s2.lock().unwrap().insert(ts, at);
    })
    .await;
    let rss_peak = rss_kib(server.child.id());
    p.finish().await.unwrap();

    let expected: Vec<u32> = (0..125).map(|i| i * 40).collect();
    let sent = sent.lock().unwrap().clone();
    let mut worst = Duration::ZERO;
    for (proto, tasks) in [("rtmp", rtmp_viewers), ("http-flv", http_viewers)] {
        let mut lags = Vec::new();
        for t in tasks {
            let got = tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .unwrap()
                .unwrap();
            let ts: Vec<u32> = got.iter().map(|g| g.0).collect();
            assert_eq!(ts, expected, "a {proto} viewer missed frames");
            lags.extend(
                got.iter()
                    .map(|(ts, at)| at.saturating_duration_since(sent[ts])),
            );
        }
        lags.sort();
        let pct = |p: usize| lags[(lags.len() - 1) * p / 100];
        eprintln!(
            "{proto}: delivery delay p50 {:?} p99 {:?} max {:?}",
            pct(50),
            pct(99),
            pct(100)
        );
        // Every frame reached every viewer within 100 ms, stalled peers notwithstanding.
        assert!(
            pct(100) < Duration::from_millis(100),
            "{proto} worst delay {:?} (p99 {:?})",
            pct(100),
            pct(99)
        );
        worst = worst.max(pct(100));
    }
    assert!(
        worst < Duration::from_millis(100),
        "worst delivery delay {worst:?}"
    );
    // Memory stays bounded: the stalled viewers are held to their queues, not buffered
    // without end (500 viewers, 125 frames of 5 KB).
    let growth_mib = rss_peak.saturating_sub(rss_before) / 1024;
    assert!(growth_mib < 150, "server RSS grew by {growth_mib} MiB");
    drop((stalled_rtmp, stalled_http));
}
