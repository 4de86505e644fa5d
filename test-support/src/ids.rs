//! Trace ids as a test client makes them and as the filter writes them back.
//!
//! Tests that play a caller with its own trace context (an AWS load balancer, a Zipkin- or
//! W3C-instrumented service) need fresh random ids and ids whose high 32 bits are the
//! current epoch, and they read the trace id the filter chose out of the `x-amzn-trace-id`
//! header an app received.

use std::time::{SystemTime, UNIX_EPOCH};

/// `digits` random lowercase hex digits, never all zeros (all-zero ids are invalid in
/// every propagation format).
pub fn random_hex(digits: usize) -> String {
    loop {
        let hex: String = (0..digits)
            .map(|_| char::from(b"0123456789abcdef"[fastrand::usize(..16)]))
            .collect();
        if hex.bytes().any(|b| b != b'0') {
            return hex;
        }
    }
}

/// Seconds since the Unix epoch.
pub fn epoch_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Seconds since the Unix epoch, now, with the fraction (a document's `start_time`).
pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The current epoch seconds as 8 hex digits (an X-Ray trace id's time part).
pub fn now_epoch_hex() -> String {
    format!("{:08x}", epoch_secs(SystemTime::now()))
}

/// A new X-Ray trace id `1-{now as 8 hex}-{24 random hex}`, as an AWS load balancer mints it.
pub fn new_xray_trace_id() -> String {
    format!("1-{}-{}", now_epoch_hex(), random_hex(24))
}

/// A new 128-bit trace id (32 hex) whose high 32 bits are the current epoch, as meshray
/// and X-Ray-aware W3C/B3 tracers mint them.
pub fn new_epoch_trace_hex() -> String {
    format!("{}{}", now_epoch_hex(), random_hex(24))
}

/// The X-Ray trace id `1-{first 8}-{last 24}` of a 32-hex trace id.
pub fn xray_id_of_hex128(hex: &str) -> String {
    let (epoch, rest) = hex.split_at(hex.len().min(8));
    format!("1-{epoch}-{rest}")
}

/// The `Root=` field of an `x-amzn-trace-id` value.
pub fn xray_root(header: &str) -> Option<&str> {
    header.split(';').find_map(|field| {
        let (key, value) = field.trim().split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("root")
            .then_some(value.trim())
    })
}

/// The epoch seconds in an X-Ray trace id `1-{8 hex}-{24 hex}`.
pub fn xray_epoch(trace_id: &str) -> Option<u64> {
    let epoch = trace_id.strip_prefix("1-")?.get(..8)?;
    u64::from_str_radix(epoch, 16).ok()
}

/// The trace id field of a `traceparent` value (`version-trace-parent-flags`).
pub fn traceparent_trace_id(header: &str) -> Option<&str> {
    header.trim().split('-').nth(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_are_lowercase_hex_of_the_asked_width() {
        for digits in [1, 16, 24, 32] {
            let id = random_hex(digits);
            assert_eq!(id.len(), digits);
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
        }
        assert_ne!(random_hex(16), random_hex(16));
        let xray = new_xray_trace_id();
        assert!(crate::xray::is_xray_trace_id(&xray), "{xray}");
    }

    #[test]
    fn reads_root_epoch_and_traceparent() {
        let header = "Self=1-67891234-12456789abcdef012345678a;Root=1-67891233-abcdef012345678912345678;Sampled=1";
        assert_eq!(
            xray_root(header),
            Some("1-67891233-abcdef012345678912345678")
        );
        assert_eq!(xray_root("Parent=53995c3f42cd8ad8"), None);
        assert_eq!(
            xray_epoch("1-67891233-abcdef012345678912345678"),
            Some(0x6789_1233)
        );
        assert_eq!(xray_epoch("garbage"), None);
        assert_eq!(
            xray_id_of_hex128("67891233abcdef012345678912345678"),
            "1-67891233-abcdef012345678912345678"
        );
        assert_eq!(
            traceparent_trace_id("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            Some("0af7651916cd43dd8448eb211c80319c")
        );
    }
}
