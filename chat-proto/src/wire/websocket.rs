//! The server side of WebSocket (RFC 6455), sans-IO and bounded: the handshake answer,
//! a frame decoder for client frames (masked, possibly fragmented, control frames
//! between fragments) and the encoder for server frames (unmasked).
//!
//! Written here rather than taken from a crate so that a connection costs only what it
//! must: the decoder keeps no buffer of its own beyond a message being reassembled, and a
//! broadcast frame is encoded once and shared by every receiver.

use bytes::{Buf, Bytes, BytesMut};
use sha1::{Digest, Sha1};

/// The GUID RFC 6455 appends to the client's key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.trim().as_bytes());
    h.update(GUID.as_bytes());
    let mut out = Vec::new();
    crate::wire::engineio::base64_encode(&h.finalize(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// A decoded message or control frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A complete text message (UTF-8 checked).
    Text(Bytes),
    /// A complete binary message.
    Binary(Bytes),
    /// A ping with its payload (answer with a pong carrying it).
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// The client closes: its status code (if given).
    Close(Option<u16>),
}

/// A client protocol violation; close the connection with [`FrameError::close_code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Reserved bits set.
    #[error("reserved bits set")]
    Reserved,
    /// An unknown opcode.
    #[error("unknown opcode {0}")]
    Opcode(u8),
    /// A client frame without a mask.
    #[error("client frames must be masked")]
    Unmasked,
    /// A control frame that is fragmented or longer than 125 bytes.
    #[error("bad control frame")]
    BadControl,
    /// A continuation with nothing to continue, or a new message inside a fragmented one.
    #[error("bad fragmentation")]
    BadFragment,
    /// A message over the size limit.
    #[error("message of at least {len} bytes is over the limit of {max}")]
    TooLarge {
        /// Its (announced) size so far.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A text message that is not UTF-8.
    #[error("text message is not UTF-8")]
    NotUtf8,
}

impl FrameError {
    /// The close status to send: 1009 for too large, 1007 for bad UTF-8, else 1002.
    pub fn close_code(&self) -> u16 {
        match self {
            FrameError::TooLarge { .. } => 1009,
            FrameError::NotUtf8 => 1007,
            _ => 1002,
        }
    }
}

/// Decodes client frames from a byte buffer the caller fills.
#[derive(Debug)]
pub struct Decoder {
    max_message: usize,
    /// A fragmented message being reassembled: (is text, bytes so far).
    partial: Option<(bool, BytesMut)>,
}

impl Decoder {
    /// A decoder refusing messages over `max_message` bytes.
    pub fn new(max_message: usize) -> Decoder {
        Decoder {
            max_message,
            partial: None,
        }
    }

    /// Take the next complete message out of `buf`; `Ok(None)` when more bytes are needed
    /// (nothing is consumed until a whole frame is there).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, FrameError> {
        loop {
            let Some(frame) = self.frame(buf)? else {
                return Ok(None);
            };
            if let Some(m) = frame {
                return Ok(Some(m));
            }
        }
    }

    /// One frame: `Ok(None)` for more bytes, `Ok(Some(None))` for a fragment consumed.
    #[allow(clippy::option_option)] // three outcomes, documented above
    fn frame(&mut self, buf: &mut BytesMut) -> Result<Option<Option<Message>>, FrameError> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (buf[0], buf[1]);
        if b0 & 0x70 != 0 {
            return Err(FrameError::Reserved);
        }
        let fin = b0 & 0x80 != 0;
        let opcode = b0 & 0x0f;
        if !matches!(opcode, 0x0..=0x2 | 0x8..=0xA) {
            return Err(FrameError::Opcode(opcode));
        }
        if b1 & 0x80 == 0 {
            return Err(FrameError::Unmasked);
        }
        let (len, header) = match b1 & 0x7f {
            126 => {
                if buf.len() < 4 {
                    return Ok(None);
                }
                (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
            }
            127 => {
                if buf.len() < 10 {
                    return Ok(None);
                }
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[2..10]);
                (u64::from_be_bytes(b), 10)
            }
            n => (u64::from(n), 2),
        };
        let control = opcode & 0x08 != 0;
        if control && (!fin || len > 125) {
            return Err(FrameError::BadControl);
        }
        let so_far = match (opcode, &self.partial) {
            (0x0, Some(p)) => p.1.len() as u64,
            _ => 0,
        };
        if so_far.saturating_add(len) > self.max_message as u64 {
            return Err(FrameError::TooLarge {
                len: so_far.saturating_add(len),
                max: self.max_message,
            });
        }
        let len = usize::try_from(len).map_err(|_| FrameError::TooLarge {
            len,
            max: self.max_message,
        })?;
        let total = header + 4 + len;
        if buf.len() < total {
            buf.reserve(total - buf.len());
            return Ok(None);
        }
        let mut mask = [0u8; 4];
        mask.copy_from_slice(&buf[header..header + 4]);
        buf.advance(header + 4);
        let mut payload = buf.split_to(len);
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= mask[i & 3];
        }
        match opcode {
            0x8 => {
                let code =
                    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                Ok(Some(Some(Message::Close(code))))
            }
            0x9 => Ok(Some(Some(Message::Ping(payload.freeze())))),
            0xA => Ok(Some(Some(Message::Pong(payload.freeze())))),
            0x0 => {
                let Some((text, mut acc)) = self.partial.take() else {
                    return Err(FrameError::BadFragment);
                };
                acc.extend_from_slice(&payload);
                if fin {
                    return Ok(Some(Some(finish(text, acc.freeze())?)));
                }
                self.partial = Some((text, acc));
                Ok(Some(None))
            }
            0x1 | 0x2 => {
                if self.partial.is_some() {
                    return Err(FrameError::BadFragment);
                }
                let text = opcode == 0x1;
                if fin {
                    return Ok(Some(Some(finish(text, payload.freeze())?)));
                }
                self.partial = Some((text, payload));
                Ok(Some(None))
            }
            op => Err(FrameError::Opcode(op)),
        }
    }
}

