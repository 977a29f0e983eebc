//! RTMP messages: protocol control, user control, commands and data (AMF0 and AMF3),
//! audio, video and aggregate.

use bytes::{BufMut, Bytes, BytesMut};
use videopick_flv::amf0::{self, Amf0Value, AmfLimits};
use videopick_flv::{Tag, TagKind};

use crate::chunk::{RawMessage, msg_type, read_u32};
use crate::error::{Result, RtmpError};

/// User Control Message events (message type 4).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserControl {
    /// 0: the stream became functional.
    StreamBegin(u32),
    /// 1: playback of the stream ended.
    StreamEof(u32),
    /// 2: no more data on the stream.
    StreamDry(u32),
    /// 3: the client's buffer length in milliseconds.
    SetBufferLength {
        /// Stream id.
        stream_id: u32,
        /// Buffer length in ms.
        millis: u32,
    },
    /// 4: the stream is recorded.
    StreamIsRecorded(u32),
    /// 6: ping with a timestamp.
    PingRequest(u32),
    /// 7: ping answer echoing the timestamp.
    PingResponse(u32),
    /// Any other event type, kept verbatim.
    Other {
        /// Event type.
        event: u16,
        /// Event data.
        data: Bytes,
    },
}

impl UserControl {
    fn decode(p: &Bytes) -> Result<UserControl> {
        if p.len() < 2 {
            return Err(RtmpError::protocol(
                "user control message shorter than 2 bytes",
            ));
        }
        let event = u16::from_be_bytes([p[0], p[1]]);
        let data = p.slice(2..);
        let v = |what| read_u32(&data, what);
        Ok(match event {
            0 => UserControl::StreamBegin(v("StreamBegin")?),
            1 => UserControl::StreamEof(v("StreamEOF")?),
            2 => UserControl::StreamDry(v("StreamDry")?),
            3 => UserControl::SetBufferLength {
                stream_id: v("SetBufferLength")?,
                millis: read_u32(data.get(4..).unwrap_or_default(), "SetBufferLength")?,
            },
            4 => UserControl::StreamIsRecorded(v("StreamIsRecorded")?),
            6 => UserControl::PingRequest(v("PingRequest")?),
            7 => UserControl::PingResponse(v("PingResponse")?),
            _ => UserControl::Other { event, data },
        })
    }

    fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(10);
        let (event, a, b) = match self {
            UserControl::StreamBegin(s) => (0, *s, None),
            UserControl::StreamEof(s) => (1, *s, None),
            UserControl::StreamDry(s) => (2, *s, None),
            UserControl::SetBufferLength { stream_id, millis } => (3, *stream_id, Some(*millis)),
            UserControl::StreamIsRecorded(s) => (4, *s, None),
            UserControl::PingRequest(t) => (6, *t, None),
            UserControl::PingResponse(t) => (7, *t, None),
            UserControl::Other { event, data } => {
                out.put_u16(*event);
                out.put_slice(data);
                return out.freeze();
            }
        };
        out.put_u16(event);
        out.put_u32(a);
        if let Some(b) = b {
            out.put_u32(b);
        }
        out.freeze()
    }
}

/// A command message (`connect`, `publish`, `_result`, `onStatus`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Command name.
    pub name: String,
    /// Transaction id.
    pub transaction_id: f64,
    /// The command object (often `Null`).
    pub object: Amf0Value,
    /// Further arguments.
    pub args: Vec<Amf0Value>,
}

impl Command {
    /// A command with no arguments and a null command object.
    pub fn new(name: &str, transaction_id: f64) -> Command {
        Command {
            name: name.into(),
            transaction_id,
            object: Amf0Value::Null,
            args: Vec::new(),
        }
    }

    fn decode(body: &[u8], limits: AmfLimits) -> Result<Command> {
        let mut d = amf0::Amf0Decoder::new(body, limits);
        let name = match d.next_value()? {
            Some(Amf0Value::String(s)) => s,
            other => {
                return Err(RtmpError::protocol(format!(
                    "command without a name: {other:?}"
                )));
            }
        };
        let transaction_id = match d.next_value()? {
            Some(Amf0Value::Number(n)) => n,
            // Some clients omit it on notifications.
            None => 0.0,
            Some(other) => {
                return Err(RtmpError::protocol(format!(
                    "command {name:?} has transaction id {other:?}"
                )));
            }
        };
        let object = d.next_value()?.unwrap_or(Amf0Value::Null);
        let mut args = Vec::new();
        while let Some(v) = d.next_value()? {
            args.push(v);
        }
        Ok(Command {
            name,
            transaction_id,
            object,
            args,
        })
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        amf0::encode(&Amf0Value::String(self.name.clone()), &mut out);
        amf0::encode(&Amf0Value::Number(self.transaction_id), &mut out);
        amf0::encode(&self.object, &mut out);
        for a in &self.args {
            amf0::encode(a, &mut out);
        }
        out
    }
}

