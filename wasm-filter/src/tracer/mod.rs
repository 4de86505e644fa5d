//! What the filter does for one request: decide, link, propagate at request
//! headers; build the X-Ray document at log time.
//!
//! Reads are kept to what each request needs (see DESIGN "Cost per request"):
//! one header-map read and one or two property reads at request headers,
//! five or six property reads at log time, header writes only where a value changes.
//!
//! # Layout
//! - this file: [`on_request_headers`], one named step per decision.
//! - [`headers`]: the one read of the request's header map.
//! - [`document`]: [`on_log`], the document from the span and the response.

mod document;
mod headers;

use meshray_core::cluster::{self, Classification, Direction, RemoteService};
use meshray_core::ids::{SpanId, TraceId};
use meshray_core::propagation::{self, Extracted, Format};
use meshray_core::segment::HttpRequest;

use crate::config::FilterConfig;
use crate::host::{Host, property_i64, property_string};
use crate::links;
use crate::metrics::Metrics;
use headers::SeenHeaders;

pub use document::on_log;
pub use headers::BATCH_MARKER_HEADER;

const CLUSTER_NAME: [&[&str]; 2] = [&["xds", "cluster_name"], &["cluster_name"]];
const LISTENER_DIRECTION: [&[&str]; 2] = [&["xds", "listener_direction"], &["listener_direction"]];
const NANOS_PER_SEC: u64 = 1_000_000_000;

/// What the document for this request will be.
#[derive(Debug, Clone, PartialEq)]
pub enum Role {
    /// Inbound: a segment for the local workload.
    Segment,
    /// Outbound inside a traced request: an independent subsegment under `parent`.
    Subsegment {
        /// The called service.
        remote: RemoteService,
        /// The segment (or app subsegment) this call belongs to.
        parent: SpanId,
    },
    /// Outbound with no segment of ours to hang under: a segment for the local
    /// workload (id `segment_id`) with the call embedded.
    ClientSegment {
        /// The called service.
        remote: RemoteService,
        /// The enclosing segment's id.
        segment_id: SpanId,
    },
}

/// A traced request between its headers and its log phase.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveSpan {
    /// Segment, subsegment or client segment.
    pub role: Role,
    /// The trace as propagated.
    pub trace_id: TraceId,
    /// The id of our document (the subsegment's, for a client segment).
    pub id: SpanId,
    /// Our document's parent (the enclosing segment's parent, for a client segment).
    pub parent: Option<SpanId>,
    /// When the filter saw the request, ns since the epoch (fallback for `request.time`).
    pub start_nanos: u64,
    /// The upstream cluster, kept as metadata.
    pub cluster: Option<String>,
    /// `http.request`, minus what is only known at log time.
    pub request: HttpRequest,
    /// Request headers named in `annotate_headers`.
    pub header_annotations: Vec<(String, String)>,
    /// Routed to `BlackHoleCluster`.
    pub blackholed: bool,
}

/// Source of randomness for ids and sampling.
pub trait Random {
    /// 64 random bits.
    fn next_u64(&mut self) -> u64;
    /// A float in `[0, 1)`.
    fn next_f64(&mut self) -> f64;
}

impl Random for fastrand::Rng {
    fn next_u64(&mut self) -> u64 {
        self.u64(..)
    }

    fn next_f64(&mut self) -> f64 {
        self.f64()
    }
}

/// Request headers: decide whether to trace, link the request into its trace
/// and rewrite the propagation headers. `None` means the request is not traced.
pub fn on_request_headers(
    host: &impl Host,
    config: &FilterConfig,
    metrics: &Metrics,
    random: &mut impl Random,
) -> Option<ActiveSpan> {
    let mut seen = SeenHeaders::read(host, config);
    if seen.batch_marker {
        return None;
    }
    let extracted = extract_context(host, metrics, &seen);
    let now_nanos = host.now_nanos().unwrap_or_default();
    let now_secs = now_nanos / NANOS_PER_SEC;
    let sampled = decide_sampling(host, config, random, &seen, &extracted, now_secs)?;

    let cluster = property_string(host, &CLUSTER_NAME);
    let classification = classify_request(host, cluster.as_deref(), &seen);
    let id = SpanId::from_random(random.next_u64());
    let (role, parent) = link(
        host,
        random,
        &classification,
        &extracted,
        &sampled,
        id,
        now_secs,
    );
    write_headers(
        host,
        propagation::inject(&extracted, &seen.propagation, sampled.trace_id, id, true),
    );
    Some(ActiveSpan {
        role,
        trace_id: sampled.trace_id,
        id,
        parent,
        start_nanos: now_nanos,
        cluster,
        request: seen.take_request(),
        header_annotations: std::mem::take(&mut seen.annotations),
        blackholed: classification.is_blackholed(),
    })
}

// === steps of on_request_headers ===

