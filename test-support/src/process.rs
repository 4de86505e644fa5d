//! A child process owned by the harness.
//!
//! Its stdout and stderr go to one log file (appended to, so a restarted child keeps one
//! log); it is killed and reaped on drop, so a failing test never leaves Envoy, moto or the
//! relay behind. Waiting helpers check that the child is still alive and, when it is not,
//! fail with the tail of its log.

use std::fs::OpenOptions;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{HarnessError, Result};

/// How many log lines an [`HarnessError::Exited`] carries.
const TAIL_LINES: usize = 30;

/// A running child process with a log file.
#[derive(Debug)]
pub struct ChildProcess {
    what: String,
    child: Child,
    log: PathBuf,
}

impl ChildProcess {
    /// Spawns `command` as `what`, with stdin closed and stdout/stderr appended to `log`.
    ///
    /// # Errors
    /// [`HarnessError::Io`] when the log cannot be opened, [`HarnessError::Spawn`] when the
    /// program cannot be started.
    pub fn spawn(what: &str, mut command: Command, log: &Path) -> Result<Self> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| HarnessError::io(format!("open log {}", log.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| HarnessError::io(format!("clone log {}", log.display()), e))?;
        command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = command.spawn().map_err(|source| HarnessError::Spawn {
            what: what.to_owned(),
            program: PathBuf::from(command.get_program()),
            source,
        })?;
        Ok(Self {
            what: what.to_owned(),
            child,
            log: log.to_path_buf(),
        })
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the log (empty if it cannot be read).
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// `Ok(())` while the child runs; [`HarnessError::Exited`] with the log tail once it exited.
    ///
    /// # Errors
    /// As described.
    pub fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(self.exited(status.to_string())),
            Err(e) => Err(HarnessError::io(format!("wait for {}", self.what), e)),
        }
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Polls `probe` every 50 ms until it yields a value, the child exits, or `timeout`.
    ///
    /// # Errors
    /// [`HarnessError::Exited`] if the child dies first, [`HarnessError::Timeout`] after
    /// `timeout`, or the probe's own error.
    pub async fn wait_for<T, F, Fut>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut probe: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_running()?;
            if let Some(value) = probe().await? {
                return Ok(value);
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::Timeout {
                    what: format!(
                        "{what} (log {}):\n{}",
                        self.log.display(),
                        self.log_tail(TAIL_LINES)
                    ),
                    after: timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits up to `grace` for the child to exit, then kills it.
    /// Returns the exit status as text.
    ///
    /// # Errors
    /// [`HarnessError::Io`] when the child cannot be signalled or reaped.
    pub async fn terminate(&mut self, grace: Duration) -> Result<String> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Ok(status.to_string());
        }
        // `kill(1)` rather than libc: the workspace forbids unsafe code.
        let signalled = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .map_err(|e| HarnessError::io(format!("send SIGTERM to {}", self.what), e))?;
        if signalled.success() {
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(status)) = self.child.try_wait() {
                    return Ok(status.to_string());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        self.kill()
    }

    /// Kills (SIGKILL) and reaps the child. Returns the exit status as text.
    ///
    /// # Errors
    /// [`HarnessError::Io`] when it cannot be reaped.
    pub fn kill(&mut self) -> Result<String> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Ok(status.to_string());
        }
        // An error here means it already exited; `wait` below tells.
        let _ignored = self.child.kill();
        self.child
            .wait()
            .map(|s| s.to_string())
            .map_err(|e| HarnessError::io(format!("reap {}", self.what), e))
    }

    fn exited(&self, status: String) -> HarnessError {
        HarnessError::Exited {
            what: self.what.clone(),
            status,
            log: self.log.clone(),
            tail: self.log_tail(TAIL_LINES),
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        let _ignored = self.kill();
    }
}

/// The last `lines` lines of the file at `path` (empty if it cannot be read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_dir::RunDir;

    #[tokio::test]
    async fn exited_child_reports_its_log() {
        let dir = RunDir::new("process").unwrap();
        let log = dir.path().join("sh.log");
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg("echo first; echo boom >&2; exit 3");
        let mut child = ChildProcess::spawn("sh", cmd, &log).unwrap();
        let err = child
            .wait_for("never", Duration::from_secs(5), || async { Ok(None::<()>) })
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("sh exited"), "{text}");
        assert!(text.contains("boom"), "{text}");
    }

    #[tokio::test]
    async fn terminate_stops_a_running_child() {
        let dir = RunDir::new("process").unwrap();
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let mut child = ChildProcess::spawn("sleep", cmd, &dir.path().join("sleep.log")).unwrap();
        assert!(child.is_running());
        let status = child.terminate(Duration::from_secs(5)).await.unwrap();
        assert!(status.contains("signal"), "{status}");
        assert!(!child.is_running());
    }
}
