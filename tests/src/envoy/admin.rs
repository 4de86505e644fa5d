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
    fn rss_of_this_process_is_positive() {
        assert!(rss_bytes(std::process::id()).unwrap() > 0);
    }
}
