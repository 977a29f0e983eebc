//! Server and client sessions against each other, bytes moved in random-sized pieces:
//! connect, publish, media, play, unpublish; rejections; acknowledgements; and the server's
//! input split at every byte boundary.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use videopick_flv::{OnMetaData, Tag, TagKind};
use videopick_rtmp::{
    ClientConfig, ClientEvent, ClientSession, PublishMode, PublishRejection, ServerConfig,
    ServerEvent, ServerSession,
};

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// One client connected to one server session, with a byte pipe each way.
struct Link {
    server: ServerSession,
    client: ClientSession,
    to_server: BytesMut,
    to_client: BytesMut,
    /// Every byte the client ever sent (for replay tests).
    client_bytes: Vec<u8>,
    server_events: Vec<ServerEvent>,
    client_events: Vec<ClientEvent>,
    /// Simulated time: advances 5 ms per exchange.
    now: Instant,
}

impl Link {
    fn new(seed: u64) -> Link {
        let now = Instant::now();
        Link {
            server: ServerSession::new(ServerConfig::default().handshake(1, seed)),
            client: ClientSession::new(ClientConfig::new("live", "rtmp://127.0.0.1/live"), now),
            to_server: BytesMut::new(),
            to_client: BytesMut::new(),
            client_bytes: Vec::new(),
            server_events: Vec::new(),
            client_events: Vec::new(),
            now,
        }
    }

    /// Move bytes both ways in random pieces until nothing moves; collect events.
    fn pump(&mut self, rng: &mut Rng) {
        for _ in 0..10_000 {
            self.now += Duration::from_millis(5);
            let mut moved = false;
            while let Some(b) = self.client.poll_transmit() {
                self.client_bytes.extend_from_slice(&b);
                self.to_server.extend_from_slice(&b);
            }
            while let Some(b) = self.server.poll_transmit() {
                self.to_client.extend_from_slice(&b);
            }
            if !self.to_server.is_empty() {
                // Offer a random-sized prefix first; if the session cannot use it, everything.
                let n = 1 + rng.below(self.to_server.len().min(3000));
                let before = self.to_server.len();
                let rest = self.to_server.split_off(n);
                self.server
                    .handle_input(self.now, &mut self.to_server)
                    .unwrap();
                self.to_server.unsplit(rest);
                if self.to_server.len() == before {
                    self.server
                        .handle_input(self.now, &mut self.to_server)
                        .unwrap();
                }
                moved |= self.to_server.len() != before;
            }
            while let Some(e) = self.server.poll_event() {
                self.server_events.push(e);
            }
            if !self.to_client.is_empty() {
                let before = self.to_client.len();
                self.client
                    .handle_input(self.now, &mut self.to_client)
                    .unwrap();
                moved |= self.to_client.len() != before;
            }
            while let Some(e) = self.client.poll_event() {
                self.client_events.push(e);
            }
            if !moved && !self.client.has_output() && !self.server.has_output() {
                return;
            }
        }
        panic!("link never settled");
    }
}

fn media() -> Vec<Tag> {
    let meta = OnMetaData {
        width: Some(320.0),
        height: Some(240.0),
        ..OnMetaData::default()
    };
    let mut tags = vec![
        Tag::new(TagKind::Script, 0, meta.to_script_bytes()),
        Tag::new(
            TagKind::Video,
            0,
            &b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f\xff"[..],
        ),
        Tag::new(TagKind::Audio, 0, &b"\xaf\x00\x12\x10"[..]),
    ];
    for i in 0..50u32 {
        let key = i % 25 == 0;
        let mut v = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 40];
        v.extend((0..(300 + i * 97) as usize).map(|j| (j as u32 ^ i) as u8));
        tags.push(Tag::new(TagKind::Video, i * 40, v));
        tags.push(Tag::new(
            TagKind::Audio,
            i * 40 + 3,
            vec![0xaf, 1, i as u8, 7, 7],
        ));
    }
    tags
}

