//! Lifecycle events to a webhook: every publish, unpublish, play and stop of a [`Hub`] is
//! POSTed as JSON through the one [`HookClient`], with retries.

use std::time::UNIX_EPOCH;

use tokio::sync::broadcast::error::RecvError;
use videopick_hooks::HookClient;

use crate::hub::{Hub, LiveEvent};

/// A lifecycle event as the webhook's JSON body: `{"event", "key", "protocol", "peer",
/// "at_ms"}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EventBody {
    /// `publish`, `unpublish`, `play` or `stop`.
    pub event: &'static str,
    /// `app/stream`.
    pub key: String,
    /// `rtmp` or `http-flv`.
    pub protocol: &'static str,
    /// The client's address, if known.
    pub peer: Option<String>,
    /// When, in Unix milliseconds.
    pub at_ms: u64,
}

impl From<&LiveEvent> for EventBody {
    fn from(ev: &LiveEvent) -> EventBody {
        EventBody {
            event: ev.kind.as_str(),
            key: ev.key.clone(),
            protocol: ev.protocol,
            peer: ev.peer.map(|p| p.to_string()),
            at_ms: ev
                .at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

/// Post every lifecycle event of `hub` to `url` ([`HookClient::deliver`]: retries with
/// backoff, then gives up on that event). Runs until the hub is dropped.
pub fn spawn_event_webhook(
    hub: &Hub,
    client: HookClient,
    url: String,
) -> tokio::task::JoinHandle<()> {
    let mut rx = hub.events();
    tokio::spawn(async move {
        loop {
            let ev = match rx.recv().await {
                Ok(ev) => ev,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "event webhook fell behind");
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            let _ = client.deliver(&url, &EventBody::from(&ev)).await;
        }
    })
}
