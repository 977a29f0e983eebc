//! `media-server` under stress: republish within the grace period keeps an HTTP-FLV viewer,
//! kicking via the API, lifecycle webhook, and hostile clients (garbage handshake, huge
//! chunk size, oversized message, 10,000 idle connections) that must not disturb a running
//! stream.

// One long end-to-end story; byte counting of a few hundred marks needs no crate.
#![allow(clippy::too_many_lines, clippy::naive_bytecount)]

mod common;

use std::time::{Duration, Instant};

use common::{
    event_sink, http, http_flv_marks, player, publisher, rtmp_marks, send_frames, start_server,
};
use tokio::io::AsyncReadExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republish_kick_events_and_hostile_clients() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, events) = event_sink();
    let server = start_server(
        &dir.path().join("data"),
        &[
            "--republish-grace-secs",
            "4",
            "--api-token",
            "t0ken",
            "--handshake-timeout-secs",
            "2",
            "--event-hook",
            &hook,
        ],
    );

    // --- Republish within the grace period keeps an HTTP-FLV viewer receiving; an RTMP
    // player (written by a fan-out group) is told NetStream.Play.UnpublishNotify when the
    // publisher leaves, which ends play for this client.
    let mut a = publisher(&server.rtmp, "cam").await;
    let viewer = tokio::spawn(http_flv_marks(server.http.clone(), "cam"));
    let rtmp_viewer = tokio::spawn(rtmp_marks(player(&server.rtmp, "cam").await));
    send_frames(&mut a, 50, 0xA0).await;
    a.finish().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        rtmp_viewer.is_finished(),
        "the RTMP player was told of the unpublish"
    );
    let mut b = publisher(&server.rtmp, "cam").await;
    send_frames(&mut b, 50, 0xB0).await;
    b.finish().await.unwrap();
    let marks = tokio::time::timeout(Duration::from_secs(20), viewer)
        .await
        .unwrap()
        .unwrap();
    assert!(
        marks.iter().filter(|&&m| m == 0xA0).count() >= 40,
        "first publisher's frames: {marks:?}"
    );
    assert_eq!(
        marks.iter().filter(|&&m| m == 0xB0).count(),
        50,
        "the republished frames must reach the same viewer"
    );
    let played = tokio::time::timeout(Duration::from_secs(20), rtmp_viewer)
        .await
        .unwrap()
        .unwrap();
    assert!(
        played.iter().filter(|&&m| m == 0xA0).count() >= 40,
        "RTMP player, first publisher's frames: {played:?}"
    );

    // --- Kick through the API: token required.
    let mut c = publisher(&server.rtmp, "kickme").await;
    send_frames(&mut c, 5, 0xC0).await;
    assert_eq!(
        http(&server.http, "DELETE", "/api/streams/live/kickme", "").0,
        401
    );
    assert_eq!(
        http(
            &server.http,
            "DELETE",
            "/api/streams/live/kickme",
            "Authorization: Bearer t0ken\r\n"
        )
        .0,
        204
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while http(&server.http, "GET", "/api/streams", "")
        .1
        .contains("live/kickme")
    {
        assert!(Instant::now() < deadline, "kicked stream still listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        http(
            &server.http,
            "DELETE",
            "/api/streams/live/kickme",
            "Authorization: Bearer t0ken\r\n"
        )
        .0,
        404
    );
    drop(c);

    // --- Hostile clients while a stream runs with an RTMP viewer.
    let mut d = publisher(&server.rtmp, "steady").await;
    let counter = tokio::spawn(rtmp_marks(player(&server.rtmp, "steady").await));
    let feeder = tokio::spawn(async move {
        send_frames(&mut d, 200, 0xD0).await;
        d.finish().await.unwrap();
    });

    let rtmp = server.rtmp.clone();
    let closes_cleanly = |payload: Vec<u8>| {
        let rtmp = rtmp.clone();
        async move {
            let mut s = tokio::net::TcpStream::connect(&rtmp).await.unwrap();
            tokio::io::AsyncWriteExt::write_all(&mut s, &payload)
                .await
                .unwrap();
            let mut sink = Vec::new();
            // The server answers what it can, then closes: read until EOF (not a reset).
            tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut sink))
                .await
                .expect("server did not close the connection")
                .expect("connection reset instead of closed");
        }
    };
    // Garbage instead of a handshake.
    closes_cleanly(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()).await;
    // A valid handshake, then Set Chunk Size 2^31, then a message of 12 MB.
    for msg in [
        vec![0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0x80, 0, 0, 0],
        vec![0x03, 0, 0, 0, 0xc0, 0, 0, 20, 0, 0, 0, 0],
    ] {
        let mut hs = videopick_rtmp::handshake::ClientHandshake::new(0, 9, false);
        let mut bytes = hs.poll_transmit().unwrap().to_vec();
        // Simple handshake: C2 may be anything of the right size for our server.
        bytes.extend_from_slice(&[0u8; videopick_rtmp::handshake::HANDSHAKE_SIZE]);
        bytes.extend_from_slice(&msg);
        closes_cleanly(bytes).await;
    }

    // 10,000 idle connections that never handshake: each is closed after the handshake
    // timeout (2 s), cleanly.
    let mut idle = tokio::task::JoinSet::new();
    for i in 0..10_000 {
        if i % 500 == 0 {
            // Ramp up: the listen backlog is finite, as it is for real clients.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let rtmp = rtmp.clone();
        idle.spawn(async move {
            let mut s = match tokio::net::TcpStream::connect(&rtmp).await {
                Ok(s) => s,
                Err(e) => return Err(format!("connect: {e}")),
            };
            let mut b = [0u8; 16];
            match tokio::time::timeout(Duration::from_secs(30), s.read(&mut b)).await {
                Ok(Ok(0)) => Ok(()),
                Ok(Ok(n)) => Err(format!("{n} unexpected bytes")),
                Ok(Err(e)) => Err(format!("read: {e}")),
                Err(_) => Err("never closed".into()),
            }
        });
    }
    let mut failures = std::collections::BTreeMap::<String, usize>::new();
    while let Some(r) = idle.join_next().await {
        if let Err(e) = r.unwrap() {
            *failures.entry(e).or_default() += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "idle connections not closed cleanly: {failures:?}"
    );

    feeder.await.unwrap();
    let frames = tokio::time::timeout(Duration::from_secs(20), counter)
        .await
        .unwrap()
        .unwrap()
        .len();
    assert_eq!(
        frames, 200,
        "the running stream's viewer must get every frame"
    );

    // The webhook saw the lifecycle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ev = events.bodies().join("\n");
    for needle in [
        "\"event\":\"publish\",\"key\":\"live/cam\",\"protocol\":\"rtmp\"",
        "\"event\":\"unpublish\",\"key\":\"live/cam\"",
        "\"event\":\"play\",\"key\":\"live/cam\",\"protocol\":\"http-flv\"",
        "\"event\":\"stop\",\"key\":\"live/cam\",\"protocol\":\"http-flv\"",
        "\"event\":\"play\",\"key\":\"live/steady\",\"protocol\":\"rtmp\"",
    ] {
        assert!(ev.contains(needle), "missing {needle} in\n{ev}");
    }
}