fn finish(text: bool, data: Bytes) -> Result<Message, FrameError> {
    if text {
        if std::str::from_utf8(&data).is_err() {
            return Err(FrameError::NotUtf8);
        }
        Ok(Message::Text(data))
    } else {
        Ok(Message::Binary(data))
    }
}

/// Frame kinds the server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// A text message.
    Text = 0x1,
    /// A binary message.
    Binary = 0x2,
    /// Close.
    Close = 0x8,
    /// Ping.
    Ping = 0x9,
    /// Pong.
    Pong = 0xA,
}

/// The header of an unmasked server frame carrying `len` payload bytes (write it, then
/// the payload, e.g. with one vectored write; the payload can be shared by every receiver).
pub fn frame_header(op: Opcode, len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = 0x80 | op as u8;
    let n = if len < 126 {
        #[allow(clippy::cast_possible_truncation)] // < 126
        {
            h[1] = len as u8;
        }
        2
    } else if let Ok(l) = u16::try_from(len) {
        h[1] = 126;
        h[2..4].copy_from_slice(&l.to_be_bytes());
        4
    } else {
        h[1] = 127;
        h[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    };
    (h, n)
}

/// A whole unmasked server frame.
pub fn encode_frame(op: Opcode, payload: &[u8]) -> Bytes {
    let (h, n) = frame_header(op, payload.len());
    let mut out = Vec::with_capacity(n + payload.len());
    out.extend_from_slice(&h[..n]);
    out.extend_from_slice(payload);
    Bytes::from(out)
}

/// A close frame with `code`.
pub fn close_frame(code: u16) -> Bytes {
    encode_frame(Opcode::Close, &code.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn client(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut v = vec![if fin { 0x80 } else { 0 } | op];
        match payload.len() {
            n if n < 126 => v.push(0x80 | n as u8),
            n if n <= 0xffff => {
                v.push(0x80 | 0x7e);
                v.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                v.push(0x80 | 0x7f);
                v.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        v.extend_from_slice(&mask);
        v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        v
    }

    #[test]
    fn the_rfc_handshake_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn frames_in_any_chunking_with_fragments_and_control_frames() {
        let mut wire = client(false, 0x1, b"Hel");
        wire.extend(client(true, 0x9, b"ping!"));
        wire.extend(client(true, 0x0, b"lo"));
        wire.extend(client(true, 0x2, &[0u8; 300]));
        wire.extend(client(true, 0x8, &1000u16.to_be_bytes()));
        for chunk in [1, 2, 5, 1000] {
            let mut d = Decoder::new(1024);
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for c in wire.chunks(chunk) {
                buf.extend_from_slice(c);
                while let Some(m) = d.decode(&mut buf).unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(
                got,
                [
                    Message::Ping(Bytes::from_static(b"ping!")),
                    Message::Text(Bytes::from_static(b"Hello")),
                    Message::Binary(Bytes::from(vec![0u8; 300])),
                    Message::Close(Some(1000)),
                ]
            );
        }
    }

    #[test]
    fn violations() {
        let cases: [(Vec<u8>, FrameError); 6] = [
            (
                vec![0x81, 0x05, b'h', b'e', b'l', b'l', b'o'],
                FrameError::Unmasked,
            ),
            (client(true, 0x3, b""), FrameError::Opcode(3)),
            (client(false, 0x9, b""), FrameError::BadControl),
            (client(true, 0x0, b"x"), FrameError::BadFragment),
            (client(true, 0x1, &[0xff, 0xfe]), FrameError::NotUtf8),
            (
                client(true, 0x2, &[0; 2000]),
                FrameError::TooLarge {
                    len: 2000,
                    max: 1024,
                },
            ),
        ];
        for (wire, err) in cases {
            let mut d = Decoder::new(1024);
            let mut buf = BytesMut::from(&wire[..]);
            assert_eq!(d.decode(&mut buf), Err(err.clone()), "{wire:?}");
        }
        // A 2^63-byte announcement is refused from the header alone.
        let mut buf =
            BytesMut::from(&[0x82u8, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            Decoder::new(1024).decode(&mut buf),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn server_frames() {
        assert_eq!(&encode_frame(Opcode::Text, b"hi")[..], b"\x81\x02hi");
        let big = encode_frame(Opcode::Binary, &[7; 300]);
        assert_eq!(&big[..4], &[0x82, 126, 1, 44]);
        let huge = frame_header(Opcode::Binary, 70_000);
        assert_eq!(
            &huge.0[..huge.1],
            &[0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]
        );
        assert_eq!(&close_frame(1009)[..], &[0x88, 2, 0x03, 0xf1]);
    }
}
