//! The RTMP chunk stream: decoder and encoder.
//!
//! The decoder reassembles messages from chunks of formats 0–3 on chunk streams 2..=65599,
//! with extended timestamps (including on format-3 chunks), applying Set Chunk Size and
//! Abort as they arrive. Every message payload is its own buffer, copied once out of the
//! input (a single-chunk message) or assembled once into a buffer sized for the whole
//! message: never a slice of the read buffer, which a message kept for long (a live HLS
//! window) would pin, so the reader could never reuse it.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{Result, RtmpError};

/// Default chunk size of a new RTMP connection.
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Largest chunk stream id (3-byte basic header).
pub const MAX_CSID: u32 = 65_599;
const EXT: u32 = 0x00FF_FFFF;

/// Message type ids.
pub mod msg_type {
    /// Set Chunk Size.
    pub const SET_CHUNK_SIZE: u8 = 1;
    /// Abort Message.
    pub const ABORT: u8 = 2;
    /// Acknowledgement.
    pub const ACK: u8 = 3;
    /// User Control Message.
    pub const USER_CONTROL: u8 = 4;
    /// Window Acknowledgement Size.
    pub const WINDOW_ACK_SIZE: u8 = 5;
    /// Set Peer Bandwidth.
    pub const SET_PEER_BANDWIDTH: u8 = 6;
    /// Audio.
    pub const AUDIO: u8 = 8;
    /// Video.
    pub const VIDEO: u8 = 9;
    /// AMF3 data.
    pub const DATA_AMF3: u8 = 15;
    /// AMF3 shared object.
    pub const SHARED_OBJECT_AMF3: u8 = 16;
    /// AMF3 command.
    pub const COMMAND_AMF3: u8 = 17;
    /// AMF0 data.
    pub const DATA_AMF0: u8 = 18;
    /// AMF0 shared object.
    pub const SHARED_OBJECT_AMF0: u8 = 19;
    /// AMF0 command.
    pub const COMMAND_AMF0: u8 = 20;
    /// Aggregate.
    pub const AGGREGATE: u8 = 22;
}

/// A message as carried by the chunk stream (before its body is interpreted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// Chunk stream id it arrived on / is sent on.
    pub csid: u32,
    /// Timestamp in milliseconds (32 bits, wrapping).
    pub timestamp: u32,
    /// Message type id.
    pub type_id: u8,
    /// Message stream id.
    pub stream_id: u32,
    /// The body.
    pub payload: Bytes,
}

/// Limits the decoder enforces against the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChunkLimits {
    /// Largest chunk size the peer may set (default 64 KiB; the protocol allows 2³¹ − 1).
    pub max_chunk_size: u32,
    /// Largest message (default 8 MiB, far above any real video frame; the 24-bit length
    /// field allows up to 16 MiB − 1).
    pub max_message_size: u32,
    /// Most chunk streams with state at once (default 64).
    pub max_chunk_streams: usize,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        ChunkLimits {
            max_chunk_size: 65_536,
            max_message_size: 8 << 20,
            max_chunk_streams: 64,
        }
    }
}

impl ChunkLimits {
    /// Set [`ChunkLimits::max_chunk_size`].
    #[must_use]
    pub fn max_chunk_size(mut self, n: u32) -> Self {
        self.max_chunk_size = n;
        self
    }
    /// Set [`ChunkLimits::max_message_size`].
    #[must_use]
    pub fn max_message_size(mut self, n: u32) -> Self {
        self.max_message_size = n;
        self
    }
    /// Set [`ChunkLimits::max_chunk_streams`].
    #[must_use]
    pub fn max_chunk_streams(mut self, n: usize) -> Self {
        self.max_chunk_streams = n;
        self
    }
}

#[derive(Debug, Default)]
struct StreamState {
    timestamp: u32,
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// The last format 0/1/2 header used an extended timestamp field, whose raw value was
    /// `ext_value`.
    ext: bool,
    ext_value: u32,
    /// Message being assembled (`received == 0` when none).
    partial: BytesMut,
    received: u32,
    /// A format-0 header has been seen on this chunk stream.
    has_header: bool,
}

