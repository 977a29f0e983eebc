//! The RTMP handshake, server and client side: simple (version 3, echo) and complex
//! (HMAC-SHA256 digests, schemes 0 and 1, with the published Flash Player / Flash Media
//! Server keys).
//!
//! Sans-IO: feed received bytes with `handle_input`, send what `poll_transmit` returns.
//! When `is_done()` turns true, any bytes left in the input buffer belong to the chunk
//! stream and must be handed to the session.

use bytes::{Buf, Bytes, BytesMut};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::error::{Result, RtmpError};

/// The RTMP version byte (C0/S0).
pub const RTMP_VERSION: u8 = 3;
/// Size of C1, S1, C2 and S2.
pub const HANDSHAKE_SIZE: usize = 1536;

const DIGEST_LEN: usize = 32;
const CRUD: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];
const FP_TEXT: &[u8; 30] = b"Genuine Adobe Flash Player 001";
const FMS_TEXT: &[u8; 36] = b"Genuine Adobe Flash Media Server 001";

/// Version this server announces in a complex S1 (FMS 5.0.3.1, as many servers do).
const SERVER_VERSION: [u8; 4] = [5, 0, 3, 1];
/// Version this client announces in a complex C1 (a Flash Player 9 version, as ffmpeg does).
const CLIENT_VERSION: [u8; 4] = [9, 0, 124, 2];

fn key_fp_full() -> [u8; 62] {
    let mut k = [0; 62];
    k[..30].copy_from_slice(FP_TEXT);
    k[30..].copy_from_slice(&CRUD);
    k
}

