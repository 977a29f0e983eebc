//! Connection plumbing shared by the server and client sessions: chunk codec, outgoing
//! buffer, acknowledgements and status objects.

use bytes::{Bytes, BytesMut};
use videopick_flv::amf0::{Amf0Value, AmfLimits};

use crate::chunk::{ChunkDecoder, ChunkEncoder, ChunkLimits, RawMessage};
use crate::error::Result;
use crate::message::{Command, Message, UserControl};

/// Chunk stream ids used for what we send (the ones common servers use).
pub(crate) const CSID_CONTROL: u32 = 2;
pub(crate) const CSID_COMMAND: u32 = 3;
pub(crate) const CSID_STREAM: u32 = 5;
pub(crate) const CSID_AUDIO: u32 = 6;
pub(crate) const CSID_VIDEO: u32 = 7;

#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) decoder: ChunkDecoder,
    pub(crate) encoder: ChunkEncoder,
    pub(crate) amf_limits: AmfLimits,
    out: BytesMut,
    /// Bytes received from the peer (handshake included), for acknowledgements.
    received: u64,
    last_ack_sent: u64,
    /// Window the peer asked us to acknowledge at (its Window Acknowledgement Size).
    peer_window: u32,
    /// Highest sequence number the peer acknowledged.
    pub(crate) peer_acked: u32,
    /// Bytes handed out by `poll_transmit`.
    sent: u64,
}

impl Conn {
    pub(crate) fn new(chunk_limits: ChunkLimits, amf_limits: AmfLimits) -> Conn {
        Conn {
            decoder: ChunkDecoder::new(chunk_limits),
            encoder: ChunkEncoder::new(),
            amf_limits,
            out: BytesMut::new(),
            received: 0,
            last_ack_sent: 0,
            peer_window: 0,
            peer_acked: 0,
            sent: 0,
        }
    }

    pub(crate) fn count_received(&mut self, n: usize) {
        self.received += n as u64;
    }

    pub(crate) fn push_raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    pub(crate) fn send(&mut self, csid: u32, timestamp: u32, stream_id: u32, msg: &Message) {
        let raw = msg.to_raw(csid, timestamp, stream_id);
        self.encoder.encode(&raw, &mut self.out);
    }

    pub(crate) fn send_raw(&mut self, raw: &RawMessage) {
        self.encoder.encode(raw, &mut self.out);
    }

    pub(crate) fn send_command(&mut self, stream_id: u32, csid: u32, command: Command) {
        self.send(
            csid,
            0,
            stream_id,
            &Message::Command {
                command,
                amf3: false,
            },
        );
    }

    /// Announce and switch our outgoing chunk size.
    pub(crate) fn set_chunk_size(&mut self, size: u32) {
        self.send(CSID_CONTROL, 0, 0, &Message::SetChunkSize(size));
        self.encoder.set_chunk_size(size);
    }

    pub(crate) fn poll_transmit(&mut self) -> Option<Bytes> {
        (!self.out.is_empty()).then(|| {
            self.sent += self.out.len() as u64;
            self.out.split().freeze()
        })
    }

    /// Count bytes the caller sent directly on the socket.
    pub(crate) fn count_sent(&mut self, n: usize) {
        self.sent += n as u64;
    }

    /// Bytes sent that the peer has not acknowledged yet (sequence numbers wrap at 2³²,
    /// so this is exact while less than 4 GiB are outstanding).
    pub(crate) fn unacknowledged(&self) -> u32 {
        ((self.sent & 0xffff_ffff) as u32).wrapping_sub(self.peer_acked)
    }

    pub(crate) fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Handle the control messages both sides treat alike. Returns true when handled.
    pub(crate) fn handle_control(&mut self, msg: &Message) -> bool {
        match msg {
            // Set Chunk Size and Abort are applied by the decoder; peer bandwidth needs no
            // action from us.
            Message::SetChunkSize(_) | Message::Abort(_) | Message::SetPeerBandwidth { .. } => true,
            Message::WindowAckSize(w) => {
                self.peer_window = *w;
                true
            }
            Message::Ack(seq) => {
                self.peer_acked = *seq;
                true
            }
            Message::UserControl(UserControl::PingRequest(t)) => {
                let t = *t;
                self.send(
                    CSID_CONTROL,
                    0,
                    0,
                    &Message::UserControl(UserControl::PingResponse(t)),
                );
                true
            }
            _ => false,
        }
    }

    /// Queue an Acknowledgement when the peer's window has been received since the last one.
    pub(crate) fn maybe_ack(&mut self) {
        if self.peer_window > 0 && self.received - self.last_ack_sent >= u64::from(self.peer_window)
        {
            self.last_ack_sent = self.received;
            // The sequence number wraps at 2^32 as the spec's 4-byte field does.
            let seq = (self.received & 0xffff_ffff) as u32;
            self.send(CSID_CONTROL, 0, 0, &Message::Ack(seq));
        }
    }

    pub(crate) fn decode_next(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<(RawMessage, Message)>> {
        match self.decoder.decode(buf)? {
            Some(raw) => {
                let msg = Message::decode(&raw, self.amf_limits)?;
                Ok(Some((raw, msg)))
            }
            None => Ok(None),
        }
    }
}

/// An `onStatus`/`_result` info object: level, code, description.
pub(crate) fn status(level: &str, code: &str, description: &str) -> Amf0Value {
    Amf0Value::Object(vec![
        ("level".into(), Amf0Value::String(level.into())),
        ("code".into(), Amf0Value::String(code.into())),
        ("description".into(), Amf0Value::String(description.into())),
    ])
}

/// Split `name?query` (stream names and app names carry query strings such as stream keys).
pub(crate) fn split_query(s: &str) -> (String, Option<String>) {
    match s.split_once('?') {
        Some((n, q)) => (n.to_string(), Some(q.to_string())),
        None => (s.to_string(), None),
    }
}

/// An AMF number as a stream id, if it is one (integral, 0..=u32::MAX).
pub(crate) fn as_u32(n: f64) -> Option<u32> {
    (n.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&n)).then(|| {
        #[allow(clippy::cast_sign_loss)] // range checked above
        let v = n as u32;
        v
    })
}

/// Transaction ids are integral AMF numbers echoed verbatim, so exact comparison is right.
#[allow(clippy::float_cmp)]
pub(crate) fn same_tid(a: f64, b: f64) -> bool {
    a == b
}
