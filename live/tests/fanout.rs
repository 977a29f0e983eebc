//! HTTP-FLV fan-out groups over real sockets: viewers joining at any moment get the
//! headers, the GOP cache and then every live tag exactly once, in order; a viewer that
//! stops reading is dropped without holding the others back; a stopped viewer ends at a
//! tag boundary; groups leave when their viewers do.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};
use videopick_flv::{FlvDemuxer, FlvItem, Tag, TagKind};
use videopick_live::fanout::{EndReason, Fanout, FanoutViewer};
use videopick_live::hub::Publisher;
use videopick_live::{Hub, HubConfig};

/// A connected pair: (the server's socket, the player's).
async fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
    let player = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (sock, _) = listener.accept().await.unwrap();
    (sock, player)
}

/// Frame `i`: a video tag at i*40 ms (a key frame every 10) of 3 KB.
fn video(i: u32) -> Tag {
    let key = i.is_multiple_of(10);
    let mut data = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
    data.resize(3000, (i % 251) as u8);
    Tag::new(TagKind::Video, i * 40, data)
}

fn start(p: &mut Publisher) {
    p.send(Tag::new(
        TagKind::Video,
        0,
        &b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f"[..],
    ));
}

/// Read the player until `until` says stop or the connection ends; the tags in order.
async fn read_tags(
    player: &mut TcpStream,
    until: impl Fn(&[Tag]) -> bool,
    limit: Duration,
) -> Vec<Tag> {
    read_tags_rest(player, until, limit).await.0
}

