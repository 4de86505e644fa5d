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

impl DropReason {
    const ALL: [DropReason; 5] = [
        DropReason::BufferFull,
        DropReason::RelayUnavailable,
        DropReason::RelayBusy,
        DropReason::Rejected,
        DropReason::Oversize,
    ];

    /// The label used in the counter name.
    pub fn label(self) -> &'static str {
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
    dropped_by_reason: [Option<u32>; 5],
    /// `meshray_headers_malformed_total`: propagation headers ignored as malformed.
    malformed_headers: Option<u32>,
    /// `meshray_buffered_documents` (gauge): documents waiting in the buffers of all workers.
    buffered: Option<u32>,
}

impl Metrics {
    /// Defines the counters; a counter the host refuses is simply not counted.
    pub fn define(host: &impl Host) -> Self {
        let define = |name: &str| host.define_counter(name).ok();
        let mut dropped_by_reason = [None; 5];
        for (slot, reason) in dropped_by_reason.iter_mut().zip(DropReason::ALL) {
            *slot = define(&format!(
                "meshray_segments_dropped_{}_total",
                reason.label()
            ));
        }
        Self {
            emitted: define("meshray_segments_emitted_total"),
            sent: define("meshray_segments_sent_total"),
            dropped: define("meshray_segments_dropped_total"),
            dropped_by_reason,
            malformed_headers: define("meshray_headers_malformed_total"),
            buffered: host.define_gauge("meshray_buffered_documents").ok(),
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
