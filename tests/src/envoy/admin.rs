//! Reading Envoy's admin API: `/stats` counters and gauges, the bound address of each
//! listener (`/listeners?format=json`), and the process's resident set size.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde_json::Value;

use crate::error::{HarnessError, Result};

/// Envoy stats as name → value (only lines whose value is an integer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats(pub BTreeMap<String, u64>);

impl Stats {
    /// Parses the text format of admin `/stats` (`name: value` per line).
    pub fn parse(text: &str) -> Self {
        Self(
            text.lines()
                .filter_map(|line| {
                    let (name, value) = line.rsplit_once(": ")?;
                    Some((name.trim().to_owned(), value.trim().parse().ok()?))
                })
                .collect(),
        )
    }

    /// The stat called `name` exactly, or the one whose name ends in `.name` (Envoy prefixes
    /// wasm metrics, e.g. `wasmcustom.`).
    pub fn get(&self, name: &str) -> Option<u64> {
        self.0.get(name).copied().or_else(|| {
            let suffix = format!(".{name}");
            self.0
                .iter()
                .find(|(k, _)| k.ends_with(&suffix))
                .map(|(_, v)| *v)
        })
    }
}

/// The bound address of each listener in admin `/listeners?format=json`.
///
/// # Errors
/// [`HarnessError::Unexpected`] when the body is not the expected JSON.
pub fn parse_listeners(body: &[u8]) -> Result<BTreeMap<String, SocketAddr>> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| HarnessError::unexpected("admin /listeners body", e.to_string()))?;
    let mut out = BTreeMap::new();
    for status in value["listener_statuses"].as_array().into_iter().flatten() {
        let (Some(name), Some(ip), Some(port)) = (
            status["name"].as_str(),
            status["local_address"]["socket_address"]["address"].as_str(),
            status["local_address"]["socket_address"]["port_value"].as_u64(),
        ) else {
            continue;
        };
        if let (Ok(ip), Ok(port)) = (ip.parse(), u16::try_from(port)) {
            out.insert(name.to_owned(), SocketAddr::new(ip, port));
        }
    }
    Ok(out)
}

/// One endpoint of a cluster as admin `/clusters` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostStatus {
    /// `health_flags`: `healthy`, or the reasons it is not (e.g. `/failed_active_hc`).
    pub health_flags: String,
    /// Requests to this endpoint that got an answer (`rq_success`).
    pub rq_success: u64,
    /// Requests to this endpoint that failed (`rq_error`: resets, connect failures, 5xx).
    pub rq_error: u64,
}

impl HostStatus {
    /// Whether Envoy sends to this endpoint (no failed health check, not ejected).
    pub fn is_healthy(&self) -> bool {
        self.health_flags == "healthy"
    }
}

/// The endpoints of cluster `cluster` in the text of admin `/clusters`
/// (`<cluster>::<ip:port>::<stat>::<value>` lines), by address.
pub fn parse_cluster_hosts(text: &str, cluster: &str) -> BTreeMap<SocketAddr, HostStatus> {
    let mut hosts: BTreeMap<SocketAddr, HostStatus> = BTreeMap::new();
    let prefix = format!("{cluster}::");
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let mut parts = rest.splitn(3, "::");
        let (Some(addr), Some(stat), Some(value)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Ok(addr) = addr.parse::<SocketAddr>() else {
            continue;
        };
        let host = hosts.entry(addr).or_default();
        match stat {
            "health_flags" => value.clone_into(&mut host.health_flags),
            "rq_success" => host.rq_success = value.parse().unwrap_or(0),
            "rq_error" => host.rq_error = value.parse().unwrap_or(0),
            _ => {}
        }
    }
    hosts
}

/// The resident set size of process `pid` in bytes.
///
/// # Errors
/// [`HarnessError::Io`] or [`HarnessError::Unexpected`] when `/proc` cannot be read.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).map_err(|e| HarnessError::io(format!("read {path}"), e))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kb| kb * 1024)
        .ok_or_else(|| HarnessError::unexpected(path, "no VmRSS line"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stats_and_listeners() {
        let stats = Stats::parse(
            "wasmcustom.meshray_segments_sent_total: 12\nwasmcustom.meshray_latency: P0(nan,0)\n",
        );
        assert_eq!(stats.get("meshray_segments_sent_total"), Some(12));
        assert_eq!(
            stats.get("wasmcustom.meshray_segments_sent_total"),
            Some(12)
        );
        assert_eq!(stats.get("meshray_latency"), None);

        let body = br#"{"listener_statuses":[{"name":"virtualInbound","local_address":{"socket_address":{"address":"127.0.0.1","port_value":40469}}}]}"#;
        let listeners = parse_listeners(body).unwrap();
        assert_eq!(
            listeners["virtualInbound"],
            "127.0.0.1:40469".parse().unwrap()
        );
    }

    #[test]
    fn parses_the_endpoints_of_one_cluster() {
        let text = "outbound|8080||r.svc::default_priority::max_connections::1024\n\
                    outbound|8080||r.svc::127.0.0.1:4001::rq_success::17\n\
                    outbound|8080||r.svc::127.0.0.1:4001::rq_error::2\n\
                    outbound|8080||r.svc::127.0.0.1:4001::health_flags::healthy\n\
                    outbound|8080||r.svc::127.0.0.1:4002::health_flags::/failed_active_hc\n\
                    inbound|9080||::127.0.0.1:4003::rq_success::5\n";
        let hosts = parse_cluster_hosts(text, "outbound|8080||r.svc");
        let first = &hosts[&"127.0.0.1:4001".parse().unwrap()];
        assert_eq!((first.rq_success, first.rq_error), (17, 2));
        assert!(first.is_healthy());
        assert!(!hosts[&"127.0.0.1:4002".parse().unwrap()].is_healthy());
        assert_eq!(hosts.len(), 2);
    }

    #[test]
    fn rss_of_this_process_is_positive() {
        assert!(rss_bytes(std::process::id()).unwrap() > 0);
    }
}
