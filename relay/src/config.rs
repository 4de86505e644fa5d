//! The relay's configuration: command-line flags, each with a `MESHRAY_*` environment
//! variable, parsed into a validated [`Config`].
//!
//! clap only collects raw strings ([`Cli`]); every value is then parsed by a small
//! `parse_*` function and each failure is pushed into a list, so one run reports every
//! problem at once ([`ConfigErrors`]) instead of stopping at the first. The flag and
//! variable names are part of the relay's interface: scripts and manifests use them.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

// === Keys and defaults ===

/// HTTP listen address (`--listen`).
pub const ENV_LISTEN: &str = "MESHRAY_LISTEN";
/// Default of [`ENV_LISTEN`].
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// Where documents go (`--sink`).
pub const ENV_SINK: &str = "MESHRAY_SINK";
/// Default of [`ENV_SINK`].
pub const DEFAULT_SINK: &str = "xray";
/// Epoch cache backend (`--epoch-cache`).
pub const ENV_EPOCH_CACHE: &str = "MESHRAY_EPOCH_CACHE";
/// Default of [`ENV_EPOCH_CACHE`].
pub const DEFAULT_EPOCH_CACHE: &str = "memory";
/// Epoch cache entry lifetime in seconds (`--epoch-ttl`).
pub const ENV_EPOCH_TTL: &str = "MESHRAY_EPOCH_TTL";
/// Default of [`ENV_EPOCH_TTL`].
pub const DEFAULT_EPOCH_TTL: &str = "300";
/// Entries the in-memory epoch cache keeps (`--epoch-cache-capacity`).
pub const ENV_EPOCH_CACHE_CAPACITY: &str = "MESHRAY_EPOCH_CACHE_CAPACITY";
/// Default of [`ENV_EPOCH_CACHE_CAPACITY`].
pub const DEFAULT_EPOCH_CACHE_CAPACITY: &str = "100000";
/// X-Ray daemon UDP listen address or `off` (`--daemon-listen`).
pub const ENV_DAEMON_LISTEN: &str = "MESHRAY_DAEMON_LISTEN";
/// Default of [`ENV_DAEMON_LISTEN`].
pub const DEFAULT_DAEMON_LISTEN: &str = "0.0.0.0:2000";
/// Queue capacity in documents (`--queue-capacity`).
pub const ENV_QUEUE_CAPACITY: &str = "MESHRAY_QUEUE_CAPACITY";
/// Default of [`ENV_QUEUE_CAPACITY`].
pub const DEFAULT_QUEUE_CAPACITY: &str = "10000";
/// Largest accepted request body (`--max-body`).
pub const ENV_MAX_BODY: &str = "MESHRAY_MAX_BODY";
/// Default of [`ENV_MAX_BODY`].
pub const DEFAULT_MAX_BODY: &str = "5MiB";
/// Concurrent `PutTraceSegments` calls (`--uploaders`).
pub const ENV_UPLOADERS: &str = "MESHRAY_UPLOADERS";
/// Default of [`ENV_UPLOADERS`].
pub const DEFAULT_UPLOADERS: &str = "4";
/// Longest wait before a partial batch is sent, in milliseconds (`--batch-interval-ms`).
pub const ENV_BATCH_INTERVAL_MS: &str = "MESHRAY_BATCH_INTERVAL_MS";
/// Default of [`ENV_BATCH_INTERVAL_MS`].
pub const DEFAULT_BATCH_INTERVAL_MS: &str = "200";
/// Seconds allowed for draining on shutdown (`--drain-deadline`).
pub const ENV_DRAIN_DEADLINE: &str = "MESHRAY_DRAIN_DEADLINE";
/// Default of [`ENV_DRAIN_DEADLINE`].
pub const DEFAULT_DRAIN_DEADLINE: &str = "20";
/// Concurrent HTTP connections (`--max-connections`).
pub const ENV_MAX_CONNECTIONS: &str = "MESHRAY_MAX_CONNECTIONS";
/// Default of [`ENV_MAX_CONNECTIONS`].
pub const DEFAULT_MAX_CONNECTIONS: &str = "1024";
/// Attempts per `PutTraceSegments` batch before giving up (`--max-attempts`).
pub const ENV_MAX_ATTEMPTS: &str = "MESHRAY_MAX_ATTEMPTS";
/// Default of [`ENV_MAX_ATTEMPTS`].
pub const DEFAULT_MAX_ATTEMPTS: &str = "5";
/// File the bound addresses are written to (`--address-file`).
pub const ENV_ADDRESS_FILE: &str = "MESHRAY_ADDRESS_FILE";

