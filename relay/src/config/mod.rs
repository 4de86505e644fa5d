//! The relay's configuration: command-line flags, each with a `MESHRAY_*` environment
//! variable, parsed into a validated [`Config`].
//!
//! **Every setting is declared once**, in the [`settings!`](declare) table below: its
//! field, flag, variable, default, doc comment and parser. From that entry come the clap
//! argument (`--help`), the typed [`Config`] field, its parse step, [`Config::default`]
//! and its row in [`SETTINGS`], from which README's table is rendered and checked. Adding
//! a setting is one entry here plus the code that uses `config.<field>`.
//!
//! clap only collects raw strings; each value is then parsed by a small function from
//! [`parse`], and every failure is collected, so one run reports every problem at once
//! ([`ConfigErrors`]) instead of stopping at the first. The flag and variable names are
//! part of the relay's interface: scripts and manifests use them.

mod declare;
pub mod parse;

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

pub use declare::{Setting, markdown_table};

use declare::{Collector, settings};
use parse::{
    parse_byte_size_within, parse_ca_file, parse_daemon_listen, parse_duration, parse_epoch_cache,
    parse_foreign_ids, parse_log_format, parse_millis, parse_non_zero, parse_path, parse_secret,
    parse_secs, parse_sink, parse_socket_addr, parse_usize,
};

// === Bounds ===

/// Largest queue the relay agrees to allocate, in documents.
pub const MAX_QUEUE_CAPACITY: u64 = 10_000_000;
/// Largest request body the relay agrees to buffer.
pub const MAX_MAX_BODY: u64 = 1024 * 1024 * 1024;
/// Longest epoch TTL: X-Ray keeps traces for 30 days, ids older than 28 days are foreign anyway.
pub const MAX_EPOCH_TTL_SECS: u64 = 28 * 24 * 3600;

/// `--help`'s first paragraph.
const ABOUT: &str = "Takes X-Ray segment documents from the meshray Envoy filter (POST \
                     /v1/segments), spans from Envoy's own Zipkin and OpenTelemetry tracers \
                     (POST /api/v2/spans, POST /v1/traces) and X-Ray SDKs (daemon port: \
                     segments over UDP, the sampling API over TCP) and sends them to AWS X-Ray.";
/// `--help`'s last paragraph.
const AFTER_HELP: &str = "AWS settings come from the default chain: AWS_REGION, \
                          AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, web identity (IRSA), EKS \
                          Pod Identity, profiles; AWS_ENDPOINT_URL_XRAY overrides the X-Ray \
                          endpoint. Logging: RUST_LOG (default info). Endpoints: POST \
                          /v1/segments, POST /api/v2/spans, POST /v1/traces, GET /healthz, \
                          GET /readyz, GET /metrics.";

// === The settings ===

