//! Log phase: the X-Ray document of a traced request, from the span kept since
//! request headers and what Envoy knows once the response is done.

use meshray_core::cluster;
use meshray_core::grpc::GrpcStatus;
use meshray_core::response_flags::ResponseFlags;
#[cfg(test)]
use meshray_core::segment::Document;
use meshray_core::segment::{HttpRequest, HttpResponse};

use super::{ActiveSpan, Role, writer};
use crate::host::{Host, property_i64, property_string};
use crate::metrics::{DropReason, Metrics};
use crate::workload::Workload;

const REQUEST_TIME: [&[&str]; 1] = [&["request", "time"]];
const RESPONSE_FLAGS: [&[&str]; 1] = [&["response", "flags"]];
const RESPONSE_SIZE: [&[&str]; 1] = [&["response", "size"]];
const SOURCE_ADDRESS: [&[&str]; 1] = [&["source", "address"]];

/// How long before the clock a request may have started: X-Ray keeps a trace 30
/// days, so an earlier `request.time` is no time it could show.
const MAX_REQUEST_AGE_NANOS: u64 = 30 * 24 * 3600 * 1_000_000_000;

/// Envoy's start of the request (`request.time`, nanoseconds since the epoch), when it
/// is a time at all: not after `clock` (the proxy's clock now, if it answered) and at
/// most [`MAX_REQUEST_AGE_NANOS`] before it (without a clock: at least a second after
/// the epoch). A missing or nonsensical value gives `None`, so the caller falls back to
/// the clock rather than emitting a document X-Ray refuses (`start_time` 0).
pub(super) fn envoy_request_start(host: &impl Host, clock: Option<u64>) -> Option<u64> {
    property_i64(host, &REQUEST_TIME)
        .and_then(|t| u64::try_from(t).ok())
        .filter(|&t| match clock {
            Some(now) => t <= now && now - t <= MAX_REQUEST_AGE_NANOS,
            None => t >= 1_000_000_000,
        })
}

/// Log phase: the finished document as JSON, within X-Ray's size limit, written
/// by [`writer`] (no document model is built per request).
///
/// Host calls (each costs microseconds in Envoy, a property read the most; see
/// docs/BENCHMARKS.md): the clock for the end time (the start is the clock read at
/// request headers), `:status` of the response headers, two property reads
/// (`response.flags`, `response.size`), `source.address` for a segment whose
/// client no `x-forwarded-for` named, and `grpc-status` for gRPC only.
pub fn on_log(
    host: &impl Host,
    mut span: ActiveSpan,
    workload: &Workload,
    metrics: &Metrics,
) -> Option<Vec<u8>> {
    let clock = host.now_nanos().ok();
    let start_nanos = match span.start_nanos {
        // The clock failed at request headers: Envoy's start of the request.
        0 => envoy_request_start(host, clock).unwrap_or_default(),
        start => start,
    };
    let end_nanos = clock.unwrap_or(start_nanos).max(start_nanos);
    let status = response_status(host);
    let flags = ResponseFlags(property_i64(host, &RESPONSE_FLAGS).map_or(0, |f| f as u64));
    let content_length = property_i64(host, &RESPONSE_SIZE).and_then(|s| u64::try_from(s).ok());
    let grpc = span.is_grpc.then(|| grpc_status(host)).flatten();
    let mut request = std::mem::take(&mut span.request);
    let is_segment = matches!(span.role, Role::Segment | Role::ClientSegment { .. });
    if is_segment && request.client_ip.is_none() {
        // The client of a segment is the downstream peer when no proxy said otherwise.
        request.client_ip = property_string(host, &SOURCE_ADDRESS)
            .map(|addr| cluster::split_authority(&addr).0.to_owned());
    }
    request.truncate_to_limit();
    let ending = Ending {
        trace_id: span
            .trace_id
            .document_trace_id(span.start_nanos / 1_000_000_000),
        start: seconds(start_nanos),
        end: seconds(end_nanos),
        request,
        response: HttpResponse {
            status,
            content_length,
        },
        flags,
        grpc,
    };
    match writer::document(&span, &ending, workload) {
        Some(json) => Some(json),
        None => {
            metrics.dropped(host, DropReason::Oversize, 1);
            None
        }
    }
}