/// Largest queue the relay agrees to allocate, in documents.
pub const MAX_QUEUE_CAPACITY: u64 = 10_000_000;
/// Largest request body the relay agrees to buffer.
pub const MAX_MAX_BODY: u64 = 1024 * 1024 * 1024;
/// Longest epoch TTL: X-Ray keeps traces for 30 days, ids older than 28 days are foreign anyway.
pub const MAX_EPOCH_TTL_SECS: u64 = 28 * 24 * 3600;

// === Raw command line ===

/// The command line as typed: every value is a raw string, parsed later by
/// [`Cli::into_config`] so that all problems are reported together.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "meshray-relay",
    version,
    about = "Takes X-Ray segment documents from the meshray Envoy filter (POST /v1/segments) and \
             X-Ray SDKs (daemon UDP protocol) and sends them to AWS X-Ray.",
    after_help = "AWS settings come from the default chain: AWS_REGION, AWS_ACCESS_KEY_ID / \
                  AWS_SECRET_ACCESS_KEY, web identity (IRSA), EKS Pod Identity, profiles; \
                  AWS_ENDPOINT_URL_XRAY overrides the X-Ray endpoint. Logging: RUST_LOG \
                  (default info). Endpoints: POST /v1/segments, GET /healthz, GET /readyz, \
                  GET /metrics."
)]
pub struct Cli {
    /// HTTP listen address for all endpoints (IP:PORT; port 0 picks a free one).
    #[arg(long, value_name = "ADDR", env = ENV_LISTEN, default_value = DEFAULT_LISTEN)]
    pub listen: String,

    /// Where documents go: `xray` (PutTraceSegments), `stdout` or `file:PATH`
    /// (one JSON document per line, exactly what would be sent to X-Ray).
    #[arg(long, value_name = "SINK", env = ENV_SINK, default_value = DEFAULT_SINK)]
    pub sink: String,

    /// Where the epoch of foreign trace ids is kept: `memory` (one replica) or
    /// `redis://HOST:PORT[/DB]` (shared by several replicas).
    #[arg(long, value_name = "CACHE", env = ENV_EPOCH_CACHE, default_value = DEFAULT_EPOCH_CACHE)]
    pub epoch_cache: String,

    /// How long a foreign trace id keeps its epoch, in seconds.
    #[arg(long, value_name = "SECONDS", env = ENV_EPOCH_TTL, default_value = DEFAULT_EPOCH_TTL)]
    pub epoch_ttl: String,

