//! [`Span`] → X-Ray document: the one mapping both Zipkin and OTLP go through.
//!
//! Rules (each has a unit test below; the fixtures captured from real Envoy check them
//! together):
//! 1. **Direction** from core's cluster classification of `upstream_cluster.name` (else
//!    `upstream_cluster`), with the `http.url` authority for passthrough clusters. A span
//!    without an Istio cluster name falls back to its kind: SERVER inbound, CLIENT
//!    outbound, anything else inbound.
//! 2. **Inbound → segment**: id = span id, `parent_id` = the span's parent (the caller's
//!    CLIENT span, i.e. its remote subsegment), named after the local service.
//! 3. **Outbound CLIENT span with a parent → independent remote subsegment**: id = span id,
//!    `parent_id` = its parent (the sidecar's SERVER span = the segment), named after the
//!    called service (the host cut at `.svc.`, as the classification names it).
//! 4. **Outbound span that is SERVER or has no parent** (an ingress gateway serving a
//!    request it routes to an outbound cluster; a call made outside any traced request)
//!    → a segment of the local service with a derived id, the span's parent, the
//!    request's `http` block and flags, and the call embedded as its remote subsegment
//!    (id = span id, so the callee's segment links to it).
//! 5. **Local service name**: the `istio.canonical_service` tag; else the reporting
//!    service (`localEndpoint.serviceName` / `service.name`, which Istio sets to
//!    `{service}.{namespace}`) with `.{namespace}` cut when the namespace is known from
//!    `istio.namespace` or the sidecar's `node_id`; else the host of a pre-1.9 inbound
//!    cluster (`inbound|9080|http|reviews.default.svc.cluster.local`); else `unknown`.
//! 6. **Times**: start and end in epoch seconds with microsecond precision.
//! 7. **http**: `http.method`, `http.url`, `user_agent` (not `-`), `peer.address` →
//!    `client_ip` (segments), `http.status_code` (a string in Zipkin) → `status`,
//!    `response_size` → `content_length`.
//! 8. **Flags**: status 4xx → `error`, 429 → `throttle`, 5xx → `fault` (core's segment
//!    model); `response_flags` fault codes (UH, UF, NR, …) and `BlackHoleCluster` →
//!    `fault`, RL → `throttle`; `grpc.status_code` (and `grpc.message`) as core's
//!    [`meshray_core::grpc`] maps gRPC codes, with the cause the filter gives it; the
//!    tracer's error signal (Zipkin `error` tag, OTLP status ERROR) → `fault` unless the
//!    status already says 4xx (OTel marks CLIENT spans of 4xx answers as errors; Zipkin
//!    does not) or a gRPC code decided.
//! 9. **Annotations**: `istio_canonical_service`, `istio_canonical_revision`,
//!    `istio_namespace`, `request_id` (`guid:x-request-id`) on segments;
//!    `response_flags` when any flag is set; `grpc_status` for gRPC.
//! 10. **Metadata**: segments `k8s` {namespace, pod} and `aws.eks.pod` from the node id;
//!     `envoy` {node_id, operation (without the `ingress `/`egress ` prefix OTel adds
//!     when a route has no decorator), protocol}; subsegments `istio` {destination_host,
//!     destination_namespace, destination_subset, destination_port, upstream_cluster},
//!     as the filter writes them.
//! 11. **Trace id**: 64-bit ids are left-padded to 128 bits; an id whose high 32 bits
//!     are a recent epoch becomes its X-Ray id directly, any other is sent raw and the
//!     relay's epoch cache gives it the epoch of the first document seen.

use meshray_core::cluster::{self, Classification, ClusterKind, Direction, RemoteService};
use meshray_core::grpc::GrpcStatus;
use meshray_core::ids::SpanId;
use meshray_core::response_flags::FlagCodes;
use meshray_core::segment::{Document, HttpRequest, HttpResponse};

use super::model::{Span, SpanKind};

/// Tag holding the cluster name (newer Envoy); preferred over [`TAG_UPSTREAM_CLUSTER`].
pub const TAG_UPSTREAM_CLUSTER_NAME: &str = "upstream_cluster.name";
/// Tag holding the cluster's observability name (Istio sets it to the cluster name).
pub const TAG_UPSTREAM_CLUSTER: &str = "upstream_cluster";

