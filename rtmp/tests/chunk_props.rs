//! Property tests of the chunk stream: any messages, any chunk size, any input split.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use videopick_rtmp::chunk::{
    ChunkDecoder, ChunkEncoder, ChunkLimits, RawMessage, encode_standalone,
};

fn message() -> impl Strategy<Value = RawMessage> {
    (
        prop_oneof![3u32..10, 10u32..65_600],
        prop_oneof![0u32..100_000, any::<u32>(), 0xFF_FFF0u32..0x100_0010],
        8u8..23,
        0u32..4,
        proptest::collection::vec(any::<u8>(), 0..2000),
    )
        .prop_map(|(csid, timestamp, type_id, stream_id, p)| RawMessage {
            csid,
            timestamp,
            type_id,
            stream_id,
            payload: Bytes::from(p),
        })
}

fn decode(wire: &[u8], chunk_size: u32, cuts: &[usize]) -> Vec<RawMessage> {
    let mut d = ChunkDecoder::new(ChunkLimits::default().max_chunk_streams(1024));
    d.set_chunk_size(chunk_size).unwrap();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut at = 0;
    for &c in cuts.iter().chain(std::iter::once(&wire.len())) {
        let c = c.clamp(at, wire.len());
        buf.extend_from_slice(&wire[at..c]);
        at = c;
        while let Some(m) = d.decode(&mut buf).unwrap() {
            out.push(m);
        }
    }
    assert!(buf.is_empty());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn encode_decode_round_trip(
        msgs in proptest::collection::vec(message(), 1..12),
        chunk_size in prop_oneof![Just(1u32), 2u32..300, Just(4096), Just(65_536)],
        mut cuts in proptest::collection::vec(0usize..40_000, 0..8),
    ) {
        let mut e = ChunkEncoder::new();
        e.set_chunk_size(chunk_size);
        let mut wire = BytesMut::new();
        for m in &msgs {
            e.encode(m, &mut wire);
        }
        cuts.sort_unstable();
        prop_assert_eq!(decode(&wire, chunk_size, &cuts), msgs.clone());

        // The shareable standalone encoding decodes to the same messages too.
        let mut wire = BytesMut::new();
        for m in &msgs {
            encode_standalone(m, chunk_size, &mut wire);
        }
        prop_assert_eq!(decode(&wire, chunk_size, &[]), msgs);
    }

    #[test]
    fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let mut d = ChunkDecoder::default();
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = d.decode(&mut buf) {}
    }
}
