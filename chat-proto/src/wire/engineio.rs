//! Engine.IO v4 packets and HTTP long-polling payloads, sans-IO and bounded.
//!
//! A packet is one type character followed by its data: `0` open, `1` close, `2` ping,
//! `3` pong, `4` message, `5` upgrade, `6` noop. Over WebSocket each frame is one packet
//! (a binary frame is a binary message, without a type byte). Over long-polling a
//! payload joins packets with the record separator `\x1e`, binary messages as `b` +
//! base64.

use bytes::Bytes;

/// The record separator between packets of a polling payload.
pub const SEPARATOR: u8 = 0x1e;

/// Packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// `0`: the handshake (server → client).
    Open,
    /// `1`: the transport is closing.
    Close,
    /// `2`: heartbeat request (server → client; `2probe` from the client during upgrade).
    Ping,
    /// `3`: heartbeat answer.
    Pong,
    /// `4`: a message (text or binary).
    Message,
    /// `5`: the upgrade to WebSocket is done (client → server).
    Upgrade,
    /// `6`: no operation (ends a pending poll during an upgrade).
    Noop,
}

impl PacketType {
    fn from_char(c: u8) -> Option<PacketType> {
        Some(match c {
            b'0' => PacketType::Open,
            b'1' => PacketType::Close,
            b'2' => PacketType::Ping,
            b'3' => PacketType::Pong,
            b'4' => PacketType::Message,
            b'5' => PacketType::Upgrade,
            b'6' => PacketType::Noop,
            _ => return None,
        })
    }

    /// The type's character on the wire.
    pub fn as_char(self) -> u8 {
        match self {
            PacketType::Open => b'0',
            PacketType::Close => b'1',
            PacketType::Ping => b'2',
            PacketType::Pong => b'3',
            PacketType::Message => b'4',
            PacketType::Upgrade => b'5',
            PacketType::Noop => b'6',
        }
    }
}

/// One Engine.IO packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// A text packet: its type and data (the data of a message is a Socket.IO packet).
    Text(PacketType, Bytes),
    /// A binary message.
    Binary(Bytes),
}

impl Packet {
    /// A text message.
    pub fn message(text: impl Into<Bytes>) -> Packet {
        Packet::Text(PacketType::Message, text.into())
    }

    /// The packet's type.
    pub fn kind(&self) -> PacketType {
        match self {
            Packet::Text(t, _) => *t,
            Packet::Binary(_) => PacketType::Message,
        }
    }
}

/// Why bytes are not Engine.IO.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// An empty packet.
    #[error("empty packet")]
    Empty,
    /// The first character is not a packet type.
    #[error("unknown packet type {0:#04x}")]
    UnknownType(u8),
    /// A text packet that is not UTF-8.
    #[error("packet is not UTF-8")]
    NotUtf8,
    /// `b…` whose base64 does not decode.
    #[error("bad base64 in a binary packet")]
    BadBase64,
    /// Over the payload limit.
    #[error("payload of {len} bytes is over the limit of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More packets in one payload than allowed.
    #[error("more than {0} packets in one payload")]
    TooManyPackets(usize),
}

/// Decode one text packet (a WebSocket text frame, or one record of a polling payload).
pub fn decode_text(text: &Bytes) -> Result<Packet, DecodeError> {
    let (&first, _) = text.split_first().ok_or(DecodeError::Empty)?;
    if std::str::from_utf8(text).is_err() {
        return Err(DecodeError::NotUtf8);
    }
    if first == b'b' {
        let raw = base64_decode(&text[1..]).ok_or(DecodeError::BadBase64)?;
        return Ok(Packet::Binary(Bytes::from(raw)));
    }
    let kind = PacketType::from_char(first).ok_or(DecodeError::UnknownType(first))?;
    Ok(Packet::Text(kind, text.slice(1..)))
}

