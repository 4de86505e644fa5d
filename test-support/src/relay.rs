//! The real `meshray-relay` binary as a child process.
//!
//! It is started with `--listen 127.0.0.1:0 --daemon-listen off --address-file <dir>/relay.addr`
//! (with [`RelayOptions::daemon`], `--daemon-listen 127.0.0.1:0`: the X-Ray daemon UDP port
//! SDK apps send to) and the X-Ray endpoint of the local moto server in
//! `AWS_ENDPOINT_URL_XRAY`; the harness reads the bound HTTP address from the first line of
//! the address file, the daemon's from the second. [`Relay::stop`] and
//! [`Relay::restart`] (same port) let a test take the relay away from the sidecars and bring
//! it back, as in a relay-down drill. Its log (stdout and stderr) is `<dir>/relay.log`,
//! appended to across restarts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::{HarnessError, Result};
use crate::moto;
use crate::paths;
use crate::process::ChildProcess;

/// How long the relay may take to write its address file.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Relay::stop`] waits for a graceful drain after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How to run the relay.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// The `--sink` value (`xray`, `stdout`, `file:PATH`).
    pub sink: String,
    /// More arguments, appended as given (e.g. `--epoch-cache redis://…`).
    pub extra_args: Vec<String>,
    /// `RUST_LOG` for the relay.
    pub rust_log: String,
    /// Open the X-Ray daemon UDP port (`--daemon-listen`) on an ephemeral port.
    pub daemon: bool,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            sink: "xray".to_owned(),
            extra_args: Vec::new(),
            rust_log: "info".to_owned(),
            daemon: false,
        }
    }
}

/// A relay child process that can be stopped and restarted on the same port.
#[derive(Debug)]
pub struct Relay {
    program: PathBuf,
    dir: PathBuf,
    moto_endpoint: String,
    options: RelayOptions,
    /// `None` while stopped.
    process: Option<ChildProcess>,
    addr: SocketAddr,
    daemon: Option<SocketAddr>,
}

impl Relay {
    /// Starts the relay on an ephemeral port, sending to the X-Ray API at `moto_endpoint`.
    ///
    /// # Errors
    /// [`HarnessError::Missing`] without the binary; [`HarnessError::Exited`] or
    /// [`HarnessError::Timeout`] when it does not come up.
    pub async fn start(dir: &Path, moto_endpoint: &str, options: RelayOptions) -> Result<Self> {
        let program = paths::relay_bin()?;
        let listen = Listen {
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            daemon: options
                .daemon
                .then(|| SocketAddr::from(([127, 0, 0, 1], 0))),
        };
        let (process, bound) = spawn(&program, dir, moto_endpoint, &options, listen).await?;
        Ok(Self {
            program,
            dir: dir.to_path_buf(),
            moto_endpoint: moto_endpoint.to_owned(),
            options,
            process: Some(process),
            addr: bound.http,
            daemon: bound.daemon,
        })
    }

    /// The X-Ray daemon UDP address, with [`RelayOptions::daemon`].
    pub fn daemon_addr(&self) -> Option<SocketAddr> {
        self.daemon
    }

    /// The relay's HTTP address (stays the same across [`Relay::restart`]).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The relay's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("relay.log")
    }

    /// Whether the relay process is running.
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(ChildProcess::is_running)
    }

    /// Stops the relay gracefully: SIGTERM, then up to 10 s to drain, then SIGKILL.
    /// Returns its exit status as text (`"not running"` if it was already stopped).
    ///
    /// # Errors
    /// [`HarnessError::Io`] when it cannot be signalled or reaped.
    pub async fn stop(&mut self) -> Result<String> {
        match self.process.take() {
            Some(mut process) => process.terminate(STOP_GRACE).await,
            None => Ok("not running".to_owned()),
        }
    }

    /// Kills the relay at once (SIGKILL), dropping whatever it had queued.
    ///
    /// # Errors
    /// [`HarnessError::Io`] when it cannot be reaped.
    pub fn kill(&mut self) -> Result<String> {
        match self.process.take() {
            Some(mut process) => process.kill(),
            None => Ok("not running".to_owned()),
        }
    }

    /// Starts the relay again on the SAME address (after [`Relay::stop`] or [`Relay::kill`];
    /// a running relay is stopped first), so the sidecars' relay cluster reaches it again.
    ///
    /// # Errors
    /// As [`Relay::start`]; also when the port cannot be bound again.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await?;
        let asked = Listen {
            http: self.addr,
            daemon: self.daemon,
        };
        let (process, bound) = spawn(
            &self.program,
            &self.dir,
            &self.moto_endpoint,
            &self.options,
            asked,
        )
        .await?;
        if bound != asked {
            return Err(HarnessError::unexpected(
                "relay addresses after restart",
                format!("asked for {asked:?}, relay bound {bound:?}"),
            ));
        }
        self.process = Some(process);
        Ok(())
    }

    /// Fails with the log tail if the relay has exited (or is stopped).
    ///
    /// # Errors
    /// [`HarnessError::Exited`].
    pub fn check_running(&mut self) -> Result<()> {
        match self.process.as_mut() {
            Some(process) => process.check_running(),
            None => Err(HarnessError::Exited {
                what: "relay".to_owned(),
                status: "stopped by the test".to_owned(),
                log: self.log_path(),
                tail: String::new(),
            }),
        }
    }
}

