//! The per-worker buffer of finished documents and the posts to the relay.
//!
//! Documents wait in a bounded queue; the root context's tick sends them in
//! batches with `dispatch_http_call`, which never blocks a request. When the
//! relay is slow or down the queue fills and new documents are dropped and
//! counted: the filter never holds more than [`FilterConfig::max_buffered`]
//! documents (and [`MAX_BUFFERED_BYTES`]) plus the posts in flight.

use std::collections::{HashMap, VecDeque};

use serde::Deserialize;

use crate::config::FilterConfig;
use crate::host::Host;
use crate::metrics::{DropReason, Metrics};
use crate::tracer::BATCH_MARKER_HEADER;

/// Most bytes buffered per worker, whatever the document count.
pub const MAX_BUFFERED_BYTES: usize = 8 * 1024 * 1024;
/// Most bytes in one post to the relay (at least one document is always sent).
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// The relay's answer to a post (`POST /v1/segments`).
#[derive(Debug, Deserialize)]
struct RelayAnswer {
    accepted: usize,
    #[serde(default)]
    rejected: Vec<serde_json::Value>,
}

/// What came back for one post to the relay.
#[derive(Debug, Clone, Copy, Default)]
pub struct RelayReply<'a> {
    /// HTTP status; `None` when the call failed without a response (reset, timeout).
    pub status: Option<u16>,
    /// Whether the answer carried `Retry-After`: the relay sets it when it sheds
    /// load, Envoy's own 503 (relay unreachable) does not.
    pub retry_after: bool,
    /// The body.
    pub body: Option<&'a [u8]>,
}

impl<'a> RelayReply<'a> {
    /// Decodes the answer to a post from the host, in the root context's
    /// `on_http_call_response`: `:status`, whether `Retry-After` came, and `body`
    /// (read by the caller, which owns it). A missing or unreadable status
    /// means Envoy got no answer.
    pub fn read(host: &impl Host, body: Option<&'a [u8]>) -> Self {
        let header = |name: &str| host.http_call_response_header(name).ok().flatten();
        let status = header(":status")
            .and_then(|s| std::str::from_utf8(&s).ok()?.trim().parse::<u16>().ok());
        Self {
            status,
            retry_after: header("retry-after").is_some(),
            body,
        }
    }
}

/// Buffer and in-flight posts of one worker VM.
#[derive(Debug, Default)]
pub struct Shipper {
    /// Serialised documents waiting to be sent, oldest first.
    queue: VecDeque<Vec<u8>>,
    /// Bytes in `queue`.
    queued_bytes: usize,
    /// Documents per post in flight, by call token.
    in_flight: HashMap<u32, usize>,
    /// When the queue was last flushed, ns since the epoch.
    last_flush_nanos: u64,
    /// Whether the last post failed (for logging state changes only).
    relay_failing: bool,
    /// Counter changes not reported yet: per-document counts go to the host once
    /// per tick, not once per request.
    unreported: UnreportedCounts,
}

/// Per-document counts waiting for [`Shipper::report_counts`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct UnreportedCounts {
    /// Documents pushed.
    emitted: usize,
    /// Documents dropped because the buffer was full.
    buffer_full: usize,
    /// Change of the buffered-documents gauge.
    buffered: i64,
}

impl Shipper {
    /// Documents waiting.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Posts in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Adds a document; drops it (counted at the next tick) when the buffer is full.
    pub fn push(&mut self, config: &FilterConfig, document: Vec<u8>) {
        self.unreported.emitted += 1;
        if self.queue.len() >= config.max_buffered
            || self.queued_bytes + document.len() > MAX_BUFFERED_BYTES
        {
            self.unreported.buffer_full += 1;
            return;
        }
        self.queued_bytes += document.len();
        self.queue.push_back(document);
        self.unreported.buffered += 1;
    }

    /// Reports the per-document counts gathered since the last call (each tick).
    pub fn report_counts(&mut self, host: &impl Host, metrics: &Metrics) {
        let counts = std::mem::take(&mut self.unreported);
        metrics.emitted(host, counts.emitted);
        metrics.dropped(host, DropReason::BufferFull, counts.buffer_full);
        metrics.buffered(host, counts.buffered);
    }

    /// Timer: reports counts, sends full batches at once, and everything once the
    /// flush interval has passed.
    pub fn on_tick(&mut self, host: &impl Host, config: &FilterConfig, metrics: &Metrics) {
        self.report_counts(host, metrics);
        let now = host.now_nanos().unwrap_or_default();
        let interval_passed =
            now.saturating_sub(self.last_flush_nanos) >= config.flush_interval.as_nanos() as u64;
        if interval_passed {
            self.last_flush_nanos = now;
        }
        self.send(host, config, metrics, interval_passed);
    }

    /// Posts full batches while fewer than `max_in_flight` posts are out; with
    /// `partial`, what is left too.
    fn send(&mut self, host: &impl Host, config: &FilterConfig, metrics: &Metrics, partial: bool) {
        while self.in_flight.len() < config.max_in_flight
            && (self.queue.len() >= config.max_batch || (partial && !self.queue.is_empty()))
        {
            self.send_batch(host, config, metrics);
        }
    }

