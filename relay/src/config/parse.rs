//! The value parsers of the settings table: each turns the text a user typed into a
//! typed value, or says what is wrong with it and what would be accepted.
//!
//! Each is a small `fn(&str) -> Result<T, String>` with edge-case tests, as in linkerd's
//! `env/types.rs`; the caller ([`super::declare::Collector`]) adds the flag, variable and
//! value to the message.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use super::{CaCertificates, EpochCacheKind, ForeignIds, LogFormat, Secret, SinkKind};

/// Parses `IP:PORT` (IPv6 as `[::]:PORT`).
pub fn parse_socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse().map_err(|_| {
        "not an IP address and port; expected e.g. 0.0.0.0:8080 or [::]:8080".to_owned()
    })
}

/// Parses `ADDR` or `off`.
pub fn parse_daemon_listen(s: &str) -> Result<Option<SocketAddr>, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    parse_socket_addr(s)
        .map(Some)
        .map_err(|_| "expected `off` or an IP address and port such as 0.0.0.0:2000".to_owned())
}

/// Parses `xray`, `stdout` or `file:PATH`.
pub fn parse_sink(s: &str) -> Result<SinkKind, String> {
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
pub fn parse_epoch_cache(s: &str) -> Result<EpochCacheKind, String> {
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

/// Parses `text` or `json`.
pub fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s.trim() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("expected `text` or `json`".to_owned()),
    }
}

/// Parses a non-empty path.
pub fn parse_path(s: &str) -> Result<PathBuf, String> {
    if s.trim().is_empty() {
        Err("expected a file path; leave the flag out to write no address file".to_owned())
    } else {
        Ok(PathBuf::from(s))
    }
}

/// Parses a whole number within `min..=max`.
pub fn parse_count(s: &str, min: u64, max: u64) -> Result<u64, String> {
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
pub fn parse_usize(s: &str, min: u64, max: u64) -> Result<usize, String> {
    let n = parse_count(s, min, max)?;
    usize::try_from(n).map_err(|_| format!("must be between {min} and {max}"))
}

/// Parses a size in bytes: `1048576`, `512KiB`, `5MiB`, `1GiB` (also `B`, `K`, `M`, `G`,
/// `KB`, `MB`, `GB`, all binary multiples).
pub fn parse_byte_size(s: &str) -> Result<u64, String> {
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

/// Parses whole seconds within `min..=max` into a duration.
pub fn parse_secs(s: &str, min: u64, max: u64) -> Result<Duration, String> {
    parse_count(s, min, max).map(Duration::from_secs)
}

/// Parses whole milliseconds within `min..=max` into a duration.
pub fn parse_millis(s: &str, min: u64, max: u64) -> Result<Duration, String> {
    parse_count(s, min, max).map(Duration::from_millis)
}

/// Parses a count within `min..=max` that is at least 1.
pub fn parse_non_zero(s: &str, min: u64, max: u64) -> Result<NonZeroUsize, String> {
    let n = parse_usize(s, min.max(1), max)?;
    NonZeroUsize::new(n).ok_or_else(|| "must be at least 1".to_owned())
}

/// Parses a byte size (see [`parse_byte_size`]) within `min..=max` bytes; the reason
/// names the bounds as `min_text` and `max_text`.
pub fn parse_byte_size_within(
    s: &str,
    (min, min_text): (u64, &str),
    (max, max_text): (u64, &str),
) -> Result<usize, String> {
    let bytes = parse_byte_size(s)?;
    if !(min..=max).contains(&bytes) {
        return Err(format!("must be between {min_text} and {max_text}"));
    }
    usize::try_from(bytes).map_err(|_| "too large for this platform".to_owned())
}

/// Parses a duration within `min..=max`: `50ms`, `2s`, or a bare number of milliseconds.
pub fn parse_duration(s: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let expected = "expected a duration such as 50ms or 2s";
    let n: u64 = digits.parse().map_err(|_| expected.to_owned())?;
    let duration = match unit.trim() {
        "" | "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        _ => return Err(expected.to_owned()),
    };
    if (min..=max).contains(&duration) {
        Ok(duration)
    } else {
        Err(format!(
            "must be between {}ms and {}ms",
            min.as_millis(),
            max.as_millis()
        ))
    }
}

/// Parses a non-empty secret, kept out of `Debug` output.
pub fn parse_secret(s: &str) -> Result<Secret, String> {
    if s.is_empty() {
        Err("is empty; leave it unset for no password".to_owned())
    } else {
        Ok(Secret::new(s.to_owned()))
    }
}

/// Reads a PEM file holding at least one certificate.
pub fn parse_ca_file(s: &str) -> Result<CaCertificates, String> {
    let path = parse_path(s)?;
    let pem = std::fs::read(&path).map_err(|e| format!("cannot read it: {e}"))?;
    if !pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned());
    }
    Ok(CaCertificates { path, pem })
}