/// Where the relay listens (asked) or listens (bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Listen {
    http: SocketAddr,
    daemon: Option<SocketAddr>,
}

/// Spawns the relay listening on `listen` and waits for its address file.
async fn spawn(
    program: &Path,
    dir: &Path,
    moto_endpoint: &str,
    options: &RelayOptions,
    listen: Listen,
) -> Result<(ChildProcess, Listen)> {
    let address_file = dir.join("relay.addr");
    match std::fs::remove_file(&address_file) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(HarnessError::io(
                format!("remove {}", address_file.display()),
                e,
            ));
        }
    }
    let empty_config = dir.join("aws-config-empty");
    std::fs::write(&empty_config, "")
        .map_err(|e| HarnessError::io(format!("write {}", empty_config.display()), e))?;
    let mut command = Command::new(program);
    command
        .arg("--listen")
        .arg(listen.http.to_string())
        .arg("--daemon-listen")
        .arg(listen.daemon.map_or("off".to_owned(), |a| a.to_string()))
        .arg("--address-file")
        .arg(&address_file)
        .arg("--sink")
        .arg(&options.sink)
        .args(&options.extra_args)
        .env("AWS_ENDPOINT_URL_XRAY", moto_endpoint)
        .env("AWS_REGION", moto::REGION)
        .env("AWS_ACCESS_KEY_ID", moto::ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", moto::SECRET_ACCESS_KEY)
        .env("RUST_LOG", &options.rust_log)
        .env("NO_COLOR", "1")
        // No Service endpoints to leave: stop at once on SIGTERM (a test's extra
        // `--shutdown-delay` flag still wins over the environment).
        .env("MESHRAY_SHUTDOWN_DELAY", "0")
        // Never pick up a developer's real AWS profile or config: point at empty files.
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", &empty_config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &empty_config);
    let mut process = ChildProcess::spawn("relay", command, &dir.join("relay.log"))?;
    let with_daemon = listen.daemon.is_some();
    let addr = process
        .wait_for("relay address file", START_TIMEOUT, || {
            let file = address_file.clone();
            async move {
                // A line ending in '\n' is complete; without one, trust it once it is
                // unchanged 100 ms later (a writer that does not end the line).
                let first = std::fs::read_to_string(&file).unwrap_or_default();
                if first.contains('\n') {
                    return Ok(read_address_file(&file, with_daemon));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                let again = std::fs::read_to_string(&file).unwrap_or_default();
                Ok(if again == first {
                    read_address_file(&file, with_daemon)
                } else {
                    None
                })
            }
        })
        .await?;
    Ok((process, addr))
}

/// The addresses in the address file once it is complete: HTTP on the first line, the
/// daemon's (when `with_daemon`) on the second.
fn read_address_file(path: &Path, with_daemon: bool) -> Option<Listen> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let http = lines.next()?.trim().parse().ok()?;
    let daemon = if with_daemon {
        Some(lines.next()?.trim().parse().ok()?)
    } else {
        None
    };
    Some(Listen { http, daemon })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_dir::RunDir;

    #[test]
    fn address_file_first_line_is_the_http_address() {
        let dir = RunDir::new("relay-unit").unwrap();
        let file = dir.path().join("relay.addr");
        let http = |a: &str| Listen {
            http: a.parse().unwrap(),
            daemon: None,
        };
        assert_eq!(read_address_file(&file, false), None);
        std::fs::write(&file, "127.0.0.1:4").unwrap();
        assert_eq!(read_address_file(&file, false), Some(http("127.0.0.1:4")));
        assert_eq!(read_address_file(&file, true), None);
        std::fs::write(&file, "127.0.0.1:8080\n127.0.0.1:2000\n").unwrap();
        assert_eq!(
            read_address_file(&file, false),
            Some(http("127.0.0.1:8080"))
        );
        assert_eq!(
            read_address_file(&file, true),
            Some(Listen {
                http: "127.0.0.1:8080".parse().unwrap(),
                daemon: Some("127.0.0.1:2000".parse().unwrap()),
            })
        );
        std::fs::write(&file, "127.0.0.1:").unwrap();
        assert_eq!(read_address_file(&file, false), None);
    }
}
