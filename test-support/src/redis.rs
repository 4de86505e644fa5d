//! `redis-server` on 127.0.0.1: the relay's shared epoch cache, tested against a real one.
//!
//! It runs without persistence on a free port ([`crate::ports::free_port`]; Redis does
//! not report a port it picked itself) and logs to `<dir>/redis.log`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::{HarnessError, Result};
use crate::ports::free_port;
use crate::process::ChildProcess;

/// Overrides the `redis-server` program (default: from `PATH`).
pub const ENV_REDIS_SERVER: &str = "MESHRAY_REDIS_SERVER";
/// How long Redis may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// A running `redis-server`, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    /// `redis://127.0.0.1:PORT`.
    url: String,
    /// The process; killed on drop.
    _process: ChildProcess,
}

impl RedisServer {
    /// Starts `redis-server` (`$MESHRAY_REDIS_SERVER` or from `PATH`) and waits until it
    /// accepts connections.
    ///
    /// # Errors
    /// [`HarnessError::Spawn`] (run `make tools`) when it cannot be started;
    /// [`HarnessError::Exited`] or [`HarnessError::Timeout`] when it does not come up.
    pub async fn start(dir: &Path) -> Result<Self> {
        let program = std::env::var_os(ENV_REDIS_SERVER)
            .filter(|p| !p.is_empty())
            .map_or_else(|| PathBuf::from("redis-server"), PathBuf::from);
        let port = free_port()?;
        let mut command = Command::new(&program);
        command.args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        let mut process = ChildProcess::spawn(
            "redis-server (`make tools` installs it)",
            command,
            &dir.join("redis.log"),
        )?;
        process
            .wait_for(
                "redis-server to accept connections",
                START_TIMEOUT,
                || async move {
                    Ok(tokio::net::TcpStream::connect(("127.0.0.1", port))
                        .await
                        .ok()
                        .map(|_| ()))
                },
            )
            .await
            .map_err(|e| match e {
                HarnessError::Timeout { what, after } => HarnessError::Timeout {
                    what: format!("{what} on port {port}"),
                    after,
                },
                other => other,
            })?;
        Ok(Self {
            url: format!("redis://127.0.0.1:{port}"),
            _process: process,
        })
    }

    /// `redis://127.0.0.1:PORT`, the relay's `--epoch-cache` value.
    pub fn url(&self) -> &str {
        &self.url
    }
}