/// Maps one span to the document the relay ingests.
///
/// `now_secs` decides whether the trace id's high 32 bits count as its epoch.
pub fn to_document(span: &Span, now_secs: u64) -> Document {
    let classification = classify(span);
    let local = local_service(span);
    let trace_id = span.trace_id.document_trace_id(now_secs);
    let start = seconds(span.start_nanos);
    let end = seconds(span.start_nanos.saturating_add(span.duration_nanos));
    let outcome = Outcome::of(span, &classification);

    match (
        classification.direction,
        &classification.remote,
        span.parent_id,
    ) {
        (Direction::Outbound, Some(remote), Some(parent)) if span.kind != SpanKind::Server => {
            let subsegment =
                Document::remote_subsegment(&remote.name, span.id, trace_id, parent, start)
                    .with_end_time(end)
                    .with_http_request(http_request(span, false));
            describe_remote(outcome.apply(subsegment), span, remote)
        }
        (Direction::Outbound, Some(remote), _) => {
            let call = Document::remote_subsegment(
                &remote.name,
                span.id,
                trace_id.clone(),
                span.id,
                start,
            )
            .with_end_time(end)
            .with_http_request(http_request(span, false));
            let call = describe_remote(outcome.apply(call), span, remote);
            let segment = Document::segment(&local, edge_segment_id(span.id), trace_id, start)
                .with_parent(span.parent_id)
                .with_end_time(end)
                .with_http_request(http_request(span, true));
            describe_local(outcome.apply(segment), span).with_subsegment(call)
        }
        _ => {
            let segment = Document::segment(&local, span.id, trace_id, start)
                .with_parent(span.parent_id)
                .with_end_time(end)
                .with_http_request(http_request(span, true));
            describe_local(outcome.apply(segment), span)
        }
    }
}

/// Rule 1: classification from the cluster tag, the URL's authority and the kind.
fn classify(span: &Span) -> Classification {
    let cluster_name = span
        .tag(TAG_UPSTREAM_CLUSTER_NAME)
        .or_else(|| span.tag(TAG_UPSTREAM_CLUSTER));
    let authority = span.tag("http.url").and_then(url_authority);
    let mut classification = cluster::classify(
        cluster_name,
        || match span.kind {
            SpanKind::Client => Some(cluster::LISTENER_DIRECTION_OUTBOUND),
            SpanKind::Server => Some(cluster::LISTENER_DIRECTION_INBOUND),
            SpanKind::Unspecified => None,
        },
        authority,
    );
    // Without a cluster or URL, a Zipkin remote endpoint or OTel `peer.service` names the callee.
    if let (Some(remote), Some(name)) = (&mut classification.remote, &span.remote_service_name)
        && classification.kind == ClusterKind::Other
        && authority.is_none()
    {
        *remote = cluster::remote_from_host(name);
    }
    classification
}

/// Rule 5: the name of the service that reported the span.
fn local_service(span: &Span) -> String {
    if let Some(canonical) = span.tag("istio.canonical_service") {
        return canonical.to_owned();
    }
    if let Some(reported) = &span.service_name {
        return match namespace(span) {
            Some(ns) => reported
                .strip_suffix(&format!(".{ns}"))
                .unwrap_or(reported)
                .to_owned(),
            None => reported.clone(),
        };
    }
    let legacy_inbound_host = span
        .tag(TAG_UPSTREAM_CLUSTER_NAME)
        .or_else(|| span.tag(TAG_UPSTREAM_CLUSTER))
        .and_then(|c| c.strip_prefix("inbound|"))
        .and_then(|rest| rest.split('|').nth(2))
        .filter(|host| !host.is_empty());
    match legacy_inbound_host {
        Some(host) => cluster::remote_from_host(host).name,
        None => meshray_core::limits::FALLBACK_NAME.to_owned(),
    }
}

/// The workload's namespace: the `istio.namespace` tag, else the sidecar's node id.
fn namespace(span: &Span) -> Option<&str> {
    span.tag("istio.namespace")
        .or_else(|| node(span).map(|node| node.namespace))
}

/// The parts of an Istio node id `sidecar~10.0.0.1~reviews-v1-abc.default~default.svc.cluster.local`.
struct Node<'a> {
    /// `reviews-v1-abc`.
    pod: &'a str,
    /// `default`.
    namespace: &'a str,
}

