//! The filter's configuration: the WasmPlugin `pluginConfig` JSON.
//!
//! Parsed in `on_configure`. Every problem — unknown fields, wrong types, bad
//! values — is collected, so one log line lists them all and the operator fixes
//! the WasmPlugin in one go. Fields and defaults are documented in the README.

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Default cluster of the relay: the name Istio gives the relay Service's cluster.
pub const DEFAULT_RELAY_CLUSTER: &str = "outbound|8080||meshray-relay.meshray.svc.cluster.local";
/// Default `:authority` of posts to the relay.
pub const DEFAULT_RELAY_AUTHORITY: &str = "meshray-relay.meshray.svc.cluster.local:8080";
/// Default path of the relay's segment endpoint.
pub const DEFAULT_RELAY_PATH: &str = "/v1/segments";
/// Default timeout of one post to the relay.
pub const DEFAULT_RELAY_TIMEOUT_MS: u64 = 5_000;
/// Default longest time a document waits in the buffer.
pub const DEFAULT_FLUSH_INTERVAL_MS: u64 = 1_000;
/// Default documents per post.
pub const DEFAULT_MAX_BATCH: usize = 50;
/// Default documents buffered per worker before new ones are dropped.
pub const DEFAULT_MAX_BUFFERED: usize = 1_000;
/// Default share of new traces that are recorded.
pub const DEFAULT_SAMPLING_RATE: f64 = 1.0;
/// Default posts to the relay in flight per worker.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4;

/// Largest accepted `max_batch` (the relay sends ≤ 50 per X-Ray call anyway).
pub const MAX_MAX_BATCH: usize = 500;
/// Largest accepted `max_buffered`.
pub const MAX_MAX_BUFFERED: usize = 100_000;
/// Most headers `annotate_headers` may name.
pub const MAX_ANNOTATED_HEADERS: usize = 20;

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterConfig {
    /// Envoy cluster of the relay.
    pub relay_cluster: String,
    /// `:authority` of posts to the relay.
    pub relay_authority: String,
    /// Path of posts to the relay.
    pub relay_path: String,
    /// Timeout of one post.
    pub relay_timeout: Duration,
    /// Longest time a document waits before it is sent.
    pub flush_interval: Duration,
    /// Documents per post.
    pub max_batch: usize,
    /// Documents buffered per worker; beyond it new documents are dropped.
    pub max_buffered: usize,
    /// Posts in flight per worker; beyond it documents wait in the buffer.
    pub max_in_flight: usize,
    /// Share of new traces (no sampling decision from the caller) recorded, 0.0–1.0.
    pub sampling_rate: f64,
    /// Segment name for this workload; default from Istio labels.
    pub service_name: Option<String>,
    /// Request headers copied into annotations (lowercase names).
    pub annotate_headers: Vec<String>,
    /// EKS cluster name for `aws.eks.cluster_name`.
    pub cluster_name: Option<String>,
}

impl Default for FilterConfig {
    fn default() -> Self {
        Self {
            relay_cluster: DEFAULT_RELAY_CLUSTER.to_owned(),
            relay_authority: DEFAULT_RELAY_AUTHORITY.to_owned(),
            relay_path: DEFAULT_RELAY_PATH.to_owned(),
            relay_timeout: Duration::from_millis(DEFAULT_RELAY_TIMEOUT_MS),
            flush_interval: Duration::from_millis(DEFAULT_FLUSH_INTERVAL_MS),
            max_batch: DEFAULT_MAX_BATCH,
            max_buffered: DEFAULT_MAX_BUFFERED,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            sampling_rate: DEFAULT_SAMPLING_RATE,
            service_name: None,
            annotate_headers: Vec::new(),
            cluster_name: None,
        }
    }
}

/// One problem with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The field at fault.
    pub key: String,
    /// What is wrong and what is accepted.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.key, self.reason)
    }
}