/// What the log phase learnt, for the document.
#[derive(Debug, Clone)]
pub(super) struct Ending {
    /// The document's `trace_id`.
    pub trace_id: String,
    /// Start, epoch seconds.
    pub start: f64,
    /// End, epoch seconds.
    pub end: f64,
    /// `http.request`, its fields cut to X-Ray's limit, the client's address filled in.
    pub request: HttpRequest,
    /// `http.response`.
    pub response: HttpResponse,
    /// Envoy's response flags.
    pub flags: ResponseFlags,
    /// The gRPC status and message, for a gRPC request that has one.
    pub grpc: Option<(GrpcStatus, Option<String>)>,
}

/// The document through the document model ([`Document`]): the reference the
/// [`writer`]'s bytes are tested against.
#[cfg(test)]
pub(super) fn model_document(span: ActiveSpan, ending: Ending, workload: &Workload) -> Document {
    let Ending {
        trace_id: document_trace_id,
        start,
        end,
        request,
        response,
        flags,
        grpc,
    } = ending;
    let fault = flags.is_fault() || span.blackholed;
    // What the response says, on the document of the call and, for a client
    // segment (a gateway's root), on the enclosing segment too: the console's
    // trace list and filter expressions read the root segment.
    let outcome = |doc: Document| -> Document {
        let mut doc = doc.with_end_time(end).with_http_response(response.clone());
        if fault {
            doc = doc.with_fault();
        }
        doc.throttle |= flags.is_throttle();
        if let Some(label) = flags.to_label() {
            doc = doc.with_annotation("response_flags", &label);
        }
        if let Some((status, message)) = &grpc {
            doc = doc.with_grpc_status(*status, message.as_deref());
        }
        doc
    };
    let decorate = |doc: Document| -> Document {
        let mut doc = outcome(doc);
        for (code, description) in flags.described() {
            doc = doc.with_exception(
                "EnvoyResponseFlag",
                &format!("{description} ({code})"),
                ResponseFlags::is_upstream_code(code),
            );
        }
        if span.blackholed {
            doc = doc.with_exception("EnvoyResponseFlag", writer::BLACKHOLE_MESSAGE, false);
        }
        for (name, value) in &span.header_annotations {
            doc = doc.with_annotation(name, value);
        }
        doc
    };
    match span.role {
        Role::Segment => {
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
            decorate(subsegment).with_destination(&remote, span.cluster.as_deref())
        }
        Role::ClientSegment { remote, segment_id } => {
            // The trace's root at a gateway: the request's own http block and
            // the response's flags, with the call to the service inside.
            let segment = Document::segment(
                &workload.service,
                segment_id,
                document_trace_id.clone(),
                start,
            )
            .with_parent(span.parent)
            .with_http_request(request.clone());
            let segment = outcome(segment);
            let call = Document::remote_subsegment(
                &remote.name,
                span.id,
                document_trace_id,
                segment_id,
                start,
            )
            .with_http_request(request);
            let call = decorate(call).with_destination(&remote, span.cluster.as_deref());
            describe_workload(segment.with_subsegment(call), workload)
        }
    }
}

/// The status sent downstream: `:status` of the response headers (what the
/// `response.code` property reports, at a quarter of its cost). `None` when no
/// response was sent (the downstream went away first).
fn response_status(host: &impl Host) -> Option<u16> {
    let value = host.response_header(":status").ok().flatten()?;
    std::str::from_utf8(&value)
        .ok()?
        .parse::<u16>()
        .ok()
        .filter(|c| *c > 0)
}

/// `grpc-status` (and `grpc-message`) from the trailers, or from the headers
/// of a trailers-only answer (an error without a body).
fn grpc_status(host: &impl Host) -> Option<(GrpcStatus, Option<String>)> {
    let trailer = |name: &str| host.response_trailer(name).ok().flatten();
    let header = |name: &str| host.response_header(name).ok().flatten();
    let (status, in_trailers) = match trailer("grpc-status") {
        Some(value) => (value, true),
        None => (header("grpc-status")?, false),
    };
    let status = GrpcStatus::parse(&status)?;
    let message = if status.code() == 0 {
        None
    } else if in_trailers {
        trailer("grpc-message")
    } else {
        header("grpc-message")
    };
    Some((
        status,
        message.map(|m| String::from_utf8_lossy(&m).into_owned()),
    ))
}

/// Istio annotations, k8s metadata and `aws.eks` of a segment.
#[cfg(test)]
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

fn seconds(nanos: u64) -> f64 {
    // Microsecond precision, as X-Ray SDKs send.
    (nanos / 1_000) as f64 / 1e6
}