    /// Trace ids the `memory` epoch cache keeps (least recently used are evicted).
    #[arg(
        long,
        value_name = "N",
        env = ENV_EPOCH_CACHE_CAPACITY,
        default_value = DEFAULT_EPOCH_CACHE_CAPACITY
    )]
    pub epoch_cache_capacity: String,

    /// UDP address for the X-Ray daemon protocol (`{"format":"json","version":1}\n{doc}`
    /// per datagram), or `off`.
    #[arg(long, value_name = "ADDR|off", env = ENV_DAEMON_LISTEN, default_value = DEFAULT_DAEMON_LISTEN)]
    pub daemon_listen: String,

    /// Documents the queue holds before POSTs get 429 and datagrams are dropped.
    #[arg(long, value_name = "N", env = ENV_QUEUE_CAPACITY, default_value = DEFAULT_QUEUE_CAPACITY)]
    pub queue_capacity: String,

    /// Largest request body: bytes, or with a KiB/MiB/GiB suffix; larger bodies get 413.
    #[arg(long, value_name = "SIZE", env = ENV_MAX_BODY, default_value = DEFAULT_MAX_BODY)]
    pub max_body: String,

    /// Concurrent PutTraceSegments calls.
    #[arg(long, value_name = "N", env = ENV_UPLOADERS, default_value = DEFAULT_UPLOADERS)]
    pub uploaders: String,

    /// Longest wait, in milliseconds, before a batch of fewer than 50 documents is sent.
    #[arg(
        long,
        value_name = "MS",
        env = ENV_BATCH_INTERVAL_MS,
        default_value = DEFAULT_BATCH_INTERVAL_MS
    )]
    pub batch_interval_ms: String,

    /// Seconds allowed on shutdown to finish requests and send the queued documents.
    #[arg(long, value_name = "SECONDS", env = ENV_DRAIN_DEADLINE, default_value = DEFAULT_DRAIN_DEADLINE)]
    pub drain_deadline: String,

    /// Concurrent HTTP connections; further connections wait to be accepted.
    #[arg(long, value_name = "N", env = ENV_MAX_CONNECTIONS, default_value = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: String,

    /// Attempts per batch when X-Ray throttles or fails, with full-jitter backoff between them.
    #[arg(long, value_name = "N", env = ENV_MAX_ATTEMPTS, default_value = DEFAULT_MAX_ATTEMPTS)]
    pub max_attempts: String,

    /// After binding, write the HTTP address (and the daemon UDP address, if on, on a
    /// second line) to this file, so harnesses using port 0 learn the ports.
    #[arg(long, value_name = "PATH", env = ENV_ADDRESS_FILE)]
    pub address_file: Option<String>,
}

// === Validated configuration ===

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

/// The validated configuration [`crate::run`] needs.
///
/// Tests build it as `Config { aws: Some(..), ..Config::default() }`; the binary gets it
/// from [`Cli::into_config`].
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP listen address; the binary binds it, [`crate::run`] takes the bound listener.
    pub listen: SocketAddr,
    /// Where accepted documents go.
    pub sink: SinkKind,
    /// Epoch cache backend.
    pub epoch_cache: EpochCacheKind,
    /// How long a foreign trace id keeps its epoch.
    pub epoch_ttl: Duration,
    /// Entries of the `memory` epoch cache.
    pub epoch_cache_capacity: NonZeroUsize,
    /// X-Ray daemon UDP address, `None` when off.
    pub daemon_listen: Option<SocketAddr>,
    /// Queue capacity in documents.
    pub queue_capacity: usize,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Concurrent `PutTraceSegments` calls.
    pub uploaders: usize,
    /// Longest wait before a partial batch is sent.
    pub batch_interval: Duration,
    /// Time allowed on shutdown to finish requests and send queued documents.
    pub drain_deadline: Duration,
    /// Concurrent HTTP connections.
    pub max_connections: usize,
    /// Attempts per batch before the documents are counted as failed.
    pub max_attempts: u32,
    /// File receiving the bound addresses, one per line (HTTP, then daemon UDP if on).
    pub address_file: Option<PathBuf>,
    /// AWS settings for the `xray` sink. `None`: load the default chain (`AWS_REGION`,
    /// credentials, `AWS_ENDPOINT_URL_XRAY`, …) at start. Tests put a fixed region,
    /// static credentials and a local endpoint here instead of touching process env.
    pub aws: Option<aws_config::SdkConfig>,
}

