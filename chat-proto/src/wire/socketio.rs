//! Socket.IO v5 packets, sans-IO and bounded: `<type>[<attachments>-][<nsp>,][<id>][<json>]`.
//!
//! Types: `0` CONNECT, `1` DISCONNECT, `2` EVENT, `3` ACK, `4` CONNECT_ERROR, `5`
//! BINARY_EVENT, `6` BINARY_ACK. A binary packet's JSON holds
//! `{"_placeholder":true,"num":n}` where attachment `n` goes; the attachments follow as
//! binary Engine.IO messages and are collected by [`Decoder`].

use bytes::Bytes;
use serde_json::Value;

/// Largest ack id (JavaScript's largest safe integer).
pub const MAX_ID: u64 = (1 << 53) - 1;
/// Longest namespace name accepted.
pub const MAX_NAMESPACE: usize = 256;
/// Most binary attachments in one packet.
pub const MAX_ATTACHMENTS: usize = 10;

/// Event names that cannot be sent as events (socket.io reserves them).
pub const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// `0`: join a namespace (client, with optional auth object) / joined (server, `{sid}`).
    Connect,
    /// `1`: leave a namespace.
    Disconnect,
    /// `2`: an event `[name, ...args]`.
    Event,
    /// `3`: an acknowledgement `[...args]`.
    Ack,
    /// `4`: joining refused (`{message, data?}`).
    ConnectError,
    /// `5`: an event with binary attachments.
    BinaryEvent,
    /// `6`: an acknowledgement with binary attachments.
    BinaryAck,
}

impl PacketType {
    fn from_char(c: u8) -> Option<PacketType> {
        Some(match c {
            b'0' => PacketType::Connect,
            b'1' => PacketType::Disconnect,
            b'2' => PacketType::Event,
            b'3' => PacketType::Ack,
            b'4' => PacketType::ConnectError,
            b'5' => PacketType::BinaryEvent,
            b'6' => PacketType::BinaryAck,
            _ => return None,
        })
    }

    fn as_char(self) -> char {
        match self {
            PacketType::Connect => '0',
            PacketType::Disconnect => '1',
            PacketType::Event => '2',
            PacketType::Ack => '3',
            PacketType::ConnectError => '4',
            PacketType::BinaryEvent => '5',
            PacketType::BinaryAck => '6',
        }
    }

    /// Carries binary attachments.
    pub fn is_binary(self) -> bool {
        matches!(self, PacketType::BinaryEvent | PacketType::BinaryAck)
    }
}

/// A Socket.IO packet.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// Its type.
    pub kind: PacketType,
    /// Namespace (`/` by default).
    pub nsp: String,
    /// Ack id, for events that want an answer and for acks.
    pub id: Option<u64>,
    /// The JSON payload (placeholders in place of attachments).
    pub data: Option<Value>,
    /// Binary attachments, in placeholder order.
    pub attachments: Vec<Bytes>,
}

impl Packet {
    /// An event `[name, ...args]` in `nsp`.
    pub fn event(nsp: &str, name: &str, args: impl IntoIterator<Item = Value>) -> Packet {
        let mut v = vec![Value::String(name.into())];
        v.extend(args);
        Packet {
            kind: PacketType::Event,
            nsp: nsp.into(),
            id: None,
            data: Some(Value::Array(v)),
            attachments: Vec::new(),
        }
    }

    /// An ack with `args` for ack id `id`.
    pub fn ack(nsp: &str, id: u64, args: Vec<Value>) -> Packet {
        Packet {
            kind: PacketType::Ack,
            nsp: nsp.into(),
            id: Some(id),
            data: Some(Value::Array(args)),
            attachments: Vec::new(),
        }
    }

    /// The event name of an EVENT / BINARY_EVENT.
    pub fn event_name(&self) -> Option<&str> {
        match self.kind {
            PacketType::Event | PacketType::BinaryEvent => {
                self.data.as_ref()?.as_array()?.first()?.as_str()
            }
            _ => None,
        }
    }

