//! What the filter does for one request: decide, link, propagate at request
//! headers; build the X-Ray document at log time.
//!
//! Reads are kept to what each request needs (see DESIGN "Cost per request"):
//! one header-map read and one or two property reads at request headers,
//! five or six property reads at log time, header writes only where a value changes.
//!
//! # Layout
//! - this file: [`on_request_headers`] (and [`on_log_unseen`] for requests
//!   answered before the filter saw them), one named step per decision.
//! - [`headers`]: the one read of the request's header map.
//! - [`document`]: [`on_log`], the document from the span and the response.
//! - [`writer`]: the document written straight into JSON.

mod document;
mod headers;
mod writer;

use meshray_core::cluster::{self, Classification, Direction, RemoteService};
use meshray_core::ids::{SpanId, TraceId};
use meshray_core::propagation::{self, Extracted, Format, Injection};
use meshray_core::segment::HttpRequest;

use crate::config::FilterConfig;
use crate::host::{Host, property_i64, property_string};
use crate::links;
use crate::metrics::Metrics;
use crate::workload::Workload;
use headers::{PresentHeaders, SeenHeaders};

pub use document::on_log;
pub use headers::BATCH_MARKER_HEADER;
pub(crate) use writer::SegmentJson;

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
    /// The document's start: the clock when the filter saw the request headers
    /// (Envoy's `request.time` for a request answered before the filter), ns since the epoch.
    pub start_nanos: u64,
    /// The upstream cluster, kept as metadata.
    pub cluster: Option<String>,
    /// `http.request`, minus what is only known at log time.
    pub request: HttpRequest,
    /// Request headers named in `annotate_headers`.
    pub header_annotations: Vec<(String, String)>,
    /// Routed to `BlackHoleCluster`.
    pub blackholed: bool,
    /// A gRPC request (`content-type: application/grpc*`): `grpc-status` is read at log time.
    pub is_grpc: bool,
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
    workload: &Workload,
    metrics: &Metrics,
    random: &mut impl Random,
) -> Option<ActiveSpan> {
    let mut seen = SeenHeaders::read(host, config);
    if seen.batch_marker {
        return None;
    }
    let extracted = extract_context(host, metrics, &seen);
    let now_nanos = host.now_nanos().unwrap_or_default();
    let sampled =
        match decide_sampling(host, config, workload, random, &seen, &extracted, now_nanos) {
            Decision::Traced(sampled) => sampled,
            Decision::NotTraced(writes) => {
                write_headers(host, seen.present, writes);
                return None;
            }
        };
    let (span, injection) = start_span(
        host, config, workload, random, &mut seen, &extracted, &sampled, now_nanos,
    );
    write_headers(
        host,
        seen.present,
        propagation::inject(&extracted, &seen.propagation, injection, config.propagate),
    );
    Some(span)
}

/// The log phase of a request whose request headers the filter never saw:
/// something before it in the filter chain answered (an `AuthorizationPolicy`
/// denial, local rate limiting, fault injection). Envoy still runs the log phase,
/// where the request headers and properties are readable: the same decisions are
/// made there (no header is written — the request is over) and the document built.
pub fn on_log_unseen(
    host: &impl Host,
    config: &FilterConfig,
    workload: &Workload,
    metrics: &Metrics,
    random: &mut impl Random,
) -> Option<Vec<u8>> {
    let mut seen = SeenHeaders::read(host, config);
    if seen.batch_marker {
        return None;
    }
    let extracted = extract_context(host, metrics, &seen);
    // The request started before the log phase: its start is Envoy's, not the clock's
    // (unless Envoy's is no time at all).
    let clock = host.now_nanos().ok();
    let now_nanos = document::envoy_request_start(host, clock)
        .or(clock)
        .unwrap_or_default();
    let Decision::Traced(sampled) =
        decide_sampling(host, config, workload, random, &seen, &extracted, now_nanos)
    else {
        return None;
    };
    let (span, _) = start_span(
        host, config, workload, random, &mut seen, &extracted, &sampled, now_nanos,
    );
    on_log(host, span, workload, metrics)
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
    /// The trace was minted here: no segment of it can be recorded yet, so
    /// [`link`] does not look one up.
    minted: bool,
}

/// Whether a request is traced.
#[derive(Debug)]
enum Decision {
    /// Traced.
    Traced(Sampled),
    /// Not traced; these writes carry the "no" to the next hops.
    NotTraced(Vec<propagation::HeaderWrite>),
}

/// Decides whether the request is traced; mints the trace id of a root.
fn decide_sampling(
    host: &impl Host,
    config: &FilterConfig,
    workload: &Workload,
    random: &mut impl Random,
    seen: &SeenHeaders,
    extracted: &Extracted,
    now_nanos: u64,
) -> Decision {
    let now_secs = now_nanos / NANOS_PER_SEC;
    // A "no" from the caller is final, unless this pod already records a segment
    // of the trace: then meshray sampled it at the inbound side, and the "no"
    // was written by a tracer between (Envoy's Zipkin tracer at a lower rate).
    let pod_segment = match (extracted.sampling, extracted.trace_id()) {
        (Some(false), Some(trace_id)) => forwarded_pod_segment(workload, extracted)
            .or_else(|| links::lookup(host, trace_id, now_secs)),
        _ => None,
    };
    if extracted.sampling == Some(false) && pod_segment.is_none() {
        // The caller decided: emit nothing and forward untouched — unless the
        // "no" came only in x-amzn-trace-id, which apps do not forward; then
        // x-b3-sampled: 0 carries it, so the next hops do not start new traces.
        return Decision::NotTraced(
            propagation::carry_unsampled(extracted)
                .into_iter()
                .collect(),
        );
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
        let injection = Injection {
            trace_id,
            span,
            parent: None,
            sampled: false,
        };
        return Decision::NotTraced(propagation::inject(
            extracted,
            &seen.propagation,
            injection,
            config.propagate,
        ));
    }
    Decision::Traced(Sampled {
        trace_id,
        pod_segment,
        minted: extracted.trace_id().is_none(),
    })
}

