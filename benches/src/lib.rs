//! Criterion benches of VideoPick's hot paths live in `benches/`; run them with
//! `cargo bench -p videopick-benches`. Results are recorded in `docs/BENCHMARKS.md`.
//!
//! This library only holds helpers shared by the benches.
//!
//! ```
//! let data = videopick_benches::payload(4);
//! assert_eq!(data.len(), 4);
//! ```

/// A deterministic, non-compressible-looking payload of `len` bytes.
pub fn payload(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}