fn key_fms_full() -> [u8; 68] {
    let mut k = [0; 68];
    k[..36].copy_from_slice(FMS_TEXT);
    k[36..].copy_from_slice(&CRUD);
    k
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Where the 32-byte digest sits in a C1/S1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestScheme {
    /// Digest block first: offset from bytes 8..12, `sum % 728 + 12`.
    Scheme0,
    /// Key block first: offset from bytes 772..776, `sum % 728 + 776`.
    Scheme1,
}

impl DigestScheme {
    fn offset(self, buf: &[u8]) -> usize {
        let base = match self {
            DigestScheme::Scheme0 => 8,
            DigestScheme::Scheme1 => 772,
        };
        let sum: usize = buf[base..base + 4].iter().map(|&b| usize::from(b)).sum();
        sum % 728 + base + 4
    }
}

fn digest_at(buf: &[u8], offset: usize, key: &[u8]) -> [u8; DIGEST_LEN] {
    hmac(key, &[&buf[..offset], &buf[offset + DIGEST_LEN..]])
}

/// Find a valid digest in a C1/S1 under `key`, trying both schemes.
fn find_digest(buf: &[u8], key: &[u8]) -> Option<(DigestScheme, [u8; DIGEST_LEN])> {
    [DigestScheme::Scheme0, DigestScheme::Scheme1]
        .into_iter()
        .find_map(|scheme| {
            let off = scheme.offset(buf);
            let d = digest_at(buf, off, key);
            (buf[off..off + DIGEST_LEN] == d).then_some((scheme, d))
        })
}

fn imprint(buf: &mut [u8], scheme: DigestScheme, key: &[u8]) -> [u8; DIGEST_LEN] {
    let off = scheme.offset(buf);
    let d = digest_at(buf, off, key);
    buf[off..off + DIGEST_LEN].copy_from_slice(&d);
    d
}

/// Fill `buf` with pseudo-random bytes from `seed` (SplitMix64): handshake randomness need
/// not be secret, only varied; the seed is injected so sessions are deterministic in tests.
fn fill_random(buf: &mut [u8], seed: &mut u64) {
    for chunk in buf.chunks_mut(8) {
        *seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let b = z.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

fn c2_s2_signature(
    peer_digest: &[u8; DIGEST_LEN],
    full_key: &[u8],
    packet: &[u8],
) -> [u8; DIGEST_LEN] {
    let key = hmac(full_key, &[peer_digest]);
    hmac(&key, &[&packet[..HANDSHAKE_SIZE - DIGEST_LEN]])
}

/// Which kind of handshake the peer used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeKind {
    /// Version 3 with zero version field: S2/C2 echo C1/S1.
    Simple,
    /// HMAC-SHA256 digests in the given scheme.
    Complex(DigestScheme),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerState {
    AwaitC0C1,
    AwaitC2,
    Done,
}

/// Server side of the handshake.
///
/// ```
/// use bytes::BytesMut;
/// use videopick_rtmp::handshake::{ClientHandshake, ServerHandshake};
///
/// let mut client = ClientHandshake::new(0, 1, true);
/// let mut server = ServerHandshake::new(0, 2);
/// let (mut to_server, mut to_client) = (BytesMut::new(), BytesMut::new());
/// while !(client.is_done() && server.is_done()) {
///     while let Some(b) = client.poll_transmit() { to_server.extend_from_slice(&b); }
///     server.handle_input(&mut to_server).unwrap();
///     while let Some(b) = server.poll_transmit() { to_client.extend_from_slice(&b); }
///     client.handle_input(&mut to_client).unwrap();
/// }
/// assert!(server.kind().is_some());
/// ```
#[derive(Debug)]
pub struct ServerHandshake {
    state: ServerState,
    epoch: u32,
    seed: u64,
    out: Option<Bytes>,
    kind: Option<HandshakeKind>,
    s1_digest: Option<[u8; DIGEST_LEN]>,
    s1: Option<Bytes>,
    c2_valid: Option<bool>,
}

impl ServerHandshake {
    /// A server handshake announcing `epoch` (milliseconds, the S1 time field) and drawing
    /// its random bytes from `seed`.
    pub fn new(epoch: u32, seed: u64) -> Self {
        ServerHandshake {
            state: ServerState::AwaitC0C1,
            epoch,
            seed,
            out: None,
            kind: None,
            s1_digest: None,
            s1: None,
            c2_valid: None,
        }
    }

    /// True once C2 has been received.
    pub fn is_done(&self) -> bool {
        self.state == ServerState::Done
    }

    /// The kind of handshake the client used, once C1 is in.
    pub fn kind(&self) -> Option<HandshakeKind> {
        self.kind
    }

    /// For a complex handshake: whether C2 was valid — signed with our S1 digest (players) or
    /// an exact echo of S1 (what ffmpeg and librtmp send when publishing). An invalid C2 is
    /// tolerated, as other servers do; this reports it.
    pub fn c2_valid(&self) -> Option<bool> {
        self.c2_valid
    }

    /// Bytes to send (S0+S1+S2 once C0+C1 are in).
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.out.take()
    }

    /// Consume handshake bytes from the front of `buf`. Bytes after C2 are left in `buf`.
    pub fn handle_input(&mut self, buf: &mut BytesMut) -> Result<()> {
        loop {
            match self.state {
                ServerState::AwaitC0C1 => {
                    if let Some(&v) = buf.first()
                        && v != RTMP_VERSION
                    {
                        return Err(RtmpError::UnsupportedVersion(v));
                    }
                    if buf.len() < 1 + HANDSHAKE_SIZE {
                        return Ok(());
                    }
                    buf.advance(1);
                    let c1 = buf.split_to(HANDSHAKE_SIZE);
                    self.respond(&c1);
                    self.state = ServerState::AwaitC2;
                }
                ServerState::AwaitC2 => {
                    if buf.len() < HANDSHAKE_SIZE {
                        return Ok(());
                    }
                    let c2 = buf.split_to(HANDSHAKE_SIZE);
                    if let Some(s1d) = &self.s1_digest {
                        let sig = c2_s2_signature(s1d, &key_fp_full(), &c2);
                        let echoed = self.s1.as_deref() == Some(&c2[..]);
                        self.c2_valid = Some(echoed || c2[HANDSHAKE_SIZE - DIGEST_LEN..] == sig);
                    }
                    self.state = ServerState::Done;
                }
                ServerState::Done => return Ok(()),
            }
        }
    }

    fn respond(&mut self, c1: &[u8]) {
        let mut out = vec![0u8; 1 + 2 * HANDSHAKE_SIZE];
        out[0] = RTMP_VERSION;
        let complex = if c1[4..8] == [0, 0, 0, 0] {
            None
        } else {
            find_digest(c1, FP_TEXT)
        };
        let (s1, s2) = out[1..].split_at_mut(HANDSHAKE_SIZE);
        s1[..4].copy_from_slice(&self.epoch.to_be_bytes());
        fill_random(&mut s1[8..], &mut self.seed);
        match complex {
            None => {
                // Simple: zero version in S1, S2 echoes C1.
                s2.copy_from_slice(c1);
                self.kind = Some(HandshakeKind::Simple);
            }
            Some((scheme, c1_digest)) => {
                s1[4..8].copy_from_slice(&SERVER_VERSION);
                self.s1_digest = Some(imprint(s1, scheme, FMS_TEXT));
                fill_random(s2, &mut self.seed);
                let sig = c2_s2_signature(&c1_digest, &key_fms_full(), s2);
                s2[HANDSHAKE_SIZE - DIGEST_LEN..].copy_from_slice(&sig);
                self.kind = Some(HandshakeKind::Complex(scheme));
            }
        }
        let out = Bytes::from(out);
        if self.s1_digest.is_some() {
            self.s1 = Some(out.slice(1..=HANDSHAKE_SIZE));
        }
        self.out = Some(out);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientState {
    AwaitS0S1S2,
    Done,
}

/// Client side of the handshake.
#[derive(Debug)]
pub struct ClientHandshake {
    state: ClientState,
    seed: u64,
    out: Option<Bytes>,
    c1: Box<[u8; HANDSHAKE_SIZE]>,
    c1_digest: Option<[u8; DIGEST_LEN]>,
    kind: Option<HandshakeKind>,
}

impl ClientHandshake {
    /// A client handshake: `complex` sends a digest (scheme 0) as Flash Player and ffmpeg
    /// do; otherwise a simple handshake.
    pub fn new(epoch: u32, seed: u64, complex: bool) -> Self {
        let mut seed = seed;
        let mut c1 = Box::new([0u8; HANDSHAKE_SIZE]);
        c1[..4].copy_from_slice(&epoch.to_be_bytes());
        fill_random(&mut c1[8..], &mut seed);
        let c1_digest = if complex {
            c1[4..8].copy_from_slice(&CLIENT_VERSION);
            Some(imprint(&mut c1[..], DigestScheme::Scheme0, FP_TEXT))
        } else {
            None
        };
        let mut out = Vec::with_capacity(1 + HANDSHAKE_SIZE);
        out.push(RTMP_VERSION);
        out.extend_from_slice(&c1[..]);
        ClientHandshake {
            state: ClientState::AwaitS0S1S2,
            seed,
            out: Some(Bytes::from(out)),
            c1,
            c1_digest,
            kind: None,
        }
    }

    /// True once C2 has been produced (after S0+S1+S2 arrived).
    pub fn is_done(&self) -> bool {
        self.state == ClientState::Done
    }

    /// The kind of handshake the server answered with.
    pub fn kind(&self) -> Option<HandshakeKind> {
        self.kind
    }

    /// Bytes to send: C0+C1 first, then C2.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.out.take()
    }

    /// Consume S0+S1+S2 from the front of `buf`; bytes after them are left in `buf`.
    pub fn handle_input(&mut self, buf: &mut BytesMut) -> Result<()> {
        if self.state == ClientState::Done {
            return Ok(());
        }
        if let Some(&v) = buf.first()
            && v != RTMP_VERSION
        {
            return Err(RtmpError::UnsupportedVersion(v));
        }
        if buf.len() < 1 + 2 * HANDSHAKE_SIZE {
            return Ok(());
        }
        buf.advance(1);
        let s1 = buf.split_to(HANDSHAKE_SIZE);
        let s2 = buf.split_to(HANDSHAKE_SIZE);
        let server_digest = match self.c1_digest {
            Some(_) if s1[4..8] != [0, 0, 0, 0] => find_digest(&s1, FMS_TEXT),
            _ => None,
        };
        let mut c2 = vec![0u8; HANDSHAKE_SIZE];
        if let (Some((scheme, s1_digest)), Some(c1_digest)) = (server_digest, self.c1_digest) {
            let expect = c2_s2_signature(&c1_digest, &key_fms_full(), &s2);
            if s2[HANDSHAKE_SIZE - DIGEST_LEN..] != expect {
                return Err(RtmpError::Handshake(
                    "S2 signature does not match our C1 digest".into(),
                ));
            }
            fill_random(&mut c2, &mut self.seed);
            let sig = c2_s2_signature(&s1_digest, &key_fp_full(), &c2);
            c2[HANDSHAKE_SIZE - DIGEST_LEN..].copy_from_slice(&sig);
            self.kind = Some(HandshakeKind::Complex(scheme));
        } else {
            // Simple handshake: S2 must echo C1's random part (servers differ on the time
            // fields), and C2 echoes S1.
            if self.c1_digest.is_none() && s2[8..] != self.c1[8..] {
                return Err(RtmpError::Handshake("S2 does not echo C1".into()));
            }
            c2.copy_from_slice(&s1);
            self.kind = Some(HandshakeKind::Simple);
        }
        self.out = Some(Bytes::from(c2));
        self.state = ClientState::Done;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(complex: bool) -> (ServerHandshake, ClientHandshake, BytesMut, BytesMut) {
        let mut client = ClientHandshake::new(7, 11, complex);
        let mut server = ServerHandshake::new(9, 13);
        let (mut to_server, mut to_client) = (BytesMut::new(), BytesMut::new());
        for _ in 0..4 {
            while let Some(b) = client.poll_transmit() {
                to_server.extend_from_slice(&b);
            }
            server.handle_input(&mut to_server).unwrap();
            while let Some(b) = server.poll_transmit() {
                to_client.extend_from_slice(&b);
            }
            client.handle_input(&mut to_client).unwrap();
        }
        (server, client, to_server, to_client)
    }

    #[test]
    fn complex_handshake_validates_both_ways() {
        let (server, client, _, _) = run(true);
        assert!(server.is_done() && client.is_done());
        assert_eq!(
            server.kind(),
            Some(HandshakeKind::Complex(DigestScheme::Scheme0))
        );
        assert_eq!(client.kind(), server.kind());
        assert_eq!(server.c2_valid(), Some(true));
    }

    #[test]
    fn simple_handshake_echoes() {
        let (server, client, _, _) = run(false);
        assert_eq!(server.kind(), Some(HandshakeKind::Simple));
        assert_eq!(client.kind(), Some(HandshakeKind::Simple));
        assert_eq!(server.c2_valid(), None);
    }

    #[test]
    fn scheme1_digest_is_found() {
        let mut c1 = [0u8; HANDSHAKE_SIZE];
        let mut seed = 5;
        fill_random(&mut c1[8..], &mut seed);
        c1[4..8].copy_from_slice(&CLIENT_VERSION);
        let d = imprint(&mut c1, DigestScheme::Scheme1, FP_TEXT);
        assert_eq!(find_digest(&c1, FP_TEXT), Some((DigestScheme::Scheme1, d)));
        let mut server = ServerHandshake::new(0, 1);
        let mut buf = BytesMut::from(&[RTMP_VERSION][..]);
        buf.extend_from_slice(&c1);
        server.handle_input(&mut buf).unwrap();
        assert_eq!(
            server.kind(),
            Some(HandshakeKind::Complex(DigestScheme::Scheme1))
        );
        // The S1 digest is at the scheme-1 offset and valid under the FMS key.
        let out = server.poll_transmit().unwrap();
        assert_eq!(
            find_digest(&out[1..=HANDSHAKE_SIZE], FMS_TEXT).map(|x| x.0),
            Some(DigestScheme::Scheme1)
        );
    }

    #[test]
    fn bytes_after_c2_are_handed_over_and_versions_checked() {
        let mut client = ClientHandshake::new(0, 3, true);
        let mut server = ServerHandshake::new(0, 4);
        let mut to_server = BytesMut::new();
        to_server.extend_from_slice(&client.poll_transmit().unwrap());
        server.handle_input(&mut to_server).unwrap();
        let mut to_client = BytesMut::from(&server.poll_transmit().unwrap()[..]);
        client.handle_input(&mut to_client).unwrap();
        to_server.extend_from_slice(&client.poll_transmit().unwrap());
        to_server.extend_from_slice(b"\x02chunk");
        server.handle_input(&mut to_server).unwrap();
        assert!(server.is_done());
        assert_eq!(&to_server[..], b"\x02chunk");

        let mut s = ServerHandshake::new(0, 0);
        assert_eq!(
            s.handle_input(&mut BytesMut::from(&[6u8][..])),
            Err(RtmpError::UnsupportedVersion(6))
        );
    }

    #[test]
    fn corrupted_s2_is_rejected_by_the_client() {
        let mut client = ClientHandshake::new(0, 3, true);
        let mut server = ServerHandshake::new(0, 4);
        let mut to_server = BytesMut::from(&client.poll_transmit().unwrap()[..]);
        server.handle_input(&mut to_server).unwrap();
        let mut out = BytesMut::from(&server.poll_transmit().unwrap()[..]);
        let last = out.len() - 1;
        out[last] ^= 1;
        assert!(matches!(
            client.handle_input(&mut out),
            Err(RtmpError::Handshake(_))
        ));
    }
}