/// Chunk stream decoder; see the [module docs](self).
#[derive(Debug)]
pub struct ChunkDecoder {
    chunk_size: u32,
    limits: ChunkLimits,
    /// Streams 2..64 by index (the common case), others in a small list.
    low: Vec<Option<StreamState>>,
    high: Vec<(u32, StreamState)>,
    open: usize,
}

impl Default for ChunkDecoder {
    fn default() -> Self {
        Self::new(ChunkLimits::default())
    }
}

struct Header {
    fmt: u8,
    csid: u32,
    len: usize,
}

fn basic_header(buf: &[u8]) -> Option<Header> {
    let b0 = *buf.first()?;
    let fmt = b0 >> 6;
    let (csid, basic) = match b0 & 0x3f {
        0 => (64 + u32::from(*buf.get(1)?), 2),
        1 => (
            64 + u32::from(*buf.get(1)?) + 256 * u32::from(*buf.get(2)?),
            3,
        ),
        n => (u32::from(n), 1),
    };
    Some(Header {
        fmt,
        csid,
        len: basic,
    })
}

fn u24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

impl ChunkDecoder {
    /// A decoder at the default chunk size (128) with `limits`.
    pub fn new(limits: ChunkLimits) -> Self {
        ChunkDecoder {
            chunk_size: DEFAULT_CHUNK_SIZE,
            limits,
            low: (0..64).map(|_| None).collect(),
            high: Vec::new(),
            open: 0,
        }
    }

    /// The peer's current chunk size.
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Apply a chunk size (from a Set Chunk Size message), checked against the limit.
    pub fn set_chunk_size(&mut self, size: u32) -> Result<()> {
        if size == 0 || size > 0x7fff_ffff {
            return Err(RtmpError::protocol(format!("invalid chunk size {size}")));
        }
        if size > self.limits.max_chunk_size {
            return Err(RtmpError::LimitExceeded {
                what: "chunk size",
                value: u64::from(size),
                max: u64::from(self.limits.max_chunk_size),
            });
        }
        self.chunk_size = size;
        Ok(())
    }

    /// Drop the partly received message on `csid` (Abort Message).
    pub fn abort(&mut self, csid: u32) {
        if let Some(s) = self.state_mut(csid) {
            s.partial = BytesMut::new();
            s.received = 0;
        }
    }

    fn state_mut(&mut self, csid: u32) -> Option<&mut StreamState> {
        if csid < 64 {
            self.low[csid as usize].as_mut()
        } else {
            self.high
                .iter_mut()
                .find(|(id, _)| *id == csid)
                .map(|(_, s)| s)
        }
    }

    fn state_or_new(&mut self, csid: u32) -> Result<&mut StreamState> {
        let exists = if csid < 64 {
            self.low[csid as usize].is_some()
        } else {
            self.high.iter().any(|(id, _)| *id == csid)
        };
        if !exists {
            if self.open >= self.limits.max_chunk_streams {
                return Err(RtmpError::LimitExceeded {
                    what: "open chunk streams",
                    value: self.open as u64 + 1,
                    max: self.limits.max_chunk_streams as u64,
                });
            }
            self.open += 1;
            if csid < 64 {
                self.low[csid as usize] = Some(StreamState::default());
            } else {
                self.high.push((csid, StreamState::default()));
            }
        }
        self.state_mut(csid)
            .ok_or_else(|| RtmpError::protocol("chunk stream state vanished"))
    }

