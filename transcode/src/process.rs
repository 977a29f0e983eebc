//! Child processes the way ffmpeg jobs need them: each in its own process group (so a
//! kill reaches anything it started), stdin closed, killed when dropped, stderr kept as a
//! bounded tail for error messages.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};

/// A command for `program`, set up as every job's child process is.
pub(crate) struct Tool;

impl Tool {
    #[allow(clippy::new_ret_no_self)] // a configured tokio Command is the point
    pub(crate) fn new(program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new(program);
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        c
    }
}

/// Kill `child`'s whole process group (ffmpeg and anything it started).
pub(crate) fn kill_group(child: &Child) {
    if let Some(pid) = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Kills a child's process group when dropped (a run abandoned midway, e.g. its task
/// cancelled), unless disarmed once the child was waited for.
pub(crate) struct GroupGuard(Option<rustix::process::Pid>);

impl GroupGuard {
    pub(crate) fn new(child: &Child) -> GroupGuard {
        GroupGuard(
            child
                .id()
                .and_then(|p| i32::try_from(p).ok())
                .and_then(rustix::process::Pid::from_raw),
        )
    }

    /// The child was reaped: its pid may be reused, so never signal it again.
    pub(crate) fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

/// The last `cap` bytes of a stream, as text.
#[derive(Debug)]
pub(crate) struct Tail {
    buf: VecDeque<u8>,
    cap: usize,
}

impl Tail {
    pub(crate) fn new(cap: usize) -> Tail {
        Tail {
            buf: VecDeque::with_capacity(cap.min(4096)),
            cap,
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        let bytes = &bytes[bytes.len().saturating_sub(self.cap)..];
        let over = (self.buf.len() + bytes.len()).saturating_sub(self.cap);
        self.buf.drain(..over.min(self.buf.len()));
        self.buf.extend(bytes);
    }

    /// The tail as text, starting at a line boundary when one is near.
    pub(crate) fn text(&self) -> String {
        let (a, b) = self.buf.as_slices();
        let mut v = Vec::with_capacity(self.buf.len());
        v.extend_from_slice(a);
        v.extend_from_slice(b);
        let s = String::from_utf8_lossy(&v).into_owned();
        if self.buf.len() >= self.cap
            && let Some(i) = s.find('\n')
        {
            return s[i + 1..].to_string();
        }
        s
    }
}

/// Read `r` to its end, keeping the last `cap` bytes.
pub(crate) async fn read_tail(mut r: impl AsyncRead + Unpin, cap: usize) -> String {
    let mut tail = Tail::new(cap);
    let mut chunk = [0u8; 4096];
    while let Ok(n) = r.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        tail.push(&chunk[..n]);
    }
    tail.text()
}

/// What a finished command gave.
pub(crate) struct Output {
    pub(crate) status: ExitStatus,
    pub(crate) success: bool,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr_tail: String,
}

/// Why [`output`] failed.
pub(crate) enum OutputError {
    Spawn(std::io::Error),
    Timeout,
    Io(std::io::Error),
}

/// Run `cmd` to completion within `timeout`, collecting at most `max_stdout` bytes of
/// stdout (more is an error) and the last 4 KiB of stderr.
pub(crate) async fn output(
    mut cmd: Command,
    timeout: Duration,
    max_stdout: usize,
) -> Result<Output, OutputError> {
    let mut child = cmd.spawn().map_err(OutputError::Spawn)?;
    let (Some(mut out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(OutputError::Io(std::io::Error::other("no pipes")));
    };
    let stderr = tokio::spawn(read_tail(err, 4096));
    let work = async {
        let mut stdout = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = out.read(&mut chunk).await.map_err(OutputError::Io)?;
            if n == 0 {
                break;
            }
            if stdout.len() + n > max_stdout {
                return Err(OutputError::Io(std::io::Error::other(format!(
                    "output over {max_stdout} bytes"
                ))));
            }
            stdout.extend_from_slice(&chunk[..n]);
        }
        let status = child.wait().await.map_err(OutputError::Io)?;
        Ok((stdout, status))
    };
    let result = tokio::time::timeout(timeout, work).await;
    let (stdout, status) = match result {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            kill_group(&child);
            return Err(e);
        }
        Err(_) => {
            kill_group(&child);
            let _ = child.wait().await;
            return Err(OutputError::Timeout);
        }
    };
    let stderr_tail = stderr.await.unwrap_or_default();
    Ok(Output {
        success: status.success(),
        status,
        stdout,
        stderr_tail,
    })
}

#[cfg(test)]
mod tests {
    use super::Tail;

    #[test]
    fn tail_keeps_the_last_bytes_from_a_line_start() {
        let mut t = Tail::new(16);
        t.push(b"first line\nsecond line\nthird\n");
        assert_eq!(t.text(), "third\n");
        let mut t = Tail::new(100);
        t.push(b"short");
        t.push(b" and more");
        assert_eq!(t.text(), "short and more");
    }
}
