//! The filter's configuration: the WasmPlugin `pluginConfig` JSON.
//!
//! [`FilterConfig`] is the one declaration of every setting: its field is the
//! JSON name (serde, `deny_unknown_fields`), its doc comment the meaning, its
//! value in [`FilterConfig::default`] the default, and its check in
//! [`FilterConfig::validate`]. Nothing else lists the fields: the names the
//! unknown-field message offers are read from the serde derive.
//!
//! Parsed in `on_configure`. Every problem — unknown fields, wrong types, bad
//! values — is collected, so one log line lists them all and the operator fixes
//! the WasmPlugin in one go. Fields and defaults are documented in the README
//! (a test checks that its table names exactly these fields).

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use meshray_core::propagation::Formats;
use serde::Deserialize;
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

/// Accepted `relay_timeout_ms`.
pub const RELAY_TIMEOUT_MS_RANGE: RangeInclusive<u64> = 100..=60_000;
/// Accepted `flush_interval_ms`.
pub const FLUSH_INTERVAL_MS_RANGE: RangeInclusive<u64> = 10..=60_000;
/// Largest accepted `max_batch` (the relay sends ≤ 50 per X-Ray call anyway).
pub const MAX_MAX_BATCH: usize = 500;
/// Largest accepted `max_buffered`.
pub const MAX_MAX_BUFFERED: usize = 100_000;
/// Largest accepted `max_in_flight`.
pub const MAX_MAX_IN_FLIGHT: usize = 64;
/// Most headers `annotate_headers` may name.
pub const MAX_ANNOTATED_HEADERS: usize = 20;

/// The configuration: what the WasmPlugin's `pluginConfig` may hold, with defaults.
///
/// Built by [`FilterConfig::parse`], which only hands out validated values.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    /// Envoy cluster of the relay.
    pub relay_cluster: String,
    /// `:authority` of posts to the relay.
    pub relay_authority: String,
    /// Path of posts to the relay.
    pub relay_path: String,
    /// Timeout of one post (`relay_timeout_ms`).
    #[serde(rename = "relay_timeout_ms", with = "millis")]
    pub relay_timeout: Duration,
    /// Longest time a document waits before it is sent (`flush_interval_ms`).
    #[serde(rename = "flush_interval_ms", with = "millis")]
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
    /// Request headers copied into annotations (lowercase names once validated).
    pub annotate_headers: Vec<String>,
    /// EKS cluster name for `aws.eks.cluster_name`.
    pub cluster_name: Option<String>,
    /// Propagation formats written on every traced request, added when they did
    /// not arrive (`xray`, `tracecontext`, `b3`, `b3multi`; default all four).
    /// Formats that arrived are always updated.
    #[serde(with = "propagators")]
    pub propagate: Formats,
    /// How segments, and the remote subsegments that call them, are named:
    /// `{service}` (default) or e.g. `{service}.{namespace}`, so that `reviews`
    /// in two namespaces are two nodes of the service map.
    pub service_name_format: NameFormat,
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
            propagate: Formats::ALL,
            service_name_format: NameFormat::default(),
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

/// Collects problems while the configuration is read and checked.
#[derive(Debug, Default)]
struct Problems(Vec<ConfigError>);

impl Problems {
    fn add(&mut self, key: &str, reason: String) {
        self.0.push(ConfigError {
            key: key.to_owned(),
            reason,
        });
    }

    /// Whether a problem with `key` was recorded (its value is then the default).
    fn reported(&self, key: &str) -> bool {
        self.0.iter().any(|e| e.key == key)
    }

    /// Records `value` of `key` when it lies outside `range`; whether it is inside.
    fn in_range<T>(&mut self, key: &str, value: T, range: RangeInclusive<T>) -> bool
    where
        T: PartialOrd + fmt::Display,
    {
        let inside = range.contains(&value);
        if !inside {
            self.add(
                key,
                format!(
                    "{value} is out of range: expected a number from {} to {}",
                    range.start(),
                    range.end()
                ),
            );
        }
        inside
    }

    /// Records an empty or blank string.
    fn non_empty(&mut self, key: &str, value: Option<&str>) {
        if value.is_some_and(|v| v.trim().is_empty()) {
            self.add(key, "must not be empty".to_owned());
        }
    }
}