/// A decoded RTMP message.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Message {
    /// 1: Set Chunk Size.
    SetChunkSize(u32),
    /// 2: Abort the message on a chunk stream.
    Abort(u32),
    /// 3: Acknowledgement of bytes received so far.
    Ack(u32),
    /// 4: User Control event.
    UserControl(UserControl),
    /// 5: Window Acknowledgement Size.
    WindowAckSize(u32),
    /// 6: Set Peer Bandwidth (limit type 0 hard, 1 soft, 2 dynamic).
    SetPeerBandwidth {
        /// Window size.
        size: u32,
        /// Limit type.
        limit: u8,
    },
    /// 8: audio tag body.
    Audio(Bytes),
    /// 9: video tag body.
    Video(Bytes),
    /// 20 (AMF0) or 17 (AMF3) command.
    Command {
        /// The command.
        command: Command,
        /// Sent as AMF3 (type 17).
        amf3: bool,
    },
    /// 18 (AMF0) or 15 (AMF3) data message (`@setDataFrame`, `onMetaData`, …).
    Data {
        /// The raw AMF0 body (for AMF3 messages, without the leading format byte).
        body: Bytes,
        /// Sent as AMF3 (type 15).
        amf3: bool,
    },
    /// 22: several audio/video/data messages in FLV tag form; see [`split_aggregate`].
    Aggregate(Bytes),
    /// Any other type (shared objects, …), kept verbatim.
    Other {
        /// Message type id.
        type_id: u8,
        /// Body.
        body: Bytes,
    },
}

impl Message {
    /// Interpret a raw message under AMF `limits`.
    pub fn decode(raw: &RawMessage, limits: AmfLimits) -> Result<Message> {
        let p = &raw.payload;
        let u = |what| read_u32(p, what);
        Ok(match raw.type_id {
            msg_type::SET_CHUNK_SIZE => Message::SetChunkSize(u("Set Chunk Size")? & 0x7fff_ffff),
            msg_type::ABORT => Message::Abort(u("Abort")?),
            msg_type::ACK => Message::Ack(u("Acknowledgement")?),
            msg_type::USER_CONTROL => Message::UserControl(UserControl::decode(p)?),
            msg_type::WINDOW_ACK_SIZE => Message::WindowAckSize(u("Window Ack Size")?),
            msg_type::SET_PEER_BANDWIDTH => Message::SetPeerBandwidth {
                size: u("Set Peer Bandwidth")?,
                limit: *p.get(4).unwrap_or(&2),
            },
            msg_type::AUDIO => Message::Audio(p.clone()),
            msg_type::VIDEO => Message::Video(p.clone()),
            msg_type::COMMAND_AMF0 => Message::Command {
                command: Command::decode(p, limits)?,
                amf3: false,
            },
            msg_type::COMMAND_AMF3 => Message::Command {
                command: Command::decode(p.get(1..).unwrap_or_default(), limits)?,
                amf3: true,
            },
            msg_type::DATA_AMF0 => Message::Data {
                body: p.clone(),
                amf3: false,
            },
            msg_type::DATA_AMF3 => Message::Data {
                body: p.slice(1.min(p.len())..),
                amf3: true,
            },
            msg_type::AGGREGATE => Message::Aggregate(p.clone()),
            type_id => Message::Other {
                type_id,
                body: p.clone(),
            },
        })
    }

