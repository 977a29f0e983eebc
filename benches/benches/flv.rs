//! FLV demux and mux of a realistic 2.5 Mbit/s stream, and AMF0 decode of an RTMP
//! `connect` command.

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use videopick_benches::{connect_command, stream_tags};
use videopick_flv::{FlvDemuxer, FlvHeader, FlvItem, FlvMuxer, amf0};

fn flv(c: &mut Criterion) {
    let tags = stream_tags(10);
    let mut file = BytesMut::new();
    let mut mux = FlvMuxer::new();
    let header = FlvHeader {
        version: 1,
        has_audio: true,
        has_video: true,
    };
    mux.write_header(header, &mut file);
    for t in &tags {
        mux.write_tag(t, &mut file).unwrap();
    }
    let file = file.freeze();

    let mut group = c.benchmark_group("flv");
    group.throughput(Throughput::Bytes(file.len() as u64));
    group.bench_function("demux_2.5mbps_10s", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&file[..]);
            let mut d = FlvDemuxer::new();
            let mut n = 0;
            while let Some(item) = d.decode(&mut buf).unwrap() {
                if let FlvItem::Tag(_) = item {
                    n += 1;
                }
            }
            assert_eq!(n, tags.len());
        });
    });
    group.bench_function("mux_2.5mbps_10s", |b| {
        let mut out = BytesMut::with_capacity(file.len());
        b.iter(|| {
            out.clear();
            let mut m = FlvMuxer::new();
            m.write_header(header, &mut out);
            for t in &tags {
                m.write_tag(t, &mut out).unwrap();
            }
            assert_eq!(out.len(), file.len());
        });
    });
    group.finish();

    let cmd = connect_command();
    let mut group = c.benchmark_group("amf0");
    group.throughput(Throughput::Bytes(cmd.len() as u64));
    group.bench_function("decode_connect", |b| {
        b.iter(|| amf0::decode_all(&cmd).unwrap());
    });
    group.finish();
}

criterion_group!(benches, flv);
criterion_main!(benches);
