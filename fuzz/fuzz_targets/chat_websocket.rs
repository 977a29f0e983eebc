//! WebSocket frames from a hostile client, in arbitrary chunks: no panic, the buffer only
//! shrinks when a frame is taken, and no message is larger than the limit.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use videopick_chat_proto::wire::websocket::{Decoder, Message};

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let mut d = Decoder::new(4096);
    let mut buf = BytesMut::new();
    for c in rest.chunks(usize::from(split % 31) + 1) {
        buf.extend_from_slice(c);
        loop {
            match d.decode(&mut buf) {
                Ok(Some(Message::Text(t) | Message::Binary(t))) => assert!(t.len() <= 4096),
                Ok(Some(Message::Ping(p) | Message::Pong(p))) => assert!(p.len() <= 125),
                Ok(Some(Message::Close(_))) => {}
                Ok(None) => break,
                Err(e) => {
                    assert!(matches!(e.close_code(), 1002 | 1007 | 1009));
                    return;
                }
            }
        }
    }
});
