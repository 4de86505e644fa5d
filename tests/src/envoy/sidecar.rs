//! The Envoy child process of one sidecar (or gateway): started on a generated bootstrap,
//! ready once it is LIVE and its listeners are bound, killed on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::admin::{HostStatus, Stats, parse_cluster_hosts, parse_listeners, rss_bytes};
use super::bootstrap::{
    GATEWAY_LISTENER, INBOUND_LISTENER, OUTBOUND_LISTENER, SidecarSpec, Workload, write_json,
};
use crate::error::{HarnessError, Result};
use crate::http::HttpClient;
use crate::paths;
use crate::process::ChildProcess;

/// How long a sidecar may take to load its wasm VMs and open its listeners.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running Envoy sidecar, killed on drop.
#[derive(Debug)]
pub struct Sidecar {
    workload: Workload,
    process: ChildProcess,
    admin: SocketAddr,
    inbound: SocketAddr,
    outbound: SocketAddr,
    config_path: PathBuf,
    client: HttpClient,
}

impl Sidecar {
    /// Writes `<dir>/envoy.json` from `spec` and starts Envoy on it (log `<dir>/envoy.log`),
    /// then waits until it is LIVE and its listeners ([`SidecarSpec::listener_names`]) are
    /// bound.
    ///
    /// # Errors
    /// [`HarnessError::Missing`] without Envoy; [`HarnessError::Exited`] when Envoy rejects the
    /// config (e.g. the filter fails to load); [`HarnessError::Timeout`].
    pub async fn start(dir: &Path, spec: &SidecarSpec) -> Result<Self> {
        let envoy = paths::envoy()?;
        std::fs::create_dir_all(dir)
            .map_err(|e| HarnessError::io(format!("create {}", dir.display()), e))?;
        let config_path = dir.join("envoy.json");
        write_json(&config_path, &spec.bootstrap())?;
        let admin_path = dir.join("admin.addr");
        let mut command = Command::new(&envoy);
        command
            .arg("-c")
            .arg(&config_path)
            .arg("--concurrency")
            .arg(spec.concurrency.max(1).to_string())
            .arg("--disable-hot-restart")
            .arg("--use-dynamic-base-id")
            .arg("--admin-address-path")
            .arg(&admin_path)
            .args(["--log-level", "info", "--component-log-level", "wasm:info"]);
        let what = format!("envoy sidecar of {}", spec.workload.workload_name());
        let mut process = ChildProcess::spawn(&what, command, &dir.join("envoy.log"))?;
        let client = HttpClient::new();

        let admin = process
            .wait_for("envoy admin address", START_TIMEOUT, || {
                let path = admin_path.clone();
                async move {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    Ok(text.trim().parse::<SocketAddr>().ok())
                }
            })
            .await?;
        process
            .wait_for("envoy to be LIVE", START_TIMEOUT, || {
                let client = client.clone();
                async move {
                    let ready = client.get(&format!("http://{admin}/ready")).await;
                    Ok(ready.ok().filter(|r| r.status == 200).map(|_| ()))
                }
            })
            .await?;
        let names = spec.listener_names();
        let bound = process
            .wait_for("envoy listeners", START_TIMEOUT, || {
                let client = client.clone();
                async move {
                    let Ok(response) = client
                        .get(&format!("http://{admin}/listeners?format=json"))
                        .await
                    else {
                        return Ok(None);
                    };
                    let listeners = parse_listeners(&response.body)?;
                    let all_bound = names
                        .iter()
                        .all(|name| listeners.get(*name).is_some_and(|a| a.port() != 0));
                    Ok(all_bound.then_some(listeners))
                }
            })
            .await?;
        // A gateway's one listener is both where traffic enters and where it leaves.
        let port = |name: &str| {
            bound
                .get(name)
                .or_else(|| bound.get(GATEWAY_LISTENER))
                .copied()
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
        };
        Ok(Self {
            workload: spec.workload.clone(),
            process,
            admin,
            inbound: port(INBOUND_LISTENER),
            outbound: port(OUTBOUND_LISTENER),
            config_path,
            client,
        })
    }

    /// The pod's identity.
    pub fn workload(&self) -> &Workload {
        &self.workload
    }

    /// The inbound listener (what other pods' outbound clusters, and ingress, call); a
    /// gateway's listener.
    pub fn inbound_addr(&self) -> SocketAddr {
        self.inbound
    }

    /// The outbound listener (what the app calls, with `Host: <service>:9080`); a gateway's
    /// listener.
    pub fn outbound_addr(&self) -> SocketAddr {
        self.outbound
    }

    /// The admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// The generated bootstrap file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Envoy's log file.
    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// Envoy's process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Fails with the log tail if Envoy has exited.
    ///
    /// # Errors
    /// [`HarnessError::Exited`].
    pub fn check_running(&mut self) -> Result<()> {
        self.process.check_running()
    }

    /// Counter and gauge values of admin `GET /stats?filter=<regex>`.
    ///
    /// # Errors
    /// [`HarnessError::Http`] or [`HarnessError::Unexpected`] on a failed admin call.
    pub async fn stats(&self, filter: &str) -> Result<Stats> {
        Ok(Stats::parse(
            &self.admin_text(&format!("/stats?filter={filter}")).await?,
        ))
    }

    /// The body of admin `GET {path}`, which must answer 200.
    async fn admin_text(&self, path: &str) -> Result<String> {
        let url = format!("http://{}{path}", self.admin);
        let response = self.client.get(&url).await?;
        if response.status != 200 {
            return Err(HarnessError::unexpected(
                format!("status of {url}"),
                format!("{}: {}", response.status, response.text()),
            ));
        }
        Ok(response.text())
    }

    /// The filter's metrics: [`Sidecar::stats`] with filter `meshray`.
    ///
    /// # Errors
    /// As [`Sidecar::stats`].
    pub async fn meshray_stats(&self) -> Result<Stats> {
        self.stats("meshray").await
    }

    /// The endpoints of `cluster` with their health and request counts (admin `/clusters`).
    ///
    /// # Errors
    /// [`HarnessError::Http`] or [`HarnessError::Unexpected`] on a failed admin call.
    pub async fn cluster_hosts(
        &self,
        cluster: &str,
    ) -> Result<std::collections::BTreeMap<SocketAddr, HostStatus>> {
        Ok(parse_cluster_hosts(
            &self.admin_text("/clusters").await?,
            cluster,
        ))
    }

    /// Envoy's resident set size in bytes (`VmRSS` of `/proc/<pid>/status`).
    ///
    /// # Errors
    /// [`HarnessError::Io`] or [`HarnessError::Unexpected`] when it cannot be read.
    pub fn rss_bytes(&self) -> Result<u64> {
        rss_bytes(self.pid())
    }
}
