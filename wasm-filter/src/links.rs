//! Which segment of this pod an outbound call belongs to.
//!
//! When a workload calls out, the call must hang under the segment of the
//! inbound request whose app made it — also when several requests of one trace
//! are in the pod at once (parallel fan-out, retries, a pod calling itself).
//! Two mechanisms, tried in this order:
//!
//! 1. **Self-identifying segment ids.** An inbound segment's id is
//!    `{32 random bits}{32-bit tag}`, the tag a keyed hash of the pod's
//!    [`LinkKey`], the trace and the random half. The filter writes that id as
//!    parent into every propagation header the app sees; when the app forwards
//!    `traceparent` or `b3` on its outbound call, [`is_pod_segment`] tells with
//!    certainty (false positives 2⁻³²) that it names a segment this pod
//!    recorded — no table, no memory, no race between worker VMs, any fan-out.
//!    Envoy's Zipkin tracer rewrites `x-b3-*` but not `traceparent`, so the
//!    forwarded W3C parent survives it.
//! 2. **The trace table** in the VM's shared data, for apps that forward no
//!    header naming the segment: trace → its latest segments. Shared data has
//!    no delete, so it is a fixed table of [`LINK_BUCKETS`] keys
//!    (`meshray.link.N`), each holding up to [`LINK_BUCKET_RECORDS`] records
//!    (trace, segment, written at): a new record replaces an expired one, else
//!    the bucket's oldest. Writes use the host's CAS so two worker VMs never
//!    lose each other's records. A lookup that hits a record older than
//!    [`LINK_REFRESH_SECS`] refreshes it, so a trace that keeps calling out
//!    outlives [`LINK_TTL_SECS`].
//!
//! Size: 8192 keys × 4 records = 32 768 links in ~128-byte values, about 2 MB
//! of Envoy shared data per sidecar (key, value and Envoy's map node ≈ 250 bytes
//! a key), shared by all its workers. At 4 000 inbound requests/s per sidecar
//! (2 000 per worker, 2 workers) a bucket receives 0.5 records/s, so a link is
//! evicted within 1 s with probability 0.2 % (Poisson ≥ 4); it only matters for
//! apps that forward no `traceparent`/`b3`, whose calls fall back to the table.

use std::hash::{DefaultHasher, Hasher};

use meshray_core::ids::{SpanId, TraceId};

use crate::host::Host;

/// Number of keys of the trace table.
pub const LINK_BUCKETS: u128 = 8192;
/// Records per key.
pub const LINK_BUCKET_RECORDS: usize = 4;
/// How long a link is trusted without use, in seconds.
pub const LINK_TTL_SECS: u64 = 300;
/// A link used after this age is rewritten with the current time.
pub const LINK_REFRESH_SECS: u64 = 30;

/// Layout of a record: trace id (16 bytes LE) | segment id (8) | written at, seconds (8).
const RECORD_LEN: usize = 32;
/// Tries of a read-modify-write that another worker interrupts.
const CAS_TRIES: usize = 3;

/// The per-pod key of the segment-id tag. All worker VMs of a sidecar derive
/// the same key from the node id, so each recognises the others' segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkKey(u64);

impl LinkKey {
    /// The key of the pod whose Envoy node id is `node_id` (Istio:
    /// `sidecar~IP~POD.NAMESPACE~…`, unique per pod).
    pub fn from_node_id(node_id: &str) -> Self {
        let mut hasher = DefaultHasher::new();
        hasher.write(node_id.as_bytes());
        Self(hasher.finish())
    }
}

fn tag(key: LinkKey, trace_id: TraceId, random: u32) -> u32 {
    let mut hasher = DefaultHasher::new();
    hasher.write_u64(key.0);
    hasher.write_u128(trace_id.value());
    hasher.write_u32(random);
    (hasher.finish() >> 16) as u32
}

/// A new segment id for `trace_id` that [`is_pod_segment`] recognises.
pub fn mint_segment_id(key: LinkKey, trace_id: TraceId, random: u64) -> SpanId {
    // All 64 random bits fold into the 32 the id keeps.
    let high = (((random >> 32) ^ random) as u32).max(1);
    SpanId::from_random((u64::from(high) << 32) | u64::from(tag(key, trace_id, high)))
}

/// Whether `span` is a segment id this pod minted for `trace_id`.
pub fn is_pod_segment(key: LinkKey, trace_id: TraceId, span: SpanId) -> bool {
    let value = span.value();
    let high = (value >> 32) as u32;
    high != 0 && tag(key, trace_id, high) == value as u32
}

