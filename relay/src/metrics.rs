//! The relay's Prometheus metrics, served as text on `GET /metrics`.
//!
//! All names start with `meshray_relay_`. Documents are counted at each step:
//! received → accepted or rejected (by reason) → sent or failed (by reason), plus
//! retries, the queue depth and the epoch cache's hits, misses and local fallbacks.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Why a document was not accepted into the queue.
pub mod reject {
    /// It failed validation (bad JSON shape, ids, times, size).
    pub const INVALID: &str = "invalid";
    /// The queue had no room.
    pub const QUEUE_FULL: &str = "queue_full";
    /// The relay is shutting down.
    pub const DRAINING: &str = "draining";
}

/// Why a queued document was never delivered.
pub mod fail {
    /// X-Ray rejected it for good (`UnprocessedTraceSegments` with a non-retryable code).
    pub const REJECTED: &str = "rejected_by_xray";
    /// The call failed with an error that retrying cannot fix.
    pub const NON_RETRYABLE: &str = "non_retryable";
    /// Every attempt failed.
    pub const RETRIES_EXHAUSTED: &str = "retries_exhausted";
    /// Writing to the stdout/file sink failed.
    pub const WRITE: &str = "write_failed";
    /// The drain deadline passed while it was still queued or in flight.
    pub const DRAIN_DEADLINE: &str = "drain_deadline";
}

/// The endpoints items arrive on (the `endpoint` label).
pub mod endpoint {
    /// `POST /v1/segments`: X-Ray documents from the filter.
    pub const SEGMENTS: &str = "segments";
    /// `POST /api/v2/spans`: Zipkin v2 spans.
    pub const ZIPKIN: &str = "zipkin";
    /// `POST /v1/traces`: OTLP spans.
    pub const OTLP: &str = "otlp";
    /// The X-Ray daemon UDP port: one document per datagram.
    pub const DAEMON: &str = "daemon_udp";
}

/// Why an endpoint refused items, beyond the queue's [`reject`] reasons.
pub mod refuse {
    /// The body was larger than `--max-body` (or inflated past it).
    pub const TOO_LARGE: &str = "too_large";
    /// The body was not the format the endpoint takes (not JSON, bad gzip, bad protobuf).
    pub const MALFORMED: &str = "malformed";
}

/// The `endpoint` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    /// One of [`endpoint`].
    pub endpoint: &'static str,
}

/// The `endpoint` and `reason` labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointReason {
    /// One of [`endpoint`].
    pub endpoint: &'static str,
    /// One of [`reject`] or [`refuse`].
    pub reason: &'static str,
}

/// Buckets of the `PutTraceSegments` latency histogram, in seconds: 5 ms to 10 s.
pub const PUT_LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The `reason` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// One of [`reject`] or [`fail`].
    pub reason: &'static str,
}

