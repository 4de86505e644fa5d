//! The trace → current segment map, kept in the VM's shared data.
//!
//! Apps forward some propagation headers and not others (Bookinfo forwards B3
//! and `traceparent`, not `x-amzn-trace-id`), and Envoy's own Zipkin tracer
//! rewrites `x-b3-spanid` at the router. So when a workload calls out, the
//! headers alone may not name the segment of the request it is serving. The
//! inbound side records trace → segment here; the outbound side looks it up.
//!
//! Shared data has no delete, so the map is a fixed table of [`LINK_SLOTS`]
//! keys (`meshray.link.N`), the slot chosen by the trace id: memory stays
//! bounded, a colliding trace overwrites an older one, and entries older than
//! [`LINK_TTL_SECS`] are ignored. All worker VMs with the same `vm_id` share it.

use meshray_core::ids::{SpanId, TraceId};

use crate::host::Host;

/// Number of slots (keys) in the table.
pub const LINK_SLOTS: u128 = 4096;
/// How long a link is trusted, in seconds.
pub const LINK_TTL_SECS: u64 = 300;

/// Layout: trace id (16 bytes LE) | segment id (8) | written at, seconds (8).
const VALUE_LEN: usize = 32;

fn key(trace_id: TraceId) -> String {
    format!("meshray.link.{}", trace_id.value() % LINK_SLOTS)
}

/// Records that `segment` is this pod's segment of `trace_id`.
pub fn record(host: &impl Host, trace_id: TraceId, segment: SpanId, now_secs: u64) {
    let mut value = [0u8; VALUE_LEN];
    value[..16].copy_from_slice(&trace_id.value().to_le_bytes());
    value[16..24].copy_from_slice(&segment.value().to_le_bytes());
    value[24..].copy_from_slice(&now_secs.to_le_bytes());
    if let Err(e) = host.set_shared_data(&key(trace_id), &value) {
        log::debug!("meshray: could not record trace link: {e}");
    }
}

/// The segment recorded for `trace_id`, if fresh.
pub fn lookup(host: &impl Host, trace_id: TraceId, now_secs: u64) -> Option<SpanId> {
    let value = host.shared_data(&key(trace_id)).ok()??;
    let value: [u8; VALUE_LEN] = value.as_slice().try_into().ok()?;
    let stored_trace = u128::from_le_bytes(value[..16].try_into().ok()?);
    let segment = u64::from_le_bytes(value[16..24].try_into().ok()?);
    let written = u64::from_le_bytes(value[24..].try_into().ok()?);
    if stored_trace != trace_id.value() || now_secs.saturating_sub(written) > LINK_TTL_SECS {
        return None;
    }
    SpanId::new(segment).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::FakeHost;
    use meshray_core::ids::IdWidth;

    #[test]
    fn records_and_finds_fresh_links_only() {
        let host = FakeHost::at(0);
        let trace = TraceId::mint(100, 5);
        let segment = SpanId::new(42).unwrap();
        assert_eq!(lookup(&host, trace, 1000), None);
        record(&host, trace, segment, 1000);
        assert_eq!(lookup(&host, trace, 1000 + LINK_TTL_SECS), Some(segment));
        assert_eq!(lookup(&host, trace, 1001 + LINK_TTL_SECS), None, "expired");
    }

    #[test]
    fn colliding_traces_never_borrow_each_others_segment() {
        let host = FakeHost::at(0);
        let a = TraceId::new(7, IdWidth::Bits64).unwrap();
        let b = TraceId::new(7 + LINK_SLOTS, IdWidth::Bits64).unwrap();
        record(&host, a, SpanId::new(1).unwrap(), 10);
        record(&host, b, SpanId::new(2).unwrap(), 10);
        assert_eq!(lookup(&host, a, 10), None);
        assert_eq!(lookup(&host, b, 10), SpanId::new(2).ok());
        assert_eq!(host.shared.borrow().len(), 1, "one slot, bounded");
    }
}
