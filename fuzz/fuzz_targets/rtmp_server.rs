//! A ServerSession fed hostile bytes after a valid handshake never panics, whatever the
//! application answers.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use videopick_rtmp::handshake::ClientHandshake;
use videopick_rtmp::{PublishRejection, ServerConfig, ServerEvent, ServerSession};

fuzz_target!(|data: &[u8]| {
    let Some((&policy, rest)) = data.split_first() else {
        return;
    };
    let now = std::time::Instant::now();
    let mut server = ServerSession::new(ServerConfig::default());
    let mut client = ClientHandshake::new(0, 1, policy & 1 == 0);
    let mut buf = BytesMut::from(&client.poll_transmit().unwrap_or_default()[..]);
    if server.handle_input(now, &mut buf).is_err() {
        return;
    }
    let mut back = BytesMut::new();
    while let Some(b) = server.poll_transmit() {
        back.extend_from_slice(&b);
    }
    if client.handle_input(&mut back).is_err() {
        return;
    }
    buf.extend_from_slice(&client.poll_transmit().unwrap_or_default());
    buf.extend_from_slice(rest);
    for _ in 0..64 {
        if server.handle_input(now, &mut buf).is_err() {
            return;
        }
        let mut answered = false;
        while let Some(ev) = server.poll_event() {
            answered = true;
            let _ = match ev {
                ServerEvent::Connect(r) if policy & 2 == 0 => server.accept_connect(r.id),
                ServerEvent::Connect(r) => server.reject_connect(r.id, "no"),
                ServerEvent::Publish(r) if policy & 4 == 0 => server.accept_publish(r.id),
                ServerEvent::Publish(r) => server.reject_publish(r.id, &PublishRejection::BadName),
                ServerEvent::Play(r) if policy & 8 == 0 => server.accept_play(r.id).and_then(|()| {
                    server.send_tag(r.stream_id, &videopick_flv::Tag::new(videopick_flv::TagKind::Audio, 0, vec![0xaf, 1]))
                }),
                ServerEvent::Play(r) => server.reject_play(r.id, "none"),
                _ => Ok(()),
            };
        }
        while server.poll_transmit().is_some() {}
        let _ = server.handle_timeout(now + std::time::Duration::from_secs(31));
        if !answered {
            break;
        }
    }
});
