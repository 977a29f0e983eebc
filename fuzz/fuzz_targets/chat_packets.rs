//! Engine.IO payloads and Socket.IO packets from a hostile client: no panic; every packet
//! that decodes encodes to text that decodes to the same type, namespace and ack id.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use videopick_chat_proto::wire::{engineio, socketio};

fuzz_target!(|data: &[u8]| {
    let payload = Bytes::copy_from_slice(data);
    let Ok(packets) = engineio::decode_payload(&payload, 1 << 20, 256) else {
        return;
    };
    let again = engineio::decode_payload(&Bytes::from(engineio::encode_payload(&packets)), 1 << 21, 256);
    assert_eq!(again.as_ref(), Ok(&packets));
    let mut decoder = socketio::Decoder::new();
    for p in packets {
        let done = match p {
            engineio::Packet::Text(engineio::PacketType::Message, text) => {
                let Ok(text) = std::str::from_utf8(&text) else { continue };
                decoder.text(text)
            }
            engineio::Packet::Binary(b) => decoder.binary(b),
            engineio::Packet::Text(..) => continue,
        };
        if let Ok(Some(packet)) = done {
            let (text, attachments) = packet.encode();
            let (back, due) = socketio::decode(&text).expect("our encoding decodes");
            assert_eq!(due, attachments.len());
            assert_eq!((back.kind, back.nsp, back.id), (packet.kind, packet.nsp.clone(), packet.id));
        }
    }
});