    /// Decode the next complete message from the front of `buf`. `Ok(None)`: more bytes
    /// are needed (what was consumed so far is kept in the decoder). Set Chunk Size and
    /// Abort messages are applied before they are returned.
    #[allow(clippy::too_many_lines)] // the hot path: one chunk-parsing step, kept together
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<RawMessage>> {
        loop {
            let Some(h) = basic_header(buf) else {
                return Ok(None);
            };
            if h.csid < 2 {
                return Err(RtmpError::protocol(format!("chunk stream id {}", h.csid)));
            }
            let chunk_size = self.chunk_size;
            let max_message = self.limits.max_message_size;
            let mh_len = [11usize, 7, 3, 0][usize::from(h.fmt)];
            if buf.len() < h.len + mh_len {
                return Ok(None);
            }
            let st = self.state_or_new(h.csid)?;
            if !st.has_header && h.fmt != 0 {
                return Err(RtmpError::protocol(format!(
                    "format {} chunk on chunk stream {} without a previous header",
                    h.fmt, h.csid
                )));
            }
            let mh = &buf[h.len..h.len + mh_len];
            // Fields of this header (ts field is a timestamp for fmt 0, a delta for 1 and 2).
            let ts_field = if h.fmt <= 2 { u24(mh) } else { 0 };
            let has_ext = if h.fmt <= 2 { ts_field == EXT } else { st.ext };
            let mut header_len = h.len + mh_len;
            let mut ext_value = 0;
            if has_ext {
                if buf.len() < header_len + 4 {
                    return Ok(None);
                }
                let v = u32::from_be_bytes([
                    buf[header_len],
                    buf[header_len + 1],
                    buf[header_len + 2],
                    buf[header_len + 3],
                ]);
                if h.fmt <= 2 || v == st.ext_value {
                    ext_value = v;
                    header_len += 4;
                } else {
                    // Format 3 chunk whose sender omitted the repeated extended timestamp
                    // (some encoders do): these 4 bytes are payload.
                    ext_value = st.ext_value;
                }
            }
            let (length, type_id) = if h.fmt <= 1 {
                (u24(&mh[3..6]), mh[6])
            } else {
                (st.length, st.type_id)
            };
            if length > max_message {
                return Err(RtmpError::LimitExceeded {
                    what: "message size",
                    value: u64::from(length),
                    max: u64::from(max_message),
                });
            }
            let starting = st.received == 0 || h.fmt <= 2;
            let already = if starting { 0 } else { st.received };
            let n = (length - already).min(chunk_size) as usize;
            if buf.len() < header_len + n {
                buf.reserve(header_len + n - buf.len());
                return Ok(None);
            }

            // The chunk is complete in `buf`: commit header state.
            match h.fmt {
                0 => {
                    st.stream_id = u32::from_le_bytes([mh[7], mh[8], mh[9], mh[10]]);
                    st.timestamp = if has_ext { ext_value } else { ts_field };
                    st.delta = 0;
                }
                1 | 2 => {
                    st.delta = if has_ext { ext_value } else { ts_field };
                    st.timestamp = st.timestamp.wrapping_add(st.delta);
                }
                _ => {
                    if starting {
                        st.timestamp = st.timestamp.wrapping_add(st.delta);
                    }
                }
            }
            if h.fmt <= 2 {
                st.ext = has_ext;
                st.ext_value = ext_value;
            }
            st.length = length;
            st.type_id = type_id;
            st.has_header = true;
            if starting && st.received != 0 {
                // A new header interrupted a partial message: the partial one is dropped.
                st.partial = BytesMut::new();
                st.received = 0;
            }
            buf.advance(header_len);

            let complete = already + n as u32 == length;
            let payload = if starting && complete {
                // Copied out, not split off: a message may be kept for long (a live HLS
                // window holds its tags for half a minute), and a slice would pin the whole
                // read buffer it came from — every block read, for a 400-byte audio tag —
                // so the reader could never reuse its buffer and faulted in fresh pages for
                // each read (10x the page faults of the same stream without HLS).
                let payload = Bytes::copy_from_slice(&buf[..n]);
                buf.advance(n);
                payload
            } else {
                if starting {
                    st.partial = BytesMut::with_capacity(length as usize);
                }
                st.partial.extend_from_slice(&buf[..n]);
                buf.advance(n);
                st.received = already + n as u32;
                if !complete {
                    continue;
                }
                st.received = 0;
                std::mem::take(&mut st.partial).freeze()
            };
            let msg = RawMessage {
                csid: h.csid,
                timestamp: st.timestamp,
                type_id,
                stream_id: st.stream_id,
                payload,
            };
            self.apply_control(&msg)?;
            return Ok(Some(msg));
        }
    }