/// Parses the propagation headers and counts the malformed ones.
fn extract_context(host: &impl Host, metrics: &Metrics, seen: &SeenHeaders) -> Extracted {
    let extracted = propagation::extract(&seen.propagation);
    let malformed = extracted.malformed.len() + seen.non_utf8_propagation;
    if malformed > 0 {
        metrics.malformed_headers(host, malformed);
        for (format, error) in &extracted.malformed {
            log::debug!("meshray: ignoring {} header: {error}", format.label());
        }
    }
    extracted
}

/// A request the filter traces: its trace and this pod's segment of it, if any.
#[derive(Debug)]
struct Sampled {
    /// The propagated trace, or a new one minted for a root.
    trace_id: TraceId,
    /// The segment this pod recorded for the trace, when the caller said "no"
    /// (looked up only then; [`link`] looks it up otherwise).
    pod_segment: Option<SpanId>,
}

/// Decides whether the request is traced; mints the trace id of a root.
///
/// When it is not, the headers that carry the "no" to the next hops are written
/// here and `None` is returned.
fn decide_sampling(
    host: &impl Host,
    config: &FilterConfig,
    random: &mut impl Random,
    seen: &SeenHeaders,
    extracted: &Extracted,
    now_secs: u64,
) -> Option<Sampled> {
    // A "no" from the caller is final, unless this pod already records a segment
    // of the trace: then meshray sampled it at the inbound side, and the "no"
    // was written by a tracer between (Envoy's Zipkin tracer at a lower rate).
    let pod_segment = match (extracted.sampling, extracted.trace_id()) {
        (Some(false), Some(trace_id)) => links::lookup(host, trace_id, now_secs),
        _ => None,
    };
    if extracted.sampling == Some(false) && pod_segment.is_none() {
        // The caller decided: emit nothing and forward untouched — unless the
        // "no" came only in x-amzn-trace-id, which apps do not forward; then
        // x-b3-sampled: 0 carries it, so the next hops do not start new traces.
        write_headers(host, propagation::carry_unsampled(extracted));
        return None;
    }

    let trace_id = extracted.trace_id().unwrap_or_else(|| {
        let random_bits = (u128::from(random.next_u64()) << 64) | u128::from(random.next_u64());
        TraceId::mint(now_secs as u32, random_bits)
    });
    let sampled = pod_segment.is_some()
        || extracted
            .sampling
            .unwrap_or_else(|| random.next_f64() < config.sampling_rate);
    if !sampled {
        // Our decision, at a root or where the caller deferred: tell the next
        // hops so the whole trace is consistently left out.
        let span = extracted
            .parent_span()
            .unwrap_or_else(|| SpanId::from_random(random.next_u64()));
        write_headers(
            host,
            propagation::inject(extracted, &seen.propagation, trace_id, span, false),
        );
        return None;
    }
    Some(Sampled {
        trace_id,
        pod_segment,
    })
}

/// Inbound or outbound, and to whom, from the upstream cluster (and the
/// listener direction only when the cluster name does not tell).
fn classify_request(host: &impl Host, cluster: Option<&str>, seen: &SeenHeaders) -> Classification {
    cluster::classify(
        cluster,
        || property_i64(host, &LISTENER_DIRECTION),
        seen.authority.as_deref(),
    )
}

/// Where the document hangs in the trace: its role and parent. An inbound
/// request records itself as this pod's segment of the trace; an outbound one
/// finds the segment it belongs to.
fn link(
    host: &impl Host,
    random: &mut impl Random,
    classification: &Classification,
    extracted: &Extracted,
    sampled: &Sampled,
    id: SpanId,
    now_secs: u64,
) -> (Role, Option<SpanId>) {
    let header_parent = extracted.parent_span();
    match (classification.direction, classification.remote.clone()) {
        (Direction::Inbound, _) | (Direction::Outbound, None) => {
            links::record(host, sampled.trace_id, id, now_secs);
            (Role::Segment, header_parent)
        }
        (Direction::Outbound, Some(remote)) => {
            // An X-Ray-instrumented app names its own (sub)segment in x-amzn-trace-id;
            // otherwise the segment this pod recorded for the trace is the parent.
            let app_parent = header_parent.filter(|_| extracted.format() == Some(Format::Xray));
            match app_parent
                .or(sampled.pod_segment)
                .or_else(|| links::lookup(host, sampled.trace_id, now_secs))
            {
                Some(parent) => (Role::Subsegment { remote, parent }, Some(parent)),
                None => (
                    Role::ClientSegment {
                        remote,
                        segment_id: SpanId::from_random(random.next_u64()),
                    },
                    header_parent,
                ),
            }
        }
    }
}

/// Sets each header; a refused write is logged and skipped (never fails the request).
fn write_headers(host: &impl Host, writes: impl IntoIterator<Item = propagation::HeaderWrite>) {
    for (name, value) in writes {
        if let Err(e) = host.set_request_header(name, &value) {
            log::debug!("meshray: could not set {name}: {e}");
        }
    }
}

#[cfg(test)]
mod tests;
