//! What the filter does for one request: decide, link, propagate at request
//! headers; build the X-Ray document at log time.
//!
//! Reads are kept to what each request needs (see DESIGN "Cost per request"):
//! one header-map read and one or two property reads at request headers,
//! five or six property reads at log time, header writes only where a value changes.

use meshray_core::cluster::{self, Classification, Direction, RemoteService};
use meshray_core::ids::{SpanId, TraceId};
use meshray_core::propagation::{self, Format, PropagationHeaders};
use meshray_core::segment::{Document, HttpRequest, HttpResponse};

use crate::config::FilterConfig;
use crate::host::{Host, property_i64, property_string};
use crate::links;
use crate::metrics::{DropReason, Metrics};
use crate::response_flags::ResponseFlags;
use crate::workload::Workload;

/// Marks the filter's own posts to the relay, so a sidecar in front of the
/// relay (should the WasmPlugin select it) does not trace them.
pub const BATCH_MARKER_HEADER: &str = "x-meshray-batch";

const CLUSTER_NAME: [&[&str]; 2] = [&["xds", "cluster_name"], &["cluster_name"]];
const LISTENER_DIRECTION: [&[&str]; 2] = [&["xds", "listener_direction"], &["listener_direction"]];
const REQUEST_TIME: [&[&str]; 1] = [&["request", "time"]];
const REQUEST_DURATION: [&[&str]; 1] = [&["request", "duration"]];
const RESPONSE_CODE: [&[&str]; 1] = [&["response", "code"]];
const RESPONSE_FLAGS: [&[&str]; 1] = [&["response", "flags"]];
const RESPONSE_SIZE: [&[&str]; 1] = [&["response", "size"]];
const SOURCE_ADDRESS: [&[&str]; 1] = [&["source", "address"]];

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

/// The request headers the filter looks at, from one header-map read.
#[derive(Debug, Default)]
struct SeenHeaders {
    propagation: PropagationHeaders,
    non_utf8_propagation: usize,
    method: Option<String>,
    scheme: Option<String>,
    authority: Option<String>,
    path: Option<String>,
    user_agent: Option<String>,
    forwarded_for: Option<String>,
    batch_marker: bool,
    annotations: Vec<(String, String)>,
}

impl SeenHeaders {
    fn read(host: &impl Host, config: &FilterConfig) -> Self {
        let mut seen = Self::default();
        let Ok(pairs) = host.request_headers() else {
            return seen;
        };
        let mut propagation_pairs: Vec<(&str, &str)> = Vec::new();
        for (name, value) in &pairs {
            let Ok(text) = std::str::from_utf8(value) else {
                if is_propagation_header(name) {
                    seen.non_utf8_propagation += 1;
                }
                continue;
            };
            match name.as_str() {
                ":method" => seen.method = Some(text.to_owned()),
                ":scheme" => seen.scheme = Some(text.to_owned()),
                ":authority" => seen.authority = Some(text.to_owned()),
                ":path" => seen.path = Some(text.to_owned()),
                "user-agent" => seen.user_agent = Some(text.to_owned()),
                "x-forwarded-for" => seen.forwarded_for = Some(text.to_owned()),
                BATCH_MARKER_HEADER => seen.batch_marker = true,
                other if is_propagation_header(other) => propagation_pairs.push((other, text)),
                _ => {}
            }
            if config.annotate_headers.iter().any(|h| h == name) {
                seen.annotations.push((name.clone(), text.to_owned()));
            }
        }
        seen.propagation = PropagationHeaders::from_pairs(propagation_pairs);
        seen
    }
}