settings! {
    /// HTTP listen address for all endpoints (IP:PORT; port 0 picks a free one).
    listen: SocketAddr {
        flag: "listen", env: "MESHRAY_LISTEN", value_name: "ADDR",
        default: "0.0.0.0:8080",
        parse: parse_socket_addr,
    }

    /// Where documents go: `xray` (PutTraceSegments), `stdout` or `file:PATH`
    /// (one JSON document per line, exactly what would be sent to X-Ray).
    sink: SinkKind {
        flag: "sink", env: "MESHRAY_SINK", value_name: "xray|stdout|file:PATH",
        default: "xray",
        parse: parse_sink,
    }

    /// Where the epoch of foreign trace ids is kept: `memory` (one replica) or
    /// `redis://[USER[:PASSWORD]@]HOST:PORT[/DB]`, `rediss://…` for TLS (shared by
    /// several replicas; one round trip per batch; Redis down or slow falls back to a
    /// local cache and never refuses a batch).
    epoch_cache: EpochCacheKind {
        flag: "epoch-cache", env: "MESHRAY_EPOCH_CACHE", value_name: "memory|redis://…",
        default: "memory",
        parse: parse_epoch_cache,
    }

    /// How long a foreign trace id keeps its epoch, in seconds.
    epoch_ttl: Duration {
        flag: "epoch-ttl", env: "MESHRAY_EPOCH_TTL", value_name: "SECONDS",
        default: "300",
        parse: |s| parse_secs(s, 1, MAX_EPOCH_TTL_SECS),
    }

    /// Longest wait for the shared epoch cache (Redis) per batch, e.g. `50ms` or `1s`;
    /// slower answers are resolved from the local cache instead.
    epoch_cache_timeout: Duration {
        flag: "epoch-cache-timeout", env: "MESHRAY_EPOCH_CACHE_TIMEOUT", value_name: "DURATION",
        default: "50ms",
        parse: |s| parse_duration(s, Duration::from_millis(1), Duration::from_secs(10)),
    }

    /// Password for Redis `AUTH` when the `--epoch-cache` URL carries none (the user,
    /// for Redis ACLs or ElastiCache RBAC, comes from the URL).
    redis_password: Option<Secret> {
        flag: "redis-password", env: "MESHRAY_REDIS_PASSWORD", value_name: "PASSWORD",
        arg: [hide_env_values = true],
        parse: parse_secret,
    }

    /// PEM file of the CA certificates that sign the Redis server's certificate
    /// (`rediss://`), instead of the system's roots.
    epoch_cache_ca_file: Option<CaCertificates> {
        flag: "epoch-cache-ca-file", env: "MESHRAY_EPOCH_CACHE_CA_FILE", value_name: "PATH",
        parse: parse_ca_file,
    }

    /// How a trace id without a usable epoch (16/32 hex, or X-Ray-shaped with an epoch
    /// outside [now − 28 days, now + 5 min]) becomes an X-Ray id: `epoch` (the epoch of
    /// the trace's first document, through the epoch cache) or `passthrough`
    /// (`1-{first 8 hex}-{last 24 hex}` of the id, unchanged).
    foreign_ids: ForeignIds {
        flag: "foreign-ids", env: "MESHRAY_FOREIGN_IDS", value_name: "epoch|passthrough",
        default: "epoch",
        parse: parse_foreign_ids,
    }

    /// Trace ids the `memory` epoch cache keeps (least recently used are evicted).
    epoch_cache_capacity: NonZeroUsize {
        flag: "epoch-cache-capacity", env: "MESHRAY_EPOCH_CACHE_CAPACITY", value_name: "N",
        default: "100000",
        parse: |s| parse_non_zero(s, 1, 100_000_000),
    }

    /// The X-Ray daemon address for SDKs, or `off`: segments over UDP
    /// (`{"format":"json","version":1}\n{doc}` per datagram) and, over TCP on the same
    /// port, the sampling API (`POST /GetSamplingRules`, `POST /SamplingTargets`).
    daemon_listen: Option<SocketAddr> {
        flag: "daemon-listen", env: "MESHRAY_DAEMON_LISTEN", value_name: "ADDR|off",
        default: "0.0.0.0:2000",
        parse: parse_daemon_listen,
    }

    /// Documents the queue holds before POSTs get 429 and datagrams are dropped.
    queue_capacity: usize {
        flag: "queue-capacity", env: "MESHRAY_QUEUE_CAPACITY", value_name: "N",
        default: "10000",
        parse: |s| parse_usize(s, 1, MAX_QUEUE_CAPACITY),
    }

    /// Largest request body: bytes, or with a KiB/MiB/GiB suffix; larger bodies get 413.
    max_body_bytes: usize {
        flag: "max-body", env: "MESHRAY_MAX_BODY", value_name: "SIZE",
        default: "5MiB",
        parse: |s| parse_byte_size_within(s, (1024, "1KiB"), (MAX_MAX_BODY, "1GiB")),
    }

    /// Concurrent PutTraceSegments calls.
    uploaders: usize {
        flag: "uploaders", env: "MESHRAY_UPLOADERS", value_name: "N",
        default: "4",
        parse: |s| parse_usize(s, 1, 256),
    }

    /// Longest wait, in milliseconds, before a batch of fewer than 50 documents is sent.
    batch_interval: Duration {
        flag: "batch-interval-ms", env: "MESHRAY_BATCH_INTERVAL_MS", value_name: "MS",
        default: "200",
        parse: |s| parse_millis(s, 1, 60_000),
    }

    /// Seconds allowed on shutdown to finish requests and send the queued documents.
    drain_deadline: Duration {
        flag: "drain-deadline", env: "MESHRAY_DRAIN_DEADLINE", value_name: "SECONDS",
        default: "20",
        parse: |s| parse_secs(s, 0, 3600),
    }

    /// Concurrent HTTP connections; further connections wait to be accepted.
    max_connections: usize {
        flag: "max-connections", env: "MESHRAY_MAX_CONNECTIONS", value_name: "N",
        default: "1024",
        parse: |s| parse_usize(s, 1, 1_000_000),
    }

    /// Seconds a client has to send a request's headers, counted from connecting or
    /// from the previous response; slower or idle connections are closed, so slow
    /// clients cannot hold the `--max-connections` slots.
    client_timeout: Duration {
        flag: "client-timeout", env: "MESHRAY_CLIENT_TIMEOUT", value_name: "SECONDS",
        default: "60",
        parse: |s| parse_secs(s, 1, 3600),
    }

    /// Seconds a batch that X-Ray throttles or fails transiently (5xx, timeout, unreachable)
    /// is retried, with full-jitter backoff, before it is dropped and counted. Meanwhile
    /// the queue fills and senders get 429, so an outage shorter than this loses nothing
    /// that was accepted.
    retry_for: Duration {
        flag: "retry-for", env: "MESHRAY_RETRY_FOR", value_name: "SECONDS",
        default: "300",
        parse: |s| parse_secs(s, 1, 86_400),
    }

    /// Seconds between SIGTERM and closing the listener: `/readyz` answers 503 at once but
    /// requests are still taken while Kubernetes removes the pod from the Service's
    /// endpoints, so no sender hits a closed port during a rollout. Then the drain starts.
    shutdown_delay: Duration {
        flag: "shutdown-delay", env: "MESHRAY_SHUTDOWN_DELAY", value_name: "SECONDS",
        default: "5",
        parse: |s| parse_secs(s, 0, 3600),
    }

    /// Log lines as `text` (human-readable; colours only on a terminal) or `json` (one
    /// JSON object per event, with its fields; for log collectors). Levels: RUST_LOG.
    log_format: LogFormat {
        flag: "log-format", env: "MESHRAY_LOG_FORMAT", value_name: "text|json",
        default: "text",
        parse: parse_log_format,
    }

    /// After binding, write the HTTP address (and the daemon UDP address, if on, on a
    /// second line) to this file, so harnesses using port 0 learn the ports.
    address_file: Option<PathBuf> {
        flag: "address-file", env: "MESHRAY_ADDRESS_FILE", value_name: "PATH",
        parse: parse_path,
    }
}

