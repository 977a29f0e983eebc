//! The hub's policies on simulated time (tokio's paused clock drives the hub's clock): the
//! republish grace, ending streams and their taps, lagging viewers skipping to a key frame
//! and viewers too far behind being dropped — no sockets, no real waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use videopick_flv::{Tag, TagKind};
use videopick_live::hub::{HubItem, SharedTag, StreamTap, SubscriptionEnd, now};
use videopick_live::{Hub, HubConfig};

fn frame(ms: u32, key: bool) -> Tag {
    let mut v = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
    v.extend_from_slice(&ms.to_be_bytes());
    Tag::new(TagKind::Video, ms, Bytes::from(v))
}

fn header() -> Tag {
    Tag::new(
        TagKind::Video,
        0,
        &b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f\xff\xe1\x00\x00\x01\x00\x00"[..],
    )
}

async fn next_tag(sub: &mut videopick_live::Subscription) -> Tag {
    loop {
        if let HubItem::Tag(t) = sub.recv().await.unwrap() {
            return t.tag().clone();
        }
    }
}

#[derive(Default)]
struct Counts {
    tags: AtomicUsize,
    republished: AtomicUsize,
    ended: AtomicUsize,
}

struct CountingTap(Arc<Counts>);

impl StreamTap for CountingTap {
    fn tag(&mut self, _: &SharedTag) {
        self.0.tags.fetch_add(1, Ordering::SeqCst);
    }
    fn republished(&mut self) {
        self.0.republished.fetch_add(1, Ordering::SeqCst);
    }
    fn ended(self: Box<Self>) {
        self.0.ended.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(start_paused = true)]
async fn a_republish_within_the_grace_keeps_viewers_and_taps_then_the_stream_ends() {
    let mut config = HubConfig::default();
    config.republish_grace = Duration::from_secs(10);
    let hub = Hub::new(config);
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    hub.add_tap_factory(Arc::new(move |_| Some(Box::new(CountingTap(c.clone())))));

    let mut p = hub.publish("live/a").unwrap();
    p.send(header());
    p.send(frame(0, true));
    let mut viewer = hub.subscribe("live/a").unwrap();
    assert_eq!(next_tag(&mut viewer).await.data, header().data);
    assert_eq!(next_tag(&mut viewer).await.timestamp, 0);

    drop(p); // the publisher leaves
    assert!(matches!(viewer.recv().await, Ok(HubItem::Unpublished)));
    tokio::time::advance(Duration::from_secs(9)).await;
    hub.sweep(now()); // within the grace: the stream and its tap stay
    assert_eq!(counts.ended.load(Ordering::SeqCst), 0);

    let mut p = hub.publish("live/a").unwrap(); // back within the grace
    assert_eq!(counts.republished.load(Ordering::SeqCst), 1);
    assert!(matches!(viewer.recv().await, Ok(HubItem::Published)));
    p.send(header());
    p.send(frame(40, false)); // not a key frame: the viewer waits for one
    p.send(frame(80, true));
    assert_eq!(next_tag(&mut viewer).await.data, header().data);
    assert_eq!(next_tag(&mut viewer).await.timestamp, 80);

    drop(p);
    assert!(matches!(viewer.recv().await, Ok(HubItem::Unpublished)));
    let left = now();
    // Nobody comes back: the viewer's wait ends after exactly the grace period.
    assert_eq!(viewer.recv().await.unwrap_err(), SubscriptionEnd::Ended);
    assert_eq!(now() - left, Duration::from_secs(10));
    drop(viewer);
    hub.sweep(now());
    assert_eq!(counts.ended.load(Ordering::SeqCst), 1);
    assert!(hub.streams().is_empty());
    assert_eq!(counts.tags.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn a_lagging_viewer_skips_to_a_key_frame_and_one_far_behind_is_dropped() {
    let mut config = HubConfig::default();
    config.queue_tags = 16;
    config.max_behind = Duration::from_secs(3);
    let hub = Hub::new(config);
    let mut p = hub.publish("live/b").unwrap();
    p.send(header());
    let mut lagging = hub.subscribe("live/b").unwrap();
    let _ = next_tag(&mut lagging).await;
    // 40 frames while it does not read: its ring of 16 overflows.
    for i in 0..40u32 {
        p.send(frame(i * 40, i % 25 == 0));
    }
    p.send(frame(40 * 40, false));
    p.send(frame(50 * 40, true));
    // It resumes at the first key frame it still has (frame 25 is in the ring's tail or
    // not), never in the middle of a GOP.
    let t = next_tag(&mut lagging).await;
    assert!(
        t.data[0] == 0x17,
        "resumed on a non-key frame at {} ms",
        t.timestamp
    );

    // A viewer whose next tag is more than 3 s of media behind the live edge is dropped
    // (its queue is deep enough not to overflow: it is slow, not lagging).
    let mut config = HubConfig::default();
    config.max_behind = Duration::from_secs(3);
    let hub = Hub::new(config);
    let mut p = hub.publish("live/c").unwrap();
    p.send(header());
    p.send(frame(0, true));
    let mut slow = hub.subscribe("live/c").unwrap();
    let _ = next_tag(&mut slow).await; // the cached header
    let _ = next_tag(&mut slow).await; // the cached key frame
    for i in 1..=100u32 {
        p.send(frame(i * 40, false)); // 4 s of media it does not read
    }
    assert_eq!(slow.recv().await.unwrap_err(), SubscriptionEnd::TooSlow);
    // One that keeps up is not: it reads the cached GOP, then every live frame.
    let mut fast = hub.subscribe("live/c").unwrap();
    for i in 101..=200u32 {
        p.send(frame(i * 40, false));
        while next_tag(&mut fast).await.timestamp != i * 40 {}
    }
}
