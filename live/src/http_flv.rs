//! HTTP-FLV: a subscription written as an FLV byte stream.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::hub::{HubItem, Subscription, SubscriptionEnd};
use crate::io::next_write_slot;

/// A subscription as a stream of FLV byte batches: the file header, then at most one batch
/// per `interval` (each the concatenated FLV form of the tags that arrived), until the
/// stream ends or the viewer falls too far behind. For HTTP servers that write a body
/// frame by frame (a request that cannot take its connection over, e.g. not the first on
/// a keep-alive connection); [`crate::fanout`] is the cheaper path that owns the socket.
pub fn flv_stream(
    sub: Subscription,
    interval: Duration,
    max_batch: usize,
) -> impl futures_util::Stream<Item = Bytes> + Send {
    struct State {
        sub: Subscription,
        header: Option<Bytes>,
        next: Instant,
        batch: Vec<HubItem>,
        parts: Vec<Bytes>,
        done: bool,
    }
    let state = State {
        sub,
        header: Some(file_header()),
        next: Instant::now(),
        batch: Vec::new(),
        parts: Vec::new(),
        done: false,
    };
    futures_util::stream::unfold(state, move |mut st| async move {
        if let Some(h) = st.header.take() {
            st.sub.count_out(h.len());
            return Some((h, st));
        }
        // Batches of only control items (publish/unpublish) carry no bytes: wait for more
        // (an empty frame would end a chunked body).
        loop {
            if st.done {
                return None;
            }
            tokio::time::sleep_until(st.next.into()).await;
            let first = st.sub.recv().await.ok()?;
            let more = gather(&mut st.sub, first, max_batch, &mut st.batch, &mut st.parts);
            // One frame per batch (hyper writes each frame with its own chunk header).
            let mut out = bytes::BytesMut::with_capacity(st.parts.iter().map(Bytes::len).sum());
            for part in st.parts.drain(..) {
                out.extend_from_slice(&part);
            }
            st.parts.shrink_to(32);
            st.sub.count_out(out.len());
            st.done = more.is_err();
            st.next = next_write_slot(Instant::now(), interval);
            if !out.is_empty() {
                return Some((out.freeze(), st));
            }
        }
    })
}

/// The FLV file header an HTTP-FLV body starts with (audio and video flagged).
pub(crate) fn file_header() -> Bytes {
    let header = videopick_flv::FlvHeader {
        version: 1,
        has_audio: true,
        has_video: true,
    };
    Bytes::copy_from_slice(&header.to_bytes())
}

/// Append the shared FLV bytes of `first` and of every other item ready now (up to
/// `max_batch`) to `out`; `Err` when the subscription ended after them.
fn gather(
    sub: &mut Subscription,
    first: HubItem,
    max_batch: usize,
    batch: &mut Vec<HubItem>,
    out: &mut Vec<Bytes>,
) -> Result<(), SubscriptionEnd> {
    batch.push(first);
    let more = sub.try_recv_ready(max_batch, batch);
    out.extend(batch.drain(..).filter_map(|item| match item {
        HubItem::Tag(t) => Some(t.flv_bytes().clone()),
        HubItem::Unpublished | HubItem::Published => None,
    }));
    // The first batch (the GOP cache) is large; keep only a small capacity after it.
    batch.shrink_to(32);
    more
}