/// Decode a polling payload (packets separated by `\x1e`): at most `max_len` bytes and
/// `max_packets` packets.
pub fn decode_payload(
    payload: &Bytes,
    max_len: usize,
    max_packets: usize,
) -> Result<Vec<Packet>, DecodeError> {
    if payload.len() > max_len {
        return Err(DecodeError::TooLarge {
            len: payload.len(),
            max: max_len,
        });
    }
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in payload
        .iter()
        .enumerate()
        .chain(std::iter::once((payload.len(), &SEPARATOR)))
    {
        if b == SEPARATOR {
            if out.len() == max_packets {
                return Err(DecodeError::TooManyPackets(max_packets));
            }
            out.push(decode_text(&payload.slice(start..i))?);
            start = i + 1;
        }
    }
    Ok(out)
}

/// Encode one packet as a WebSocket frame: (is binary, bytes).
pub fn encode_frame(p: &Packet) -> (bool, Bytes) {
    match p {
        Packet::Binary(b) => (true, b.clone()),
        Packet::Text(t, data) => {
            let mut v = Vec::with_capacity(1 + data.len());
            v.push(t.as_char());
            v.extend_from_slice(data);
            (false, Bytes::from(v))
        }
    }
}

/// Encode packets as one polling payload.
pub fn encode_payload<'a>(packets: impl IntoIterator<Item = &'a Packet>) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in packets.into_iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        match p {
            Packet::Binary(b) => {
                out.push(b'b');
                base64_encode(b, &mut out);
            }
            Packet::Text(t, data) => {
                out.push(t.as_char());
                out.extend_from_slice(data);
            }
        }
    }
    out
}

/// Standard base64, padding optional on input (Engine.IO clients differ).
const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Standard base64 with padding, appended to `out`.
pub fn base64_encode(data: &[u8], out: &mut Vec<u8>) {
    use base64::Engine as _;
    out.extend_from_slice(
        base64::engine::general_purpose::STANDARD
            .encode(data)
            .as_bytes(),
    );
}

/// Standard base64 (padding optional); `None` for anything else.
pub fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine as _;
    LENIENT.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_binary_packets() {
        assert_eq!(
            decode_text(&Bytes::from_static(b"4hello")),
            Ok(Packet::message("hello"))
        );
        assert_eq!(
            decode_text(&Bytes::from_static(b"2probe")),
            Ok(Packet::Text(PacketType::Ping, Bytes::from_static(b"probe")))
        );
        assert_eq!(
            decode_text(&Bytes::from_static(b"bAQIDBA==")),
            Ok(Packet::Binary(Bytes::from_static(&[1, 2, 3, 4])))
        );
        assert_eq!(decode_text(&Bytes::new()), Err(DecodeError::Empty));
        assert_eq!(
            decode_text(&Bytes::from_static(b"9")),
            Err(DecodeError::UnknownType(b'9'))
        );
        assert_eq!(
            decode_text(&Bytes::from_static(b"b!!")),
            Err(DecodeError::BadBase64)
        );
    }

    #[test]
    fn payloads_round_trip_and_are_bounded() {
        let packets = vec![
            Packet::message("hello"),
            Packet::Binary(Bytes::from_static(&[0, 255, 7])),
            Packet::Text(PacketType::Ping, Bytes::new()),
        ];
        let wire = encode_payload(&packets);
        assert_eq!(wire, b"4hello\x1ebAP8H\x1e2");
        assert_eq!(
            decode_payload(&Bytes::from(wire.clone()), 100, 10),
            Ok(packets)
        );
        assert_eq!(
            decode_payload(&Bytes::from(wire.clone()), 5, 10),
            Err(DecodeError::TooLarge { len: 14, max: 5 })
        );
        assert_eq!(
            decode_payload(&Bytes::from(wire), 100, 2),
            Err(DecodeError::TooManyPackets(2))
        );
    }

    proptest::proptest! {
        #[test]
        fn base64_round_trips(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let mut enc = Vec::new();
            base64_encode(&data, &mut enc);
            proptest::prop_assert_eq!(base64_decode(&enc), Some(data));
        }
    }
}
