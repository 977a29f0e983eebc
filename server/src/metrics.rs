//! One Prometheus registry per process, shared by every role it runs: the figures of the
//! storage, the live hub and its listeners, tus, the chat and its bus (read at scrape time
//! from the crates' counters), and histograms of HTTP request durations per route, of hook
//! calls and of transcoding jobs, plus `videopick_build_info`. `/metrics` of every role
//! answers the same OpenMetrics text.
//!
//! ```
//! let metrics = videopick_server::metrics::Metrics::new();
//! metrics.observe_http("media", "healthz", 200, std::time::Duration::from_millis(2));
//! let text = metrics.render();
//! assert!(text.contains("videopick_build_info{version=\""));
//! assert!(text.contains("videopick_http_request_duration_seconds_count{role=\"media\",route=\"healthz\",status=\"2xx\"} 1"));
//! assert!(text.ends_with("# EOF\n"));
//! ```

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::http::{HttpResponse, respond};
use videopick_live::proxy::TrustedProxies;

/// The content type of `/metrics` answers.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type HttpDurations = Family<[(&'static str, &'static str); 3], Histogram>;

/// The process's registry. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<RwLock<Registry>>,
    http: HttpDurations,
    /// Who may read `/metrics` (none listed: anyone); see [`Metrics::allow_from`].
    allowed: Arc<RwLock<Vec<TrustedProxies>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with `videopick_build_info` and the HTTP request histogram.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        registry.register(
            "videopick_build",
            "The running build.",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        let http = HttpDurations::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_5, 2.0, 16))
        });
        registry.register(
            "videopick_http_request_duration_seconds",
            "Time to answer an HTTP request (until its head; streamed bodies not included), by role, route and status class.",
            http.clone(),
        );
        Metrics {
            registry: Arc::new(RwLock::new(registry)),
            http,
            allowed: Arc::default(),
        }
    }

    /// Let only peers in `networks` read `/metrics` ([`Metrics::answer`]); several calls add
    /// up (each role of a process may name its own); an empty list changes nothing.
    pub fn allow_from(&self, networks: TrustedProxies) {
        if !networks.is_empty() {
            self.allowed
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(networks);
        }
    }

    /// Whether `peer` may read `/metrics`.
    pub fn allows(&self, peer: IpAddr) -> bool {
        let allowed = self
            .allowed
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        allowed.is_empty() || allowed.iter().any(|n| n.trusts(peer))
    }

    /// The `/metrics` answer for a request from `peer`: the metrics, or `404` to a peer
    /// outside the networks [`Metrics::allow_from`] named (as if there were nothing here).
    pub fn answer(&self, peer: IpAddr) -> HttpResponse {
        if self.allows(peer) {
            self.response()
        } else {
            respond(hyper::StatusCode::NOT_FOUND, "text/plain", "not found\n")
        }
    }

    /// Register more metrics (a collector, a hook client's or the jobs' histograms).
    pub fn register(&self, f: impl FnOnce(&mut Registry)) {
        f(&mut self
            .registry
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    /// Register a collector read at each scrape.
    pub fn register_collector(&self, collector: impl Collector) {
        self.register(|r| r.register_collector(Box::new(collector)));
    }

    /// Observe one answered HTTP request.
    pub fn observe_http(
        &self,
        role: &'static str,
        route: &'static str,
        status: u16,
        took: Duration,
    ) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.http
            .get_or_create(&[("role", role), ("route", route), ("status", class)])
            .observe(took.as_secs_f64());
    }

    /// The OpenMetrics text of everything registered.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self
            .registry
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }

    /// The `/metrics` answer.
    pub fn response(&self) -> HttpResponse {
        respond(hyper::StatusCode::OK, CONTENT_TYPE, self.render())
    }
}

/// A route's name for the HTTP histogram: a fixed set, so that paths never become labels.
pub fn media_route(path: &str) -> &'static str {
    #[allow(clippy::case_sensitive_file_extension_comparisons)] // the URL contract
    match path {
        "/metrics" => "metrics",
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        p if p.starts_with("/api/v1") => app_route(p),
        p if p.starts_with("/api/streams") => "api_streams",
        p if p.starts_with("/api/jobs") => "api_jobs",
        p if p.starts_with("/files") => "tus",
        p if p.starts_with("/vod/") => "vod",
        p if p.starts_with("/recordings/") => "recordings",
        p if p.ends_with(".flv") => "http_flv",
        p if crate::hls_http::is_hls_path(p) => "hls",
        _ => "other",
    }
}