/// Every metric of the relay, registered in one registry.
#[derive(Debug)]
pub struct Metrics {
    /// Owns the metrics below for encoding.
    registry: Registry,
    /// Documents received, over HTTP and UDP.
    pub received: Counter,
    /// Documents accepted into the queue.
    pub accepted: Counter,
    /// Documents refused, by reason.
    pub rejected: Family<Reason, Counter>,
    /// Documents delivered to the sink.
    pub sent: Counter,
    /// Documents given up on, by reason.
    pub failed: Family<Reason, Counter>,
    /// Documents sent again after a retryable failure.
    pub retried: Counter,
    /// Documents waiting in the queue; set when scraped.
    pub queue_depth: Gauge,
    /// Foreign ids already bound to an epoch.
    pub epoch_cache_hits: Counter,
    /// Foreign ids bound now, to their document's epoch.
    pub epoch_cache_misses: Counter,
    /// Items received per endpoint: documents (segments, daemon) or spans (zipkin, otlp).
    pub endpoint_received: Family<EndpointLabel, Counter>,
    /// Items refused per endpoint, by reason.
    pub endpoint_rejected: Family<EndpointReason, Counter>,
    /// Seconds each `PutTraceSegments` call took, whatever its outcome.
    pub put_latency: Histogram,
    /// Foreign ids resolved from the local cache because Redis was unavailable or slow.
    pub epoch_cache_fallback: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("meshray_relay");
        let metrics = Metrics {
            received: Counter::default(),
            accepted: Counter::default(),
            rejected: Family::default(),
            sent: Counter::default(),
            failed: Family::default(),
            retried: Counter::default(),
            queue_depth: Gauge::default(),
            epoch_cache_hits: Counter::default(),
            epoch_cache_misses: Counter::default(),
            endpoint_received: Family::default(),
            endpoint_rejected: Family::default(),
            put_latency: Histogram::new(PUT_LATENCY_BUCKETS),
            epoch_cache_fallback: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "documents_received",
            "Segment documents received over HTTP and UDP",
            metrics.received.clone(),
        );
        registry.register(
            "documents_accepted",
            "Segment documents accepted into the queue",
            metrics.accepted.clone(),
        );
        registry.register(
            "documents_rejected",
            "Segment documents refused, by reason",
            metrics.rejected.clone(),
        );
        registry.register(
            "documents_sent",
            "Segment documents delivered to the sink",
            metrics.sent.clone(),
        );
        registry.register(
            "documents_failed",
            "Queued segment documents never delivered, by reason",
            metrics.failed.clone(),
        );
        registry.register(
            "documents_retried",
            "Segment documents sent again after a retryable failure",
            metrics.retried.clone(),
        );
        registry.register(
            "queue_depth",
            "Segment documents waiting in the queue",
            metrics.queue_depth.clone(),
        );
        registry.register(
            "epoch_cache_hits",
            "Foreign trace ids already bound to an epoch",
            metrics.epoch_cache_hits.clone(),
        );
        registry.register(
            "epoch_cache_misses",
            "Foreign trace ids bound now to their document's epoch",
            metrics.epoch_cache_misses.clone(),
        );
        registry.register(
            "epoch_cache_fallback",
            "Foreign trace ids resolved from the relay's local cache because the shared one \
             (Redis) was unavailable or slower than --epoch-cache-timeout",
            metrics.epoch_cache_fallback.clone(),
        );
        registry.register(
            "endpoint_received",
            "Items received per endpoint: documents (segments, daemon_udp) or spans (zipkin, otlp)",
            metrics.endpoint_received.clone(),
        );
        registry.register(
            "endpoint_rejected",
            "Items refused per endpoint, by reason",
            metrics.endpoint_rejected.clone(),
        );
        registry.register_with_unit(
            "put_trace_segments_duration",
            "Latency of PutTraceSegments calls, whatever their outcome",
            prometheus_client::registry::Unit::Seconds,
            metrics.put_latency.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Counts `n` documents rejected for `reason`.
    pub fn reject(&self, reason: &'static str, n: usize) {
        self.rejected
            .get_or_create(&Reason { reason })
            .inc_by(as_u64(n));
    }

    /// Counts `n` items received on `endpoint`.
    pub fn endpoint_received(&self, endpoint: &'static str, n: usize) {
        self.endpoint_received
            .get_or_create(&EndpointLabel { endpoint })
            .inc_by(as_u64(n));
    }

    /// Counts `n` items refused on `endpoint` for `reason`.
    pub fn endpoint_rejected(&self, endpoint: &'static str, reason: &'static str, n: usize) {
        if n > 0 {
            self.endpoint_rejected
                .get_or_create(&EndpointReason { endpoint, reason })
                .inc_by(as_u64(n));
        }
    }

    /// Counts `n` documents failed for `reason`.
    pub fn fail(&self, reason: &'static str, n: usize) {
        self.failed
            .get_or_create(&Reason { reason })
            .inc_by(as_u64(n));
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}

/// Counts never exceed `u64`; saturate rather than cast.
pub fn as_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every metric is exposed under `meshray_relay_`, in OpenMetrics text.
    #[test]
    fn encodes_every_metric_with_prefix() {
        let metrics = Metrics::new();
        metrics.received.inc_by(3);
        metrics.reject(reject::INVALID, 2);
        metrics.fail(fail::RETRIES_EXHAUSTED, 1);
        metrics.queue_depth.set(7);
        metrics.endpoint_received(endpoint::ZIPKIN, 5);
        metrics.endpoint_rejected(endpoint::ZIPKIN, reject::INVALID, 2);
        metrics.endpoint_rejected(endpoint::OTLP, refuse::MALFORMED, 0);
        metrics.put_latency.observe(0.03);
        let text = metrics.encode();
        for line in [
            "meshray_relay_documents_received_total 3",
            "meshray_relay_documents_rejected_total{reason=\"invalid\"} 2",
            "meshray_relay_documents_failed_total{reason=\"retries_exhausted\"} 1",
            "meshray_relay_queue_depth 7",
            "meshray_relay_epoch_cache_hits_total 0",
            "meshray_relay_epoch_cache_misses_total 0",
            "meshray_relay_epoch_cache_fallback_total 0",
            "meshray_relay_documents_sent_total 0",
            "meshray_relay_documents_retried_total 0",
            "meshray_relay_documents_accepted_total 0",
            "meshray_relay_endpoint_received_total{endpoint=\"zipkin\"} 5",
            "meshray_relay_endpoint_rejected_total{endpoint=\"zipkin\",reason=\"invalid\"} 2",
            "meshray_relay_put_trace_segments_duration_seconds_bucket{le=\"0.05\"} 1",
            "meshray_relay_put_trace_segments_duration_seconds_count 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
        // A zero count creates no series.
        assert!(!text.contains("endpoint=\"otlp\""), "{text}");
    }
}
