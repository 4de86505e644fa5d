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
    parse_byte_size_within, parse_daemon_listen, parse_epoch_cache, parse_millis, parse_non_zero,
    parse_path, parse_secs, parse_sink, parse_socket_addr, parse_u32, parse_usize,
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
                     /v1/segments) and X-Ray SDKs (daemon UDP protocol) and sends them to AWS \
                     X-Ray.";
/// `--help`'s last paragraph.
const AFTER_HELP: &str = "AWS settings come from the default chain: AWS_REGION, \
                          AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, web identity (IRSA), EKS \
                          Pod Identity, profiles; AWS_ENDPOINT_URL_XRAY overrides the X-Ray \
                          endpoint. Logging: RUST_LOG (default info). Endpoints: POST \
                          /v1/segments, GET /healthz, GET /readyz, GET /metrics.";

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
    /// `redis://HOST:PORT[/DB]` (shared by several replicas).
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

    /// Trace ids the `memory` epoch cache keeps (least recently used are evicted).
    epoch_cache_capacity: NonZeroUsize {
        flag: "epoch-cache-capacity", env: "MESHRAY_EPOCH_CACHE_CAPACITY", value_name: "N",
        default: "100000",
        parse: |s| parse_non_zero(s, 1, 100_000_000),
    }

    /// UDP address for the X-Ray daemon protocol (`{"format":"json","version":1}\n{doc}`
    /// per datagram), or `off`.
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

    /// Attempts per batch when X-Ray throttles or fails, with full-jitter backoff between them.
    max_attempts: u32 {
        flag: "max-attempts", env: "MESHRAY_MAX_ATTEMPTS", value_name: "N",
        default: "5",
        parse: |s| parse_u32(s, 1, 100),
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

/// Where the epoch of foreign trace ids is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EpochCacheKind {
    /// In-process LRU with TTL: correct for a single replica.
    Memory,
    /// A Redis server shared by all replicas (`redis://HOST:PORT[/DB]`; no TLS in this build).
    Redis(String),
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
        assert_eq!(config.max_attempts, 5);
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
            "--max-attempts",
            "3",
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
        assert_eq!(config.max_attempts, 3);
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
            "--max-attempts",
            "1000",
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
                "--max-attempts",
                "--address-file",
            ]
        );
        let message = errors.to_string();
        assert!(message.starts_with("invalid configuration:\n  - --listen (MESHRAY_LISTEN)"));
        assert!(message.contains("expected `xray`, `stdout` or `file:PATH`"));
        assert_eq!(message.lines().count(), 15, "{message}");
    }

    /// Every declared default parses (what [`Config::default`] relies on), and the
    /// optional settings are unset.
    #[test]
    fn defaults_are_valid() {
        assert!(Cli::default().into_config().is_ok());
        for setting in SETTINGS {
            if setting.default.is_none() {
                assert!(
                    ["address_file"].contains(&setting.field),
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

    /// Where README's generated table starts.
    const README_BEGIN: &str = "<!-- relay-settings: generated from relay/src/config/mod.rs -->";
    /// Where it ends.
    const README_END: &str = "<!-- /relay-settings -->";
}