/// The route label of an app-role request (a fixed set, whatever the path).
pub fn app_route(path: &str) -> &'static str {
    let rest = path.strip_prefix("/api/v1/").unwrap_or("");
    match rest.split('/').next().unwrap_or("") {
        _ if path == "/metrics" => "metrics",
        _ if path == "/healthz" || path == "/readyz" => "healthz",
        "auth" => "api_auth",
        "me" => "api_me",
        "channels" => "api_channels",
        "live" => "api_live",
        "videos" => "api_videos",
        "chat" => "api_chat",
        "admin" => "api_admin",
        "hooks" => "api_hooks",
        "openapi.json" => "api_openapi",
        _ => "other",
    }
}

/// Encodes constant samples into a collector's encoder.
pub(crate) struct Samples<'a, 'b>(pub(crate) &'a mut DescriptorEncoder<'b>);

impl Samples<'_, '_> {
    /// A counter `name` (`_total` is added) with `value`.
    pub(crate) fn counter(&mut self, name: &str, help: &str, value: u64) -> std::fmt::Result {
        let c = ConstCounter::new(value);
        c.encode(
            self.0
                .encode_descriptor(name, help, None, c.metric_type())?,
        )
    }

    /// A gauge `name` with `value`.
    pub(crate) fn gauge<V>(&mut self, name: &str, help: &str, value: V) -> std::fmt::Result
    where
        V: prometheus_client::encoding::EncodeGaugeValue,
    {
        let g = ConstGauge::new(value);
        g.encode(
            self.0
                .encode_descriptor(name, help, None, g.metric_type())?,
        )
    }

    /// A family of `kind` samples labelled `label`.
    pub(crate) fn family(
        &mut self,
        kind: MetricType,
        name: &str,
        help: &str,
        label: &'static str,
        values: &[(String, u64)],
    ) -> std::fmt::Result {
        let mut m = self.0.encode_descriptor(name, help, None, kind)?;
        for (l, v) in values {
            let labels = [(label, l.as_str())];
            let e = m.encode_family(&labels)?;
            if matches!(kind, MetricType::Counter) {
                ConstCounter::new(*v).encode(e)?;
            } else {
                ConstGauge::new(*v).encode(e)?;
            }
        }
        Ok(())
    }
}

/// The live hub, its RTMP listener and its HTTP-FLV viewers.
impl Collector for crate::streams::LiveHttp {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let (r, http_viewers) = self.counters();
        let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let streams = self.hub().streams();
        let viewers: u64 = streams.iter().map(|s| g(&s.stats().subscribers)).sum();
        let dropped: u64 = streams.iter().map(|s| g(&s.stats().dropped_slow)).sum();
        let skipped: u64 = streams.iter().map(|s| g(&s.stats().skipped_tags)).sum();
        let mut s = Samples(&mut encoder);
        s.counter(
            "videopick_rtmp_connections",
            "RTMP connections accepted.",
            g(&r.connections_total),
        )?;
        s.gauge(
            "videopick_rtmp_connections_open",
            "RTMP connections open.",
            g(&r.connections_open),
        )?;
        s.counter(
            "videopick_rtmp_received_bytes",
            "Bytes read from RTMP clients.",
            g(&r.bytes_in),
        )?;
        s.counter(
            "videopick_rtmp_sent_bytes",
            "Bytes written to RTMP clients.",
            g(&r.bytes_out),
        )?;
        s.counter(
            "videopick_rtmp_errors",
            "RTMP connections ended by an error or timeout.",
            g(&r.errors),
        )?;
        s.gauge(
            "videopick_rtmp_players",
            "RTMP players attached.",
            g(&r.players),
        )?;
        s.gauge(
            "videopick_httpflv_viewers",
            "HTTP-FLV viewers attached.",
            http_viewers,
        )?;
        s.gauge(
            "videopick_live_streams",
            "Live streams.",
            streams.len() as u64,
        )?;
        s.gauge(
            "videopick_live_viewers",
            "Viewers of all live streams (all protocols).",
            viewers,
        )?;
        s.counter(
            "videopick_live_slow_viewers_dropped",
            "Viewers dropped for falling behind.",
            dropped,
        )?;
        s.counter(
            "videopick_live_skipped_tags",
            "Tags skipped by lagging viewers.",
            skipped,
        )
    }
}