// === Value types ===

/// Where accepted documents are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkKind {
    /// AWS X-Ray `PutTraceSegments`.
    Xray,
    /// JSON lines on standard output.
    Stdout,
    /// JSON lines appended to a file.
    File(PathBuf),
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (ANSI colours only when stderr is a terminal).
    Text,
    /// One JSON object per event: timestamp, level, target, message and fields.
    Json,
}

/// Where the epoch of foreign trace ids is kept.
#[derive(Clone, PartialEq, Eq)]
pub enum EpochCacheKind {
    /// In-process LRU with TTL: correct for a single replica.
    Memory,
    /// A Redis server shared by all replicas (`redis://…` or `rediss://…`).
    Redis(String),
}

impl fmt::Debug for EpochCacheKind {
    /// The URL without its password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EpochCacheKind::Memory => f.write_str("Memory"),
            EpochCacheKind::Redis(url) => f
                .debug_tuple("Redis")
                .field(&crate::epoch_cache::redis::redact_url(url))
                .finish(),
        }
    }
}

/// How a foreign trace id becomes an X-Ray trace id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForeignIds {
    /// `1-{epoch of the trace's first document}-{low 96 bits}`, through the epoch cache.
    Epoch,
    /// `1-{high 32 bits}-{low 96 bits}` of the id as it came (X-Ray accepts ids whose
    /// first part is not a time); no cache.
    Passthrough,
}

/// A value kept out of logs and `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// CA certificates read from a PEM file.
#[derive(Clone, PartialEq, Eq)]
pub struct CaCertificates {
    /// Where they were read from.
    pub path: PathBuf,
    /// The file's contents.
    pub pem: Vec<u8>,
}

