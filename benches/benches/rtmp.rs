//! RTMP chunk stream decode and encode of a realistic 2.5 Mbit/s stream (25 fps H.264 +
//! AAC, 10 s) at chunk sizes 128 and 4096, plus the allocations per decoded message.

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use bytes::{Bytes, BytesMut};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use videopick_benches::stream_tags;
use videopick_flv::TagKind;
use videopick_rtmp::chunk::{ChunkDecoder, ChunkEncoder, ChunkLimits, RawMessage, msg_type};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn messages() -> Vec<RawMessage> {
    stream_tags(10)
        .into_iter()
        .map(|t| {
            let (csid, type_id) = match t.kind {
                TagKind::Audio => (6, msg_type::AUDIO),
                TagKind::Video => (7, msg_type::VIDEO),
                TagKind::Script => (5, msg_type::DATA_AMF0),
            };
            RawMessage {
                csid,
                timestamp: t.timestamp,
                type_id,
                stream_id: 1,
                payload: t.data,
            }
        })
        .collect()
}

fn encode(msgs: &[RawMessage], chunk_size: u32) -> Bytes {
    let mut e = ChunkEncoder::new();
    e.set_chunk_size(chunk_size);
    let mut out = BytesMut::new();
    for m in msgs {
        e.encode(m, &mut out);
    }
    out.freeze()
}

fn decode_all(wire: &Bytes, chunk_size: u32) -> usize {
    let mut d = ChunkDecoder::new(ChunkLimits::default());
    d.set_chunk_size(chunk_size).unwrap();
    let mut buf = BytesMut::from(&wire[..]);
    let mut n = 0;
    while let Some(m) = d.decode(&mut buf).unwrap() {
        n += 1;
        std::hint::black_box(&m);
    }
    n
}

/// Heap allocations per decoded message, measured once with dhat and printed.
#[allow(clippy::cast_precision_loss)] // counts in the thousands
fn report_allocations(msgs: &[RawMessage]) {
    for chunk_size in [128u32, 4096] {
        let wire = encode(msgs, chunk_size);
        let profiler = dhat::Profiler::builder().testing().build();
        let before = dhat::HeapStats::get().total_blocks;
        let n = decode_all(&wire, chunk_size);
        let blocks = dhat::HeapStats::get().total_blocks - before;
        drop(profiler);
        // The input buffer copy made by decode_all is one block.
        eprintln!(
            "rtmp chunk decode @{chunk_size}: {n} messages, {} heap allocations besides the input buffer ({:.2} per message)",
            blocks.saturating_sub(1),
            blocks.saturating_sub(1) as f64 / n as f64
        );
    }
}

fn chunks(c: &mut Criterion) {
    let msgs = messages();
    report_allocations(&msgs);
    let mut group = c.benchmark_group("rtmp_chunk");
    for chunk_size in [128u32, 4096] {
        let wire = encode(&msgs, chunk_size);
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_with_input(BenchmarkId::new("decode", chunk_size), &wire, |b, wire| {
            b.iter(|| assert_eq!(decode_all(wire, chunk_size), msgs.len()));
        });
        group.bench_with_input(BenchmarkId::new("encode", chunk_size), &msgs, |b, msgs| {
            let mut out = BytesMut::with_capacity(wire.len());
            b.iter(|| {
                out.clear();
                let mut e = ChunkEncoder::new();
                e.set_chunk_size(chunk_size);
                for m in msgs {
                    e.encode(m, &mut out);
                }
                assert_eq!(out.len(), wire.len());
            });
        });
    }
    group.finish();
}

criterion_group!(benches, chunks);
criterion_main!(benches);
