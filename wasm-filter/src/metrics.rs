//! The filter's counters, as proxy-wasm metrics: they appear in Envoy's
//! `/stats` (and Istio's Prometheus endpoint when included by `proxyStatsMatcher`).

use crate::host::Host;

/// Why documents were dropped; each reason has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The buffer was full (the relay is slow or down).
    BufferFull,
    /// The post to the relay failed: no connection, timeout, 5xx.
    RelayUnavailable,
    /// The relay refused the batch for load (429/503).
    RelayBusy,
    /// The relay rejected the document as invalid.
    Rejected,
    /// The document could not be serialised within X-Ray's size limit.
    Oversize,
}

/// The label of every drop reason, in [`DropReason::ALL`] order: the counter of
/// reason `r` is `meshray_segments_dropped_{r}_total` (see [`dropped_counter_name`]).
pub const DROP_REASONS: [&str; DropReason::ALL.len()] = {
    let mut labels = [""; DropReason::ALL.len()];
    let mut i = 0;
    while i < labels.len() {
        labels[i] = DropReason::ALL[i].label();
        i += 1;
    }
    labels
};

/// Documents produced.
pub const EMITTED_TOTAL: &str = "meshray_segments_emitted_total";
/// Documents the relay accepted.
pub const SENT_TOTAL: &str = "meshray_segments_sent_total";
/// Documents lost, all reasons.
pub const DROPPED_TOTAL: &str = "meshray_segments_dropped_total";
/// Documents put back in the buffer to be sent again after a failed post.
pub const RETRIED_TOTAL: &str = "meshray_segments_retried_total";
/// Propagation headers ignored as malformed.
pub const HEADERS_MALFORMED_TOTAL: &str = "meshray_headers_malformed_total";
/// Gauge: documents waiting in the buffers of all workers.
pub const BUFFERED_DOCUMENTS: &str = "meshray_buffered_documents";

/// The counter of documents dropped for `reason` (a [`DROP_REASONS`] label).
pub fn dropped_counter_name(reason: &str) -> String {
    format!("meshray_segments_dropped_{reason}_total")
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 5] = [
        DropReason::BufferFull,
        DropReason::RelayUnavailable,
        DropReason::RelayBusy,
        DropReason::Rejected,
        DropReason::Oversize,
    ];

    /// The label used in the counter name.
    pub const fn label(self) -> &'static str {
        match self {
            DropReason::BufferFull => "buffer_full",
            DropReason::RelayUnavailable => "relay_unavailable",
            DropReason::RelayBusy => "relay_busy",
            DropReason::Rejected => "rejected",
            DropReason::Oversize => "oversize",
        }
    }
}

/// Counter ids, defined once per VM.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// `meshray_segments_emitted_total`: documents produced.
    emitted: Option<u32>,
    /// `meshray_segments_sent_total`: documents the relay accepted.
    sent: Option<u32>,
    /// `meshray_segments_dropped_total`: documents lost, all reasons.
    dropped: Option<u32>,
    /// `meshray_segments_dropped_<reason>_total`, in [`DropReason::ALL`] order.
    dropped_by_reason: [Option<u32>; DropReason::ALL.len()],
    /// `meshray_segments_retried_total`: documents queued again after a failed post.
    retried: Option<u32>,
    /// `meshray_headers_malformed_total`: propagation headers ignored as malformed.
    malformed_headers: Option<u32>,
    /// `meshray_buffered_documents` (gauge): documents waiting in the buffers of all workers.
    buffered: Option<u32>,
}

impl Metrics {
    /// Defines the counters; a counter the host refuses is simply not counted.
    pub fn define(host: &impl Host) -> Self {
        let define = |name: &str| host.define_counter(name).ok();
        let mut dropped_by_reason = [None; DropReason::ALL.len()];
        for (slot, reason) in dropped_by_reason.iter_mut().zip(DROP_REASONS) {
            *slot = define(&dropped_counter_name(reason));
        }
        Self {
            emitted: define(EMITTED_TOTAL),
            sent: define(SENT_TOTAL),
            dropped: define(DROPPED_TOTAL),
            dropped_by_reason,
            retried: define(RETRIED_TOTAL),
            malformed_headers: define(HEADERS_MALFORMED_TOTAL),
            buffered: host.define_gauge(BUFFERED_DOCUMENTS).ok(),
        }
    }

    /// Counts emitted documents.
    pub fn emitted(&self, host: &impl Host, n: usize) {
        add(host, self.emitted, n);
    }

    /// Counts documents the relay accepted.
    pub fn sent(&self, host: &impl Host, n: usize) {
        add(host, self.sent, n);
    }

    /// Counts dropped documents.
    pub fn dropped(&self, host: &impl Host, reason: DropReason, n: usize) {
        add(host, self.dropped, n);
        let index = DropReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or_default();
        add(
            host,
            self.dropped_by_reason.get(index).copied().flatten(),
            n,
        );
    }

    /// Counts documents queued again after a failed post.
    pub fn retried(&self, host: &impl Host, n: usize) {
        add(host, self.retried, n);
    }

    /// Records documents entering (`delta > 0`) or leaving the buffer.
    pub fn buffered(&self, host: &impl Host, delta: i64) {
        if let Some(id) = self.buffered
            && delta != 0
            && host.add_to_gauge(id, delta).is_err()
        {
            log::debug!("meshray: gauge {id} could not be updated");
        }
    }

    /// Counts malformed propagation headers.
    pub fn malformed_headers(&self, host: &impl Host, n: usize) {
        add(host, self.malformed_headers, n);
    }
}

fn add(host: &impl Host, id: Option<u32>, n: usize) {
    if let (Some(id), true) = (id, n > 0) {
        // A failed increment only loses a count; nothing to do about it.
        if host
            .increment_counter(id, i64::try_from(n).unwrap_or(i64::MAX))
            .is_err()
        {
            log::debug!("meshray: counter {id} could not be incremented");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::FakeHost;

    /// Every reason has its counter, named as [`DROP_REASONS`] says.
    #[test]
    fn each_drop_reason_has_its_counter() {
        let host = FakeHost::at(0);
        let metrics = Metrics::define(&host);
        for reason in DropReason::ALL {
            metrics.dropped(&host, reason, 2);
        }
        for label in DROP_REASONS {
            assert_eq!(host.counter(&dropped_counter_name(label)), 2, "{label}");
        }
        assert_eq!(host.counter(DROPPED_TOTAL), 2 * DROP_REASONS.len() as i64);
        assert_eq!(DROP_REASONS[0], "buffer_full");
    }
}