// === the trace table ===

/// One link as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    trace: u128,
    segment: u64,
    written: u64,
}

impl Record {
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(Self {
            trace: u128::from_le_bytes(bytes.get(..16)?.try_into().ok()?),
            segment: u64::from_le_bytes(bytes.get(16..24)?.try_into().ok()?),
            written: u64::from_le_bytes(bytes.get(24..32)?.try_into().ok()?),
        })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.trace.to_le_bytes());
        out.extend_from_slice(&self.segment.to_le_bytes());
        out.extend_from_slice(&self.written.to_le_bytes());
    }

    fn is_fresh(&self, now_secs: u64) -> bool {
        now_secs.saturating_sub(self.written) <= LINK_TTL_SECS
    }
}

fn key(trace_id: TraceId) -> String {
    format!("meshray.link.{}", trace_id.value() % LINK_BUCKETS)
}

fn decode_bucket(value: Option<&[u8]>) -> Vec<Record> {
    value
        .unwrap_or_default()
        .chunks_exact(RECORD_LEN)
        .filter_map(Record::decode)
        .take(LINK_BUCKET_RECORDS)
        .collect()
}

fn encode_bucket(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() * RECORD_LEN);
    for record in records {
        record.encode(&mut out);
    }
    out
}

/// Reads a bucket, lets `change` edit its records, writes it back if `change`
/// says so; retried when another worker wrote the bucket in between.
fn update_bucket(host: &impl Host, key: &str, mut change: impl FnMut(&mut Vec<Record>) -> bool) {
    for _ in 0..CAS_TRIES {
        let Ok((value, version)) = host.shared_data_versioned(key) else {
            return;
        };
        let mut records = decode_bucket(value.as_deref());
        if !change(&mut records) {
            return;
        }
        match host.set_shared_data_if(key, &encode_bucket(&records), version) {
            Ok(true) => return,
            Ok(false) => continue,
            Err(e) => {
                log::debug!("meshray: could not record trace link: {e}");
                return;
            }
        }
    }
}

/// Records that `segment` is this pod's latest segment of `trace_id`.
pub fn record(host: &impl Host, trace_id: TraceId, segment: SpanId, now_secs: u64) {
    let new = Record {
        trace: trace_id.value(),
        segment: segment.value(),
        written: now_secs,
    };
    update_bucket(host, &key(trace_id), |records| {
        records.retain(|r| r.is_fresh(now_secs));
        if records.len() >= LINK_BUCKET_RECORDS
            && let Some(oldest) = records
                .iter()
                .enumerate()
                .min_by_key(|(_, r)| r.written)
                .map(|(i, _)| i)
        {
            records.remove(oldest);
        }
        records.push(new);
        true
    });
}