    /// Takes one batch off the queue and posts it.
    fn send_batch(&mut self, host: &impl Host, config: &FilterConfig, metrics: &Metrics) {
        let mut body = Vec::with_capacity(MAX_BATCH_BYTES.min(self.queued_bytes + 2));
        body.push(b'[');
        let mut count = 0;
        while let Some(next) = self.queue.front() {
            if count == config.max_batch
                || (count > 0 && body.len() + next.len() + 2 > MAX_BATCH_BYTES)
            {
                break;
            }
            let Some(document) = self.queue.pop_front() else {
                break;
            };
            self.queued_bytes -= document.len();
            if count > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&document);
            count += 1;
        }
        body.push(b']');
        self.unreported.buffered -= i64::try_from(count).unwrap_or(i64::MAX);
        let headers = [
            (":method", "POST"),
            (":path", config.relay_path.as_str()),
            (":authority", config.relay_authority.as_str()),
            ("content-type", "application/json"),
            (BATCH_MARKER_HEADER, "1"),
        ];
        match host.dispatch_http_call(&config.relay_cluster, &headers, &body, config.relay_timeout)
        {
            Ok(token) => {
                self.in_flight.insert(token, count);
            }
            Err(e) => {
                log::warn!(
                    "meshray: cannot post to relay cluster {:?}: {e}",
                    config.relay_cluster
                );
                metrics.dropped(host, DropReason::RelayUnavailable, count);
            }
        }
    }

    /// The relay answered a post, or Envoy answered for it (unreachable, timeout).
    /// A finished post frees a slot: full batches waiting go out at once, so the
    /// rate a worker can ship is not bounded by the timer.
    pub fn on_response(
        &mut self,
        host: &impl Host,
        config: &FilterConfig,
        metrics: &Metrics,
        token: u32,
        reply: RelayReply<'_>,
    ) {
        let Some(count) = self.in_flight.remove(&token) else {
            return;
        };
        let delivered = self.account(host, metrics, count, reply);
        if delivered {
            // After a failure the timer paces the retries instead.
            self.send(host, config, metrics, false);
        }
    }

    /// Counts what became of a post of `count` documents; whether it was delivered.
    /// The log says when the relay stops and starts answering, not every failed post.
    fn account(
        &mut self,
        host: &impl Host,
        metrics: &Metrics,
        count: usize,
        reply: RelayReply<'_>,
    ) -> bool {
        // The relay sheds load with 429, or 503 + Retry-After; any other failure
        // (Envoy's own 503 for an unreachable relay, a reset, a timeout) means unavailable.
        let busy = reply.status == Some(429) || (reply.status == Some(503) && reply.retry_after);
        match reply.status {
            Some(200..=299) => {
                let answer = reply
                    .body
                    .and_then(|b| serde_json::from_slice::<RelayAnswer>(b).ok());
                match answer {
                    Some(answer) => {
                        metrics.sent(host, answer.accepted);
                        if let Some(first) = answer.rejected.first() {
                            log::warn!(
                                "meshray: relay rejected {} documents, first: {first}",
                                answer.rejected.len()
                            );
                            metrics.dropped(host, DropReason::Rejected, answer.rejected.len());
                        }
                    }
                    None => metrics.sent(host, count),
                }
            }
            _ => {
                let reason = if busy {
                    DropReason::RelayBusy
                } else {
                    DropReason::RelayUnavailable
                };
                if !self.relay_failing {
                    log::warn!(
                        "meshray: relay post failed ({}, status {:?}); dropping batches until it answers",
                        reason.label(),
                        reply.status
                    );
                }
                self.relay_failing = true;
                metrics.dropped(host, reason, count);
                return false;
            }
        }
        if self.relay_failing {
            log::info!("meshray: relay answers again");
            self.relay_failing = false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::FakeHost;

    const NOW: u64 = 1_764_000_000;

    fn shipper_setup(max_batch: usize, max_buffered: usize) -> (FakeHost, FilterConfig, Metrics) {
        let host = FakeHost::at(NOW);
        let config = FilterConfig {
            max_batch,
            max_buffered,
            ..FilterConfig::default()
        };
        let metrics = Metrics::define(&host);
        (host, config, metrics)
    }

    #[test]
    fn full_buffer_drops_newest_and_counts() {
        let (host, config, metrics) = shipper_setup(2, 3);
        let mut shipper = Shipper::default();
        for i in 0..5 {
            shipper.push(&config, format!("{{\"n\":{i}}}").into_bytes());
        }
        assert_eq!(shipper.queued(), 3);
        assert_eq!(
            host.counter("meshray_segments_emitted_total"),
            0,
            "counts go to the host once per tick, not per document"
        );
        shipper.report_counts(&host, &metrics);
        assert_eq!(host.counter("meshray_buffered_documents"), 3);
        assert_eq!(host.counter("meshray_segments_emitted_total"), 5);
        assert_eq!(host.counter("meshray_segments_dropped_total"), 2);
        assert_eq!(
            host.counter("meshray_segments_dropped_buffer_full_total"),
            2
        );
    }

    #[test]
    fn tick_sends_batches_to_the_relay_cluster() {
        let (host, config, metrics) = shipper_setup(2, 10);
        let mut shipper = Shipper::default();
        for i in 0..5 {
            shipper.push(&config, format!("{{\"n\":{i}}}").into_bytes());
        }
        shipper.on_tick(&host, &config, &metrics);
        let dispatched = host.dispatched.borrow();
        assert_eq!(
            dispatched.len(),
            3,
            "batches of 2, 2, 1 after the flush interval"
        );
        assert_eq!(dispatched[0].cluster, config.relay_cluster);
        assert_eq!(dispatched[0].body, br#"[{"n":0},{"n":1}]"#);
        assert!(
            dispatched[0]
                .headers
                .contains(&(":path".into(), "/v1/segments".into()))
        );
        assert!(
            dispatched[0]
                .headers
                .contains(&(":authority".into(), config.relay_authority.clone()))
        );
        drop(dispatched);

        let partial = RelayReply {
            status: Some(200),
            retry_after: false,
            body: Some(br#"{"accepted":1,"rejected":[{"index":1,"error":"bad"}]}"#),
        };
        let reset = RelayReply::default();
        let shedding = RelayReply {
            status: Some(503),
            retry_after: true,
            body: None,
        };
        shipper.on_response(&host, &config, &metrics, 1, partial);
        shipper.on_response(&host, &config, &metrics, 2, reset);
        shipper.on_response(&host, &config, &metrics, 3, shedding);
        assert_eq!(host.counter("meshray_segments_sent_total"), 1);
        assert_eq!(host.counter("meshray_segments_dropped_rejected_total"), 1);
        assert_eq!(
            host.counter("meshray_segments_dropped_relay_unavailable_total"),
            2
        );
        assert_eq!(host.counter("meshray_segments_dropped_relay_busy_total"), 1);
        assert_eq!(shipper.in_flight(), 0);
    }

    #[test]
    fn envoys_own_503_means_the_relay_is_unavailable_not_busy() {
        let (host, config, metrics) = shipper_setup(10, 10);
        let mut shipper = Shipper::default();
        shipper.push(&config, b"{}".to_vec());
        shipper.on_tick(&host, &config, &metrics);
        let envoy_503 = RelayReply {
            status: Some(503),
            retry_after: false,
            body: Some(b"no healthy upstream"),
        };
        shipper.on_response(&host, &config, &metrics, 1, envoy_503);
        assert_eq!(
            host.counter("meshray_segments_dropped_relay_unavailable_total"),
            1
        );
        assert_eq!(host.counter("meshray_segments_dropped_relay_busy_total"), 0);
    }

    #[test]
    fn in_flight_limit_keeps_documents_buffered() {
        let (host, mut config, metrics) = shipper_setup(1, 10);
        config.max_in_flight = 2;
        let mut shipper = Shipper::default();
        for _ in 0..5 {
            shipper.push(&config, b"{}".to_vec());
        }
        shipper.on_tick(&host, &config, &metrics);
        assert_eq!(shipper.in_flight(), 2);
        assert_eq!(shipper.queued(), 3);
        shipper.report_counts(&host, &metrics);
        assert_eq!(host.counter("meshray_buffered_documents"), 3);
    }

    #[test]
    fn an_answered_post_sends_the_next_full_batch_at_once() {
        let (host, mut config, metrics) = shipper_setup(2, 100);
        config.max_in_flight = 1;
        let mut shipper = Shipper::default();
        for _ in 0..6 {
            shipper.push(&config, b"{}".to_vec());
        }
        shipper.on_tick(&host, &config, &metrics);
        assert_eq!(host.dispatched.borrow().len(), 1, "one post in flight");
        let ok = RelayReply {
            status: Some(200),
            retry_after: false,
            body: Some(br#"{"accepted":2,"rejected":[]}"#),
        };
        shipper.on_response(&host, &config, &metrics, 1, ok);
        assert_eq!(
            host.dispatched.borrow().len(),
            2,
            "next batch without waiting for the timer"
        );
        // A failed post does not trigger the next one: the timer paces retries.
        shipper.on_response(&host, &config, &metrics, 2, RelayReply::default());
        assert_eq!(host.dispatched.borrow().len(), 2);
        assert_eq!(shipper.queued(), 2);
    }

    #[test]
    fn failed_dispatch_drops_and_counts() {
        let (mut host, config, metrics) = shipper_setup(10, 10);
        host.dispatch_fails = true;
        let mut shipper = Shipper::default();
        shipper.push(&config, b"{}".to_vec());
        shipper.on_tick(&host, &config, &metrics);
        assert_eq!(
            host.counter("meshray_segments_dropped_relay_unavailable_total"),
            1
        );
        assert_eq!(shipper.queued(), 0);
    }
}