/// Parses `epoch` or `passthrough`.
pub fn parse_foreign_ids(s: &str) -> Result<ForeignIds, String> {
    match s.trim() {
        "epoch" => Ok(ForeignIds::Epoch),
        "passthrough" => Ok(ForeignIds::Passthrough),
        _ => Err("expected `epoch` or `passthrough`".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// `memory`, `redis://…` and `rediss://…` (TLS).
    #[test]
    fn epoch_cache_forms() {
        assert_eq!(parse_epoch_cache("memory"), Ok(EpochCacheKind::Memory));
        assert!(matches!(
            parse_epoch_cache("redis://redis.example:6380"),
            Ok(EpochCacheKind::Redis(_))
        ));
        assert_eq!(
            parse_epoch_cache("rediss://meshray@master.cache.amazonaws.com:6379"),
            Ok(EpochCacheKind::Redis(
                "rediss://meshray@master.cache.amazonaws.com:6379".into()
            ))
        );
        for bad in ["", "mem", "redis://", "rediss://", "http://x"] {
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

    /// Milliseconds or seconds, within bounds; anything else is refused.
    #[test]
    fn durations() {
        let (min, max) = (Duration::from_millis(1), Duration::from_secs(10));
        let cases = [
            ("50ms", Some(Duration::from_millis(50))),
            ("50", Some(Duration::from_millis(50))),
            (" 2s ", Some(Duration::from_secs(2))),
            ("10s", Some(Duration::from_secs(10))),
            ("11s", None),
            ("0ms", None),
            ("1.5s", None),
            ("50 parsecs", None),
            ("", None),
            ("ms", None),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_duration(input, min, max).ok(), expected, "{input:?}");
        }
    }

    /// `epoch` and `passthrough` only.
    #[test]
    fn foreign_id_modes() {
        assert_eq!(parse_foreign_ids("epoch"), Ok(ForeignIds::Epoch));
        assert_eq!(
            parse_foreign_ids("passthrough"),
            Ok(ForeignIds::Passthrough)
        );
        assert!(parse_foreign_ids("1:1").is_err());
    }

    /// Secrets are non-empty and never shown by `Debug`.
    #[test]
    fn secrets_are_redacted() {
        let secret = parse_secret("hunter2").unwrap();
        assert_eq!(secret.expose(), "hunter2");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert!(parse_secret("").is_err());
    }

    /// A CA file must exist and hold a PEM certificate.
    #[test]
    fn ca_files() {
        let dir = std::env::temp_dir().join(format!("meshray-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("ca.pem");
        std::fs::write(
            &good,
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let bad = dir.join("key.pem");
        std::fs::write(&bad, "-----BEGIN PRIVATE KEY-----\n").unwrap();
        assert_eq!(parse_ca_file(good.to_str().unwrap()).unwrap().path, good);
        assert!(
            parse_ca_file(bad.to_str().unwrap())
                .unwrap_err()
                .contains("no PEM")
        );
        assert!(parse_ca_file(dir.join("missing").to_str().unwrap()).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