/// Classifies the request, links it into its trace and takes its `http.request`:
/// the span to keep until the log phase, and what the next hop must see.
#[allow(clippy::too_many_arguments)] // the request's state, passed along from step to step
fn start_span(
    host: &impl Host,
    config: &FilterConfig,
    workload: &Workload,
    random: &mut impl Random,
    seen: &mut SeenHeaders,
    extracted: &Extracted,
    sampled: &Sampled,
    now_nanos: u64,
) -> (ActiveSpan, Injection) {
    let cluster = property_string(host, &CLUSTER_NAME);
    let mut classification = classify_request(host, cluster.as_deref(), seen);
    if let Some(remote) = classification.remote.as_mut() {
        // Named as the callee names its own segment (service_name_format).
        remote.name = config
            .service_name_format
            .render(&remote.name, remote.namespace.as_deref());
    }
    let (role, id, parent) = link(
        host,
        workload,
        random,
        &classification,
        extracted,
        sampled,
        now_nanos / NANOS_PER_SEC,
    );
    let injection = Injection {
        trace_id: sampled.trace_id,
        span: id,
        parent: match &role {
            Role::Segment => parent,
            Role::Subsegment { parent, .. } => Some(*parent),
            Role::ClientSegment { segment_id, .. } => Some(*segment_id),
        },
        sampled: true,
    };
    let span = ActiveSpan {
        role,
        trace_id: sampled.trace_id,
        id,
        parent,
        start_nanos: now_nanos,
        cluster,
        request: seen.take_request(),
        header_annotations: std::mem::take(&mut seen.annotations),
        blackholed: classification.is_blackholed(),
        is_grpc: seen.is_grpc,
    };
    (span, injection)
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

/// The forwarded parent that names a segment this pod minted for the trace:
/// the app got it from our inbound rewrite and passed it on. `traceparent`
/// first (Envoy's Zipkin tracer rewrites `x-b3-*`), then `b3`, then `x-b3-*`.
fn forwarded_pod_segment(workload: &Workload, extracted: &Extracted) -> Option<SpanId> {
    let contexts = [
        extracted.traceparent.map(|tp| tp.context),
        extracted.b3_single,
        extracted.b3_multi,
    ];
    contexts.into_iter().flatten().find_map(|ctx| {
        ctx.span_id
            .filter(|span| links::is_pod_segment(workload.link_key, ctx.trace_id, *span))
    })
}

/// Where the document hangs in the trace: its role, id and parent.
///
/// An inbound request gets a self-identifying segment id and records itself as
/// this pod's latest segment of the trace. An outbound call hangs under, in
/// this order: the app's own X-Ray (sub)segment named in `x-amzn-trace-id`, the
/// pod's segment named by a forwarded parent, the latest segment of the trace in
/// the link table; with none of them (or at a gateway, which has no app) it
/// becomes a client segment of its own.
fn link(
    host: &impl Host,
    workload: &Workload,
    random: &mut impl Random,
    classification: &Classification,
    extracted: &Extracted,
    sampled: &Sampled,
    now_secs: u64,
) -> (Role, SpanId, Option<SpanId>) {
    let header_parent = extracted.parent_span();
    let remote = match (classification.direction, classification.remote.clone()) {
        (Direction::Inbound, _) | (Direction::Outbound, None) => {
            let id = links::mint_segment_id(workload.link_key, sampled.trace_id, random.next_u64());
            links::record(host, sampled.trace_id, id, now_secs);
            return (Role::Segment, id, header_parent);
        }
        (Direction::Outbound, Some(remote)) => remote,
    };
    let id = SpanId::from_random(random.next_u64());
    let parent = if workload.is_gateway {
        None
    } else {
        // An X-Ray-instrumented app names its own (sub)segment in x-amzn-trace-id.
        header_parent
            .filter(|_| extracted.format() == Some(Format::Xray))
            .or_else(|| forwarded_pod_segment(workload, extracted))
            .or(sampled.pod_segment)
            .or_else(|| {
                (!sampled.minted)
                    .then(|| links::lookup(host, sampled.trace_id, now_secs))
                    .flatten()
            })
    };
    match parent {
        Some(parent) => (Role::Subsegment { remote, parent }, id, Some(parent)),
        None => (
            Role::ClientSegment {
                remote,
                segment_id: SpanId::from_random(random.next_u64()),
            },
            id,
            header_parent,
        ),
    }
}

/// Sets each header: added when the request does not carry it (each name is
/// written once), replaced when it does. A refused write is logged and skipped
/// (never fails the request).
fn write_headers(
    host: &impl Host,
    present: PresentHeaders,
    writes: impl IntoIterator<Item = propagation::HeaderWrite>,
) {
    for (name, value) in writes {
        let written = if present.contains(name) {
            host.set_request_header(name, &value)
        } else {
            host.add_request_header(name, &value)
        };
        if let Err(e) = written {
            log::debug!("meshray: could not set {name}: {e}");
        }
    }
}

#[cfg(test)]
mod tests;