impl Default for Config {
    /// The documented defaults, with the `0.0.0.0` addresses.
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            sink: SinkKind::Xray,
            epoch_cache: EpochCacheKind::Memory,
            epoch_ttl: Duration::from_secs(300),
            epoch_cache_capacity: NonZeroUsize::new(100_000).unwrap_or(NonZeroUsize::MIN),
            daemon_listen: Some(SocketAddr::from(([0, 0, 0, 0], 2000))),
            queue_capacity: 10_000,
            max_body_bytes: 5 * 1024 * 1024,
            uploaders: 4,
            batch_interval: Duration::from_millis(200),
            drain_deadline: Duration::from_secs(20),
            max_connections: 1024,
            max_attempts: 5,
            address_file: None,
            aws: None,
        }
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

// === Parsing ===

/// Collects parse results, remembering every failure.
struct Collector {
    /// Failures so far, in flag order.
    errors: Vec<ConfigError>,
}

impl Collector {
    /// Parses `value` with `parse`; on failure records it and returns `None`.
    fn parse<T>(
        &mut self,
        flag: &'static str,
        env: &'static str,
        value: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match parse(value) {
            Ok(parsed) => Some(parsed),
            Err(reason) => {
                self.errors.push(ConfigError {
                    flag,
                    env,
                    value: value.to_owned(),
                    reason,
                });
                None
            }
        }
    }
}

impl Cli {
    /// Parses and validates every setting.
    ///
    /// # Errors
    /// [`ConfigErrors`] listing every setting that is not valid, each with the reason.
    pub fn into_config(self) -> Result<Config, ConfigErrors> {
        let mut c = Collector { errors: Vec::new() };
        // Parse everything first, without `?`, so all failures are collected.
        let listen = c.parse("--listen", ENV_LISTEN, &self.listen, parse_socket_addr);
        let sink = c.parse("--sink", ENV_SINK, &self.sink, parse_sink);
        let epoch_cache = c.parse(
            "--epoch-cache",
            ENV_EPOCH_CACHE,
            &self.epoch_cache,
            parse_epoch_cache,
        );
        let epoch_ttl = c.parse("--epoch-ttl", ENV_EPOCH_TTL, &self.epoch_ttl, |s| {
            parse_count(s, 1, MAX_EPOCH_TTL_SECS).map(Duration::from_secs)
        });
        let epoch_cache_capacity = c.parse(
            "--epoch-cache-capacity",
            ENV_EPOCH_CACHE_CAPACITY,
            &self.epoch_cache_capacity,
            |s| {
                let n = parse_usize(s, 1, 100_000_000)?;
                NonZeroUsize::new(n).ok_or_else(|| "must be at least 1".to_owned())
            },
        );
        let daemon_listen = c.parse(
            "--daemon-listen",
            ENV_DAEMON_LISTEN,
            &self.daemon_listen,
            parse_daemon_listen,
        );
        let queue_capacity = c.parse(
            "--queue-capacity",
            ENV_QUEUE_CAPACITY,
            &self.queue_capacity,
            |s| parse_usize(s, 1, MAX_QUEUE_CAPACITY),
        );
        let max_body_bytes = c.parse("--max-body", ENV_MAX_BODY, &self.max_body, |s| {
            let bytes = parse_byte_size(s)?;
            if !(1024..=MAX_MAX_BODY).contains(&bytes) {
                return Err("must be between 1KiB and 1GiB".to_owned());
            }
            usize::try_from(bytes).map_err(|_| "too large for this platform".to_owned())
        });
        let uploaders = c.parse("--uploaders", ENV_UPLOADERS, &self.uploaders, |s| {
            parse_usize(s, 1, 256)
        });
        let batch_interval = c.parse(
            "--batch-interval-ms",
            ENV_BATCH_INTERVAL_MS,
            &self.batch_interval_ms,
            |s| parse_count(s, 1, 60_000).map(Duration::from_millis),
        );
        let drain_deadline = c.parse(
            "--drain-deadline",
            ENV_DRAIN_DEADLINE,
            &self.drain_deadline,
            |s| parse_count(s, 0, 3600).map(Duration::from_secs),
        );
        let max_connections = c.parse(
            "--max-connections",
            ENV_MAX_CONNECTIONS,
            &self.max_connections,
            |s| parse_usize(s, 1, 1_000_000),
        );
        let max_attempts = c.parse(
            "--max-attempts",
            ENV_MAX_ATTEMPTS,
            &self.max_attempts,
            |s| {
                let n = parse_count(s, 1, 100)?;
                u32::try_from(n).map_err(|_| "must be between 1 and 100".to_owned())
            },
        );
        let address_file = match &self.address_file {
            None => Some(None),
            Some(raw) => c
                .parse("--address-file", ENV_ADDRESS_FILE, raw, parse_path)
                .map(Some),
        };

        // Only now give up, with the whole list.
        match (
            listen,
            sink,
            epoch_cache,
            epoch_ttl,
            epoch_cache_capacity,
            daemon_listen,
            queue_capacity,
            max_body_bytes,
            uploaders,
            batch_interval,
            drain_deadline,
            max_connections,
            max_attempts,
            address_file,
        ) {
            (
                Some(listen),
                Some(sink),
                Some(epoch_cache),
                Some(epoch_ttl),
                Some(epoch_cache_capacity),
                Some(daemon_listen),
                Some(queue_capacity),
                Some(max_body_bytes),
                Some(uploaders),
                Some(batch_interval),
                Some(drain_deadline),
                Some(max_connections),
                Some(max_attempts),
                Some(address_file),
            ) if c.errors.is_empty() => Ok(Config {
                listen,
                sink,
                epoch_cache,
                epoch_ttl,
                epoch_cache_capacity,
                daemon_listen,
                queue_capacity,
                max_body_bytes,
                uploaders,
                batch_interval,
                drain_deadline,
                max_connections,
                max_attempts,
                address_file,
                aws: None,
            }),
            _ => Err(ConfigErrors(c.errors)),
        }
    }
}

