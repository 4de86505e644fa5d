//! The per-worker buffer of finished documents and the posts to the relay.
//!
//! Documents wait in a bounded queue; the root context's tick sends them in
//! batches with `dispatch_http_call`, which never blocks a request. When the
//! relay is slow or down the queue fills and its oldest documents are dropped
//! and counted: the filter never holds more than [`FilterConfig::max_buffered`]
//! documents (and [`MAX_BUFFERED_BYTES`]) plus the posts in flight.
//!
//! # Retries
//! A post the relay refuses for load (429, or 503 with `Retry-After`) or that
//! cannot reach it (no answer, Envoy's own 502/503/504) goes back to the front of
//! the queue and is sent again after a backoff: `Retry-After` when the relay
//! gave one (at most [`MAX_RETRY_AFTER`]), else [`RETRY_BASE`] doubling up to
//! [`RETRY_MAX`]. The bounds hold throughout: when the returning documents do
//! not fit, the oldest are dropped and counted under the failure's reason.
//! Any other answer (a 4xx, a 500) is final: the batch is dropped and counted.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde::Deserialize;

use crate::config::FilterConfig;
use crate::host::Host;
use crate::metrics::{DropReason, Metrics};
use crate::tracer::BATCH_MARKER_HEADER;

/// Most bytes buffered per worker, whatever the document count.
pub const MAX_BUFFERED_BYTES: usize = 8 * 1024 * 1024;
/// Most bytes in one post to the relay (at least one document is always sent).
pub const MAX_BATCH_BYTES: usize = 1024 * 1024;
/// First wait after a failed post without `Retry-After`.
pub const RETRY_BASE: Duration = Duration::from_millis(200);
/// Longest wait between retries without `Retry-After`.
pub const RETRY_MAX: Duration = Duration::from_secs(2);
/// Longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// What a `Retry-After` the filter cannot parse (an HTTP date) counts as.
const UNPARSED_RETRY_AFTER: Duration = Duration::from_secs(1);

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
    /// `Retry-After`: the relay sets it when it sheds load, Envoy's own 503
    /// (relay unreachable) does not.
    pub retry_after: Option<Duration>,
    /// The body.
    pub body: Option<&'a [u8]>,
}

impl<'a> RelayReply<'a> {
    /// Decodes the answer to a post from the host, in the root context's
    /// `on_http_call_response`: `:status`, `Retry-After` (seconds), and `body`
    /// (read by the caller, which owns it). A missing or unreadable status
    /// means Envoy got no answer.
    pub fn read(host: &impl Host, body: Option<&'a [u8]>) -> Self {
        let header = |name: &str| host.http_call_response_header(name).ok().flatten();
        let status = header(":status")
            .and_then(|s| std::str::from_utf8(&s).ok()?.trim().parse::<u16>().ok());
        let retry_after = header("retry-after").map(|value| {
            std::str::from_utf8(&value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map_or(UNPARSED_RETRY_AFTER, Duration::from_secs)
        });
        Self {
            status,
            retry_after,
            body,
        }
    }

    /// What became of the post.
    fn outcome(&self) -> Outcome {
        match self.status {
            Some(200..=299) => Outcome::Delivered,
            Some(429) => Outcome::Retry(DropReason::RelayBusy),
            Some(503) if self.retry_after.is_some() => Outcome::Retry(DropReason::RelayBusy),
            None | Some(502..=504) => Outcome::Retry(DropReason::RelayUnavailable),
            Some(_) => Outcome::Failed,
        }
    }
}

/// What became of one post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The relay took it (possibly rejecting some documents).
    Delivered,
    /// Refused for load or not delivered: send it again; if it cannot be kept,
    /// its documents are dropped for this reason.
    Retry(DropReason),
    /// Refused for good (4xx, 500): dropped.
    Failed,
}

/// Buffer and in-flight posts of one worker VM.
#[derive(Debug, Default)]
pub struct Shipper {
    /// Serialised documents waiting to be sent, oldest first.
    queue: VecDeque<Vec<u8>>,
    /// Bytes in `queue`.
    queued_bytes: usize,
    /// The documents of each post in flight, by call token (kept to resend them).
    in_flight: HashMap<u32, Vec<Vec<u8>>>,
    /// When the queue was last flushed, ns since the epoch.
    last_flush_nanos: u64,
    /// No post before this time (ns since the epoch): the backoff after a failure.
    retry_at_nanos: u64,
    /// Failed posts in a row, for the backoff.
    failures: u32,
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

