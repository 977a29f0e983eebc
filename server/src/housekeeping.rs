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
//! let figures = keeper.figures();
//! assert_eq!(figures.runs, 1);
//! assert!(figures.usage.iter().all(|(_, u)| u.bytes == 0));
//! ```

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use videopick_storage::{Area, RetentionPolicy, Storage, StorageError, Usage};

/// Last figures gathered by a [`Housekeeper`] (served on `/metrics`).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Figures {
    /// Usage per storage area.
    pub usage: Vec<(Area, Usage)>,
    /// Bytes available on the file system.
    pub free_bytes: u64,
    /// Duration of the last pass.
    pub scan_seconds: f64,
    /// Stale `tmp/` entries removed.
    pub tmp_removed: u64,
    /// Their bytes.
    pub tmp_removed_bytes: u64,
    /// Recordings removed by retention.
    pub recordings_removed: u64,
    /// Their bytes.
    pub recordings_removed_bytes: u64,
    /// Passes run.
    pub runs: u64,
    /// Passes that failed.
    pub errors: u64,
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

    /// The last figures gathered.
    pub fn figures(&self) -> Figures {
        self.figures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
