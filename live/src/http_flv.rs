//! HTTP-FLV: a subscription written as an FLV byte stream.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::hub::{HubItem, Subscription};
use crate::io::{next_write_slot, write_all_vectored};

/// Stream a subscription as an FLV byte stream (file header, then every tag's shared FLV
/// form) to `w`, batching at most one vectored write per `interval`, until the stream ends,
/// the viewer falls too far behind, or a write fails. This is HTTP-FLV's body (and an FLV
/// recorder's file). Returns the bytes written.
pub async fn write_flv<W: tokio::io::AsyncWrite + Unpin>(
    sub: &mut Subscription,
    w: &mut W,
    interval: Duration,
    max_batch: usize,
) -> std::io::Result<u64> {
    let header = videopick_flv::FlvHeader {
        version: 1,
        has_audio: true,
        has_video: true,
    };
    let mut out: Vec<Bytes> = vec![Bytes::copy_from_slice(&header.to_bytes())];
    let mut total = write_all_vectored(w, &mut out).await? as u64;
    sub.count_out(total as usize);
    let mut batch = Vec::new();
    let mut next_write = Instant::now();
    loop {
        tokio::time::sleep_until(next_write.into()).await;
        let Ok(first) = sub.recv().await else {
            return Ok(total);
        };
        batch.push(first);
        let more = sub.try_recv_ready(max_batch, &mut batch);
        out.extend(batch.drain(..).filter_map(|item| match item {
            HubItem::Tag(t) => Some(t.flv_bytes().clone()),
            HubItem::Unpublished | HubItem::Published => None,
        }));
        let n = write_all_vectored(w, &mut out).await?;
        // The first batch (the GOP cache) is large; keep only a small capacity after it.
        out.shrink_to(32);
        batch.shrink_to(32);
        sub.count_out(n);
        total += n as u64;
        if more.is_err() {
            return Ok(total);
        }
        next_write = next_write_slot(Instant::now(), interval);
    }
}
