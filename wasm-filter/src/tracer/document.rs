//! Log phase: the X-Ray document of a traced request, from the span kept since
//! request headers and what Envoy knows once the response is done.

use meshray_core::cluster;
use meshray_core::grpc::GrpcStatus;
use meshray_core::response_flags::ResponseFlags;
use meshray_core::segment::{Document, HttpResponse};

use super::{ActiveSpan, Role};
use crate::host::{Host, property_i64, property_string};
use crate::metrics::{DropReason, Metrics};
use crate::workload::Workload;

const REQUEST_TIME: [&[&str]; 1] = [&["request", "time"]];
const RESPONSE_FLAGS: [&[&str]; 1] = [&["response", "flags"]];
const RESPONSE_SIZE: [&[&str]; 1] = [&["response", "size"]];
const SOURCE_ADDRESS: [&[&str]; 1] = [&["source", "address"]];

/// Log phase: the finished document as JSON, within X-Ray's size limit.
///
/// Host calls (each costs microseconds in Envoy, a property read the most; see
/// docs/BENCHMARKS.md): the clock for the end time (the start is the clock read at
/// request headers), `:status` of the response headers, two property reads
/// (`response.flags`, `response.size`), `source.address` for a segment whose
/// client no `x-forwarded-for` named, and `grpc-status` for gRPC only.
pub fn on_log(
    host: &impl Host,
    span: ActiveSpan,
    workload: &Workload,
    metrics: &Metrics,
) -> Option<Vec<u8>> {
    let start_nanos = match span.start_nanos {
        // The clock failed at request headers: Envoy's start of the request.
        0 => property_i64(host, &REQUEST_TIME).map_or(0, |t| t.max(0) as u64),
        start => start,
    };
    let end_nanos = host.now_nanos().unwrap_or(start_nanos).max(start_nanos);
    let status = response_status(host);
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
    let grpc = span.is_grpc.then(|| grpc_status(host)).flatten();
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
            doc = doc.with_exception(
                "EnvoyResponseFlag",
                "request refused: destination not in the mesh registry (BlackHoleCluster)",
                false,
            );
        }
        for (name, value) in &span.header_annotations {
            doc = doc.with_annotation(name, value);
        }
        doc
    };
    let is_segment = matches!(span.role, Role::Segment | Role::ClientSegment { .. });
    if is_segment && request.client_ip.is_none() {
        // The client of a segment is the downstream peer when no proxy said otherwise.
        request.client_ip = property_string(host, &SOURCE_ADDRESS)
            .map(|addr| cluster::split_authority(&addr).0.to_owned());
    }
    let mut document = match span.role {
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
    };
    match document.to_json_within_limit() {
        Some(json) => Some(json),
        None => {
            metrics.dropped(host, DropReason::Oversize, 1);
            None
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