fn is_propagation_header(name: &str) -> bool {
    matches!(
        name,
        propagation::X_AMZN_TRACE_ID
            | propagation::TRACEPARENT
            | propagation::B3
            | propagation::X_B3_TRACEID
            | propagation::X_B3_SPANID
            | propagation::X_B3_SAMPLED
            | propagation::X_B3_FLAGS
    )
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
    let seen = SeenHeaders::read(host, config);
    if seen.batch_marker {
        return None;
    }
    let extracted = propagation::extract(&seen.propagation);
    let malformed = extracted.malformed.len() + seen.non_utf8_propagation;
    if malformed > 0 {
        metrics.malformed_headers(host, malformed);
        for (format, error) in &extracted.malformed {
            log::debug!("meshray: ignoring {} header: {error}", format.label());
        }
    }
    let now_nanos = host.now_nanos().unwrap_or_default();
    let now_secs = now_nanos / 1_000_000_000;
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
        write_headers(host, propagation::carry_unsampled(&extracted));
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
            propagation::inject(&extracted, &seen.propagation, trace_id, span, false),
        );
        return None;
    }

    let cluster = property_string(host, &CLUSTER_NAME);
    let classification: Classification = cluster::classify(
        cluster.as_deref(),
        || property_i64(host, &LISTENER_DIRECTION),
        seen.authority.as_deref(),
    );
    let id = SpanId::from_random(random.next_u64());
    let header_parent = extracted.parent_span();
    let (role, parent) = match (classification.direction, classification.remote.clone()) {
        (Direction::Inbound, _) | (Direction::Outbound, None) => {
            links::record(host, trace_id, id, now_secs);
            (Role::Segment, header_parent)
        }
        (Direction::Outbound, Some(remote)) => {
            // An X-Ray-instrumented app names its own (sub)segment in x-amzn-trace-id;
            // otherwise the segment this pod recorded for the trace is the parent.
            let app_parent = header_parent.filter(|_| extracted.format() == Some(Format::Xray));
            match app_parent
                .or(pod_segment)
                .or_else(|| links::lookup(host, trace_id, now_secs))
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
    };
    write_headers(
        host,
        propagation::inject(&extracted, &seen.propagation, trace_id, id, true),
    );

    let url = match (&seen.authority, &seen.path) {
        (Some(authority), Some(path)) => Some(format!(
            "{}://{authority}{path}",
            seen.scheme.as_deref().unwrap_or("http")
        )),
        _ => None,
    };
    let client_ip = seen
        .forwarded_for
        .as_deref()
        .and_then(|xff| xff.split(',').next())
        .map(|ip| ip.trim().to_owned())
        .filter(|ip| !ip.is_empty());
    Some(ActiveSpan {
        role,
        trace_id,
        id,
        parent,
        start_nanos: now_nanos,
        cluster,
        request: HttpRequest {
            method: seen.method,
            url,
            user_agent: seen.user_agent,
            x_forwarded_for: client_ip.is_some(),
            client_ip,
        },
        header_annotations: seen.annotations,
        blackholed: classification.is_blackholed(),
    })
}

fn write_headers(host: &impl Host, writes: impl IntoIterator<Item = propagation::HeaderWrite>) {
    for (name, value) in writes {
        if let Err(e) = host.set_request_header(name, &value) {
            log::debug!("meshray: could not set {name}: {e}");
        }
    }
}

