//! Storage housekeeping: periodic sweeps of stale `tmp/` entries, recording retention and
//! the usage figures of `/metrics`.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use videopick_server::housekeeping::Housekeeper;
//! use videopick_storage::{RetentionPolicy, Storage, StorageOptions};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let storage = Storage::open_with(dir.path(), StorageOptions::default().min_free_bytes(0)).unwrap();
//! let keeper = Housekeeper::new(storage, RetentionPolicy::default());
//! keeper.run_once(SystemTime::now()).unwrap();
//! let text = keeper.render_metrics();
//! assert!(text.contains("videopick_storage_area_bytes{area=\"vod\"} 0"));
//! ```

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use videopick_storage::{Area, RetentionPolicy, Storage, StorageError, Usage};

/// Last figures gathered by a [`Housekeeper`].
#[derive(Debug, Clone, Default)]
struct Figures {
    usage: Vec<(Area, Usage)>,
    free_bytes: u64,
    scan_seconds: f64,
    tmp_removed: u64,
    tmp_removed_bytes: u64,
    recordings_removed: u64,
    recordings_removed_bytes: u64,
    runs: u64,
    errors: u64,
}

/// Periodic storage housekeeping: stale `tmp/` sweep, recording retention, usage figures for
/// `/metrics`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Housekeeper {
    storage: Storage,
    retention: RetentionPolicy,
    figures: Arc<Mutex<Figures>>,
}

impl Housekeeper {
    /// A housekeeper for `storage` applying `retention` to recordings.
    pub fn new(storage: Storage, retention: RetentionPolicy) -> Housekeeper {
        Housekeeper {
            storage,
            retention,
            figures: Arc::new(Mutex::new(Figures::default())),
        }
    }

    /// The storage it keeps.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Run both sweeps at `now` and refresh the usage figures. Blocking file-system work: call
    /// it from a blocking thread.
    pub fn run_once(&self, now: SystemTime) -> Result<(), StorageError> {
        let started = Instant::now();
        let result = (|| {
            let tmp = self.storage.sweep_tmp(now)?;
            let rec = self.storage.sweep_recordings(&self.retention, now)?;
            let mut usage = Vec::new();
            for area in Area::ALL {
                usage.push((area, self.storage.usage(area)?));
            }
            let free_bytes = self.storage.free_bytes()?;
            Ok((tmp, rec, usage, free_bytes))
        })();
        let mut f = self.figures.lock().unwrap_or_else(PoisonError::into_inner);
        f.runs += 1;
        match result {
            Ok((tmp, rec, usage, free_bytes)) => {
                f.tmp_removed += tmp.removed.len() as u64;
                f.tmp_removed_bytes += tmp.bytes_removed();
                f.recordings_removed += rec.removed.len() as u64;
                f.recordings_removed_bytes += rec.bytes_removed();
                f.usage = usage;
                f.free_bytes = free_bytes;
                f.scan_seconds = started.elapsed().as_secs_f64();
                Ok(())
            }
            Err(e) => {
                f.errors += 1;
                Err(e)
            }
        }
    }

    /// Run [`Housekeeper::run_once`] now and then every `interval`, forever, on tokio's
    /// blocking pool. Errors are reported on stderr and counted in the metrics.
    pub async fn run_every(self, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let me = self.clone();
            match tokio::task::spawn_blocking(move || me.run_once(SystemTime::now())).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "storage housekeeping failed"),
                Err(e) => tracing::error!(error = %e, "storage housekeeping panicked"),
            }
        }
    }

    /// The figures in Prometheus text exposition format.
    pub fn render_metrics(&self) -> String {
        let f = self
            .figures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let per_area = |pick: fn(&Usage) -> u64| -> Vec<(String, String)> {
            f.usage
                .iter()
                .map(|(a, u)| (format!("{{area=\"{a}\"}}"), pick(u).to_string()))
                .collect()
        };
        let one = |v: String| vec![(String::new(), v)];
        metric(
            "videopick_storage_area_bytes",
            "gauge",
            "Bytes stored per storage area.",
            &per_area(|u| u.bytes),
        );
        metric(
            "videopick_storage_area_files",
            "gauge",
            "Files stored per storage area.",
            &per_area(|u| u.files),
        );
        metric(
            "videopick_storage_free_bytes",
            "gauge",
            "Bytes available on the storage file system.",
            &one(f.free_bytes.to_string()),
        );
        metric(
            "videopick_storage_reserved_bytes",
            "gauge",
            "Bytes held by live space reservations.",
            &one(self.storage.reserved_bytes().to_string()),
        );
        metric(
            "videopick_storage_sweep_removed_total",
            "counter",
            "Entries removed by the storage sweeps.",
            &[
                ("{sweep=\"tmp\"}".into(), f.tmp_removed.to_string()),
                (
                    "{sweep=\"recordings\"}".into(),
                    f.recordings_removed.to_string(),
                ),
            ],
        );
        metric(
            "videopick_storage_sweep_removed_bytes_total",
            "counter",
            "Bytes removed by the storage sweeps.",
            &[
                ("{sweep=\"tmp\"}".into(), f.tmp_removed_bytes.to_string()),
                (
                    "{sweep=\"recordings\"}".into(),
                    f.recordings_removed_bytes.to_string(),
                ),
            ],
        );
        metric(
            "videopick_storage_housekeeping_runs_total",
            "counter",
            "Housekeeping passes run.",
            &one(f.runs.to_string()),
        );
        metric(
            "videopick_storage_housekeeping_errors_total",
            "counter",
            "Housekeeping passes that failed.",
            &one(f.errors.to_string()),
        );
        metric(
            "videopick_storage_scan_seconds",
            "gauge",
            "Duration of the last housekeeping pass.",
            &one(format!("{:.6}", f.scan_seconds)),
        );
        out
    }
}
