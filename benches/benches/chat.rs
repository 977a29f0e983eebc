//! Chat fan-out engine: deliveries per second into member outboxes for one room of
//! 10,000 members (the frame is shared, never copied), and the codecs on the hot path.
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use videopick_chat_proto::fanout::{Outbox, OutboxConfig, Rooms};
use videopick_chat_proto::wire::{socketio, websocket};

fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("chat_fanout");
    for members in [1_000usize, 10_000] {
        let rooms: Rooms = Rooms::new();
        let outboxes: Vec<Arc<Outbox>> = (0..members)
            .map(|_| Arc::new(Outbox::new(OutboxConfig::default())))
            .collect();
        for (i, o) in outboxes.iter().enumerate() {
            rooms.join("live", i as u64, o.clone());
        }
        let frame = Bytes::from_static(
            b"42[\"message\",{\"room\":\"live\",\"id\":1234,\"user\":{\"id\":\"u1\",\"name\":\"viewer\"},\"text\":\"hello there\",\"ts\":1764150000000}]",
        );
        g.throughput(Throughput::Elements(members as u64));
        g.bench_function(format!("broadcast_{members}_members"), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let r = rooms.broadcast("live", &frame, None);
                    spent += t.elapsed();
                    assert_eq!(r.delivered, members);
                    // The writers' side, not timed: each member takes its frame.
                    for o in &outboxes {
                        let _ = o.try_pop();
                    }
                }
                spent
            });
        });
    }
    g.finish();
}

fn codecs(c: &mut Criterion) {
    let mut g = c.benchmark_group("chat_codecs");
    let text =
        "42[\"message\",{\"room\":\"live\",\"text\":\"hello there, how is the stream today?\"}]";
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("socketio_decode_event", |b| {
        b.iter(|| socketio::decode(std::hint::black_box(&text[1..])).unwrap());
    });
    let mut frame = vec![0x81u8, 0x80 | text.len() as u8, 1, 2, 3, 4];
    frame.extend(
        text.bytes()
            .enumerate()
            .map(|(i, b)| b ^ [1, 2, 3, 4][i & 3]),
    );
    g.bench_function("websocket_decode_masked_frame", |b| {
        let mut d = websocket::Decoder::new(1 << 20);
        b.iter(|| {
            let mut buf = BytesMut::from(&frame[..]);
            d.decode(&mut buf).unwrap().unwrap()
        });
    });
    g.finish();
}

criterion_group!(benches, fanout, codecs);
criterion_main!(benches);
