//! Writing to sockets: vectored writes of shared buffers and the write-slot clock that
//! batches many viewers' writes into the same timer ticks.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use tokio::io::AsyncWriteExt as _;

/// When a viewer that just wrote should write next: `interval` from `now`, rounded up to
/// the next of a grid of `interval / 8` steps shared by the whole process. Viewers then
/// wake in groups (one runtime wake-up serves many writes) instead of each on its own
/// timer, for at most an eighth of the interval of extra delay.
pub fn next_write_slot(now: Instant, interval: Duration) -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let step = (interval / 8).max(Duration::from_millis(1));
    let due = (now + interval).saturating_duration_since(epoch);
    let slot = due.as_nanos().div_ceil(step.as_nanos()) * step.as_nanos();
    epoch + Duration::from_nanos(u64::try_from(slot).unwrap_or(u64::MAX))
}

/// Write every buffer with vectored writes (at most 64 slices per call); `bufs` is left
/// empty. Returns the bytes written.
pub async fn write_all_vectored<W: tokio::io::AsyncWrite + Unpin>(
    wr: &mut W,
    bufs: &mut Vec<Bytes>,
) -> std::io::Result<usize> {
    let total: usize = bufs.iter().map(Bytes::len).sum();
    let mut start = 0;
    while start < bufs.len() {
        let slices: Vec<std::io::IoSlice<'_>> = bufs[start..]
            .iter()
            .take(64)
            .map(|b| std::io::IoSlice::new(b))
            .collect();
        let mut n = wr.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let first = &mut bufs[start];
            if n >= first.len() {
                n -= first.len();
                start += 1;
            } else {
                first.advance(n);
                n = 0;
            }
        }
    }
    bufs.clear();
    Ok(total)
}
