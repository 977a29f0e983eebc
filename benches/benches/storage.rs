//! Atomic publish (tmp file + fsync + rename + fsync parent) against the plain baseline
//! (`std::fs::write` then fsync of the file), for 1 MiB and 64 MiB files.

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::fs::File;
use std::io::Write;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use videopick_benches::payload;
use videopick_storage::{Storage, StorageOptions, VideoId};

fn atomic_write(c: &mut Criterion) {
    let dir = tempfile::tempdir_in(std::env::var_os("BENCH_DIR").unwrap_or_else(|| ".".into()))
        .expect("temp dir");
    let storage = Storage::open_with(dir.path(), StorageOptions::default().min_free_bytes(0))
        .expect("open storage");
    let target = storage
        .vod_dir(&VideoId::new("bench").unwrap())
        .join("file");
    let plain = dir.path().join("plain");

    let mut group = c.benchmark_group("storage_write");
    for (name, len, samples) in [("1MiB", 1usize << 20, 30), ("64MiB", 64 << 20, 10)] {
        let data = payload(len);
        group.throughput(Throughput::Bytes(len as u64));
        group.sample_size(samples);
        group.bench_with_input(BenchmarkId::new("atomic", name), &data, |b, data| {
            b.iter(|| storage.write_atomic(&target, data).unwrap());
        });
        group.bench_with_input(
            BenchmarkId::new("std_write_fsync", name),
            &data,
            |b, data| {
                b.iter(|| {
                    let mut f = File::create(&plain).unwrap();
                    f.write_all(data).unwrap();
                    f.sync_all().unwrap();
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, atomic_write);
criterion_main!(benches);