/// Every problem found, listed on one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid meshray pluginConfig: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// The known fields, for the unknown-field message.
const FIELDS: [&str; 12] = [
    "relay_cluster",
    "relay_authority",
    "relay_path",
    "relay_timeout_ms",
    "flush_interval_ms",
    "max_batch",
    "max_buffered",
    "max_in_flight",
    "sampling_rate",
    "service_name",
    "annotate_headers",
    "cluster_name",
];

/// Collects field values and problems.
struct Fields {
    map: Map<String, Value>,
    errors: Vec<ConfigError>,
}

impl Fields {
    /// Takes `key`, parsing it as `T`; records a type error and returns `None` on failure.
    fn take<T: DeserializeOwned>(&mut self, key: &str, expected: &str) -> Option<T> {
        let value = self.map.remove(key)?;
        if value.is_null() {
            return None;
        }
        match serde_json::from_value(value.clone()) {
            Ok(parsed) => Some(parsed),
            Err(_) => {
                self.error(key, format!("expected {expected}, got {value}"));
                None
            }
        }
    }

    fn error(&mut self, key: &str, reason: String) {
        self.errors.push(ConfigError {
            key: key.to_owned(),
            reason,
        });
    }

    /// A number in `range`, else an error naming the range.
    fn ranged<T>(&mut self, key: &str, default: T, range: std::ops::RangeInclusive<T>) -> T
    where
        T: DeserializeOwned + PartialOrd + Copy + fmt::Display,
    {
        let expected = format!("a number from {} to {}", range.start(), range.end());
        match self.take::<T>(key, &expected) {
            Some(value) if range.contains(&value) => value,
            Some(value) => {
                self.error(key, format!("{value} is out of range: expected {expected}"));
                default
            }
            None => default,
        }
    }

    /// A non-empty string.
    fn text(&mut self, key: &str) -> Option<String> {
        let value = self.take::<String>(key, "a string")?;
        if value.trim().is_empty() {
            self.error(key, "must not be empty".to_owned());
            return None;
        }
        Some(value)
    }
}

impl FilterConfig {
    /// Parses and validates the plugin configuration; empty input means all defaults.
    ///
    /// # Errors
    /// [`ConfigErrors`] listing every problem.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigErrors> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| single_error("(config)", format!("not UTF-8: {e}")))?;
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let map = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            Ok(other) => {
                return Err(single_error(
                    "(config)",
                    format!("expected a JSON object, got {other}"),
                ));
            }
            Err(e) => return Err(single_error("(config)", format!("not valid JSON: {e}"))),
        };
        let mut fields = Fields {
            map,
            errors: Vec::new(),
        };
        let defaults = Self::default();
        let relay_cluster = fields
            .text("relay_cluster")
            .unwrap_or(defaults.relay_cluster);
        let relay_authority = fields
            .text("relay_authority")
            .unwrap_or(defaults.relay_authority);
        let relay_path = fields.text("relay_path").unwrap_or(defaults.relay_path);
        if !relay_path.starts_with('/') {
            fields.error("relay_path", format!("{relay_path:?} must start with '/'"));
        }
        let relay_timeout_ms =
            fields.ranged("relay_timeout_ms", DEFAULT_RELAY_TIMEOUT_MS, 100..=60_000);
        let flush_interval_ms =
            fields.ranged("flush_interval_ms", DEFAULT_FLUSH_INTERVAL_MS, 10..=60_000);
        let max_batch = fields.ranged("max_batch", DEFAULT_MAX_BATCH, 1..=MAX_MAX_BATCH);
        let max_buffered =
            fields.ranged("max_buffered", DEFAULT_MAX_BUFFERED, 1..=MAX_MAX_BUFFERED);
        if max_buffered < max_batch {
            fields.error(
                "max_buffered",
                format!("{max_buffered} is smaller than max_batch ({max_batch})"),
            );
        }
        let max_in_flight = fields.ranged("max_in_flight", DEFAULT_MAX_IN_FLIGHT, 1..=64);
        let sampling_rate = fields.ranged("sampling_rate", DEFAULT_SAMPLING_RATE, 0.0..=1.0);
        let service_name = fields.text("service_name");
        let cluster_name = fields.text("cluster_name");
        let annotate_headers: Vec<String> = fields
            .take::<Vec<String>>("annotate_headers", "a list of header names")
            .unwrap_or_default();
        if annotate_headers.len() > MAX_ANNOTATED_HEADERS {
            fields.error(
                "annotate_headers",
                format!(
                    "{} headers named, at most {MAX_ANNOTATED_HEADERS} allowed",
                    annotate_headers.len()
                ),
            );
        }
        for name in &annotate_headers {
            if name.is_empty() || !name.bytes().all(is_header_name_byte) {
                fields.error(
                    "annotate_headers",
                    format!("{name:?} is not a valid header name"),
                );
            }
        }
        let unknown: Vec<String> = fields.map.keys().cloned().collect();
        for key in unknown {
            fields.error(
                &key,
                format!("unknown field; known fields are {}", FIELDS.join(", ")),
            );
        }
        if !fields.errors.is_empty() {
            return Err(ConfigErrors(fields.errors));
        }
        Ok(Self {
            relay_cluster,
            relay_authority,
            relay_path,
            relay_timeout: Duration::from_millis(relay_timeout_ms),
            flush_interval: Duration::from_millis(flush_interval_ms),
            max_batch,
            max_buffered,
            max_in_flight,
            sampling_rate,
            service_name,
            annotate_headers: annotate_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            cluster_name,
        })
    }
}

