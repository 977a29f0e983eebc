//! Many viewers of one stream through the tokio server, using the tokio RtmpClient:
//! everyone gets every frame, and a viewer that stops reading delays nobody.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use videopick_flv::{Tag, TagKind};
use videopick_live::auth::AllowAll;
use videopick_live::hub::{Hub, HubConfig};
use videopick_live::rtmp_client::{RtmpClient, RtmpPublisher};
use videopick_live::rtmp_server::{NetConfig, RtmpServer};

const FPS: u32 = 25;

fn headers() -> Vec<Tag> {
    vec![
        Tag::new(
            TagKind::Script,
            0,
            videopick_flv::OnMetaData::default().to_script_bytes(),
        ),
        Tag::new(
            TagKind::Video,
            0,
            &b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f\xff\xe1\x00\x00\x01\x00\x00"[..],
        ),
        Tag::new(TagKind::Audio, 0, &b"\xaf\x00\x12\x10"[..]),
    ]
}

/// Frame `i` of a 25 fps stream, ~2.5 Mbit/s (key frame every 2 s).
fn frame(i: u32) -> Tag {
    let key = i.is_multiple_of(2 * FPS);
    let size = if key { 60_000 } else { 11_000 };
    let mut v = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
    v.extend(std::iter::repeat_n((i % 251) as u8, size));
    Tag::new(TagKind::Video, i * 1000 / FPS, Bytes::from(v))
}

/// Publish `url` and send the sequence headers.
async fn publisher(url: &str) -> RtmpPublisher {
    let mut p = RtmpClient::connect(url, Duration::from_secs(5))
        .await
        .unwrap()
        .publish()
        .await
        .unwrap();
    for t in headers() {
        p.send(&t).await.unwrap();
    }
    p
}

async fn server(hub: Hub) -> SocketAddr {
    let s = RtmpServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        hub,
        Arc::new(AllowAll),
        NetConfig::default(),
    )
    .await
    .unwrap();
    let addr = s.local_addr().unwrap();
    tokio::spawn(s.serve(std::future::pending(), Duration::from_secs(1)));
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_viewer_gets_every_frame_and_a_stalled_one_delays_nobody() {
    let hub = Hub::new(HubConfig::default());
    let addr = server(hub.clone()).await;
    let url = format!("rtmp://{addr}/live/many");
    let mut publisher = publisher(&url).await;

    let frames = 3 * FPS;
    let sent_at: Arc<Mutex<HashMap<u32, Instant>>> = Arc::default();
    let viewers = 300;
    let mut tasks = Vec::new();
    for _ in 0..viewers {
        let player = RtmpClient::connect(&url, Duration::from_secs(10))
            .await
            .unwrap()
            .play()
            .await
            .unwrap();
        let sent_at = sent_at.clone();
        tasks.push(tokio::spawn(async move {
            let mut player = player;
            let (mut got, mut worst) = (Vec::new(), Duration::ZERO);
            while let Some(tag) = player.next_tag().await.unwrap() {
                if tag.kind == TagKind::Video && tag.data[1] == 1 {
                    let t0 = sent_at.lock().unwrap().get(&tag.timestamp).copied();
                    if let Some(t0) = t0 {
                        worst = worst.max(t0.elapsed());
                    }
                    got.push(tag.timestamp);
                }
            }
            (got, worst)
        }));
    }
    // One viewer that never reads after starting.
    let stalled = RtmpClient::connect(&url, Duration::from_secs(5))
        .await
        .unwrap()
        .play()
        .await
        .unwrap();

    let start = Instant::now();
    for i in 0..frames {
        tokio::time::sleep_until((start + Duration::from_millis(u64::from(i * 1000 / FPS))).into())
            .await;
        let f = frame(i);
        sent_at.lock().unwrap().insert(f.timestamp, Instant::now());
        publisher.send(&f).await.unwrap();
    }
    publisher.finish().await.unwrap();

    let expected: Vec<u32> = (0..frames).map(|i| i * 1000 / FPS).collect();
    let mut worst_all = Duration::ZERO;
    for t in tasks {
        let (got, worst) = tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, expected, "a viewer missed frames");
        worst_all = worst_all.max(worst);
    }
    assert!(
        worst_all < Duration::from_millis(100),
        "viewer lag reached {worst_all:?}"
    );
    drop(stalled);
}

/// A player keeps playing across many acknowledgement windows: the bytes its fan-out
/// group wrote while the connection's task waited are counted before the player's
/// acknowledgement of them is read (a regression: players were cut off at their first
/// acknowledgement, ~2.5 MB in).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_keeps_playing_across_acknowledgement_windows() {
    let hub = Hub::new(HubConfig::default());
    let addr = server(hub.clone()).await;
    let url = format!("rtmp://{addr}/live/acks");
    let mut publisher = publisher(&url).await;
    let mut player = RtmpClient::connect(&url, Duration::from_secs(5))
        .await
        .unwrap()
        .play()
        .await
        .unwrap();
    // ~12 MB: several of the client's 2.5 MB acknowledgement windows.
    let frames = 900u32;
    let reader = tokio::spawn(async move {
        let mut last = None;
        while let Ok(Some(t)) = tokio::time::timeout(Duration::from_secs(10), player.next_tag())
            .await
            .unwrap()
        {
            if t.kind == TagKind::Video && t.data[1] == 1 {
                last = Some(t.timestamp * FPS / 1000);
                if last == Some(frames - 1) {
                    break;
                }
            }
        }
        last
    });
    for i in 0..frames {
        publisher.send(&frame(i)).await.unwrap();
        if i % 10 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(
        reader.await.unwrap(),
        Some(frames - 1),
        "the player was cut off"
    );
}