    fn apply_control(&mut self, msg: &RawMessage) -> Result<()> {
        if msg.stream_id != 0 && msg.csid != 2 {
            return Ok(());
        }
        match msg.type_id {
            msg_type::SET_CHUNK_SIZE => {
                let v = read_u32(&msg.payload, "Set Chunk Size")? & 0x7fff_ffff;
                self.set_chunk_size(v)
            }
            msg_type::ABORT => {
                let csid = read_u32(&msg.payload, "Abort")?;
                self.abort(csid);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

pub(crate) fn read_u32(p: &[u8], what: &str) -> Result<u32> {
    p.get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| RtmpError::protocol(format!("{what} message shorter than 4 bytes")))
}

#[derive(Debug, Clone, Copy, Default)]
struct SentHeader {
    timestamp: u32,
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// The message's first header carried an extended timestamp.
    ext: bool,
    valid: bool,
}

/// Chunk stream encoder with header compression (formats 1–3 where the previous message on
/// the same chunk stream allows).
#[derive(Debug)]
pub struct ChunkEncoder {
    chunk_size: u32,
    sent: Vec<(u32, SentHeader)>,
}

impl Default for ChunkEncoder {
    fn default() -> Self {
        Self::new()
    }
}

fn put_basic(out: &mut BytesMut, fmt: u8, csid: u32) {
    if csid < 64 {
        out.put_u8((fmt << 6) | csid as u8);
    } else if csid < 320 {
        out.put_u8(fmt << 6);
        out.put_u8((csid - 64) as u8);
    } else {
        let v = csid - 64;
        out.put_u8((fmt << 6) | 1);
        out.put_u8((v & 0xff) as u8);
        out.put_u8((v >> 8) as u8);
    }
}

fn put_u24(out: &mut BytesMut, v: u32) {
    out.put_slice(&v.to_be_bytes()[1..]);
}

/// Encode `msg` as chunks of `chunk_size` with a format-0 first header and format-3
/// continuations: self-contained bytes that can be shared by every connection using that
/// chunk size (the live fan-out path).
pub fn encode_standalone(msg: &RawMessage, chunk_size: u32, out: &mut BytesMut) {
    let header = SentHeader::default();
    write_chunks(msg, chunk_size, 0, header, out);
}

/// The timestamp field of a first header: absolute for format 0, a delta otherwise.
fn field_of(fmt: u8, timestamp: u32, prev_timestamp: u32) -> u32 {
    if fmt == 0 {
        timestamp
    } else {
        timestamp.wrapping_sub(prev_timestamp)
    }
}

/// Write `msg` with a first header of format `fmt` computed against `prev`.
fn write_chunks(msg: &RawMessage, chunk_size: u32, fmt: u8, prev: SentHeader, out: &mut BytesMut) {
    let len = msg.payload.len() as u32;
    let field = field_of(fmt, msg.timestamp, prev.timestamp);
    let ext = field >= EXT;
    let chunk = chunk_size.max(1) as usize;
    let chunks = msg.payload.len().div_ceil(chunk).max(1);
    out.reserve(msg.payload.len() + 18 + (chunks - 1) * 8);
    put_basic(out, fmt, msg.csid);
    if fmt <= 2 {
        put_u24(out, if ext { EXT } else { field });
    }
    if fmt <= 1 {
        put_u24(out, len);
        out.put_u8(msg.type_id);
    }
    if fmt == 0 {
        out.put_u32_le(msg.stream_id);
    }
    if ext {
        out.put_u32(field);
    }
    let mut rest = &msg.payload[..];
    let first = rest.len().min(chunk);
    out.put_slice(&rest[..first]);
    rest = &rest[first..];
    while !rest.is_empty() {
        put_basic(out, 3, msg.csid);
        if ext {
            out.put_u32(field);
        }
        let n = rest.len().min(chunk);
        out.put_slice(&rest[..n]);
        rest = &rest[n..];
    }
}

impl ChunkEncoder {
    /// An encoder at the default chunk size (128).
    pub fn new() -> Self {
        ChunkEncoder {
            chunk_size: DEFAULT_CHUNK_SIZE,
            sent: Vec::new(),
        }
    }

    /// The chunk size in use (send a Set Chunk Size message before changing it).
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Use `size` for the following messages.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.clamp(1, 0x7fff_ffff);
    }

    /// Append the chunks of `msg` to `out`.
    pub fn encode(&mut self, msg: &RawMessage, out: &mut BytesMut) {
        let idx = if let Some(i) = self.sent.iter().position(|(id, _)| *id == msg.csid) {
            i
        } else {
            self.sent.push((msg.csid, SentHeader::default()));
            self.sent.len() - 1
        };
        let prev = self.sent[idx].1;
        let len = msg.payload.len() as u32;
        let delta = msg.timestamp.wrapping_sub(prev.timestamp);
        let fmt = if !prev.valid
            || prev.stream_id != msg.stream_id
            || msg.timestamp < prev.timestamp
            || delta >= EXT
        {
            0
        } else if prev.type_id != msg.type_id || prev.length != len {
            1
        } else if prev.delta != delta || prev.ext {
            // After an extended timestamp a format-3 header would have to repeat it, and
            // receivers disagree on that case; a format-2 header is unambiguous.
            2
        } else {
            3
        };
        write_chunks(msg, self.chunk_size, fmt, prev, out);
        self.sent[idx].1 = SentHeader {
            timestamp: msg.timestamp,
            delta: if fmt == 0 { 0 } else { delta },
            length: len,
            type_id: msg.type_id,
            stream_id: msg.stream_id,
            ext: fmt <= 2 && field_of(fmt, msg.timestamp, prev.timestamp) >= EXT,
            valid: true,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(csid: u32, ts: u32, type_id: u8, sid: u32, payload: &[u8]) -> RawMessage {
        RawMessage {
            csid,
            timestamp: ts,
            type_id,
            stream_id: sid,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    fn decode_all(d: &mut ChunkDecoder, bytes: &[u8]) -> Vec<RawMessage> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(m) = d.decode(&mut buf).unwrap() {
            out.push(m);
        }
        assert!(buf.is_empty());
        out
    }

    #[test]
    fn format0_single_chunk_bytes() {
        // fmt 0, csid 3, ts 1000, len 3, type 20, stream 1 (LE).
        let bytes = [
            0x03, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x03, 0x14, 0x01, 0x00, 0x00, 0x00, b'a', b'b',
            b'c',
        ];
        let mut d = ChunkDecoder::default();
        let got = decode_all(&mut d, &bytes);
        assert_eq!(got, vec![msg(3, 1000, 20, 1, b"abc")]);
        let mut e = ChunkEncoder::new();
        let mut out = BytesMut::new();
        e.encode(&got[0], &mut out);
        assert_eq!(&out[..], &bytes);
    }

    #[test]
    fn formats_1_2_3_and_continuations() {
        let mut d = ChunkDecoder::default();
        let mut bytes = vec![
            // fmt0 csid 4 ts 10 len 4 type 9 sid 1
            0x04, 0, 0, 10, 0, 0, 4, 9, 1, 0, 0, 0, 1, 2, 3, 4,
            // fmt1 csid 4 delta 5 len 2 type 8
            0x44, 0, 0, 5, 0, 0, 2, 8, 5, 6, // fmt2 csid 4 delta 7
            0x84, 0, 0, 7, 7, 8, // fmt3 csid 4: new message, same delta 7
            0xc4, 9, 10,
        ];
        // fmt0 csid 5, 200-byte message at chunk size 128: 128 + fmt3 + 72.
        bytes.extend_from_slice(&[0x05, 0, 0, 0, 0, 0, 200, 9, 1, 0, 0, 0]);
        bytes.extend(std::iter::repeat_n(0xaa, 128));
        bytes.push(0xc5);
        bytes.extend(std::iter::repeat_n(0xaa, 72));
        let got = decode_all(&mut d, &bytes);
        assert_eq!(got[0], msg(4, 10, 9, 1, &[1, 2, 3, 4]));
        assert_eq!(got[1], msg(4, 15, 8, 1, &[5, 6]));
        assert_eq!(got[2], msg(4, 22, 8, 1, &[7, 8]));
        assert_eq!(got[3], msg(4, 29, 8, 1, &[9, 10]));
        assert_eq!(got[4], msg(5, 0, 9, 1, &[0xaa; 200]));
    }

    #[test]
    fn two_and_three_byte_chunk_stream_ids() {
        for csid in [2u32, 63, 64, 319, 320, 65_599] {
            let m = msg(csid, 5, 18, 1, b"x");
            let mut out = BytesMut::new();
            ChunkEncoder::new().encode(&m, &mut out);
            let mut d = ChunkDecoder::default();
            assert_eq!(decode_all(&mut d, &out), vec![m], "csid {csid}");
        }
    }

    #[test]
    fn extended_timestamps_including_format3_chunks() {
        let big = 0x0100_0000;
        let m = msg(6, big, 9, 1, &[0x55; 300]);
        let mut out = BytesMut::new();
        ChunkEncoder::new().encode(&m, &mut out);
        // Header: ts field 0xFFFFFF then the 4-byte extended timestamp.
        assert_eq!(&out[1..4], &[0xff, 0xff, 0xff]);
        assert_eq!(&out[12..16], &big.to_be_bytes());
        // Each fmt3 continuation repeats the extended timestamp.
        assert_eq!(out[16 + 128], 0xc6);
        assert_eq!(&out[17 + 128..21 + 128], &big.to_be_bytes());
        let mut d = ChunkDecoder::default();
        assert_eq!(decode_all(&mut d, &out), vec![m.clone()]);

        // Senders that omit the repeat on fmt3 chunks are tolerated.
        let mut lax = BytesMut::new();
        lax.extend_from_slice(&out[..16 + 128]);
        lax.put_u8(0xc6);
        lax.extend_from_slice(&[0x55; 128]);
        lax.put_u8(0xc6);
        lax.extend_from_slice(&[0x55; 44]);
        let mut d = ChunkDecoder::default();
        assert_eq!(decode_all(&mut d, &lax), vec![m]);
    }

    #[test]
    fn set_chunk_size_and_abort_apply_immediately() {
        let mut e = ChunkEncoder::new();
        let mut out = BytesMut::new();
        e.encode(
            &msg(2, 0, msg_type::SET_CHUNK_SIZE, 0, &4096u32.to_be_bytes()),
            &mut out,
        );
        e.set_chunk_size(4096);
        let big = msg(6, 0, 9, 1, &[1; 3000]);
        e.encode(&big, &mut out);
        let mut d = ChunkDecoder::default();
        let got = decode_all(&mut d, &out);
        assert_eq!(d.chunk_size(), 4096);
        assert_eq!(got[1], big);

        // Abort drops a half-received message.
        let mut d = ChunkDecoder::default();
        let mut b = BytesMut::new();
        b.extend_from_slice(&[0x06, 0, 0, 0, 0, 0, 200, 9, 1, 0, 0, 0]);
        b.extend_from_slice(&[0; 128]);
        b.extend_from_slice(&[0x02, 0, 0, 0, 0, 0, 4, 2, 0, 0, 0, 0, 0, 0, 0, 6]);
        b.extend_from_slice(&[0x06, 0, 0, 0, 0, 0, 1, 9, 1, 0, 0, 0, 7]);
        let got = decode_all(&mut d, &b);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], msg(6, 0, 9, 1, &[7]));
    }

    #[test]
    fn limits_and_violations() {
        let mut d = ChunkDecoder::new(ChunkLimits::default().max_message_size(100));
        let mut b = BytesMut::from(&[0x03, 0, 0, 0, 0, 0, 200, 9, 1, 0, 0, 0][..]);
        assert!(matches!(
            d.decode(&mut b),
            Err(RtmpError::LimitExceeded {
                what: "message size",
                ..
            })
        ));

        let mut d = ChunkDecoder::default();
        let mut b = BytesMut::from(&[0x43, 0, 0, 0, 0, 0, 1, 9, 0][..]);
        assert!(matches!(d.decode(&mut b), Err(RtmpError::Protocol(_))));

        let mut d = ChunkDecoder::new(ChunkLimits::default().max_chunk_streams(2));
        let mut b = BytesMut::new();
        for csid in 3..6u8 {
            b.extend_from_slice(&[csid, 0, 0, 0, 0, 0, 1, 9, 1, 0, 0, 0, 0]);
        }
        assert!(d.decode(&mut b).is_ok());
        assert!(d.decode(&mut b).is_ok());
        assert!(matches!(
            d.decode(&mut b),
            Err(RtmpError::LimitExceeded { .. })
        ));

        let mut d = ChunkDecoder::default();
        let mut b = BytesMut::from(&[0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0x10, 0, 0, 0][..]);
        assert!(matches!(
            d.decode(&mut b),
            Err(RtmpError::LimitExceeded {
                what: "chunk size",
                ..
            })
        ));
        let mut b = BytesMut::from(&[0x02, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 0][..]);
        assert!(matches!(
            ChunkDecoder::default().decode(&mut b),
            Err(RtmpError::Protocol(_))
        ));
    }

    #[test]
    fn message_after_an_extended_timestamp_is_not_format3() {
        // Found by the rtmp_chunk fuzz target: two equal messages after an extended
        // timestamp; a format-3 header without the repeated field left the decoder waiting.
        let m = msg(3, 0xFFFF_DE83, 103, 5, b"");
        let mut e = ChunkEncoder::new();
        let mut out = BytesMut::new();
        e.encode(&m, &mut out);
        e.encode(&m, &mut out);
        let mut d = ChunkDecoder::default();
        assert_eq!(decode_all(&mut d, &out), vec![m.clone(), m]);
    }

    #[test]
    fn a_payload_does_not_pin_the_read_buffer() {
        let bytes = [0x03u8, 0, 0, 1, 0, 0, 3, 9, 1, 0, 0, 0, 1, 2, 3];
        let mut buf = BytesMut::with_capacity(64 * 1024);
        buf.extend_from_slice(&bytes);
        let base = buf.as_ptr() as usize;
        let m = ChunkDecoder::default().decode(&mut buf).unwrap().unwrap();
        assert_eq!(&m.payload[..], &[1, 2, 3]);
        let at = m.payload.as_ptr() as usize;
        assert!(!(base..base + 64 * 1024).contains(&at));
        // The reader gets its whole buffer back while the message lives on.
        buf.clear();
        buf.reserve(64 * 1024);
        assert_eq!(buf.as_ptr() as usize, base);
        drop(m);
    }

    #[test]
    fn standalone_encoding_decodes() {
        let m = msg(6, 123_456, 9, 1, &[3; 1000]);
        let mut out = BytesMut::new();
        encode_standalone(&m, 4096, &mut out);
        let mut d = ChunkDecoder::default();
        d.set_chunk_size(4096).unwrap();
        assert_eq!(decode_all(&mut d, &out), vec![m]);
    }
}