/// RFC 9110 token characters.
fn is_header_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn single_error(key: &str, reason: String) -> ConfigErrors {
    ConfigErrors(vec![ConfigError {
        key: key.to_owned(),
        reason,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_means_defaults() {
        assert_eq!(FilterConfig::parse(b"").unwrap(), FilterConfig::default());
        assert_eq!(FilterConfig::parse(b"{}").unwrap(), FilterConfig::default());
    }

    #[test]
    fn full_config_is_accepted() {
        let config = FilterConfig::parse(
            br#"{"relay_cluster":"relay","relay_authority":"relay:8080","relay_path":"/v1/segments",
                "relay_timeout_ms":2000,"flush_interval_ms":200,"max_batch":20,"max_buffered":500,
                "max_in_flight":2,"sampling_rate":0.25,"service_name":"shop","annotate_headers":["X-User-Tier"],
                "cluster_name":"prod-eks"}"#,
        )
        .unwrap();
        assert_eq!(config.relay_cluster, "relay");
        assert_eq!(config.flush_interval, Duration::from_millis(200));
        assert_eq!(config.max_batch, 20);
        assert_eq!(config.sampling_rate, 0.25);
        assert_eq!(config.annotate_headers, ["x-user-tier"]);
        assert_eq!(config.cluster_name.as_deref(), Some("prod-eks"));
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        let err = FilterConfig::parse(
            br#"{"relay_clustr":"x","max_batch":0,"sampling_rate":1.5,"flush_interval_ms":"fast",
                "relay_path":"segments","annotate_headers":["bad header"],"service_name":""}"#,
        )
        .unwrap_err();
        let keys: Vec<&str> = err.0.iter().map(|e| e.key.as_str()).collect();
        for key in [
            "relay_clustr",
            "max_batch",
            "sampling_rate",
            "flush_interval_ms",
            "relay_path",
            "annotate_headers",
            "service_name",
        ] {
            assert!(keys.contains(&key), "{key} missing from {err}");
        }
        let line = err.to_string();
        assert!(!line.contains('\n'), "one log line: {line}");
        assert!(
            line.contains("unknown field; known fields are relay_cluster"),
            "{line}"
        );
        assert!(
            line.contains("1.5 is out of range: expected a number from 0 to 1"),
            "{line}"
        );
    }

    #[test]
    fn rejects_non_objects_and_bad_json() {
        assert!(FilterConfig::parse(b"[]").is_err());
        assert!(FilterConfig::parse(b"{").is_err());
        assert!(FilterConfig::parse(&[0xff, 0xfe]).is_err());
        let err = FilterConfig::parse(br#"{"max_batch":100,"max_buffered":10}"#).unwrap_err();
        assert!(err.to_string().contains("smaller than max_batch"));
    }
}