    /// Encode: the text (an Engine.IO message's data) and the attachments to send after it
    /// as binary messages. A packet with attachments is sent as its binary type.
    pub fn encode(&self) -> (String, &[Bytes]) {
        let mut kind = self.kind;
        if !self.attachments.is_empty() {
            kind = match kind {
                PacketType::Event => PacketType::BinaryEvent,
                PacketType::Ack => PacketType::BinaryAck,
                k => k,
            };
        }
        let mut s = String::new();
        s.push(kind.as_char());
        if kind.is_binary() {
            s.push_str(&self.attachments.len().to_string());
            s.push('-');
        }
        if self.nsp != "/" && !self.nsp.is_empty() {
            s.push_str(&self.nsp);
            s.push(',');
        }
        if let Some(id) = self.id {
            s.push_str(&id.to_string());
        }
        if let Some(d) = &self.data {
            s.push_str(&d.to_string());
        }
        (s, &self.attachments)
    }
}

/// Why text is not a valid Socket.IO packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Empty text.
    #[error("empty packet")]
    Empty,
    /// Unknown type character.
    #[error("unknown packet type")]
    UnknownType,
    /// A bad attachment count (missing `-`, not a number, zero or over the limit).
    #[error("bad attachment count")]
    BadAttachments,
    /// A namespace that is too long or not terminated.
    #[error("bad namespace")]
    BadNamespace,
    /// An ack id that is not a safe integer.
    #[error("bad ack id")]
    BadId,
    /// The JSON does not parse.
    #[error("invalid JSON payload")]
    BadJson,
    /// The payload does not fit the packet type (e.g. an EVENT without a name).
    #[error("invalid payload for this packet type")]
    BadPayload,
    /// A binary attachment arrived when none was expected.
    #[error("unexpected binary attachment")]
    UnexpectedBinary,
    /// A text packet arrived while attachments were still due.
    #[error("text packet while {0} attachments are still due")]
    AttachmentsDue(usize),
}

/// Decode one packet's text. Binary packets come back with no attachments yet and the
/// count still due: give them to a [`Decoder`], or use [`Decoder`] directly.
pub fn decode(text: &str) -> Result<(Packet, usize), DecodeError> {
    let b = text.as_bytes();
    let kind = PacketType::from_char(*b.first().ok_or(DecodeError::Empty)?)
        .ok_or(DecodeError::UnknownType)?;
    let mut i = 1;
    let mut due = 0usize;
    if kind.is_binary() {
        let dash = text[i..]
            .find('-')
            .filter(|&d| d > 0 && d <= 3)
            .ok_or(DecodeError::BadAttachments)?;
        due = text[i..i + dash]
            .parse()
            .map_err(|_| DecodeError::BadAttachments)?;
        if due == 0 || due > MAX_ATTACHMENTS {
            return Err(DecodeError::BadAttachments);
        }
        i += dash + 1;
    }
    let mut nsp = "/".to_string();
    if b.get(i) == Some(&b'/') {
        let end = text[i..].find(',').map_or(text.len(), |c| i + c);
        if end - i > MAX_NAMESPACE {
            return Err(DecodeError::BadNamespace);
        }
        nsp = text[i..end].to_string();
        i = (end + 1).min(text.len());
    }
    let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    let id = if digits > 0 {
        let id: u64 = text[i..i + digits]
            .parse()
            .map_err(|_| DecodeError::BadId)?;
        if id > MAX_ID || digits > 16 {
            return Err(DecodeError::BadId);
        }
        i += digits;
        Some(id)
    } else {
        None
    };
    let rest = &text[i..];
    let data = if rest.is_empty() {
        None
    } else {
        Some(serde_json::from_str::<Value>(rest).map_err(|_| DecodeError::BadJson)?)
    };
    let valid = match kind {
        PacketType::Connect => data.as_ref().is_none_or(Value::is_object),
        PacketType::Disconnect => data.is_none(),
        PacketType::ConnectError => data
            .as_ref()
            .is_some_and(|d| d.is_object() || d.is_string()),
        PacketType::Event | PacketType::BinaryEvent => data
            .as_ref()
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .is_some_and(|name| !RESERVED_EVENTS.contains(&name)),
        PacketType::Ack | PacketType::BinaryAck => {
            id.is_some() && data.as_ref().is_some_and(Value::is_array)
        }
    };
    if !valid {
        return Err(DecodeError::BadPayload);
    }
    Ok((
        Packet {
            kind,
            nsp,
            id,
            data,
            attachments: Vec::new(),
        },
        due,
    ))
}