/// [`read_tags`], and how many bytes of an incomplete tag were left at the end.
async fn read_tags_rest(
    player: &mut TcpStream,
    until: impl Fn(&[Tag]) -> bool,
    limit: Duration,
) -> (Vec<Tag>, usize) {
    let mut buf = BytesMut::new();
    let mut demux = FlvDemuxer::new();
    let mut tags = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        loop {
            match demux.decode(&mut buf).expect("a valid FLV stream") {
                Some(FlvItem::Tag(t)) => tags.push(t),
                Some(FlvItem::Header(_)) => {}
                None => break,
            }
        }
        if until(&tags) {
            return (tags, buf.len());
        }
        match tokio::time::timeout_at(deadline, player.read_buf(&mut buf)).await {
            Ok(Ok(0) | Err(_)) | Err(_) => return (tags, buf.len()),
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_joining_at_any_time_get_the_cache_then_every_tag_once_in_order() {
    let hub = Hub::new(HubConfig::default());
    let mut publisher = hub.publish("live/a").unwrap();
    start(&mut publisher);
    let fanout = Fanout::new(hub.clone(), Duration::from_millis(5));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut players = Vec::new();
    let mut viewers: Vec<FanoutViewer> = Vec::new();
    for i in 1..=300u32 {
        publisher.send(video(i));
        if i % 10 == 3 {
            // Joins land mid-GOP, and several between two rounds.
            for _ in 0..3 {
                let (sock, player) = pair(&listener).await;
                viewers.push(fanout.join(hub.subscribe("live/a").unwrap(), sock));
                players.push((i, player));
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(fanout.viewers(), 90);
    for (joined, mut player) in players {
        let tags = read_tags(
            &mut player,
            |t| t.last().is_some_and(|t| t.timestamp == 300 * 40),
            Duration::from_secs(10),
        )
        .await;
        // The sequence header, then the GOP from the key frame before the join, then
        // every frame up to the last, each once.
        assert_eq!(&tags[0].data[..2], b"\x17\x00", "joined at {joined}");
        // Before the first key frame (10) there is no GOP cache: live tags from the join.
        let first = if joined < 10 {
            joined + 1
        } else {
            joined / 10 * 10
        };
        let frames: Vec<u32> = tags[1..].iter().map(|t| t.timestamp / 40).collect();
        let expected: Vec<u32> = (first..=300).collect();
        assert_eq!(frames, expected, "viewer joined at frame {joined}");
    }
    for v in &viewers {
        v.stop();
    }
    for mut v in viewers {
        let f = v.finished().await.expect("handed back");
        assert_eq!(f.reason, EndReason::Stopped);
    }
    assert_eq!(fanout.viewers(), 0);
    assert_eq!(
        hub.streams()[0]
            .stats()
            .subscribers
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_that_stops_reading_is_dropped_and_the_others_keep_up() {
    let mut config = HubConfig::default();
    config.max_behind = Duration::from_secs(2);
    let hub = Hub::new(config);
    let mut publisher = hub.publish("live/b").unwrap();
    start(&mut publisher);
    let fanout = Fanout::new(hub.clone(), Duration::from_millis(5));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (sock, _stalled_player) = pair(&listener).await; // never read
    let mut stalled = fanout.join(hub.subscribe("live/b").unwrap(), sock);
    let (sock, mut player) = pair(&listener).await;
    let reader = fanout.join(hub.subscribe("live/b").unwrap(), sock);
    // 20 KB frames of 40 ms of media time each, published 20-40x faster than real
    // time: the stalled socket's buffers (a few MB) fill within a few hundred frames,
    // then its queue passes 2 s of media time.
    let big = |i: u32| {
        let mut t = video(i);
        let mut d = t.data.to_vec();
        d.resize(20_000, 7);
        t.data = d.into();
        t
    };
    let reading = tokio::spawn(async move {
        let tags = read_tags(
            &mut player,
            |t| t.last().is_some_and(|t| t.timestamp == 800 * 40),
            Duration::from_secs(30),
        )
        .await;
        (tags, player)
    });
    for i in 1..=800u32 {
        publisher.send(big(i));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let f = tokio::time::timeout(Duration::from_secs(10), stalled.finished())
        .await
        .expect("the stalled viewer is dropped")
        .unwrap();
    assert_eq!(f.reason, EndReason::TooSlow);
    let (tags, _player) = reading.await.unwrap();
    let frames: Vec<u32> = tags[1..].iter().map(|t| t.timestamp / 40).collect();
    assert_eq!(
        frames,
        (1..=800).collect::<Vec<_>>(),
        "the reader missed frames"
    );
    let stats = &hub.streams()[0];
    assert_eq!(
        stats
            .stats()
            .dropped_slow
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    drop(reader);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_viewer_ends_at_a_tag_boundary_and_groups_leave_with_their_viewers() {
    let hub = Hub::new(HubConfig::default());
    let mut publisher = hub.publish("live/c").unwrap();
    start(&mut publisher);
    let fanout = Fanout::new(hub.clone(), Duration::from_millis(5));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    for round in 0..2 {
        let (sock, mut player) = pair(&listener).await;
        let mut v = fanout.join(hub.subscribe("live/c").unwrap(), sock);
        for i in 1..=20u32 {
            publisher.send(video(round * 100 + i));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        v.stop();
        let f = v.finished().await.expect("handed back");
        assert_eq!(f.reason, EndReason::Stopped);
        let mut sock = f.sock;
        sock.shutdown().await.unwrap();
        // Everything written parses as whole tags: nothing is left of a partial one.
        let (tags, rest) = read_tags_rest(&mut player, |_| false, Duration::from_secs(5)).await;
        assert_eq!(rest, 0, "round {round}: a partial tag at the end");
        // (Round 1 starts with the cached GOP of round 0's last key frame, 20.)
        let frames: Vec<u32> = tags[1..]
            .iter()
            .map(|t| t.timestamp / 40)
            .filter(|f| *f > round * 100)
            .collect();
        assert!(!frames.is_empty(), "round {round}");
        assert_eq!(
            frames,
            (round * 100 + 1..=frames.last().copied().unwrap()).collect::<Vec<_>>(),
            "round {round}"
        );
        // The last viewer gone, its group leaves; the next join starts a new one.
        for _ in 0..100 {
            if fanout.viewers() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(fanout.viewers(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_are_handed_back_when_the_stream_ends() {
    let mut config = HubConfig::default();
    config.republish_grace = Duration::from_millis(100);
    let hub = Hub::new(config);
    let mut publisher = hub.publish("live/d").unwrap();
    start(&mut publisher);
    let fanout = Fanout::new(hub.clone(), Duration::from_millis(5));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (sock, _player) = pair(&listener).await;
    let mut v = fanout.join(hub.subscribe("live/d").unwrap(), sock);
    publisher.send(video(1));
    drop(publisher);
    let f = tokio::time::timeout(Duration::from_secs(5), v.finished())
        .await
        .expect("ends after the grace period")
        .unwrap();
    assert_eq!(f.reason, EndReason::Ended);
}