impl CaCertificates {
    /// The PEM text.
    pub fn pem(&self) -> &[u8] {
        &self.pem
    }
}

impl fmt::Debug for CaCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaCertificates")
            .field("path", &self.path)
            .field("bytes", &self.pem.len())
            .finish()
    }
}

/// Rules that span several settings, checked once each setting parsed on its own.
fn check_combinations(config: &Config) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let redis_url = match &config.epoch_cache {
        EpochCacheKind::Redis(url) => Some(url.as_str()),
        EpochCacheKind::Memory => None,
    };
    if config.redis_password.is_some()
        && redis_url.is_some_and(crate::epoch_cache::redis::url_has_password)
    {
        errors.push(ConfigError {
            flag: "--redis-password",
            env: "MESHRAY_REDIS_PASSWORD",
            value: "<redacted>".to_owned(),
            reason: "the --epoch-cache URL carries a password too; give it in one place".to_owned(),
        });
    }
    if let Some(ca) = &config.epoch_cache_ca_file
        && !redis_url.is_some_and(|url| url.starts_with("rediss://"))
    {
        errors.push(ConfigError {
            flag: "--epoch-cache-ca-file",
            env: "MESHRAY_EPOCH_CACHE_CA_FILE",
            value: ca.path.display().to_string(),
            reason: "is only used with a rediss:// --epoch-cache (Redis over TLS)".to_owned(),
        });
    }
    errors
}

impl fmt::Display for SinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkKind::Xray => f.write_str("xray"),
            SinkKind::Stdout => f.write_str("stdout"),
            SinkKind::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

impl Default for Config {
    /// The documented defaults (the `default:` of each entry, parsed like user input),
    /// with the `0.0.0.0` addresses.
    #[allow(clippy::expect_used)] // Every default is parsed by the test `defaults_are_valid`.
    fn default() -> Self {
        Cli::default()
            .into_config()
            .expect("the declared defaults are valid")
    }
}

// === Errors ===

/// One bad setting: which flag/variable, the value given, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag} ({env}) = {value:?}: {reason}")]
pub struct ConfigError {
    /// The command-line flag, e.g. `--listen`.
    pub flag: &'static str,
    /// The environment variable, e.g. `MESHRAY_LISTEN`.
    pub env: &'static str,
    /// The value as given.
    pub value: String,
    /// What is wrong and what would be accepted.
    pub reason: String,
}

