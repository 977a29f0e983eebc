//! Runs ffmpeg: progress reports from `-progress pipe:1`, cancellation and timeouts that
//! kill ffmpeg's whole process group, a nice level, the tail of stderr in the error, and
//! a global limit on concurrent ffmpeg processes.

use std::ffi::OsString;
use std::future::Future;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;

use crate::process::{self, Tool};
use crate::progress::{Progress, ProgressParser};

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// ffmpeg could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// ffmpeg exited with an error; `stderr` is the end of what it said.
    #[error("ffmpeg failed ({status}): {stderr}")]
    Failed {
        /// Its exit status.
        status: ExitStatus,
        /// The last lines of its stderr.
        stderr: String,
    },
    /// The run was cancelled; ffmpeg was killed.
    #[error("cancelled")]
    Cancelled,
    /// The run took longer than its time limit; ffmpeg was killed.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Reading from or waiting for ffmpeg failed.
    #[error("i/o with ffmpeg: {0}")]
    Io(#[from] std::io::Error),
}

/// Runner settings.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The ffmpeg program (a name on `PATH` or a path).
    pub ffmpeg: String,
    /// The ffprobe program.
    pub ffprobe: String,
    /// ffmpeg processes running at once across every job of this runner.
    pub max_concurrent: usize,
    /// Nice level for ffmpeg (0–19; `None` leaves it as this process's).
    pub nice: Option<i32>,
    /// Bytes of stderr kept for error messages.
    pub stderr_tail: usize,
    /// Start ffmpeg through util-linux `setpriv --pdeathsig KILL` (when it is installed)
    /// so that ffmpeg dies with the thread that started it: a worker killed with -9
    /// leaves no ffmpeg running on. The thread is a tokio worker, alive as long as the
    /// runtime; turn this off if you run jobs from threads that come and go.
    pub die_with_parent: bool,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
            max_concurrent: 1,
            nice: Some(10),
            stderr_tail: 4096,
            die_with_parent: true,
        }
    }
}

/// One run's options.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The duration of what is produced (the input's), for percent and ETA.
    pub duration: Option<Duration>,
    /// Kill ffmpeg and fail after this long (from its start, not from queueing).
    pub timeout: Option<Duration>,
}

/// Whether util-linux `setpriv` is on `PATH`.
static SETPRIV: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join("setpriv").is_file()))
});

/// Runs ffmpeg commands; cheap to clone (clones share the concurrency limit).
#[derive(Debug, Clone)]
pub struct Runner {
    config: Arc<RunnerConfig>,
    limit: Arc<Semaphore>,
}

impl Runner {
    /// A runner with `config`.
    pub fn new(config: RunnerConfig) -> Runner {
        let limit = Arc::new(Semaphore::new(config.max_concurrent.max(1)));
        Runner {
            config: Arc::new(config),
            limit,
        }
    }

    /// Its settings.
    pub fn config(&self) -> &RunnerConfig {
        &self.config
    }

    /// Run ffmpeg with `args` (as built by [`crate::command`]), reporting progress to
    /// `on_progress` until it ends, `cancel` completes or the timeout passes. Waits for a
    /// free slot under the concurrency limit first (cancellable too).
    pub async fn run(
        &self,
        args: Vec<OsString>,
        options: &RunOptions,
        cancel: impl Future<Output = ()>,
        mut on_progress: impl FnMut(Progress),
    ) -> Result<(), RunError> {
        tokio::pin!(cancel);
        let _permit = tokio::select! {
            p = self.limit.acquire() => p.map_err(|_| RunError::Cancelled)?,
            () = &mut cancel => return Err(RunError::Cancelled),
        };
        let mut cmd = if self.config.die_with_parent && *SETPRIV {
            let mut c = Tool::new("setpriv");
            c.args(["--pdeathsig", "KILL", "--"])
                .arg(&self.config.ffmpeg);
            c
        } else {
            Tool::new(&self.config.ffmpeg)
        };
        cmd.args(["-progress", "pipe:1", "-nostats"]).args(args);
        let mut child = cmd.spawn().map_err(|e| RunError::Spawn {
            program: self.config.ffmpeg.clone(),
            source: e,
        })?;
        if let (Some(n), Some(pid)) = (
            self.config.nice,
            child
                .id()
                .and_then(|p| i32::try_from(p).ok())
                .and_then(rustix::process::Pid::from_raw),
        ) {
            // Best effort: a nice level is a courtesy, not a reason to fail the job.
            let _ = rustix::process::setpriority_process(Some(pid), n.clamp(0, 19));
        }
        let (Some(mut stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            process::kill_group(&child);
            return Err(RunError::Io(std::io::Error::other("no pipes to ffmpeg")));
        };
        let mut guard = process::GroupGuard::new(&child);
        let stderr = tokio::spawn(process::read_tail(stderr, self.config.stderr_tail));
        let mut parser = ProgressParser::new(options.duration);
        let deadline = options.timeout.map(|t| tokio::time::Instant::now() + t);
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(sleep);
        let mut buf = [0u8; 4096];
        let mut stdout_open = true;
        let status = loop {
            tokio::select! {
                n = stdout.read(&mut buf), if stdout_open => match n {
                    Ok(0) | Err(_) => stdout_open = false,
                    Ok(n) => parser.push(&buf[..n], &mut on_progress),
                },
                status = child.wait(), if !stdout_open => {
                    guard.disarm();
                    break status?;
                }
                () = &mut cancel => {
                    process::kill_group(&child);
                    let _ = child.wait().await;
                    guard.disarm();
                    return Err(RunError::Cancelled);
                }
                () = &mut sleep => {
                    process::kill_group(&child);
                    let _ = child.wait().await;
                    guard.disarm();
                    return Err(RunError::Timeout(options.timeout.unwrap_or_default()));
                }
            }
        };
        let tail = stderr.await.unwrap_or_default();
        if status.success() {
            Ok(())
        } else {
            Err(RunError::Failed {
                status,
                stderr: tail.trim().to_string(),
            })
        }
    }
}