/// Storage usage and housekeeping.
impl Collector for crate::housekeeping::Housekeeper {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let f = self.figures();
        let per_area = |pick: fn(&videopick_storage::Usage) -> u64| -> Vec<(String, u64)> {
            f.usage
                .iter()
                .map(|(a, u)| (a.to_string(), pick(u)))
                .collect()
        };
        let mut s = Samples(&mut encoder);
        s.family(
            MetricType::Gauge,
            "videopick_storage_area_bytes",
            "Bytes stored per storage area.",
            "area",
            &per_area(|u| u.bytes),
        )?;
        s.family(
            MetricType::Gauge,
            "videopick_storage_area_files",
            "Files stored per storage area.",
            "area",
            &per_area(|u| u.files),
        )?;
        s.gauge(
            "videopick_storage_free_bytes",
            "Bytes available on the storage file system.",
            f.free_bytes,
        )?;
        s.gauge(
            "videopick_storage_reserved_bytes",
            "Bytes held by live space reservations.",
            self.storage().reserved_bytes(),
        )?;
        let sweeps =
            |tmp: u64, rec: u64| vec![("tmp".to_string(), tmp), ("recordings".to_string(), rec)];
        s.family(
            MetricType::Counter,
            "videopick_storage_sweep_removed",
            "Entries removed by the storage sweeps.",
            "sweep",
            &sweeps(f.tmp_removed, f.recordings_removed),
        )?;
        s.family(
            MetricType::Counter,
            "videopick_storage_sweep_removed_bytes",
            "Bytes removed by the storage sweeps.",
            "sweep",
            &sweeps(f.tmp_removed_bytes, f.recordings_removed_bytes),
        )?;
        s.counter(
            "videopick_storage_housekeeping_runs",
            "Housekeeping passes run.",
            f.runs,
        )?;
        s.counter(
            "videopick_storage_housekeeping_errors",
            "Housekeeping passes that failed.",
            f.errors,
        )?;
        s.gauge(
            "videopick_storage_scan_seconds",
            "Duration of the last housekeeping pass.",
            f.scan_seconds,
        )
    }
}

/// The tus service's counters.
#[derive(Debug)]
pub(crate) struct TusCollector(pub(crate) videopick_tus::service::TusService);

impl Collector for TusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let m = self.0.metrics();
        let mut s = Samples(&mut encoder);
        s.counter(
            "videopick_tus_uploads_created",
            "Uploads created.",
            m.created,
        )?;
        s.counter(
            "videopick_tus_uploads_finished",
            "Uploads completed.",
            m.finished,
        )?;
        s.counter(
            "videopick_tus_uploads_terminated",
            "Uploads terminated.",
            m.terminated,
        )?;
        s.counter(
            "videopick_tus_received_bytes",
            "Body bytes durably stored by PATCH requests.",
            m.bytes_received,
        )?;
        s.gauge(
            "videopick_tus_active_uploads",
            "Requests writing right now.",
            m.active_uploads,
        )
    }
}

/// The chat's counters and its bus.
pub(crate) struct ChatCollector(
    pub(crate) videopick_chat_proto::server::Server<videopick_chat_proto::app::chat::ChatApp>,
);

impl std::fmt::Debug for ChatCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChatCollector")
    }
}

impl Collector for ChatCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let app = self.0.app();
        let m = app.metrics();
        let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let disconnects: Vec<(String, u64)> = m
            .disconnects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        let mut s = Samples(&mut encoder);
        s.gauge(
            "videopick_chat_connections",
            "Engine.IO connections open.",
            self.0.connections() as u64,
        )?;
        s.gauge(
            "videopick_chat_rooms",
            "Rooms with members on this node.",
            app.room_count() as u64,
        )?;
        s.counter(
            "videopick_chat_messages_in",
            "Messages accepted.",
            g(&m.messages_in),
        )?;
        s.counter(
            "videopick_chat_messages_out",
            "Deliveries queued (one message to one member).",
            g(&m.messages_out),
        )?;
        s.counter(
            "videopick_chat_drops",
            "Deliveries that pushed out an older message of a slow member.",
            g(&m.drops),
        )?;
        s.counter(
            "videopick_chat_refused",
            "Connections refused at CONNECT.",
            g(&m.refused),
        )?;
        s.counter(
            "videopick_chat_bus_errors",
            "Bus operations that failed.",
            g(&m.bus_errors),
        )?;
        s.counter(
            "videopick_chat_bus_fallbacks",
            "Messages delivered to this node only because the bus was down.",
            g(&m.bus_fallbacks),
        )?;
        s.family(
            MetricType::Counter,
            "videopick_chat_disconnects",
            "Disconnects by reason.",
            "reason",
            &disconnects,
        )?;
        if let Some(b) = app.bus_metrics() {
            s.gauge(
                "videopick_chat_bus_up",
                "Whether the chat bus's store is reachable.",
                u64::from(b.up),
            )?;
            s.gauge(
                "videopick_chat_bus_subscriptions",
                "Rooms this node receives bus events of.",
                b.subscriptions,
            )?;
            s.counter(
                "videopick_chat_bus_reconnects",
                "Reconnections to the bus's store.",
                b.reconnects,
            )?;
            s.counter(
                "videopick_chat_bus_redis_errors",
                "Store operations that failed.",
                b.errors,
            )?;
            s.counter(
                "videopick_chat_bus_published",
                "Bus events published.",
                b.published,
            )?;
            s.counter(
                "videopick_chat_bus_received",
                "Bus events received.",
                b.received,
            )?;
            s.counter(
                "videopick_chat_bus_echoes_dropped",
                "This node's own bus events received back and dropped.",
                b.echoes_dropped,
            )?;
        }
        Ok(())
    }
}