/// The latest fresh segment recorded for `trace_id`; refreshes the link when it
/// is older than [`LINK_REFRESH_SECS`].
pub fn lookup(host: &impl Host, trace_id: TraceId, now_secs: u64) -> Option<SpanId> {
    let key = key(trace_id);
    let value = host.shared_data(&key).ok()??;
    let latest = decode_bucket(Some(&value))
        .into_iter()
        .filter(|r| r.trace == trace_id.value() && r.is_fresh(now_secs))
        .max_by_key(|r| r.written)?;
    if now_secs.saturating_sub(latest.written) > LINK_REFRESH_SECS {
        update_bucket(host, &key, |records| {
            let found = records
                .iter_mut()
                .find(|r| r.trace == latest.trace && r.segment == latest.segment);
            match found {
                Some(record) => {
                    record.written = now_secs;
                    true
                }
                None => false,
            }
        });
    }
    SpanId::new(latest.segment).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::FakeHost;
    use meshray_core::ids::IdWidth;

    fn span(v: u64) -> SpanId {
        SpanId::new(v).unwrap()
    }

    #[test]
    fn records_and_finds_fresh_links_only() {
        let host = FakeHost::at(0);
        let trace = TraceId::mint(100, 5);
        let segment = span(42);
        assert_eq!(lookup(&host, trace, 1000), None);
        record(&host, trace, segment, 1000);
        assert_eq!(lookup(&host, trace, 1000 + LINK_TTL_SECS), Some(segment));
        assert_eq!(
            lookup(&host, trace, 1001 + 2 * LINK_TTL_SECS),
            None,
            "expired"
        );
    }

    #[test]
    fn colliding_traces_never_borrow_each_others_segment() {
        let host = FakeHost::at(0);
        let a = TraceId::new(7, IdWidth::Bits64).unwrap();
        let b = TraceId::new(7 + LINK_BUCKETS, IdWidth::Bits64).unwrap();
        let c = TraceId::new(7 + 2 * LINK_BUCKETS, IdWidth::Bits64).unwrap();
        record(&host, a, span(1), 10);
        record(&host, b, span(2), 10);
        assert_eq!(
            lookup(&host, a, 10),
            Some(span(1)),
            "both fit in the bucket"
        );
        assert_eq!(lookup(&host, b, 10), Some(span(2)));
        assert_eq!(lookup(&host, c, 10), None);
        assert_eq!(host.shared.borrow().len(), 1, "one key, bounded");
    }

    /// A full bucket gives up its oldest record, not a random one.
    #[test]
    fn a_full_bucket_evicts_its_oldest_record() {
        let host = FakeHost::at(0);
        let traces: Vec<TraceId> = (0..=LINK_BUCKET_RECORDS as u128)
            .map(|i| TraceId::new(3 + i * LINK_BUCKETS, IdWidth::Bits128).unwrap())
            .collect();
        for (i, trace) in traces.iter().enumerate() {
            record(&host, *trace, span(i as u64 + 1), 100 + i as u64);
        }
        let now = 100 + LINK_BUCKET_RECORDS as u64;
        assert_eq!(lookup(&host, traces[0], now), None, "the oldest went");
        for (i, trace) in traces.iter().enumerate().skip(1) {
            assert_eq!(lookup(&host, *trace, now), Some(span(i as u64 + 1)));
        }
    }

    /// Several segments of one trace (retries, concurrent requests): the latest wins.
    #[test]
    fn the_latest_segment_of_a_trace_is_found() {
        let host = FakeHost::at(0);
        let trace = TraceId::mint(100, 9);
        record(&host, trace, span(1), 10);
        record(&host, trace, span(2), 11);
        assert_eq!(lookup(&host, trace, 12), Some(span(2)));
    }

    /// A link used keeps living: used every LINK_REFRESH_SECS it outlives the TTL.
    #[test]
    fn links_are_refreshed_on_use() {
        let host = FakeHost::at(0);
        let trace = TraceId::mint(100, 11);
        record(&host, trace, span(5), 1000);
        let mut now = 1000;
        while now < 1000 + 3 * LINK_TTL_SECS {
            now += LINK_REFRESH_SECS + 1;
            assert_eq!(lookup(&host, trace, now), Some(span(5)), "at {now}");
        }
        assert_eq!(lookup(&host, trace, now + LINK_TTL_SECS + 1), None);
    }

    /// A write that races another worker's is retried on the fresh value.
    #[test]
    fn concurrent_writers_do_not_lose_records() {
        let host = FakeHost::at(0);
        let trace = TraceId::mint(100, 13);
        let other = TraceId::new(trace.value() + LINK_BUCKETS, IdWidth::Bits128).unwrap();
        let bucket = key(trace);
        // The bucket exists: its writes carry a version (the first write of a new
        // key cannot be guarded; Envoy's CAS needs an existing key).
        record(
            &host,
            TraceId::mint(100, 13 + 2 * LINK_BUCKETS),
            span(3),
            10,
        );
        let mut raced = false;
        update_bucket(&host, &bucket, |records| {
            if !raced {
                // Another worker records its link between our read and our write.
                record(&host, other, span(8), 10);
                raced = true;
            }
            records.push(Record {
                trace: trace.value(),
                segment: 9,
                written: 10,
            });
            true
        });
        assert_eq!(lookup(&host, other, 10), Some(span(8)));
        assert_eq!(lookup(&host, trace, 10), Some(span(9)));
    }

    #[test]
    fn segment_ids_identify_their_pod_and_trace() {
        let key = LinkKey::from_node_id(
            "sidecar~10.0.0.1~reviews-v1-abc.default~default.svc.cluster.local",
        );
        let other_pod = LinkKey::from_node_id(
            "sidecar~10.0.0.2~reviews-v1-def.default~default.svc.cluster.local",
        );
        let trace = TraceId::mint(100, 17);
        let other_trace = TraceId::mint(100, 18);
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..1000 {
            let id = mint_segment_id(key, trace, rng.u64(..));
            assert!(is_pod_segment(key, trace, id));
            assert!(!is_pod_segment(other_pod, trace, id));
            assert!(!is_pod_segment(key, other_trace, id));
        }
        let random = SpanId::new(0x0123_4567_89ab_cdef).unwrap();
        assert!(!is_pod_segment(key, trace, random));
    }
}