    /// Adds a document. A full buffer gives up its oldest documents to make room
    /// (counted at the next tick): after an outage the backlog of retried posts
    /// must not keep out what happens once the relay is back. A document larger
    /// than the whole byte bound is dropped itself.
    pub fn push(&mut self, config: &FilterConfig, document: Vec<u8>) {
        self.unreported.emitted += 1;
        if document.len() > MAX_BUFFERED_BYTES {
            self.unreported.buffer_full += 1;
            return;
        }
        while self.queue.len() >= config.max_buffered
            || self.queued_bytes + document.len() > MAX_BUFFERED_BYTES
        {
            let Some(oldest) = self.queue.pop_front() else {
                break;
            };
            self.queued_bytes -= oldest.len();
            self.unreported.buffer_full += 1;
            self.unreported.buffered -= 1;
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
        if interval_passed && now >= self.retry_at_nanos {
            self.last_flush_nanos = now;
        }
        self.send(host, config, metrics, now, interval_passed);
    }

    /// Posts full batches while fewer than `max_in_flight` posts are out and no
    /// backoff is running; with `partial`, what is left too.
    fn send(
        &mut self,
        host: &impl Host,
        config: &FilterConfig,
        metrics: &Metrics,
        now: u64,
        partial: bool,
    ) {
        if now < self.retry_at_nanos {
            return;
        }
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
        let mut documents = Vec::new();
        while let Some(next) = self.queue.front() {
            if documents.len() == config.max_batch
                || (!documents.is_empty() && body.len() + next.len() + 2 > MAX_BATCH_BYTES)
            {
                break;
            }
            let Some(document) = self.queue.pop_front() else {
                break;
            };
            self.queued_bytes -= document.len();
            if !documents.is_empty() {
                body.push(b',');
            }
            body.extend_from_slice(&document);
            documents.push(document);
        }
        body.push(b']');
        self.unreported.buffered -= i64::try_from(documents.len()).unwrap_or(i64::MAX);
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
                self.in_flight.insert(token, documents);
            }
            Err(e) => {
                // The relay's cluster is missing from this sidecar (a Sidecar
                // resource that leaves it out): retrying cannot help.
                log::warn!(
                    "meshray: cannot post to relay cluster {:?}: {e}",
                    config.relay_cluster
                );
                metrics.dropped(host, DropReason::RelayUnavailable, documents.len());
            }
        }
    }

    /// The relay answered a post, or Envoy answered for it (unreachable, timeout).
    /// A delivered post frees a slot: full batches waiting go out at once, so the
    /// rate a worker can ship is not bounded by the timer. A post to retry goes
    /// back to the front of the queue and the backoff starts.
    pub fn on_response(
        &mut self,
        host: &impl Host,
        config: &FilterConfig,
        metrics: &Metrics,
        token: u32,
        reply: RelayReply<'_>,
    ) {
        let Some(documents) = self.in_flight.remove(&token) else {
            return;
        };
        let now = host.now_nanos().unwrap_or_default();
        match reply.outcome() {
            Outcome::Delivered => {
                self.account_delivered(host, metrics, documents.len(), reply);
                self.failures = 0;
                self.retry_at_nanos = 0;
                self.send(host, config, metrics, now, false);
            }
            Outcome::Retry(reason) => {
                self.log_failure(reason, reply);
                self.requeue(host, config, metrics, documents, reason);
                self.back_off(now, reply.retry_after);
            }
            Outcome::Failed => {
                self.log_failure(DropReason::RelayUnavailable, reply);
                metrics.dropped(host, DropReason::RelayUnavailable, documents.len());
            }
        }
    }

    /// Puts a failed post's documents back at the front, in order, and drops
    /// the oldest documents that no longer fit the bounds.
    fn requeue(
        &mut self,
        host: &impl Host,
        config: &FilterConfig,
        metrics: &Metrics,
        documents: Vec<Vec<u8>>,
        reason: DropReason,
    ) {
        let returned = documents.len();
        for document in documents.into_iter().rev() {
            self.queued_bytes += document.len();
            self.queue.push_front(document);
        }
        let mut dropped = 0;
        while self.queue.len() > config.max_buffered || self.queued_bytes > MAX_BUFFERED_BYTES {
            let Some(oldest) = self.queue.pop_front() else {
                break;
            };
            self.queued_bytes -= oldest.len();
            dropped += 1;
        }
        let kept = returned.saturating_sub(dropped);
        self.unreported.buffered += i64::try_from(returned).unwrap_or(i64::MAX)
            - i64::try_from(dropped).unwrap_or(i64::MAX);
        metrics.retried(host, kept);
        metrics.dropped(host, reason, dropped);
    }

    /// Starts the wait before the next post.
    fn back_off(&mut self, now: u64, retry_after: Option<Duration>) {
        self.failures = self.failures.saturating_add(1);
        let delay = match retry_after {
            Some(wait) => wait.min(MAX_RETRY_AFTER),
            None => RETRY_BASE
                .saturating_mul(1 << self.failures.saturating_sub(1).min(8))
                .min(RETRY_MAX),
        };
        let delay_nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.retry_at_nanos = self.retry_at_nanos.max(now.saturating_add(delay_nanos));
    }

    /// Counts a delivered post. The log says when the relay starts answering
    /// again, not every post.
    fn account_delivered(
        &mut self,
        host: &impl Host,
        metrics: &Metrics,
        count: usize,
        reply: RelayReply<'_>,
    ) {
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
        if self.relay_failing {
            log::info!("meshray: relay answers again");
            self.relay_failing = false;
        }
    }

    /// Logs the first failure of a run of failures.
    fn log_failure(&mut self, reason: DropReason, reply: RelayReply<'_>) {
        if !self.relay_failing {
            log::warn!(
                "meshray: relay post failed ({}, status {:?}); retrying within the buffer's bounds",
                reason.label(),
                reply.status
            );
        }
        self.relay_failing = true;
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
    fn full_buffer_drops_oldest_and_counts() {
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
        // The newest stayed: the oldest made room.
        shipper.on_tick(&host, &config, &metrics);
        assert_eq!(host.dispatched.borrow()[0].body, br#"[{"n":2},{"n":3}]"#);
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
            retry_after: None,
            body: Some(br#"{"accepted":1,"rejected":[{"index":1,"error":"bad"}]}"#),
        };
        let reset = RelayReply::default();
        let shedding = RelayReply {
            status: Some(503),
            retry_after: Some(Duration::from_secs(1)),
            body: None,
        };
        shipper.on_response(&host, &config, &metrics, 1, partial);
        // The buffer fills up again while the other posts are out, so the failed
        // posts cannot come back: their documents are dropped under their reason.
        for i in 5..15 {
            shipper.push(&config, format!("{{\"n\":{i}}}").into_bytes());
        }
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
        assert_eq!(shipper.queued(), 10, "never beyond max_buffered");
    }

    #[test]
    fn envoys_own_503_means_the_relay_is_unavailable_not_busy() {
        let (host, config, metrics) = shipper_setup(10, 10);
        let mut shipper = Shipper::default();
        shipper.push(&config, b"{}".to_vec());
        shipper.on_tick(&host, &config, &metrics);
        // A full buffer: the post cannot come back and is dropped under its reason.
        for _ in 0..10 {
            shipper.push(&config, b"{}".to_vec());
        }
        let envoy_503 = RelayReply {
            status: Some(503),
            retry_after: None,
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
        shipper.on_response(&host, &config, &metrics, 1, ok());
        assert_eq!(
            host.dispatched.borrow().len(),
            2,
            "next batch without waiting for the timer"
        );
        // A failed post does not trigger the next one: the timer paces retries.
        // Its two documents are back in the buffer.
        shipper.on_response(&host, &config, &metrics, 2, RelayReply::default());
        assert_eq!(host.dispatched.borrow().len(), 2);
        assert_eq!(shipper.queued(), 4);
    }

    fn ok() -> RelayReply<'static> {
        RelayReply {
            status: Some(200),
            retry_after: None,
            body: Some(br#"{"accepted":2,"rejected":[]}"#),
        }
    }

    /// A refused batch goes back to the front and is sent again, first, once
    /// `Retry-After` has passed — not before.
    #[test]
    fn a_refused_batch_is_resent_after_retry_after() {
        let (host, config, metrics) = shipper_setup(2, 100);
        let mut shipper = Shipper::default();
        for i in 0..2 {
            shipper.push(&config, format!("{{\"n\":{i}}}").into_bytes());
        }
        shipper.on_tick(&host, &config, &metrics);
        let busy = RelayReply {
            status: Some(429),
            retry_after: Some(Duration::from_secs(2)),
            body: None,
        };
        shipper.on_response(&host, &config, &metrics, 1, busy);
        shipper.push(&config, br#"{"n":2}"#.to_vec());
        assert_eq!(shipper.queued(), 3);
        assert_eq!(host.counter("meshray_segments_retried_total"), 2);
        assert_eq!(host.counter("meshray_segments_dropped_total"), 0);
        host.advance(1_900_000_000);
        shipper.on_tick(&host, &config, &metrics);
        assert_eq!(host.dispatched.borrow().len(), 1, "still backing off");
        host.advance(100_000_000);
        shipper.on_tick(&host, &config, &metrics);
        let dispatched = host.dispatched.borrow();
        assert_eq!(dispatched.len(), 3);
        assert_eq!(
            dispatched[1].body, br#"[{"n":0},{"n":1}]"#,
            "the retried batch first"
        );
        assert_eq!(dispatched[2].body, br#"[{"n":2}]"#);
    }

    /// Without Retry-After the wait doubles from RETRY_BASE up to RETRY_MAX; a
    /// delivered post ends the backoff.
    #[test]
    fn backoff_doubles_and_resets_on_success() {
        let (host, config, metrics) = shipper_setup(1, 100);
        let mut shipper = Shipper::default();
        shipper.push(&config, b"{}".to_vec());
        let mut waits = Vec::new();
        for _ in 0..8 {
            shipper.on_tick(&host, &config, &metrics);
            let token = host.dispatched.borrow().len() as u32;
            shipper.on_response(&host, &config, &metrics, token, RelayReply::default());
            let start = host.now_nanos.get();
            // Advance in 50 ms steps until the retry goes out.
            while host.dispatched.borrow().len() == token as usize {
                host.advance(50_000_000);
                shipper.on_tick(&host, &config, &metrics);
            }
            waits.push((host.now_nanos.get() - start) / 1_000_000);
            shipper.on_response(&host, &config, &metrics, token + 1, RelayReply::default());
            host.advance(10_000_000_000);
        }
        assert_eq!(waits[0], 200);
        assert!(
            waits.iter().all(|w| *w <= RETRY_MAX.as_millis() as u64),
            "{waits:?}"
        );
        assert_eq!(shipper.queued(), 1, "nothing lost");
        shipper.on_tick(&host, &config, &metrics);
        let token = host.dispatched.borrow().len() as u32;
        shipper.on_response(&host, &config, &metrics, token, ok());
        assert_eq!(shipper.failures, 0);
        assert_eq!(shipper.retry_at_nanos, 0);
    }

    /// A 4xx or 500 is final: dropped, not retried.
    #[test]
    fn final_refusals_are_not_retried() {
        for status in [400, 413, 500] {
            let (host, config, metrics) = shipper_setup(10, 10);
            let mut shipper = Shipper::default();
            shipper.push(&config, b"{}".to_vec());
            shipper.on_tick(&host, &config, &metrics);
            let reply = RelayReply {
                status: Some(status),
                retry_after: None,
                body: None,
            };
            shipper.on_response(&host, &config, &metrics, 1, reply);
            assert_eq!(shipper.queued(), 0, "{status}");
            assert_eq!(host.counter("meshray_segments_retried_total"), 0);
            assert_eq!(
                host.counter("meshray_segments_dropped_relay_unavailable_total"),
                1
            );
        }
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