/// Parses the `node_id` tag Envoy adds to every span.
fn node(span: &Span) -> Option<Node<'_>> {
    let mut parts = span.tag("node_id")?.split('~');
    let _role = parts.next()?;
    let _ip = parts.next()?;
    let pod_and_namespace = parts.next()?;
    let (pod, namespace) = pod_and_namespace.rsplit_once('.')?;
    (!pod.is_empty() && !namespace.is_empty()).then_some(Node { pod, namespace })
}

/// Rule 4: the id of the segment wrapping an edge call, derived from the call's span id
/// (so both formats and every replica give the same one).
fn edge_segment_id(call: SpanId) -> SpanId {
    // splitmix64 finaliser: a bijection, so distinct calls give distinct segments.
    let mut z = call.value().wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    SpanId::from_random(z ^ (z >> 31))
}

/// Rule 7: `http.request`; the client address only on segments.
fn http_request(span: &Span, with_client: bool) -> HttpRequest {
    HttpRequest {
        method: span.tag("http.method").map(str::to_owned),
        url: span.tag("http.url").map(str::to_owned),
        user_agent: span
            .tag("user_agent")
            .filter(|ua| *ua != "-")
            .map(str::to_owned),
        client_ip: if with_client {
            span.tag("peer.address")
                .map(|addr| cluster::split_authority(addr).0.to_owned())
        } else {
            None
        },
        x_forwarded_for: false,
    }
}

/// Rules 7 and 8: what the answer says about the request.
struct Outcome {
    /// `http.response`.
    response: HttpResponse,
    /// A fault beyond what the status says.
    fault: bool,
    /// Throttled beyond what the status says.
    throttle: bool,
    /// The response flags, when set.
    flags_label: Option<String>,
    /// The gRPC status and message, for gRPC calls.
    grpc: Option<(GrpcStatus, Option<String>)>,
}

impl Outcome {
    fn of(span: &Span, classification: &Classification) -> Self {
        let status = span
            .tag("http.status_code")
            .and_then(|s| s.trim().parse::<u16>().ok())
            .filter(|s| *s > 0);
        let content_length = span
            .tag("response_size")
            .and_then(|s| s.trim().parse::<u64>().ok());
        let flags = FlagCodes::parse(span.tag("response_flags").unwrap_or_default());
        let grpc = span
            .tag("grpc.status_code")
            .and_then(|code| GrpcStatus::parse(code.as_bytes()))
            .map(|status| (status, span.tag("grpc.message").map(str::to_owned)));
        let mut fault = flags.is_fault() || classification.is_blackholed();
        let throttle = flags.is_throttle();
        let status_is_4xx = status.is_some_and(|s| (400..500).contains(&s));
        if span.error && grpc.is_none() && !status_is_4xx {
            fault = true;
        }
        Self {
            response: HttpResponse {
                status,
                content_length,
            },
            fault,
            throttle,
            flags_label: flags.to_label(),
            grpc,
        }
    }

    /// Sets `http.response`, the flags and their annotations on `doc`.
    fn apply(&self, doc: Document) -> Document {
        let mut doc = doc.with_http_response(self.response.clone());
        doc.fault |= self.fault;
        doc.throttle |= self.throttle;
        if let Some(label) = &self.flags_label {
            doc = doc.with_annotation("response_flags", label);
        }
        if let Some((status, message)) = &self.grpc {
            doc = doc.with_grpc_status(*status, message.as_deref());
        }
        doc
    }
}

/// Rules 9 and 10 for segments.
fn describe_local(mut doc: Document, span: &Span) -> Document {
    for (tag, key) in [
        ("istio.canonical_service", "istio_canonical_service"),
        ("istio.canonical_revision", "istio_canonical_revision"),
        ("istio.namespace", "istio_namespace"),
        ("guid:x-request-id", "request_id"),
    ] {
        if let Some(value) = span.tag(tag) {
            doc = doc.with_annotation(key, value);
        }
    }
    if let Some(ns) = namespace(span) {
        doc = doc.with_metadata("k8s", "namespace", ns);
    }
    let pod = node(span).map(|node| node.pod.to_owned());
    if let Some(pod) = &pod {
        doc = doc.with_metadata("k8s", "pod", pod);
    }
    doc = describe_envoy(doc, span);
    doc.with_eks(pod, None)
}

/// Rule 10 for subsegments: where the call went, as the filter records it.
fn describe_remote(doc: Document, span: &Span, remote: &RemoteService) -> Document {
    let cluster = span
        .tag(TAG_UPSTREAM_CLUSTER_NAME)
        .or_else(|| span.tag(TAG_UPSTREAM_CLUSTER));
    let doc = doc.with_destination(remote, cluster);
    describe_envoy(doc, span)
}