    /// The type id and body of this message.
    pub fn encode(&self) -> (u8, Bytes) {
        let u = |v: u32| Bytes::copy_from_slice(&v.to_be_bytes());
        match self {
            Message::SetChunkSize(v) => (msg_type::SET_CHUNK_SIZE, u(*v)),
            Message::Abort(v) => (msg_type::ABORT, u(*v)),
            Message::Ack(v) => (msg_type::ACK, u(*v)),
            Message::UserControl(e) => (msg_type::USER_CONTROL, e.encode()),
            Message::WindowAckSize(v) => (msg_type::WINDOW_ACK_SIZE, u(*v)),
            Message::SetPeerBandwidth { size, limit } => {
                let mut b = BytesMut::with_capacity(5);
                b.put_u32(*size);
                b.put_u8(*limit);
                (msg_type::SET_PEER_BANDWIDTH, b.freeze())
            }
            Message::Audio(b) => (msg_type::AUDIO, b.clone()),
            Message::Video(b) => (msg_type::VIDEO, b.clone()),
            Message::Command { command, amf3 } => {
                let body = command.encode();
                if *amf3 {
                    let mut v = Vec::with_capacity(body.len() + 1);
                    v.push(0);
                    v.extend_from_slice(&body);
                    (msg_type::COMMAND_AMF3, Bytes::from(v))
                } else {
                    (msg_type::COMMAND_AMF0, Bytes::from(body))
                }
            }
            Message::Data { body, amf3 } => {
                if *amf3 {
                    let mut v = BytesMut::with_capacity(body.len() + 1);
                    v.put_u8(0);
                    v.put_slice(body);
                    (msg_type::DATA_AMF3, v.freeze())
                } else {
                    (msg_type::DATA_AMF0, body.clone())
                }
            }
            Message::Aggregate(b) => (msg_type::AGGREGATE, b.clone()),
            Message::Other { type_id, body } => (*type_id, body.clone()),
        }
    }

    /// A raw message on chunk stream `csid` and message stream `stream_id` at `timestamp`.
    pub fn to_raw(&self, csid: u32, timestamp: u32, stream_id: u32) -> RawMessage {
        let (type_id, payload) = self.encode();
        RawMessage {
            csid,
            timestamp,
            type_id,
            stream_id,
            payload,
        }
    }
}