impl FilterConfig {
    /// Parses and validates the plugin configuration; empty input means all defaults.
    ///
    /// Each field is read on its own first, so a wrong type or an unknown name is
    /// reported beside every other problem instead of stopping at the first.
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
        let known = field_names::<Self>();
        let mut problems = Problems::default();
        let mut readable = Map::new();
        for (key, value) in map {
            if !known.contains(&key.as_str()) {
                problems.add(
                    &key,
                    format!("unknown field; known fields are {}", known.join(", ")),
                );
            } else if value.is_null() {
                // `null` means "use the default", as an absent field does.
            } else {
                let alone = Value::Object(Map::from_iter([(key.clone(), value.clone())]));
                match serde_json::from_value::<Self>(alone) {
                    Ok(_) => {
                        readable.insert(key, value);
                    }
                    Err(e) => problems.add(&key, format!("{e}, got {value}")),
                }
            }
        }
        let config = serde_json::from_value::<Self>(Value::Object(readable))
            .map_err(|e| single_error("(config)", e.to_string()))?;
        config.validate(problems)
    }

    /// Checks what serde cannot (ranges, non-empty strings, header names, rules
    /// across fields), adding to the problems found while parsing, and returns
    /// the configuration in its canonical form (header names lowercase).
    fn validate(mut self, mut problems: Problems) -> Result<Self, ConfigErrors> {
        problems.non_empty("relay_cluster", Some(&self.relay_cluster));
        problems.non_empty("relay_authority", Some(&self.relay_authority));
        problems.non_empty("relay_path", Some(&self.relay_path));
        if !self.relay_path.trim().is_empty() && !self.relay_path.starts_with('/') {
            problems.add(
                "relay_path",
                format!("{:?} must start with '/'", self.relay_path),
            );
        }
        problems.in_range(
            "relay_timeout_ms",
            duration_millis(self.relay_timeout),
            RELAY_TIMEOUT_MS_RANGE,
        );
        problems.in_range(
            "flush_interval_ms",
            duration_millis(self.flush_interval),
            FLUSH_INTERVAL_MS_RANGE,
        );
        // Compared only when both are valid: an invalid max_batch (wrong type or
        // out of range) is reported on its own, not as a default the user never set.
        let batch_ok = !problems.reported("max_batch")
            && problems.in_range("max_batch", self.max_batch, 1..=MAX_MAX_BATCH);
        let buffered_ok = !problems.reported("max_buffered")
            && problems.in_range("max_buffered", self.max_buffered, 1..=MAX_MAX_BUFFERED);
        if batch_ok && buffered_ok && self.max_buffered < self.max_batch {
            problems.add(
                "max_buffered",
                format!(
                    "{} is smaller than max_batch ({})",
                    self.max_buffered, self.max_batch
                ),
            );
        }
        problems.in_range("max_in_flight", self.max_in_flight, 1..=MAX_MAX_IN_FLIGHT);
        problems.in_range("sampling_rate", self.sampling_rate, 0.0..=1.0);
        problems.non_empty("service_name", self.service_name.as_deref());
        problems.non_empty("cluster_name", self.cluster_name.as_deref());
        if self.annotate_headers.len() > MAX_ANNOTATED_HEADERS {
            problems.add(
                "annotate_headers",
                format!(
                    "{} headers named, at most {MAX_ANNOTATED_HEADERS} allowed",
                    self.annotate_headers.len()
                ),
            );
        }
        for name in &mut self.annotate_headers {
            if name.is_empty() || !name.bytes().all(is_header_name_byte) {
                problems.add(
                    "annotate_headers",
                    format!("{name:?} is not a valid header name"),
                );
            }
            name.make_ascii_lowercase();
        }
        if problems.0.is_empty() {
            Ok(self)
        } else {
            Err(ConfigErrors(problems.0))
        }
    }
}

/// A segment-name template: `{service}` and `{namespace}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameFormat(String);

/// The placeholders a [`NameFormat`] may use.
const NAME_PLACEHOLDERS: [&str; 2] = ["{service}", "{namespace}"];

impl Default for NameFormat {
    fn default() -> Self {
        Self("{service}".to_owned())
    }
}

impl NameFormat {
    /// Parses a template: it must name `{service}` and no other placeholder.
    ///
    /// # Errors
    /// What is wrong with it, for the config error.
    pub fn parse(template: &str) -> Result<Self, String> {
        if !template.contains("{service}") {
            return Err(format!("{template:?} must contain {{service}}"));
        }
        let mut rest = template.to_owned();
        for placeholder in NAME_PLACEHOLDERS {
            rest = rest.replace(placeholder, "");
        }
        if rest.contains('{') || rest.contains('}') {
            return Err(format!(
                "{template:?} uses an unknown placeholder; known are {}",
                NAME_PLACEHOLDERS.join(", ")
            ));
        }
        Ok(Self(template.to_owned()))
    }

    /// The name of `service` in `namespace`; just `service` when the namespace
    /// is unknown (a host outside the mesh, a workload without Istio metadata).
    pub fn render(&self, service: &str, namespace: Option<&str>) -> String {
        match namespace {
            Some(namespace) if self.0 != "{service}" => self
                .0
                .replace("{service}", service)
                .replace("{namespace}", namespace),
            _ => service.to_owned(),
        }
    }
}

impl<'de> Deserialize<'de> for NameFormat {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let template = String::deserialize(deserializer)?;
        Self::parse(&template).map_err(serde::de::Error::custom)
    }
}

/// `propagate`: a list of OpenTelemetry propagator names as a [`Formats`] set.
mod propagators {
    use meshray_core::propagation::{Format, Formats};
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Formats, D::Error> {
        let names = Vec::<String>::deserialize(deserializer)?;
        let mut formats = Formats::NONE;
        for name in &names {
            match Format::from_propagator_name(name) {
                Some(format) => formats = formats.with(format),
                None => {
                    let known: Vec<&str> =
                        Format::ALL.iter().map(|f| f.propagator_name()).collect();
                    return Err(serde::de::Error::custom(format!(
                        "unknown format {name:?}; known are {}",
                        known.join(", ")
                    )));
                }
            }
        }
        Ok(formats)
    }
}