/// `envoy` metadata: which proxy reported the span, the operation, the protocol.
fn describe_envoy(mut doc: Document, span: &Span) -> Document {
    if let Some(node_id) = span.tag("node_id") {
        doc = doc.with_metadata("envoy", "node_id", node_id);
    }
    // Without a route decorator Envoy's OpenTelemetry tracer names spans
    // `ingress <host>` / `egress <host>` where its Zipkin tracer says `<host>`.
    let operation = span
        .name
        .strip_prefix("ingress ")
        .or_else(|| span.name.strip_prefix("egress "))
        .unwrap_or(&span.name);
    if !operation.is_empty() {
        doc = doc.with_metadata("envoy", "operation", operation);
    }
    if let Some(protocol) = span.tag("http.protocol") {
        doc = doc.with_metadata("envoy", "protocol", protocol);
    }
    doc
}

/// The authority of `scheme://authority/path`; `None` when there is none.
fn url_authority(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    (!authority.is_empty()).then_some(authority)
}

/// Nanoseconds → epoch seconds, microsecond precision (as X-Ray SDKs and the filter send).
fn seconds(nanos: u64) -> f64 {
    (nanos / 1_000) as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use meshray_core::ids::TraceId;
    use serde_json::{Value, json};

    use super::*;

    const NOW: u64 = 1_764_000_000;
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    /// A span with the tags Envoy puts on every span of an Istio sidecar.
    fn span(kind: SpanKind, cluster: &str, parent: Option<&str>, tags: &[(&str, &str)]) -> Span {
        let mut all: BTreeMap<String, String> = [
            ("upstream_cluster", cluster),
            ("upstream_cluster.name", cluster),
            ("http.method", "GET"),
            ("http.url", "http://reviews:9080/reviews"),
            ("http.status_code", "200"),
            ("http.protocol", "HTTP/1.1"),
            ("response_size", "11"),
            ("response_flags", "-"),
            ("user_agent", "-"),
            ("peer.address", "127.0.0.1"),
            ("guid:x-request-id", "ed1ec05b-1bd7-99aa-b1a7-6a4f425501bf"),
            (
                "node_id",
                "sidecar~10.0.0.7~reviews-v1-6d4c5b8f9-x7k2p.default~default.svc.cluster.local",
            ),
            ("istio.canonical_service", "reviews"),
            ("istio.canonical_revision", "v1"),
            ("istio.namespace", "default"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in tags {
            if v.is_empty() {
                all.remove(*k);
            } else {
                all.insert((*k).to_owned(), (*v).to_owned());
            }
        }
        Span {
            trace_id: TraceId::from_hex(TRACE).unwrap(),
            id: SpanId::from_hex("ec8d78421b037f0c").unwrap(),
            parent_id: parent.map(|p| SpanId::from_hex(p).unwrap()),
            kind,
            name: "reviews.default.svc.cluster.local:9080/*".to_owned(),
            service_name: Some("reviews.default".to_owned()),
            remote_service_name: None,
            start_nanos: 1_764_000_000_123_456_789,
            duration_nanos: 4_049_000,
            error: false,
            tags: all,
        }
    }

    fn json_of(span: &Span) -> Value {
        serde_json::to_value(to_document(span, NOW)).unwrap()
    }

    /// Rules 2, 5, 6, 7, 9, 10: an inbound SERVER span is a fully described segment.
    #[test]
    fn inbound_span_is_a_segment() {
        let doc = json_of(&span(
            SpanKind::Server,
            "inbound|9080||",
            Some("e7ac59737006d560"),
            &[],
        ));
        assert_eq!(
            doc,
            json!({
                "name": "reviews",
                "id": "ec8d78421b037f0c",
                "trace_id": TRACE,
                "parent_id": "e7ac59737006d560",
                "start_time": 1_764_000_000.123_456,
                "end_time": 1_764_000_000.127_505,
                "origin": "AWS::EKS::Container",
                "http": {
                    "request": {"method": "GET", "url": "http://reviews:9080/reviews", "client_ip": "127.0.0.1"},
                    "response": {"status": 200, "content_length": 11}
                },
                "aws": {"eks": {"pod": "reviews-v1-6d4c5b8f9-x7k2p"}},
                "annotations": {
                    "istio_canonical_service": "reviews",
                    "istio_canonical_revision": "v1",
                    "istio_namespace": "default",
                    "request_id": "ed1ec05b-1bd7-99aa-b1a7-6a4f425501bf"
                },
                "metadata": {
                    "k8s": {"namespace": "default", "pod": "reviews-v1-6d4c5b8f9-x7k2p"},
                    "envoy": {
                        "node_id": "sidecar~10.0.0.7~reviews-v1-6d4c5b8f9-x7k2p.default~default.svc.cluster.local",
                        "operation": "reviews.default.svc.cluster.local:9080/*",
                        "protocol": "HTTP/1.1"
                    }
                }
            })
        );
    }

    /// Rules 3 and 10: an outbound CLIENT span is a remote subsegment under its parent,
    /// named after the called service.
    #[test]
    fn outbound_span_is_a_remote_subsegment() {
        let doc = json_of(&span(
            SpanKind::Client,
            "outbound|9080|v2|ratings.prod.svc.cluster.local",
            Some("ec8d78421b037f0b"),
            &[
                ("http.url", "http://ratings.prod:9080/ratings"),
                ("user_agent", "curl/8"),
            ],
        ));
        assert_eq!(doc["type"], "subsegment");
        assert_eq!(doc["namespace"], "remote");
        assert_eq!(doc["name"], "ratings");
        assert_eq!(doc["id"], "ec8d78421b037f0c");
        assert_eq!(doc["parent_id"], "ec8d78421b037f0b");
        assert_eq!(doc["trace_id"], TRACE);
        assert!(doc.get("origin").is_none());
        assert_eq!(
            doc["http"]["request"],
            json!({"method": "GET", "url": "http://ratings.prod:9080/ratings", "user_agent": "curl/8"})
        );
        assert_eq!(
            doc["metadata"]["istio"],
            json!({
                "destination_host": "ratings.prod.svc.cluster.local",
                "destination_namespace": "prod",
                "destination_subset": "v2",
                "destination_port": "9080",
                "upstream_cluster": "outbound|9080|v2|ratings.prod.svc.cluster.local"
            })
        );
        assert!(doc.get("annotations").is_none(), "{doc}");
    }

    /// Rule 4: a gateway's SERVER span routed to an outbound cluster, and a parentless
    /// CLIENT span, are segments of the local service wrapping the call.
    #[test]
    fn edge_spans_wrap_the_call_in_a_segment() {
        for (kind, parent) in [
            (SpanKind::Server, Some("aaaaaaaaaaaaaaaa")),
            (SpanKind::Server, None),
            (SpanKind::Client, None),
        ] {
            let span = span(
                kind,
                "outbound|9080||productpage.default.svc.cluster.local",
                parent,
                &[
                    ("istio.canonical_service", "istio-ingressgateway"),
                    ("http.url", "http://bookinfo.example.com/productpage"),
                    ("user_agent", "curl/8"),
                    ("http.status_code", "503"),
                    ("response_flags", "UF"),
                ],
            );
            let doc = json_of(&span);
            assert_eq!(doc["name"], "istio-ingressgateway", "{kind:?}");
            assert_ne!(doc["id"], "ec8d78421b037f0c");
            assert_eq!(doc["id"], edge_segment_id(span.id).to_string());
            assert_eq!(doc.get("parent_id").and_then(Value::as_str), parent);
            assert_eq!(doc["http"]["request"]["user_agent"], "curl/8");
            assert_eq!(doc["http"]["response"]["status"], 503);
            assert_eq!(doc["fault"], true);
            let call = &doc["subsegments"][0];
            assert_eq!(call["id"], "ec8d78421b037f0c");
            assert_eq!(call["name"], "productpage");
            assert_eq!(call["namespace"], "remote");
            assert_eq!(call["fault"], true);
            assert_eq!(call["annotations"]["response_flags"], "UF");
            assert!(call.get("trace_id").is_none() && call.get("type").is_none());
        }
    }

    /// Rule 1: without an Istio cluster the kind decides; the remote endpoint names the callee.
    #[test]
    fn kind_decides_without_a_cluster() {
        let mut client = span(
            SpanKind::Client,
            "",
            Some("ec8d78421b037f0b"),
            &[("http.url", "")],
        );
        client.tags.remove("upstream_cluster");
        client.tags.remove("upstream_cluster.name");
        client.remote_service_name = Some("payments".to_owned());
        let doc = json_of(&client);
        assert_eq!(
            (doc["type"].as_str(), doc["name"].as_str()),
            (Some("subsegment"), Some("payments"))
        );

        let mut server = client.clone();
        server.kind = SpanKind::Server;
        assert!(json_of(&server).get("type").is_none());
        let mut unspecified = client;
        unspecified.kind = SpanKind::Unspecified;
        assert!(json_of(&unspecified).get("type").is_none());

        let mut with_url = span(
            SpanKind::Client,
            "",
            Some("ec8d78421b037f0b"),
            &[("http.url", "https://api.example.com:8443/v1")],
        );
        with_url.tags.remove("upstream_cluster");
        with_url.tags.remove("upstream_cluster.name");
        assert_eq!(json_of(&with_url)["name"], "api.example.com");
    }

    /// Rule 1: the cluster name beats the kind, and the older tag is read when the newer is absent.
    #[test]
    fn cluster_beats_kind() {
        let doc = json_of(&span(
            SpanKind::Server,
            "inbound|9080||",
            Some("e7ac59737006d560"),
            &[("upstream_cluster.name", "")],
        ));
        assert!(doc.get("type").is_none());
        let doc = json_of(&span(
            SpanKind::Unspecified,
            "outbound|9080||ratings.default.svc.cluster.local",
            Some("e7ac59737006d560"),
            &[("upstream_cluster.name", "")],
        ));
        assert_eq!(doc["name"], "ratings");
        let doc = json_of(&span(
            SpanKind::Client,
            "PassthroughCluster",
            Some("e7ac59737006d560"),
            &[("http.url", "http://httpbin.org/get")],
        ));
        assert_eq!(doc["name"], "httpbin.org");
    }

    /// Rule 5: the name without Istio tags: reported service minus the namespace, or the
    /// host of a pre-1.9 inbound cluster, or `unknown`.
    #[test]
    fn local_service_name_forms() {
        // (tags changed, reported service, expected name)
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>, &'a str);
        let cases: [Case<'_>; 6] = [
            (&[], Some("reviews.default"), "reviews"),
            (
                &[("istio.canonical_service", "")],
                Some("reviews.default"),
                "reviews",
            ),
            (
                &[("istio.canonical_service", ""), ("istio.namespace", "")],
                Some("reviews.default"),
                "reviews",
            ),
            (
                &[
                    ("istio.canonical_service", ""),
                    ("istio.namespace", ""),
                    ("node_id", ""),
                ],
                Some("api.gateway"),
                "api.gateway",
            ),
            (
                &[
                    ("istio.canonical_service", ""),
                    ("istio.namespace", ""),
                    ("node_id", ""),
                    (
                        "upstream_cluster.name",
                        "inbound|9080|http|details.prod.svc.cluster.local",
                    ),
                ],
                None,
                "details",
            ),
            (
                &[
                    ("istio.canonical_service", ""),
                    ("istio.namespace", ""),
                    ("node_id", ""),
                ],
                None,
                "unknown",
            ),
        ];
        for (tags, reported, expected) in cases {
            let mut span = span(SpanKind::Server, "inbound|9080||", None, tags);
            span.service_name = reported.map(str::to_owned);
            assert_eq!(json_of(&span)["name"], expected, "{tags:?} {reported:?}");
        }
    }

    /// Rule 8: statuses, response flags, the error signal, BlackHoleCluster and gRPC codes.
    #[test]
    fn flags_from_status_response_flags_error_and_grpc() {
        // (tags, error signal, error, throttle, fault, annotation response_flags, grpc_status)
        type Case = (
            &'static [(&'static str, &'static str)],
            bool,
            bool,
            bool,
            bool,
            Option<&'static str>,
            Option<i64>,
        );
        let cases: [Case; 13] = [
            (&[], false, false, false, false, None, None),
            (
                &[("http.status_code", "404")],
                false,
                true,
                false,
                false,
                None,
                None,
            ),
            (
                &[("http.status_code", "404")],
                true,
                true,
                false,
                false,
                None,
                None,
            ),
            (
                &[("http.status_code", "429")],
                false,
                true,
                true,
                false,
                None,
                None,
            ),
            (
                &[("http.status_code", "503")],
                true,
                false,
                false,
                true,
                None,
                None,
            ),
            (
                &[("http.status_code", "503"), ("response_flags", "UH")],
                true,
                false,
                false,
                true,
                Some("UH"),
                None,
            ),
            (
                &[("http.status_code", "0"), ("response_flags", "DC")],
                true,
                false,
                false,
                true,
                Some("DC"),
                None,
            ),
            (
                &[("http.status_code", "200"), ("response_flags", "RL")],
                false,
                false,
                true,
                false,
                Some("RL"),
                None,
            ),
            (
                &[("http.status_code", "200")],
                true,
                false,
                false,
                true,
                None,
                None,
            ),
            (
                &[("grpc.status_code", "0")],
                false,
                false,
                false,
                false,
                None,
                Some(0),
            ),
            (
                &[("grpc.status_code", "8")],
                true,
                true,
                true,
                false,
                None,
                Some(8),
            ),
            (
                &[("grpc.status_code", "14")],
                true,
                false,
                false,
                true,
                None,
                Some(14),
            ),
            (
                &[("grpc.status_code", "5")],
                true,
                true,
                false,
                false,
                None,
                Some(5),
            ),
        ];
        for (tags, signal, error, throttle, fault, flags, grpc) in cases {
            let mut span = span(SpanKind::Server, "inbound|9080||", None, tags);
            span.error = signal;
            let doc = json_of(&span);
            let flag = |name: &str| doc.get(name).and_then(Value::as_bool).unwrap_or(false);
            assert_eq!(
                (flag("error"), flag("throttle"), flag("fault")),
                (error, throttle, fault),
                "{tags:?} {signal}"
            );
            assert_eq!(
                doc["annotations"]
                    .get("response_flags")
                    .and_then(Value::as_str),
                flags,
                "{tags:?}"
            );
            assert_eq!(
                doc["annotations"]
                    .get("grpc_status")
                    .and_then(Value::as_i64),
                grpc,
                "{tags:?}"
            );
        }
        // A failed gRPC call names its status (and `grpc.message`) as the cause, as the
        // filter does.
        let unavailable = json_of(&span(
            SpanKind::Server,
            "inbound|9080||",
            None,
            &[("grpc.status_code", "14"), ("grpc.message", "backend down")],
        ));
        assert_eq!(
            unavailable["cause"]["exceptions"][0]["message"], "gRPC UNAVAILABLE (14): backend down",
            "{unavailable}"
        );
        let blackholed = json_of(&span(
            SpanKind::Client,
            "BlackHoleCluster",
            Some("e7ac59737006d560"),
            &[("http.url", "http://unknown.example.com/x")],
        ));
        assert_eq!(
            (blackholed["name"].as_str(), blackholed["fault"].as_bool()),
            (Some("unknown.example.com"), Some(true))
        );
    }

    /// Rule 11: a 64-bit id is padded and left for the epoch cache; an id carrying a
    /// recent epoch becomes its X-Ray id.
    #[test]
    fn trace_ids() {
        let mut short = span(SpanKind::Server, "inbound|9080||", None, &[]);
        short.trace_id = TraceId::from_hex("a3ce929d0e0e4736").unwrap();
        assert_eq!(
            json_of(&short)["trace_id"],
            "0000000000000000a3ce929d0e0e4736"
        );
        let mut minted = short.clone();
        minted.trace_id = TraceId::mint(NOW as u32 - 60, 0xabc);
        assert_eq!(
            json_of(&minted)["trace_id"],
            format!("1-{:08x}-000000000000000000000abc", NOW - 60)
        );
    }

    /// Authorities of the URLs Envoy reports.
    #[test]
    fn url_authorities() {
        for (url, expected) in [
            ("http://ratings:9080/ratings", Some("ratings:9080")),
            ("https://user@api.example.com/x?y", Some("api.example.com")),
            ("http://[::1]:8080", Some("[::1]:8080")),
            ("reviews:9080/x", Some("reviews:9080")),
            ("http:///x", None),
        ] {
            assert_eq!(url_authority(url), expected, "{url}");
        }
    }

    /// The derived edge segment id is stable, non-zero and differs from the call's.
    #[test]
    fn edge_segment_ids() {
        for value in [1u64, 2, 0x50a5_3189_14e0_205c, u64::MAX] {
            let call = SpanId::new(value).unwrap();
            assert_ne!(edge_segment_id(call), call);
            assert_eq!(edge_segment_id(call), edge_segment_id(call));
        }
    }
}