/// Log phase: the finished document as JSON, within X-Ray's size limit.
pub fn on_log(
    host: &impl Host,
    span: ActiveSpan,
    workload: &Workload,
    metrics: &Metrics,
) -> Option<Vec<u8>> {
    let start_nanos =
        property_i64(host, &REQUEST_TIME).map_or(span.start_nanos, |t| t.max(0) as u64);
    let end_nanos = match property_i64(host, &REQUEST_DURATION) {
        Some(duration) => start_nanos.saturating_add(duration.max(0) as u64),
        None => host.now_nanos().unwrap_or(start_nanos),
    }
    .max(start_nanos);
    let status = property_i64(host, &RESPONSE_CODE)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c > 0);
    let flags = ResponseFlags(property_i64(host, &RESPONSE_FLAGS).map_or(0, |f| f as u64));
    let content_length = property_i64(host, &RESPONSE_SIZE).and_then(|s| u64::try_from(s).ok());
    let start = seconds(start_nanos);
    let end = seconds(end_nanos);
    let document_trace_id = span
        .trace_id
        .document_trace_id(span.start_nanos / 1_000_000_000);

    let mut request = span.request;
    let response = HttpResponse {
        status,
        content_length,
    };
    let fault = flags.is_fault() || span.blackholed;
    let decorate = |doc: Document| -> Document {
        let mut doc = doc.with_end_time(end).with_http_response(response.clone());
        if fault {
            doc = doc.with_fault();
        }
        doc.throttle |= flags.is_throttle();
        if let Some(label) = flags.to_label() {
            doc = doc.with_annotation("response_flags", &label);
        }
        for (name, value) in &span.header_annotations {
            doc = doc.with_annotation(name, value);
        }
        doc
    };
    let mut document = match span.role {
        Role::Segment => {
            if request.client_ip.is_none() {
                request.client_ip = property_string(host, &SOURCE_ADDRESS)
                    .map(|addr| cluster::split_authority(&addr).0.to_owned());
            }
            let segment = Document::segment(&workload.service, span.id, document_trace_id, start)
                .with_parent(span.parent)
                .with_http_request(request);
            describe_workload(decorate(segment), workload)
        }
        Role::Subsegment { remote, parent } => {
            let subsegment = Document::remote_subsegment(
                &remote.name,
                span.id,
                document_trace_id,
                parent,
                start,
            )
            .with_http_request(request);
            describe_remote(decorate(subsegment), &remote, span.cluster.as_deref())
        }
        Role::ClientSegment { remote, segment_id } => {
            let call = Document::remote_subsegment(
                &remote.name,
                span.id,
                document_trace_id.clone(),
                segment_id,
                start,
            )
            .with_http_request(request);
            let call = describe_remote(decorate(call), &remote, span.cluster.as_deref());
            let segment =
                Document::segment(&workload.service, segment_id, document_trace_id, start)
                    .with_parent(span.parent)
                    .with_end_time(end)
                    .with_subsegment(call);
            let segment = if fault { segment.with_fault() } else { segment };
            describe_workload(segment, workload)
        }
    };
    match document.to_json_within_limit() {
        Some(json) => Some(json),
        None => {
            metrics.dropped(host, DropReason::Oversize, 1);
            None
        }
    }
}

/// Istio annotations, k8s metadata and `aws.eks` of a segment.
fn describe_workload(mut doc: Document, workload: &Workload) -> Document {
    let annotations = [
        ("istio_canonical_service", &workload.canonical_service),
        ("istio_canonical_revision", &workload.canonical_revision),
        ("istio_namespace", &workload.namespace),
    ];
    for (key, value) in annotations {
        if let Some(value) = value {
            doc = doc.with_annotation(key, value);
        }
    }
    let metadata = [
        ("namespace", &workload.namespace),
        ("workload", &workload.workload_name),
        ("pod", &workload.pod),
        ("service_account", &workload.service_account),
    ];
    for (key, value) in metadata {
        if let Some(value) = value {
            doc = doc.with_metadata("k8s", key, value);
        }
    }
    doc.with_eks(workload.pod.clone(), workload.cluster_name.clone())
}

/// Where a remote call went: Istio host, subset, port, cluster.
fn describe_remote(mut doc: Document, remote: &RemoteService, cluster: Option<&str>) -> Document {
    doc = doc.with_metadata("istio", "destination_host", &remote.host);
    if let Some(namespace) = &remote.namespace {
        doc = doc.with_metadata("istio", "destination_namespace", namespace);
    }
    if let Some(subset) = &remote.subset {
        doc = doc.with_metadata("istio", "destination_subset", subset);
    }
    if let Some(port) = remote.port {
        doc = doc.with_metadata("istio", "destination_port", &port.to_string());
    }
    if let Some(cluster) = cluster {
        doc = doc.with_metadata("istio", "upstream_cluster", cluster);
    }
    doc
}

fn seconds(nanos: u64) -> f64 {
    // Microsecond precision, as X-Ray SDKs send.
    (nanos / 1_000) as f64 / 1e6
}