/// Reassembles packets from Engine.IO messages: text messages, and for binary packets the
/// binary messages that follow them.
#[derive(Debug, Default)]
pub struct Decoder {
    pending: Option<(Packet, usize)>,
}

impl Decoder {
    /// A decoder with nothing pending.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// A text message; `Some` when a packet is complete.
    pub fn text(&mut self, text: &str) -> Result<Option<Packet>, DecodeError> {
        if let Some((_, due)) = &self.pending {
            return Err(DecodeError::AttachmentsDue(*due));
        }
        let (p, due) = decode(text)?;
        if due == 0 {
            return Ok(Some(p));
        }
        self.pending = Some((p, due));
        Ok(None)
    }

    /// A binary message (an attachment); `Some` when its packet is complete.
    pub fn binary(&mut self, data: Bytes) -> Result<Option<Packet>, DecodeError> {
        let Some((mut p, due)) = self.pending.take() else {
            return Err(DecodeError::UnexpectedBinary);
        };
        p.attachments.push(data);
        if due == 1 {
            return Ok(Some(p));
        }
        self.pending = Some((p, due - 1));
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ok(text: &str) -> Packet {
        let (p, due) = decode(text).unwrap();
        assert_eq!(due, 0);
        p
    }

    #[test]
    fn the_protocol_examples() {
        let p = ok("0");
        assert_eq!(
            (p.kind, p.nsp.as_str(), p.data),
            (PacketType::Connect, "/", None)
        );
        let p = ok("0/admin,{\"token\":\"123\"}");
        assert_eq!(p.nsp, "/admin");
        assert_eq!(p.data, Some(json!({"token": "123"})));
        let p = ok("2[\"hello\",1]");
        assert_eq!(p.event_name(), Some("hello"));
        let p = ok("2/admin,456[\"project:delete\",123]");
        assert_eq!((p.nsp.as_str(), p.id), ("/admin", Some(456)));
        let p = ok("3/admin,456[]");
        assert_eq!(
            (p.kind, p.id, p.data),
            (PacketType::Ack, Some(456), Some(json!([])))
        );
        let p = ok("4{\"message\":\"Not authorized\"}");
        assert_eq!(p.kind, PacketType::ConnectError);
        assert_eq!(ok("1/admin,").kind, PacketType::Disconnect);
    }

    #[test]
    fn binary_packets_collect_their_attachments() {
        let mut d = Decoder::new();
        assert_eq!(
            d.text("51-[\"hello\",{\"_placeholder\":true,\"num\":0}]"),
            Ok(None)
        );
        assert!(matches!(
            d.text("2[\"x\"]"),
            Err(DecodeError::AttachmentsDue(1))
        ));
        let p = d.binary(Bytes::from_static(&[1, 2, 3])).unwrap().unwrap();
        assert_eq!(p.kind, PacketType::BinaryEvent);
        assert_eq!(p.attachments, vec![Bytes::from_static(&[1, 2, 3])]);
        assert_eq!(d.binary(Bytes::new()), Err(DecodeError::UnexpectedBinary));
        // Encoding gives the same text back.
        let (text, att) = p.encode();
        assert_eq!(text, "51-[\"hello\",{\"_placeholder\":true,\"num\":0}]");
        assert_eq!(att.len(), 1);
    }

    #[test]
    fn invalid_packets_are_refused() {
        for bad in [
            "",
            "7",
            "2",
            "2{}",
            "2[]",
            "2[1]",
            "2[\"connect\"]",
            "3[]",
            "31",
            "1[]",
            "0[]",
            "4",
            "2/admin[\"x\"]x",
            "50-[\"a\"]",
            "511-[\"a\"]",
            "5[\"a\"]",
            "299999999999999999[\"a\"]",
            "2[\"a\"",
            "0/admin,\"s\"",
        ] {
            assert!(decode(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("0/{}", "a".repeat(300));
        assert_eq!(decode(&long), Err(DecodeError::BadNamespace));
    }

    #[test]
    fn encode_round_trips() {
        for p in [
            Packet::event("/", "message", [json!({"room": "r", "text": "hi"})]),
            Packet::event("/custom", "x", []),
            Packet::ack("/", 7, vec![json!({"ok": true})]),
        ] {
            let (text, _) = p.encode();
            assert_eq!(decode(&text).unwrap().0, p);
        }
    }
}