/// Every bad setting found in one pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration:{}", .0.iter().map(|e| format!("\n  - {e}")).collect::<String>())]
pub struct ConfigErrors(pub Vec<ConfigError>);

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// Parses a command line (program name added).
    fn parse(args: &[&str]) -> Result<Config, ConfigErrors> {
        let mut argv = vec!["meshray-relay"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().into_config()
    }

    /// No flags at all gives the documented defaults.
    #[test]
    fn accepts_minimal_config() {
        let config = parse(&[]).unwrap();
        let defaults = Config::default();
        assert_eq!(config.listen, defaults.listen);
        assert_eq!(config.sink, SinkKind::Xray);
        assert_eq!(config.epoch_cache, EpochCacheKind::Memory);
        assert_eq!(config.epoch_ttl, Duration::from_secs(300));
        assert_eq!(config.epoch_cache_capacity.get(), 100_000);
        assert_eq!(config.daemon_listen, defaults.daemon_listen);
        assert_eq!(config.queue_capacity, 10_000);
        assert_eq!(config.max_body_bytes, 5 * 1024 * 1024);
        assert_eq!(config.uploaders, 4);
        assert_eq!(config.batch_interval, Duration::from_millis(200));
        assert_eq!(config.drain_deadline, Duration::from_secs(20));
        assert_eq!(config.max_connections, 1024);
        assert_eq!(config.client_timeout, Duration::from_secs(60));
        assert_eq!(config.retry_for, Duration::from_secs(300));
        assert_eq!(config.shutdown_delay, Duration::from_secs(5));
        assert_eq!(config.log_format, LogFormat::Text);
        assert_eq!(config.address_file, None);
    }

    /// Every flag set to a valid, non-default value.
    #[test]
    fn accepts_full_config() {
        let config = parse(&[
            "--listen",
            "127.0.0.1:0",
            "--sink",
            "file:/tmp/out.jsonl",
            "--epoch-cache",
            "redis://127.0.0.1:6379/0",
            "--epoch-ttl",
            "60",
            "--epoch-cache-capacity",
            "10",
            "--daemon-listen",
            "off",
            "--queue-capacity",
            "500",
            "--max-body",
            "512KiB",
            "--uploaders",
            "8",
            "--batch-interval-ms",
            "50",
            "--drain-deadline",
            "0",
            "--max-connections",
            "10",
            "--retry-for",
            "3",
            "--shutdown-delay",
            "0",
            "--log-format",
            "json",
            "--address-file",
            "/tmp/addr",
        ])
        .unwrap();
        assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 0)));
        assert_eq!(config.sink, SinkKind::File("/tmp/out.jsonl".into()));
        assert_eq!(
            config.epoch_cache,
            EpochCacheKind::Redis("redis://127.0.0.1:6379/0".into())
        );
        assert_eq!(config.epoch_ttl, Duration::from_secs(60));
        assert_eq!(config.epoch_cache_capacity.get(), 10);
        assert_eq!(config.daemon_listen, None);
        assert_eq!(config.queue_capacity, 500);
        assert_eq!(config.max_body_bytes, 512 * 1024);
        assert_eq!(config.uploaders, 8);
        assert_eq!(config.batch_interval, Duration::from_millis(50));
        assert_eq!(config.drain_deadline, Duration::ZERO);
        assert_eq!(config.max_connections, 10);
        assert_eq!(config.retry_for, Duration::from_secs(3));
        assert_eq!(config.shutdown_delay, Duration::ZERO);
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.address_file, Some(PathBuf::from("/tmp/addr")));
    }

    /// One run lists every bad value, each naming its flag and variable.
    #[test]
    fn rejects_many_bad_values_at_once() {
        let errors = parse(&[
            "--listen",
            "localhost",
            "--sink",
            "kafka",
            "--epoch-cache",
            "memcached://x",
            "--epoch-ttl",
            "0",
            "--epoch-cache-capacity",
            "lots",
            "--daemon-listen",
            "on",
            "--queue-capacity=-1",
            "--max-body",
            "5 parsecs",
            "--uploaders",
            "0",
            "--batch-interval-ms",
            "1.5",
            "--drain-deadline",
            "99999",
            "--max-connections",
            "",
            "--retry-for",
            "0",
            "--shutdown-delay=-5",
            "--log-format",
            "yaml",
            "--address-file",
            " ",
        ])
        .unwrap_err();
        let flags: Vec<&str> = errors.0.iter().map(|e| e.flag).collect();
        assert_eq!(
            flags,
            [
                "--listen",
                "--sink",
                "--epoch-cache",
                "--epoch-ttl",
                "--epoch-cache-capacity",
                "--daemon-listen",
                "--queue-capacity",
                "--max-body",
                "--uploaders",
                "--batch-interval-ms",
                "--drain-deadline",
                "--max-connections",
                "--retry-for",
                "--shutdown-delay",
                "--log-format",
                "--address-file",
            ]
        );
        let message = errors.to_string();
        assert!(message.starts_with("invalid configuration:\n  - --listen (MESHRAY_LISTEN)"));
        assert!(message.contains("expected `xray`, `stdout` or `file:PATH`"));
        assert_eq!(message.lines().count(), 17, "{message}");
    }

    /// Every declared default parses (what [`Config::default`] relies on), and the
    /// optional settings are unset.
    #[test]
    fn defaults_are_valid() {
        assert!(Cli::default().into_config().is_ok());
        for setting in SETTINGS {
            if setting.default.is_none() {
                assert!(
                    ["address_file", "redis_password", "epoch_cache_ca_file"]
                        .contains(&setting.field),
                    "{} has no default; add it here if that is intended",
                    setting.flag
                );
            }
        }
    }

    /// Every setting is one table entry: flags and variables are unique, named alike and
    /// documented, and `--help` shows each with its variable and default.
    #[test]
    fn help_documents_every_setting() {
        let help = <Cli as clap::CommandFactory>::command()
            .render_long_help()
            .to_string();
        let mut flags = std::collections::HashSet::new();
        let mut envs = std::collections::HashSet::new();
        for setting in SETTINGS {
            assert!(flags.insert(setting.flag), "{} twice", setting.flag);
            assert!(envs.insert(setting.env), "{} twice", setting.env);
            let expected_env = format!(
                "MESHRAY_{}",
                setting.flag[2..].replace('-', "_").to_ascii_uppercase()
            );
            assert_eq!(setting.env, expected_env, "{}", setting.flag);
            assert!(!setting.description().is_empty(), "{}", setting.flag);
            assert!(
                help.contains(setting.flag),
                "{} not in --help",
                setting.flag
            );
            assert!(
                help.contains(&format!("[env: {}", setting.env)),
                "{} not in --help",
                setting.env
            );
            if let Some(default) = setting.default {
                assert!(
                    help.contains(&format!("[default: {default}]")),
                    "default of {} not in --help",
                    setting.flag
                );
            }
        }
    }

    /// README's relay configuration table is the one rendered from [`SETTINGS`].
    /// After adding or changing a setting, run this test with `MESHRAY_UPDATE_README=1`
    /// to rewrite the table in place.
    #[test]
    fn readme_table_matches_settings() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
        let readme = std::fs::read_to_string(&path).unwrap();
        let (begin, end) = (README_BEGIN, README_END);
        let start = readme.find(begin).expect("README has the begin marker") + begin.len();
        let stop = readme.find(end).expect("README has the end marker");
        let expected = format!("\n{}", markdown_table(SETTINGS));
        if readme[start..stop] != expected {
            if std::env::var_os("MESHRAY_UPDATE_README").is_some() {
                let updated = format!("{}{expected}{}", &readme[..start], &readme[stop..]);
                std::fs::write(&path, updated).unwrap();
            } else {
                panic!(
                    "README's relay table is out of date; rerun with MESHRAY_UPDATE_README=1 \
                     or paste:\n{expected}"
                );
            }
        }
    }

    /// The Redis settings of issue 10 and the foreign-id mode: defaults, and values as
    /// an ElastiCache user would give them.
    #[test]
    fn redis_and_foreign_id_settings() {
        let defaults = parse(&[]).unwrap();
        assert_eq!(defaults.epoch_cache_timeout, Duration::from_millis(50));
        assert_eq!(defaults.redis_password, None);
        assert_eq!(defaults.foreign_ids, ForeignIds::Epoch);
        let config = parse(&[
            "--epoch-cache",
            "rediss://meshray@master.meshray.abc123.use1.cache.amazonaws.com:6379",
            "--redis-password",
            "token",
            "--epoch-cache-timeout",
            "20ms",
            "--foreign-ids",
            "passthrough",
        ])
        .unwrap();
        assert_eq!(
            config.redis_password.as_ref().map(Secret::expose),
            Some("token")
        );
        assert_eq!(config.epoch_cache_timeout, Duration::from_millis(20));
        assert_eq!(config.foreign_ids, ForeignIds::Passthrough);
        assert!(
            !format!("{config:?}").contains("token"),
            "password in Debug"
        );
    }

    /// Settings that contradict each other are reported together.
    #[test]
    fn rejects_contradicting_settings() {
        let dir = std::env::temp_dir().join(format!("meshray-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let errors = parse(&[
            "--epoch-cache",
            "redis://:inline@127.0.0.1:6379",
            "--redis-password",
            "also",
            "--epoch-cache-ca-file",
            ca.to_str().unwrap(),
        ])
        .unwrap_err();
        let flags: Vec<&str> = errors.0.iter().map(|e| e.flag).collect();
        assert_eq!(flags, ["--redis-password", "--epoch-cache-ca-file"]);
        let message = errors.to_string();
        assert!(
            !message.contains("inline") && !message.contains("also"),
            "{message}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Where README's generated table starts.
    const README_BEGIN: &str = "<!-- relay-settings: generated from relay/src/config/mod.rs -->";
    /// Where it ends.
    const README_END: &str = "<!-- /relay-settings -->";
}