/// Parses `IP:PORT` (IPv6 as `[::]:PORT`).
fn parse_socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        "not an IP address and port; expected e.g. 0.0.0.0:8080 or [::]:8080".to_owned()
    })
}

/// Parses `ADDR` or `off`.
fn parse_daemon_listen(s: &str) -> Result<Option<SocketAddr>, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    parse_socket_addr(s)
        .map(Some)
        .map_err(|_| "expected `off` or an IP address and port such as 0.0.0.0:2000".to_owned())
}

/// Parses `xray`, `stdout` or `file:PATH`.
fn parse_sink(s: &str) -> Result<SinkKind, String> {
    match s.trim() {
        "xray" => Ok(SinkKind::Xray),
        "stdout" => Ok(SinkKind::Stdout),
        other => match other.strip_prefix("file:") {
            Some(path) if !path.is_empty() => Ok(SinkKind::File(PathBuf::from(path))),
            Some(_) => Err("`file:` needs a path, e.g. file:/tmp/segments.jsonl".to_owned()),
            None => Err("expected `xray`, `stdout` or `file:PATH`".to_owned()),
        },
    }
}

/// Parses `memory` or a `redis://` / `rediss://` URL.
fn parse_epoch_cache(s: &str) -> Result<EpochCacheKind, String> {
    let s = s.trim();
    if s == "memory" {
        return Ok(EpochCacheKind::Memory);
    }
    if s.starts_with("redis://") || s.starts_with("rediss://") {
        crate::epoch_cache::redis::check_url(s)?;
        return Ok(EpochCacheKind::Redis(s.to_owned()));
    }
    Err("expected `memory` or a URL such as redis://redis.meshray:6379".to_owned())
}

/// Parses a non-empty path.
fn parse_path(s: &str) -> Result<PathBuf, String> {
    if s.trim().is_empty() {
        Err("expected a file path; leave the flag out to write no address file".to_owned())
    } else {
        Ok(PathBuf::from(s))
    }
}

/// Parses a whole number within `min..=max`.
fn parse_count(s: &str, min: u64, max: u64) -> Result<u64, String> {
    let n: u64 = s
        .trim()
        .parse()
        .map_err(|_| format!("expected a whole number between {min} and {max}"))?;
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(format!("must be between {min} and {max}"))
    }
}