/// Milliseconds as a [`Duration`] (`relay_timeout_ms`, `flush_interval_ms`).
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

fn duration_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
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

// === field names from the serde derive ===

/// The JSON field names of the struct `T`, as its `Deserialize` derive knows
/// them (renames applied). The derive hands its field list to
/// `deserialize_struct`; this deserializer only records it.
fn field_names<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
    let mut names: &'static [&'static str] = &[];
    // The recorder always stops with `FieldsRecorded`; the names are the result.
    match T::deserialize(FieldNameRecorder(&mut names)) {
        Ok(_) | Err(FieldsRecorded) => names,
    }
}

/// The deserializer behind [`field_names`].
struct FieldNameRecorder<'a>(&'a mut &'static [&'static str]);

/// What [`FieldNameRecorder`] answers every request with.
#[derive(Debug)]
struct FieldsRecorded;

impl fmt::Display for FieldsRecorded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field names recorded")
    }
}

impl std::error::Error for FieldsRecorded {}

impl serde::de::Error for FieldsRecorded {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        FieldsRecorded
    }
}

impl<'de> serde::Deserializer<'de> for FieldNameRecorder<'_> {
    type Error = FieldsRecorded;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        Err(FieldsRecorded)
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(FieldsRecorded)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map
        enum identifier ignored_any
    }
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

    /// An invalid `max_batch` is reported once, as itself; the `max_buffered`
    /// check does not compare against a default the user never set.
    #[test]
    fn an_invalid_max_batch_is_not_compared_as_a_default() {
        let err = FilterConfig::parse(br#"{"max_batch":0,"max_buffered":10}"#).unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert_eq!(err.0[0].key, "max_batch");
        let err = FilterConfig::parse(br#"{"max_batch":"many","max_buffered":10}"#).unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert_eq!(err.0[0].key, "max_batch");
        assert!(err.0[0].reason.contains("got \"many\""), "{err}");
    }

    /// A wrong type names the field, what was expected and what came.
    #[test]
    fn type_errors_name_the_field_and_the_value() {
        let err = FilterConfig::parse(br#"{"annotate_headers":"x-user","max_in_flight":-1}"#)
            .unwrap_err();
        let line = err.to_string();
        assert!(
            line.contains(
                "`annotate_headers`: invalid type: string \"x-user\", expected a sequence"
            ),
            "{line}"
        );
        assert!(line.contains("`max_in_flight`:"), "{line}");
        assert_eq!(err.0.len(), 2, "{line}");
    }

    /// `propagate` takes OpenTelemetry's propagator names; `service_name_format`
    /// only the known placeholders.
    #[test]
    fn propagate_and_service_name_format() {
        let config = FilterConfig::parse(
            br#"{"propagate":["tracecontext","xray"],"service_name_format":"{service}.{namespace}"}"#,
        )
        .unwrap();
        assert_eq!(
            config.propagate,
            Formats {
                xray: true,
                w3c: true,
                ..Formats::NONE
            }
        );
        assert_eq!(
            config.service_name_format.render("reviews", Some("prod")),
            "reviews.prod"
        );
        assert_eq!(
            config.service_name_format.render("api.example.com", None),
            "api.example.com"
        );
        assert_eq!(
            NameFormat::default().render("reviews", Some("prod")),
            "reviews"
        );
        let err = FilterConfig::parse(br#"{"propagate":["w3c"],"service_name_format":"{svc}"}"#)
            .unwrap_err();
        let line = err.to_string();
        assert!(
            line.contains(
                "`propagate`: unknown format \"w3c\"; known are xray, tracecontext, b3, b3multi"
            ),
            "{line}"
        );
        assert!(
            line.contains("`service_name_format`: \"{svc}\" must contain {service}"),
            "{line}"
        );
        let err =
            FilterConfig::parse(br#"{"service_name_format":"{service}-{cluster}"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown placeholder"), "{err}");
    }

    /// `null` is the default, like an absent field.
    #[test]
    fn null_means_default() {
        let config = FilterConfig::parse(br#"{"max_batch":null,"service_name":null}"#).unwrap();
        assert_eq!(config, FilterConfig::default());
    }

    /// The field names come from the serde derive, renames included.
    #[test]
    fn field_names_come_from_the_declaration() {
        let names = field_names::<FilterConfig>();
        assert_eq!(names.first(), Some(&"relay_cluster"));
        assert!(names.contains(&"relay_timeout_ms"));
        assert!(names.contains(&"flush_interval_ms"));
        assert!(!names.contains(&"flush_interval"));
    }

    /// README's configuration table documents exactly the declared fields.
    #[test]
    fn readme_documents_every_field() {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("### Configuration (`pluginConfig`)")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .unwrap();
        let documented: Vec<&str> = section
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|rest| rest.split('`').next())
            .collect();
        assert_eq!(documented, field_names::<FilterConfig>());
    }
}