/// Drive a publisher through connect → createStream → publish, answering as `decide` says.
fn connect_and_create(link: &mut Link, rng: &mut Rng) -> u32 {
    link.pump(rng);
    let ServerEvent::Connect(req) = link.server_events.remove(0) else {
        panic!("expected connect, got {:?}", link.server_events)
    };
    assert_eq!(req.app, "live");
    assert_eq!(req.tc_url.as_deref(), Some("rtmp://127.0.0.1/live"));
    link.server.accept_connect(req.id).unwrap();
    link.server
        .handle_input(link.now, &mut link.to_server)
        .unwrap();
    link.pump(rng);
    assert_eq!(link.client_events.remove(0), ClientEvent::Connected);
    let tid = link.client.create_stream().unwrap();
    link.pump(rng);
    let ClientEvent::StreamCreated {
        transaction_id,
        stream_id,
    } = link.client_events.remove(0)
    else {
        panic!("expected StreamCreated")
    };
    assert_eq!(transaction_id.to_bits(), tid.to_bits());
    stream_id
}

/// Connect, create a stream and publish `name`, with the server accepting.
fn publish_accepted(link: &mut Link, rng: &mut Rng, name: &str) -> u32 {
    let sid = connect_and_create(link, rng);
    link.client.publish(sid, name, PublishMode::Live).unwrap();
    link.pump(rng);
    let ServerEvent::Publish(req) = link.server_events.remove(0) else {
        panic!("expected publish")
    };
    assert_eq!(req.name, name);
    link.server.accept_publish(req.id).unwrap();
    link.server
        .handle_input(link.now, &mut link.to_server)
        .unwrap();
    link.pump(rng);
    sid
}