/// [`parse_count`] into a `usize`.
fn parse_usize(s: &str, min: u64, max: u64) -> Result<usize, String> {
    let n = parse_count(s, min, max)?;
    usize::try_from(n).map_err(|_| format!("must be between {min} and {max}"))
}

/// Parses a size in bytes: `1048576`, `512KiB`, `5MiB`, `1GiB` (also `B`, `K`, `M`, `G`,
/// `KB`, `MB`, `GB`, all binary multiples).
fn parse_byte_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let expected = "expected a size such as 5MiB, 512KiB or 1048576";
    let n: u64 = digits.parse().map_err(|_| expected.to_owned())?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        "g" | "gb" | "gib" => 1024 * 1024 * 1024,
        _ => return Err(expected.to_owned()),
    };
    n.checked_mul(multiplier)
        .ok_or_else(|| "size too large".to_owned())
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

#[cfg(test)]
mod tests {
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

    /// `xray`, `stdout` and `file:PATH`; nothing else.
    #[test]
    fn sink_forms() {
        assert_eq!(parse_sink("xray"), Ok(SinkKind::Xray));
        assert_eq!(parse_sink("stdout"), Ok(SinkKind::Stdout));
        assert_eq!(parse_sink("file:a b"), Ok(SinkKind::File("a b".into())));
        for bad in ["file:", "XRAY", "", "file"] {
            assert!(parse_sink(bad).is_err(), "{bad:?}");
        }
    }

    /// `memory` and `redis://…`; `rediss://` is refused with a reason.
    #[test]
    fn epoch_cache_forms() {
        assert_eq!(parse_epoch_cache("memory"), Ok(EpochCacheKind::Memory));
        assert!(matches!(
            parse_epoch_cache("redis://redis.example:6380"),
            Ok(EpochCacheKind::Redis(_))
        ));
        // This build has no TLS for Redis: say so instead of failing at connect time.
        let tls = parse_epoch_cache("rediss://redis.example:6380").unwrap_err();
        assert!(tls.contains("TLS"), "{tls}");
        for bad in ["", "mem", "redis://", "http://x"] {
            assert!(parse_epoch_cache(bad).is_err(), "{bad:?}");
        }
    }

    /// Plain bytes and binary suffixes; fractions, garbage and overflow are refused.
    #[test]
    fn byte_sizes() {
        let cases = [
            ("1048576", Some(1_048_576)),
            ("512KiB", Some(512 * 1024)),
            ("5MiB", Some(5 * 1024 * 1024)),
            ("5 MiB", Some(5 * 1024 * 1024)),
            ("1g", Some(1024 * 1024 * 1024)),
            ("", None),
            ("MiB", None),
            ("1.5MiB", None),
            ("-1", None),
            ("99999999999999999999", None),
            ("18446744073709551615G", None),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_byte_size(input).ok(), expected, "{input:?}");
        }
    }

    /// Whole numbers within the bounds only.
    #[test]
    fn counts_respect_bounds() {
        assert_eq!(parse_count("1", 1, 3), Ok(1));
        assert_eq!(parse_count(" 3 ", 1, 3), Ok(3));
        for bad in ["0", "4", "-1", "1e3", "", "two"] {
            assert!(parse_count(bad, 1, 3).is_err(), "{bad:?}");
        }
    }

    /// `off` in any case, or an address with a port.
    #[test]
    fn daemon_listen_forms() {
        assert_eq!(parse_daemon_listen("off"), Ok(None));
        assert_eq!(parse_daemon_listen("OFF"), Ok(None));
        assert_eq!(
            parse_daemon_listen("127.0.0.1:0"),
            Ok(Some(SocketAddr::from(([127, 0, 0, 1], 0))))
        );
        assert!(parse_daemon_listen("2000").is_err());
    }
}