/// Split an aggregate message body into FLV tags. Sub-tag timestamps are rebased so the
/// first sub-tag has the aggregate message's `timestamp`. Bodies are slices of `body`.
pub fn split_aggregate(timestamp: u32, body: &Bytes) -> Result<Vec<Tag>> {
    let mut tags = Vec::new();
    let mut at = 0usize;
    let mut base: Option<u32> = None;
    while at < body.len() {
        let h = body
            .get(at..at + 11)
            .ok_or_else(|| RtmpError::protocol("aggregate sub-message header truncated"))?;
        let kind = TagKind::from_type_byte(h[0] & 0x1f)?;
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let start = at + 11;
        let end = start
            .checked_add(size)
            .filter(|&e| e <= body.len())
            .ok_or_else(|| RtmpError::protocol("aggregate sub-message body truncated"))?;
        let first = *base.get_or_insert(ts);
        tags.push(Tag {
            kind,
            timestamp: timestamp.wrapping_add(ts.wrapping_sub(first)),
            data: body.slice(start..end),
        });
        // Back pointer (4 bytes) follows each sub-message; tolerate its absence at the end.
        at = (end + 4).min(body.len());
    }
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(type_id: u8, payload: &[u8]) -> RawMessage {
        RawMessage {
            csid: 2,
            timestamp: 0,
            type_id,
            stream_id: 0,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn control_messages_bytes() {
        let cases: Vec<(Message, Vec<u8>)> = vec![
            (Message::SetChunkSize(4096), vec![0, 0, 0x10, 0]),
            (Message::Abort(5), vec![0, 0, 0, 5]),
            (Message::Ack(1000), vec![0, 0, 3, 0xe8]),
            (Message::WindowAckSize(2_500_000), vec![0, 0x26, 0x25, 0xa0]),
            (
                Message::SetPeerBandwidth {
                    size: 2_500_000,
                    limit: 2,
                },
                vec![0, 0x26, 0x25, 0xa0, 2],
            ),
            (
                Message::UserControl(UserControl::StreamBegin(1)),
                vec![0, 0, 0, 0, 0, 1],
            ),
            (
                Message::UserControl(UserControl::StreamEof(1)),
                vec![0, 1, 0, 0, 0, 1],
            ),
            (
                Message::UserControl(UserControl::StreamDry(1)),
                vec![0, 2, 0, 0, 0, 1],
            ),
            (
                Message::UserControl(UserControl::SetBufferLength {
                    stream_id: 1,
                    millis: 3000,
                }),
                vec![0, 3, 0, 0, 0, 1, 0, 0, 0x0b, 0xb8],
            ),
            (
                Message::UserControl(UserControl::StreamIsRecorded(1)),
                vec![0, 4, 0, 0, 0, 1],
            ),
            (
                Message::UserControl(UserControl::PingRequest(77)),
                vec![0, 6, 0, 0, 0, 77],
            ),
            (
                Message::UserControl(UserControl::PingResponse(77)),
                vec![0, 7, 0, 0, 0, 77],
            ),
        ];
        for (m, bytes) in cases {
            let (t, b) = m.encode();
            assert_eq!(&b[..], &bytes[..], "{m:?}");
            assert_eq!(
                Message::decode(&raw(t, &bytes), AmfLimits::default()).unwrap(),
                m
            );
        }
        assert!(Message::decode(&raw(1, &[0, 0]), AmfLimits::default()).is_err());
        assert!(Message::decode(&raw(4, &[0]), AmfLimits::default()).is_err());
    }

    #[test]
    fn commands_amf0_and_amf3() {
        let mut c = Command::new("publish", 5.0);
        c.args = vec![
            Amf0Value::String("key?sign=1".into()),
            Amf0Value::String("live".into()),
        ];
        for amf3 in [false, true] {
            let m = Message::Command {
                command: c.clone(),
                amf3,
            };
            let (t, b) = m.encode();
            assert_eq!(t, if amf3 { 17 } else { 20 });
            assert_eq!(
                Message::decode(&raw(t, &b), AmfLimits::default()).unwrap(),
                m
            );
        }
        assert!(
            Message::decode(
                &raw(20, &[0, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]),
                AmfLimits::default()
            )
            .is_err()
        );
    }

    #[test]
    fn command_data_and_media_bytes() {
        // createStream, transaction 2, null command object.
        let mut bytes = vec![2, 0, 12];
        bytes.extend_from_slice(b"createStream");
        bytes.extend_from_slice(&[0, 0x40, 0, 0, 0, 0, 0, 0, 0, 5]);
        let m = Message::decode(&raw(20, &bytes), AmfLimits::default()).unwrap();
        assert_eq!(
            m,
            Message::Command {
                command: Command::new("createStream", 2.0),
                amf3: false
            }
        );
        assert_eq!(&m.encode().1[..], &bytes[..]);
        // AMF3 data message: one format byte, then AMF0.
        let d = Message::decode(&raw(15, &[0, 5]), AmfLimits::default()).unwrap();
        assert_eq!(
            d,
            Message::Data {
                body: Bytes::from_static(&[5]),
                amf3: true
            }
        );
        assert_eq!(&d.encode().1[..], &[0, 5]);
        // Audio/video bodies pass through untouched; unknown types are kept.
        let a = Message::decode(&raw(8, &[0xaf, 1, 9]), AmfLimits::default()).unwrap();
        assert_eq!(a, Message::Audio(Bytes::from_static(&[0xaf, 1, 9])));
        let v = Message::decode(&raw(9, &[0x17, 1]), AmfLimits::default()).unwrap();
        assert_eq!(v.encode(), (9, Bytes::from_static(&[0x17, 1])));
        let o = Message::decode(&raw(19, &[1, 2]), AmfLimits::default()).unwrap();
        assert_eq!(
            o,
            Message::Other {
                type_id: 19,
                body: Bytes::from_static(&[1, 2])
            }
        );
    }

    #[test]
    fn aggregate_split_rebases_timestamps() {
        let mut body = BytesMut::new();
        for (kind, ts, data) in [(9u8, 1000u32, &b"vid"[..]), (8, 1020, &b"au"[..])] {
            let t = Tag::new(
                TagKind::from_type_byte(kind).unwrap(),
                ts,
                Bytes::copy_from_slice(data),
            );
            body.put_slice(&t.header_bytes().unwrap());
            body.put_slice(data);
            body.put_slice(&t.previous_tag_size());
        }
        let tags = split_aggregate(50, &body.freeze()).unwrap();
        assert_eq!(tags.len(), 2);
        assert_eq!(
            (tags[0].kind, tags[0].timestamp, &tags[0].data[..]),
            (TagKind::Video, 50, &b"vid"[..])
        );
        assert_eq!((tags[1].kind, tags[1].timestamp), (TagKind::Audio, 70));
        assert!(
            split_aggregate(
                0,
                &Bytes::from_static(&[9, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1])
            )
            .is_err()
        );
    }
}
