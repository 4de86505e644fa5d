//! The local X-Ray API: `moto_server` on 127.0.0.1 and an ephemeral port.
//!
//! moto runs under [`LAUNCHER`], which makes its X-Ray trace store safe for concurrent
//! calls (moto's own loses documents when two calls create one trace at once) and is
//! otherwise `moto_server`. moto (werkzeug) accepts `-p 0`, binds a free port and logs
//! `Running on http://127.0.0.1:PORT`; the harness reads the port from that line. What moto
//! checks and what it does not (no service graphs) is in DESIGN "The local X-Ray API".
//!
//! [`sdk_config`] is the one AWS SDK configuration of every test (fixed region, dummy
//! static credentials, the endpoint): the relay in-process gets it as its `aws` setting,
//! [`xray_client`] reads back through it, and the relay binary gets the same values as
//! environment variables ([`crate::relay`]).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_xray::config::retry::RetryConfig;
use aws_sdk_xray::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};

use crate::error::Result;
use crate::paths;
use crate::process::ChildProcess;

/// The region every harness client and the relay use.
pub const REGION: &str = "us-east-1";
/// Dummy credentials: moto accepts any.
pub const ACCESS_KEY_ID: &str = "testing";
/// Dummy credentials: moto accepts any.
pub const SECRET_ACCESS_KEY: &str = "testing";
/// The launcher, relative to the workspace root: `moto.server.main` with the X-Ray trace
/// store's methods under one lock.
pub const LAUNCHER: &str = "test-support/python/moto_xray_server.py";
/// How long moto may take to import and bind (Python start-up on a busy machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `moto_server`, killed on drop.
#[derive(Debug)]
pub struct Moto {
    process: ChildProcess,
    addr: SocketAddr,
}

impl Moto {
    /// Starts moto as `python LAUNCHER -H 127.0.0.1 -p 0` with the Python of the
    /// `moto_server` install ([`paths::moto_server`]'s directory), logging to
    /// `<dir>/moto.log`, and waits until it accepts connections.
    ///
    /// # Errors
    /// [`HarnessError::Missing`] without moto; [`HarnessError::Exited`] or
    /// [`HarnessError::Timeout`] when it does not come up.
    pub async fn start(dir: &Path) -> Result<Self> {
        let python = paths::moto_server()?.with_file_name("python");
        let log = dir.join("moto.log");
        let mut command = Command::new(&python);
        command
            .arg(paths::workspace_root().join(LAUNCHER))
            .args(["-H", "127.0.0.1", "-p", "0"])
            .env("PYTHONUNBUFFERED", "1");
        let mut process = ChildProcess::spawn("moto_server", command, &log)?;
        let addr = process
            .wait_for("moto_server to log its port", START_TIMEOUT, || {
                let log = log.clone();
                async move {
                    Ok(bound_addr(
                        &std::fs::read_to_string(&log).unwrap_or_default(),
                    ))
                }
            })
            .await?;
        process
            .wait_for(
                "moto_server to accept connections",
                START_TIMEOUT,
                || async move { Ok(tokio::net::TcpStream::connect(addr).await.ok().map(|_| ())) },
            )
            .await?;
        Ok(Self { process, addr })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the value for `AWS_ENDPOINT_URL_XRAY`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The AWS SDK config for this server ([`sdk_config`]).
    pub fn sdk_config(&self) -> SdkConfig {
        sdk_config(&self.endpoint())
    }

    /// An X-Ray client pointed at this server.
    pub fn client(&self) -> aws_sdk_xray::Client {
        xray_client(&self.endpoint())
    }

    /// The X-Ray API reader for this server (SDK client plus raw fallbacks).
    pub fn api(&self) -> crate::xray::XrayApi {
        crate::xray::XrayApi::new(&self.endpoint())
    }

    /// The server's log file.
    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// Fails with the log tail if moto has exited.
    ///
    /// # Errors
    /// [`HarnessError::Exited`].
    pub fn check_running(&mut self) -> Result<()> {
        self.process.check_running()
    }
}

/// The AWS SDK config of the tests: [`REGION`], dummy static credentials, `endpoint`
/// (e.g. `http://127.0.0.1:PORT`). Built explicitly: no environment or profile is read.
pub fn sdk_config(endpoint: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            None,
            None,
            "meshray-test-support",
        )))
        .endpoint_url(endpoint)
        .build()
}

/// An X-Ray client on [`sdk_config`] with retries off: the tests poll.
pub fn xray_client(endpoint: &str) -> aws_sdk_xray::Client {
    let config = aws_sdk_xray::config::Builder::from(&sdk_config(endpoint))
        .retry_config(RetryConfig::disabled())
        .build();
    aws_sdk_xray::Client::from_conf(config)
}

/// The address in werkzeug's `Running on http://127.0.0.1:PORT` line, if logged yet.
fn bound_addr(log: &str) -> Option<SocketAddr> {
    log.lines().find_map(|line| {
        let rest = line.split("Running on http://").nth(1)?;
        let addr: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
            .collect();
        addr.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_port_from_werkzeug_banner() {
        let log = "WARNING: This is a development server.\n * Running on http://127.0.0.1:37171\nPress CTRL+C to quit\n";
        assert_eq!(bound_addr(log), Some("127.0.0.1:37171".parse().unwrap()));
        assert_eq!(bound_addr("starting\n"), None);
        // ANSI colour codes around the line do not matter.
        let coloured = "\u{1b}[33m * Running on http://127.0.0.1:5000\u{1b}[0m";
        assert_eq!(
            bound_addr(coloured),
            Some("127.0.0.1:5000".parse().unwrap())
        );
    }
}