#[test]
#[allow(clippy::too_many_lines)] // one end-to-end story, read top to bottom
fn publish_play_unpublish_through_two_sessions() {
    let mut rng = Rng(0x1234_5678);
    let mut publisher = Link::new(1);
    let pub_sid = connect_and_create(&mut publisher, &mut rng);
    publisher
        .client
        .publish(pub_sid, "cam?key=s3cret", PublishMode::Live)
        .unwrap();
    publisher.pump(&mut rng);
    let ServerEvent::Publish(req) = publisher.server_events.remove(0) else {
        panic!("expected publish")
    };
    assert_eq!(
        (req.name.as_str(), req.query.as_deref(), req.mode),
        ("cam", Some("key=s3cret"), PublishMode::Live)
    );
    publisher.server.accept_publish(req.id).unwrap();
    publisher
        .server
        .handle_input(publisher.now, &mut publisher.to_server)
        .unwrap();
    publisher.pump(&mut rng);
    assert!(matches!(
        publisher.client_events.remove(0),
        ClientEvent::Status { ref code, .. } if code == "NetStream.Publish.Start"
    ));

    // A player joins.
    let mut player = Link::new(2);
    let play_sid = connect_and_create(&mut player, &mut rng);
    player.client.play(play_sid, "cam").unwrap();
    player.pump(&mut rng);
    let ServerEvent::Play(preq) = player.server_events.remove(0) else {
        panic!("expected play")
    };
    assert_eq!((preq.name.as_str(), preq.start), ("cam", -2.0));
    player.server.accept_play(preq.id).unwrap();
    player
        .server
        .handle_input(player.now, &mut player.to_server)
        .unwrap();
    player.pump(&mut rng);
    let codes: Vec<String> = player
        .client_events
        .drain(..)
        .filter_map(|e| match e {
            ClientEvent::Status { code, .. } => Some(code),
            _ => None,
        })
        .collect();
    assert_eq!(codes, ["NetStream.Play.Reset", "NetStream.Play.Start"]);

    // Media: publisher → server → (application relays) → player.
    let sent = media();
    for t in &sent {
        publisher.client.send_tag(pub_sid, t).unwrap();
    }
    publisher.pump(&mut rng);
    let received: Vec<Tag> = publisher
        .server_events
        .drain(..)
        .map(|e| match e {
            ServerEvent::Media { stream_id, tag } => {
                assert_eq!(stream_id, pub_sid);
                tag
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        received, sent,
        "server must yield exactly the published tags"
    );
    for t in &received {
        player.server.send_tag(play_sid, t).unwrap();
    }
    player.pump(&mut rng);
    let played: Vec<Tag> = player
        .client_events
        .drain(..)
        .map(|e| match e {
            ClientEvent::Media { tag, .. } => tag,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        played, sent,
        "player must receive exactly the published tags"
    );

    // Unpublish: the server hears it and tells the player.
    publisher.client.delete_stream(pub_sid).unwrap();
    publisher.pump(&mut rng);
    assert_eq!(
        publisher.server_events,
        vec![ServerEvent::Unpublish { stream_id: pub_sid }]
    );
    player.server.notify_unpublish(play_sid);
    player.pump(&mut rng);
    assert!(player.client_events.iter().any(
        |e| matches!(e, ClientEvent::Status { code, .. } if code == "NetStream.Play.UnpublishNotify")
    ));
    // Media after unpublishing is dropped, not delivered.
    let _ = publisher.client.send_tag(pub_sid, &sent[3]);
    publisher.pump(&mut rng);
    assert!(
        publisher
            .server_events
            .iter()
            .all(|e| !matches!(e, ServerEvent::Media { .. }))
    );
}

#[test]
fn rejections_reach_the_client() {
    let mut rng = Rng(99);
    let mut link = Link::new(3);
    let sid = connect_and_create(&mut link, &mut rng);
    link.client
        .publish(sid, "taken", PublishMode::Live)
        .unwrap();
    link.pump(&mut rng);
    let ServerEvent::Publish(req) = link.server_events.remove(0) else {
        panic!()
    };
    link.server
        .reject_publish(req.id, &PublishRejection::BadName)
        .unwrap();
    // Answering twice is misuse.
    assert!(link.server.accept_publish(req.id).is_err());
    link.server
        .handle_input(link.now, &mut link.to_server)
        .unwrap();
    link.pump(&mut rng);
    assert!(matches!(
        &link.client_events[0],
        ClientEvent::Status { level, code, .. } if level == "error" && code == "NetStream.Publish.BadName"
    ));

    let mut link = Link::new(4);
    link.pump(&mut rng);
    let ServerEvent::Connect(req) = link.server_events.remove(0) else {
        panic!()
    };
    link.server.reject_connect(req.id, "bad token").unwrap();
    assert!(link.server.is_closed());
    link.pump(&mut rng);
    assert_eq!(
        link.client_events,
        vec![ClientEvent::ConnectFailed {
            code: "NetConnection.Connect.Rejected".into(),
            description: "bad token".into()
        }]
    );
}

#[test]
fn acknowledgements_flow_both_ways() {
    let mut rng = Rng(7);
    let mut link = Link::new(5);
    let sid = publish_accepted(&mut link, &mut rng, "big");
    // 3 MB of video: beyond the 2.5 MB window the server announced.
    let frame = Bytes::from(vec![0x27u8; 100_000]);
    for i in 0..30 {
        link.client
            .send_tag(sid, &Tag::new(TagKind::Video, i * 40, frame.clone()))
            .unwrap();
    }
    link.pump(&mut rng);
    assert!(
        link.client.acknowledged_by_peer() >= 2_500_000,
        "server acked only {}",
        link.client.acknowledged_by_peer()
    );
}

#[test]
fn server_input_split_at_every_byte_gives_the_same_events() {
    let mut rng = Rng(11);
    let mut link = Link::new(6);
    let sid = publish_accepted(&mut link, &mut rng, "cam");
    for t in media().iter().take(12) {
        link.client.send_tag(sid, t).unwrap();
    }
    link.pump(&mut rng);
    let recorded = link.client_bytes.clone();

    // Replay the recorded client bytes into fresh sessions, split in two at every point.
    let start = Instant::now();
    let run = |parts: &[&[u8]]| -> Vec<ServerEvent> {
        let mut s = ServerSession::new(ServerConfig::default().handshake(1, 6));
        let mut buf = BytesMut::new();
        let mut events = Vec::new();
        for p in parts {
            buf.extend_from_slice(p);
            loop {
                s.handle_input(start, &mut buf).unwrap();
                let mut answered = false;
                while let Some(e) = s.poll_event() {
                    match &e {
                        ServerEvent::Connect(r) => s.accept_connect(r.id).unwrap(),
                        ServerEvent::Publish(r) => s.accept_publish(r.id).unwrap(),
                        _ => {}
                    }
                    answered |= matches!(e, ServerEvent::Connect(_) | ServerEvent::Publish(_));
                    events.push(e);
                }
                if !answered {
                    break;
                }
            }
        }
        events
    };
    let whole = run(&[&recorded]);
    assert!(
        whole
            .iter()
            .filter(|e| matches!(e, ServerEvent::Media { .. }))
            .count()
            == 12
    );
    for at in 0..=recorded.len() {
        assert_eq!(
            run(&[&recorded[..at], &recorded[at..]]),
            whole,
            "split at {at}"
        );
    }
}

#[test]
fn keepalive_pings_on_simulated_time() {
    let mut rng = Rng(21);
    let mut link = Link::new(8);
    link.server = ServerSession::new(
        ServerConfig::default()
            .handshake(1, 8)
            .ping(Some(Duration::from_secs(30)), Duration::from_secs(60)),
    );
    connect_and_create(&mut link, &mut rng);
    let due = link
        .server
        .poll_timeout()
        .expect("a ping is scheduled once connected");
    assert!(due > link.now && due <= link.now + Duration::from_secs(30));

    // At the due time the server pings; the client answers; nothing times out.
    link.now = due;
    link.server.handle_timeout(link.now).unwrap();
    assert!(link.server.has_output(), "PingRequest queued");
    link.pump(&mut rng);
    let next = link.server.poll_timeout().unwrap();
    assert!(
        next >= due + Duration::from_secs(29),
        "next ping in ~30 s, not a timeout"
    );

    // A peer that goes silent after a ping times out 60 s later.
    link.now = next;
    link.server.handle_timeout(link.now).unwrap();
    let _ = link.server.poll_transmit(); // the ping is lost: the peer is gone
    let deadline = link.server.poll_timeout().unwrap();
    assert_eq!(deadline, next + Duration::from_secs(60));
    assert!(
        link.server
            .handle_timeout(deadline.checked_sub(Duration::from_secs(1)).unwrap())
            .is_ok()
    );
    assert_eq!(
        link.server.handle_timeout(deadline),
        Err(videopick_rtmp::RtmpError::Timeout("no answer to ping"))
    );
    assert!(link.server.is_closed());
    assert_eq!(link.server.poll_timeout(), None);
}

#[test]
fn a_player_that_never_acknowledges_is_cut_off() {
    let mut rng = Rng(31);
    let mut link = Link::new(9);
    link.server = ServerSession::new(
        ServerConfig::default()
            .handshake(1, 9)
            .max_unacknowledged(Some(1_000_000)),
    );
    let sid = connect_and_create(&mut link, &mut rng);
    link.client.play(sid, "cam").unwrap();
    link.pump(&mut rng);
    let ServerEvent::Play(req) = link.server_events.remove(0) else {
        panic!()
    };
    link.server.accept_play(req.id).unwrap();
    let frame = Tag::new(TagKind::Video, 0, Bytes::from(vec![0x27u8; 100_000]));
    // The bytes go out but never reach the client, so no acknowledgement comes back.
    let mut result = Ok(());
    for _ in 0..20 {
        result = link.server.send_tag(sid, &frame);
        if result.is_err() {
            break;
        }
        while link.server.poll_transmit().is_some() {}
    }
    assert!(
        matches!(
            result,
            Err(videopick_rtmp::RtmpError::LimitExceeded {
                what: "unacknowledged bytes",
                ..
            })
        ),
        "{result:?}"
    );
    assert!(link.server.is_closed());
}

#[test]
fn a_server_that_never_answers_times_the_client_out_on_simulated_time() {
    let t0 = Instant::now();
    let mut client = ClientSession::new(ClientConfig::new("live", "rtmp://127.0.0.1/live"), t0);
    // C0+C1 go out; nothing comes back.
    assert!(client.poll_transmit().is_some());
    let due = client.poll_timeout().expect("the handshake is awaited");
    assert_eq!(due, t0 + Duration::from_secs(10));
    client
        .handle_timeout(due.checked_sub(Duration::from_millis(1)).unwrap())
        .unwrap();
    assert!(!client.is_closed());
    assert!(client.handle_timeout(due).is_err());
    assert!(client.is_closed());
    assert_eq!(client.poll_timeout(), None);
}

#[test]
fn a_connected_client_waits_only_while_a_request_is_unanswered() {
    let mut link = Link::new(3);
    let mut rng = Rng(3);
    let sid = connect_and_create(&mut link, &mut rng);
    assert_eq!(
        link.client.poll_timeout(),
        None,
        "every request was answered"
    );
    link.client.play(sid, "cam").unwrap();
    // The wait is counted from the last time the client was given (its last input).
    let sent = link.now;
    let due = link.client.poll_timeout().expect("play is awaited");
    assert!(
        due <= sent + Duration::from_secs(10)
            && due + Duration::from_millis(100) > sent + Duration::from_secs(10)
    );
    // The server's application never decides: the client gives up after 10 s.
    link.pump(&mut rng);
    assert!(
        link.server_events
            .iter()
            .any(|e| matches!(e, ServerEvent::Play(_)))
    );
    assert!(
        link.client
            .handle_timeout(sent + Duration::from_secs(9))
            .is_ok()
    );
    assert!(
        link.client
            .handle_timeout(sent + Duration::from_secs(10))
            .is_err()
    );
}
