//! The X-Ray document of a request, written straight into JSON.
//!
//! The bytes are the ones the document model ([`meshray_core::segment::Document`])
//! writes for the same request — the tests build each document both ways and
//! compare — without the model's work: no string per field, no maps for
//! annotations and metadata, no tree to serialise afterwards. The workload's part
//! of a segment (`name`, `aws`, its annotations, `k8s` metadata) is the same for
//! every request and written once per VM ([`SegmentJson`]). A document over X-Ray's
//! size limit is written again with less, as the model shrinks one: without
//! metadata, then without annotations, then with short URLs and user agents.

use std::borrow::Cow;

use meshray_core::cluster::RemoteService;
use meshray_core::grpc::Outcome;
use meshray_core::ids::{SpanId, write_hex};
use meshray_core::json_writer::{self, Object};
use meshray_core::limits::{
    MAX_ANNOTATION_VALUE_CHARS, MAX_ANNOTATIONS, MAX_DOCUMENT_BYTES, is_valid_annotation_key,
    is_valid_name, sanitize_annotation_key, sanitize_name, truncate_chars,
};
use meshray_core::response_flags::ResponseFlags;
use meshray_core::segment::{
    HttpRequest, MAX_EXCEPTION_MESSAGE_CHARS, MAX_EXCEPTIONS, NAMESPACE_REMOTE,
    ORIGIN_EKS_CONTAINER, write_http_json,
};

use super::document::Ending;
use super::{ActiveSpan, Role};
use crate::workload::Workload;

/// The exception of a request Istio black-holed.
pub(super) const BLACKHOLE_MESSAGE: &str =
    "request refused: destination not in the mesh registry (BlackHoleCluster)";

/// How long URLs and user agents may stay in the last shrinking step.
const SHORT_HTTP_FIELD_CHARS: usize = 64;

/// The members of this workload's segments that no request changes, as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentJson {
    /// The segment's `name` value (a JSON string).
    name: Vec<u8>,
    /// `,"aws":{"eks":{…}}`, or nothing.
    aws: Vec<u8>,
    /// The workload's annotations (`istio_*`), in the order they are added.
    annotations: Vec<(&'static str, String)>,
    /// `,"annotations":{…}` of those alone, or nothing.
    annotations_json: Vec<u8>,
    /// `,"metadata":{"k8s":{…}}`, or nothing.
    k8s: Vec<u8>,
}

impl SegmentJson {
    /// The constant members of `workload`'s segments.
    pub fn of(workload: &Workload) -> Self {
        let mut json = Self::default();
        json_writer::string(&mut json.name, &sanitize_name(&workload.service));
        if workload.pod.is_some() || workload.cluster_name.is_some() {
            json.aws.extend_from_slice(b",\"aws\":{\"eks\":");
            let mut eks = Object::open(&mut json.aws);
            eks.optional_string("pod", workload.pod.as_deref());
            eks.optional_string("cluster_name", workload.cluster_name.as_deref());
            eks.close();
            json.aws.push(b'}');
        }
        let annotations = [
            ("istio_canonical_service", &workload.canonical_service),
            ("istio_canonical_revision", &workload.canonical_revision),
            ("istio_namespace", &workload.namespace),
        ];
        for (key, value) in annotations {
            if let Some(value) = value {
                let value = truncate_chars(value, MAX_ANNOTATION_VALUE_CHARS).to_owned();
                json.annotations.push((key, value));
            }
        }
        let mut annotations_json = Vec::new();
        let mut sorted = Annotations::default();
        sorted.add_workload(&json);
        sorted.write(&mut annotations_json);
        json.annotations_json = annotations_json;
        let k8s = [
            ("namespace", &workload.namespace),
            ("pod", &workload.pod),
            ("service_account", &workload.service_account),
            ("workload", &workload.workload_name),
        ];
        if k8s.iter().any(|(_, value)| value.is_some()) {
            json.k8s.extend_from_slice(b",\"metadata\":{\"k8s\":");
            let mut block = Object::open(&mut json.k8s);
            for (key, value) in k8s {
                block.optional_string(key, value.as_deref());
            }
            block.close();
            json.k8s.push(b'}');
        }
        json
    }
}

/// What a document leaves out to fit X-Ray's size limit.
#[derive(Debug, Clone, Copy, Default)]
struct Shrink {
    /// No `metadata`.
    metadata: bool,
    /// No `annotations`.
    annotations: bool,
    /// URLs and user agents cut to [`SHORT_HTTP_FIELD_CHARS`].
    short_http: bool,
}

/// The steps, in order: the whole document first.
const SHRINK_STEPS: [Shrink; 4] = [
    Shrink {
        metadata: false,
        annotations: false,
        short_http: false,
    },
    Shrink {
        metadata: true,
        annotations: false,
        short_http: false,
    },
    Shrink {
        metadata: true,
        annotations: true,
        short_http: false,
    },
    Shrink {
        metadata: true,
        annotations: true,
        short_http: true,
    },
];

/// The request's document within X-Ray's size limit, or `None` when even the
/// shrunk document is over it.
pub fn document(span: &ActiveSpan, ending: &Ending, workload: &Workload) -> Option<Vec<u8>> {
    let marks = Marks::of(span, ending);
    let mut short_request = None;
    for shrink in SHRINK_STEPS {
        let request = if shrink.short_http {
            short_request.get_or_insert_with(|| shortened(&ending.request))
        } else {
            &ending.request
        };
        let writer = Writer {
            span,
            ending,
            request,
            workload,
            marks: &marks,
            shrink,
        };
        let json = writer.write();
        if json.len() <= MAX_DOCUMENT_BYTES {
            return Some(json);
        }
    }
    None
}

/// `request` with its URL and user agent cut short (the last shrinking step).
fn shortened(request: &HttpRequest) -> HttpRequest {
    let mut short = request.clone();
    for text in [&mut short.url, &mut short.user_agent]
        .into_iter()
        .flatten()
    {
        let cut = truncate_chars(text, SHORT_HTTP_FIELD_CHARS).len();
        text.truncate(cut);
    }
    short
}

/// What the response marks on a document beyond its `http` block.
#[derive(Debug, Default)]
struct Marks<'a> {
    /// `error`.
    error: bool,
    /// `throttle`.
    throttle: bool,
    /// `fault`.
    fault: bool,
    /// Annotations of the outcome (`response_flags`, `grpc_status`), on every document.
    outcome_annotations: Annotations<'a>,
    /// Those and the configured headers': the call's document (the request's own
    /// document, when it is not a client segment).
    call_annotations: Annotations<'a>,
    /// The gRPC status's exception, on every document.
    outcome_exception: Option<(&'static str, String, bool)>,
    /// The response flags' and the black hole's exceptions, on the call's document.
    call_exceptions: Vec<(&'static str, String, bool)>,
}

impl<'a> Marks<'a> {
    /// What `ending` says, in the order the model adds it (see `model_document`).
    fn of(span: &'a ActiveSpan, ending: &'a Ending) -> Self {
        let mut marks = Self::default();
        if let Some(status) = ending.response.status {
            marks.error = (400..500).contains(&status);
            marks.throttle = status == 429;
            marks.fault = (500..600).contains(&status);
        }
        let flags = ending.flags;
        marks.fault |= flags.is_fault() || span.blackholed;
        marks.throttle |= flags.is_throttle();
        if let Some(label) = flags.to_label() {
            marks
                .outcome_annotations
                .add("response_flags", Value::Text(Cow::Owned(label)));
        }
        if let Some((status, message)) = &ending.grpc {
            marks
                .outcome_annotations
                .add("grpc_status", Value::Int(i64::from(status.code())));
            let outcome = status.outcome();
            match outcome {
                Outcome::Ok => {}
                Outcome::Throttle => {
                    marks.throttle = true;
                    marks.error = true;
                }
                Outcome::Fault => marks.fault = true,
                Outcome::Error => marks.error = true,
            }
            if outcome != Outcome::Ok {
                let text = match message.as_deref().filter(|m| !m.is_empty()) {
                    Some(message) => {
                        format!("gRPC {} ({}): {message}", status.name(), status.code())
                    }
                    None => format!("gRPC {} ({})", status.name(), status.code()),
                };
                marks.outcome_exception = Some(("GrpcStatus", text, true));
            }
        }
        for (code, description) in flags.described() {
            marks.call_exceptions.push((
                "EnvoyResponseFlag",
                format!("{description} ({code})"),
                ResponseFlags::is_upstream_code(code),
            ));
        }
        if span.blackholed {
            marks
                .call_exceptions
                .push(("EnvoyResponseFlag", BLACKHOLE_MESSAGE.to_owned(), false));
        }
        marks.call_annotations = marks.outcome_annotations.clone();
        for (name, value) in &span.header_annotations {
            marks
                .call_annotations
                .add(name, Value::Text(Cow::Borrowed(value)));
        }
        marks
    }
}

/// An annotation's value.
#[derive(Debug, Clone)]
enum Value<'a> {
    /// A string, at most [`MAX_ANNOTATION_VALUE_CHARS`] characters.
    Text(Cow<'a, str>),
    /// An integer.
    Int(i64),
}

/// A document's annotations, sorted by key, added as the model's map adds them:
/// the key made legal, a repeated key's value replaced, none past [`MAX_ANNOTATIONS`].
#[derive(Debug, Clone, Default)]
struct Annotations<'a>(Vec<(Cow<'a, str>, Value<'a>)>);

impl<'a> Annotations<'a> {
    /// Adds (or replaces) `key`.
    fn add(&mut self, key: &'a str, value: Value<'a>) {
        if self.0.len() >= MAX_ANNOTATIONS {
            return;
        }
        let key = if is_valid_annotation_key(key) {
            Cow::Borrowed(key)
        } else {
            Cow::Owned(sanitize_annotation_key(key))
        };
        let value = match value {
            Value::Text(Cow::Borrowed(text)) => Value::Text(Cow::Borrowed(truncate_chars(
                text,
                MAX_ANNOTATION_VALUE_CHARS,
            ))),
            Value::Text(Cow::Owned(text)) => Value::Text(Cow::Owned(
                truncate_chars(&text, MAX_ANNOTATION_VALUE_CHARS).to_owned(),
            )),
            int => int,
        };
        match self
            .0
            .binary_search_by(|(k, _)| k.as_ref().cmp(key.as_ref()))
        {
            Ok(at) => self.0[at].1 = value,
            Err(at) => self.0.insert(at, (key, value)),
        }
    }

    /// Adds the workload's annotations, last, as the model does.
    fn add_workload(&mut self, json: &'a SegmentJson) {
        for (key, value) in &json.annotations {
            self.add(key, Value::Text(Cow::Borrowed(value)));
        }
    }

    /// `,"annotations":{…}`, or nothing when there is none.
    fn write(&self, out: &mut Vec<u8>) {
        if self.0.is_empty() {
            return;
        }
        out.extend_from_slice(b",\"annotations\":");
        let mut object = Object::open(out);
        for (key, value) in &self.0 {
            let out = object.key(key);
            match value {
                Value::Text(text) => json_writer::string(out, text),
                Value::Int(number) => json_writer::signed(out, *number),
            }
        }
        object.close();
    }
}

/// One request's document, written at one shrinking step.
struct Writer<'a> {
    span: &'a ActiveSpan,
    ending: &'a Ending,
    /// `ending.request`, or its shortened copy.
    request: &'a HttpRequest,
    workload: &'a Workload,
    marks: &'a Marks<'a>,
    shrink: Shrink,
}

impl Writer<'_> {
    /// The whole document.
    fn write(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        let span = self.span;
        match &span.role {
            Role::Segment => {
                self.segment(&mut out, span.id, true);
                out.push(b'}');
            }
            Role::Subsegment { remote, parent } => {
                self.call(&mut out, remote, Some(*parent));
            }
            Role::ClientSegment { remote, segment_id } => {
                self.segment(&mut out, *segment_id, false);
                out.extend_from_slice(b",\"subsegments\":[");
                self.call(&mut out, remote, None);
                out.extend_from_slice(b"]}");
            }
        }
        out
    }

    /// A segment of the workload, up to its last member (the caller closes it).
    /// `decorated`: the request's own document (with the call's exceptions and
    /// header annotations), not the segment around a client call.
    fn segment(&self, out: &mut Vec<u8>, id: SpanId, decorated: bool) {
        let segment_json = &self.workload.segment_json;
        out.extend_from_slice(b"{\"name\":");
        out.extend_from_slice(&segment_json.name);
        id_member(out, b",\"id\":", id);
        out.extend_from_slice(b",\"trace_id\":");
        json_writer::string(out, &self.ending.trace_id);
        if let Some(parent) = self.span.parent {
            id_member(out, b",\"parent_id\":", parent);
        }
        self.outcome(out, Some(ORIGIN_EKS_CONTAINER), None);
        self.cause(out, id, decorated);
        out.extend_from_slice(&segment_json.aws);
        if !self.shrink.annotations {
            let extra = if decorated {
                &self.marks.call_annotations
            } else {
                &self.marks.outcome_annotations
            };
            if extra.0.is_empty() {
                out.extend_from_slice(&segment_json.annotations_json);
            } else {
                let mut all = extra.clone();
                all.add_workload(segment_json);
                all.write(out);
            }
        }
        if !self.shrink.metadata {
            out.extend_from_slice(&segment_json.k8s);
        }
    }

    /// A call to another service: an independent subsegment (`parent` set), or
    /// one embedded in a client segment (no trace id, parent or `type`).
    fn call(&self, out: &mut Vec<u8>, remote: &RemoteService, parent: Option<SpanId>) {
        let id = self.span.id;
        out.extend_from_slice(b"{\"name\":");
        if is_valid_name(&remote.name) {
            json_writer::string(out, &remote.name);
        } else {
            json_writer::string(out, &sanitize_name(&remote.name));
        }
        id_member(out, b",\"id\":", id);
        if let Some(parent) = parent {
            out.extend_from_slice(b",\"trace_id\":");
            json_writer::string(out, &self.ending.trace_id);
            id_member(out, b",\"parent_id\":", parent);
            out.extend_from_slice(b",\"type\":\"subsegment\"");
        }
        self.outcome(out, None, Some(NAMESPACE_REMOTE));
        self.cause(out, id, true);
        if !self.shrink.annotations {
            self.marks.call_annotations.write(out);
        }
        if !self.shrink.metadata {
            // metadata.istio, keys sorted as the model's map keeps them.
            out.extend_from_slice(b",\"metadata\":{\"istio\":");
            let mut istio = Object::open(out);
            istio.string("destination_host", &remote.host);
            istio.optional_string("destination_namespace", remote.namespace.as_deref());
            if let Some(port) = remote.port {
                let value = istio.key("destination_port");
                value.push(b'"');
                json_writer::unsigned(value, u64::from(port));
                value.push(b'"');
            }
            istio.optional_string("destination_subset", remote.subset.as_deref());
            istio.optional_string("upstream_cluster", self.span.cluster.as_deref());
            istio.close();
            out.push(b'}');
        }
        out.push(b'}');
    }

    /// From `start_time` to `fault`: the times, `namespace` or `origin`, `http`
    /// and the flags.
    fn outcome(&self, out: &mut Vec<u8>, origin: Option<&str>, namespace: Option<&str>) {
        out.extend_from_slice(b",\"start_time\":");
        json_writer::number(out, self.ending.start);
        out.extend_from_slice(b",\"end_time\":");
        json_writer::number(out, self.ending.end);
        if let Some(namespace) = namespace {
            out.extend_from_slice(b",\"namespace\":");
            json_writer::string(out, namespace);
        }
        if let Some(origin) = origin {
            out.extend_from_slice(b",\"origin\":");
            json_writer::string(out, origin);
        }
        out.extend_from_slice(b",\"http\":");
        write_http_json(out, Some(self.request), Some(&self.ending.response));
        let marks = self.marks;
        for (set, member) in [
            (marks.error, &b",\"error\":true"[..]),
            (marks.throttle, b",\"throttle\":true"),
            (marks.fault, b",\"fault\":true"),
        ] {
            if set {
                out.extend_from_slice(member);
            }
        }
    }

    /// `cause`: the gRPC status's exception, then (`decorated`) the response
    /// flags' and the black hole's, at most [`MAX_EXCEPTIONS`]; ids derived from
    /// the document's `id` as the model derives them.
    fn cause(&self, out: &mut Vec<u8>, id: SpanId, decorated: bool) {
        let calls: &[_] = if decorated {
            &self.marks.call_exceptions
        } else {
            &[]
        };
        let mut exceptions = self
            .marks
            .outcome_exception
            .iter()
            .chain(calls)
            .take(MAX_EXCEPTIONS)
            .peekable();
        if exceptions.peek().is_none() {
            return;
        }
        out.extend_from_slice(b",\"cause\":{\"exceptions\":[");
        for (nth, (kind, message, remote)) in (1u64..).zip(exceptions) {
            if nth > 1 {
                out.push(b',');
            }
            let exception_id = (id.value() ^ 0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(nth)).max(1);
            id_member(out, b"{\"id\":", SpanId::from_random(exception_id));
            out.extend_from_slice(b",\"message\":");
            json_writer::string(out, truncate_chars(message, MAX_EXCEPTION_MESSAGE_CHARS));
            out.extend_from_slice(b",\"type\":");
            json_writer::string(out, kind);
            if *remote {
                out.extend_from_slice(b",\"remote\":true");
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
    }
}

/// `{key}"0123456789abcdef"`.
fn id_member(out: &mut Vec<u8>, key: &[u8], id: SpanId) {
    out.extend_from_slice(key);
    out.push(b'"');
    write_hex(out, u128::from(id.value()), 16);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use meshray_core::grpc::GrpcStatus;
    use meshray_core::ids::TraceId;
    use meshray_core::segment::HttpResponse;

    use super::*;
    use crate::config::FilterConfig;
    use crate::host::FakeHost;
    use crate::tracer::document::model_document;
    use crate::tracer::tests::{INBOUND, NOW, pod};

    fn span_id(value: u64) -> SpanId {
        SpanId::from_random(value)
    }

    /// A full Istio pod, a pod without metadata, one whose names need escaping
    /// and sanitising, a gateway in a named EKS cluster, a full pod in one.
    fn workloads() -> Vec<Workload> {
        // The tracer tests' bookinfo pod.
        let full = pod(INBOUND);
        let odd = FakeHost::at(NOW)
            .with_property("xds.node.metadata.LABELS.app", "shop|\"front\"<>")
            .with_property("xds.node.metadata.NAME", "pod \"q\"\n\u{1}")
            .with_property("xds.node.metadata.NAMESPACE", "ünï\\ns")
            .with_property(
                "xds.node.metadata.LABELS.service.istio.io/canonical-revision",
                &"r".repeat(1_200),
            );
        let gateway = FakeHost::at(NOW).with_property(
            "xds.node.id",
            "router~10.0.0.9~istio-ingressgateway-5d9.istio-system~istio-system.svc.cluster.local",
        );
        let in_cluster = FilterConfig {
            cluster_name: Some("prod \"eu\"".into()),
            ..FilterConfig::default()
        };
        vec![
            Workload::read(&full, &FilterConfig::default()),
            Workload::read(&FakeHost::at(NOW), &FilterConfig::default()),
            Workload::read(&odd, &FilterConfig::default()),
            Workload::read(&gateway, &in_cluster),
            Workload::read(&full, &in_cluster),
        ]
    }

    fn remotes() -> Vec<RemoteService> {
        vec![
            RemoteService {
                name: "reviews".into(),
                namespace: Some("default".into()),
                subset: Some("v1".into()),
                port: Some(9080),
                host: "reviews.default.svc.cluster.local".into(),
            },
            RemoteService {
                name: "bad|name<>\"".into(),
                namespace: None,
                subset: Some("s\"1".into()),
                port: Some(0),
                host: "h\"\\ost".into(),
            },
        ]
    }

    fn requests() -> Vec<HttpRequest> {
        let mut long = HttpRequest {
            method: Some("GET".into()),
            url: Some(format!("http://shop/{}", "ü".repeat(300))),
            user_agent: Some("agent \"x\"\n\t\u{7}".repeat(40)),
            client_ip: Some("10.0.0.7".into()),
            x_forwarded_for: true,
        };
        long.truncate_to_limit();
        vec![
            HttpRequest {
                method: Some("POST".into()),
                url: Some("http://reviews:9080/reviews/0?q=1".into()),
                user_agent: Some("curl/8".into()),
                client_ip: Some("10.0.0.7".into()),
                x_forwarded_for: false,
            },
            HttpRequest::default(),
            long,
        ]
    }

    /// A response's status, Envoy's flags and the gRPC status.
    type EndingParts = (
        Option<u16>,
        ResponseFlags,
        Option<(GrpcStatus, Option<String>)>,
    );

    /// How a request can end: plain answers, Envoy's response flags (one, a
    /// throttle, more than a cause holds), gRPC statuses with and without a message.
    fn endings() -> Vec<EndingParts> {
        let mut endings: Vec<_> = [None, Some(0), Some(200), Some(404), Some(429), Some(503)]
            .into_iter()
            .map(|status| (status, ResponseFlags(0), None))
            .collect();
        endings.extend([
            (Some(503), ResponseFlags(0b10), None),
            (Some(429), ResponseFlags(1 << 13), None),
            (Some(503), ResponseFlags(0b1111_1101), None),
            (None, ResponseFlags(1 << 14), None),
            (
                Some(200),
                ResponseFlags(0),
                Some((GrpcStatus::new(0), None)),
            ),
            (
                Some(200),
                ResponseFlags(0),
                Some((GrpcStatus::new(14), Some("backend \"down\"".into()))),
            ),
            (
                Some(200),
                ResponseFlags(0),
                Some((GrpcStatus::new(8), None)),
            ),
            (
                Some(200),
                ResponseFlags(0b100),
                Some((GrpcStatus::new(3), Some(String::new()))),
            ),
        ]);
        endings
    }

    /// Header annotations: none, plain ones, and keys that need sanitising or
    /// collide with the filter's own (the later one wins, as in the model's map).
    fn header_annotations() -> Vec<Vec<(String, String)>> {
        let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        vec![
            Vec::new(),
            pairs(&[("x-user-tier", "gold"), ("x-user-tier", "silver")]),
            pairs(&[
                ("istio-namespace", "spoofed"),
                ("response-flags", "mine"),
                ("grpc_status", "7"),
                ("x-long", &"v\"".repeat(700)),
            ]),
        ]
    }

    fn span(role: Role, parent: Option<SpanId>, annotations: Vec<(String, String)>) -> ActiveSpan {
        ActiveSpan {
            role,
            trace_id: TraceId::mint(NOW as u32, 0x1234_5678_9abc_def0_1122_3344),
            id: span_id(0xabc),
            parent,
            start_nanos: NOW * 1_000_000_000,
            cluster: parent.map(|_| "outbound|9080|v1|reviews".to_owned()),
            request: HttpRequest::default(),
            header_annotations: annotations,
            blackholed: false,
            is_grpc: false,
        }
    }

    fn assert_writes_the_models_bytes(span: &ActiveSpan, ending: &Ending, workload: &Workload) {
        let written = document(span, ending, workload);
        let model = model_document(span.clone(), ending.clone(), workload).to_json_within_limit();
        assert_eq!(
            written.as_deref().map(String::from_utf8_lossy),
            model.as_deref().map(String::from_utf8_lossy),
            "{span:?} {ending:?} of {workload:?}"
        );
    }

    /// Every role, workload, remote, request, ending and set of header
    /// annotations, black-holed or not: the writer writes the model's bytes.
    #[test]
    fn documents_are_the_models_bytes() {
        let trace_id = TraceId::mint(NOW as u32, 0x1234_5678_9abc_def0_1122_3344);
        let mut compared = 0;
        for workload in workloads() {
            for remote in remotes() {
                let roles = [
                    Role::Segment,
                    Role::Subsegment {
                        remote: remote.clone(),
                        parent: span_id(0x77),
                    },
                    Role::ClientSegment {
                        remote: remote.clone(),
                        segment_id: span_id(0x88),
                    },
                ];
                for role in roles {
                    for request in requests() {
                        for (status, flags, grpc) in endings() {
                            for annotations in header_annotations() {
                                for (parent, blackholed) in
                                    [(None, false), (Some(span_id(0xfeed)), false), (None, true)]
                                {
                                    let mut span = span(role.clone(), parent, annotations.clone());
                                    span.blackholed = blackholed;
                                    let ending = Ending {
                                        trace_id: trace_id.document_trace_id(NOW),
                                        start: NOW as f64 + 0.000_125,
                                        end: NOW as f64 + 0.012_5,
                                        request: request.clone(),
                                        response: HttpResponse {
                                            status,
                                            content_length: status.map(|s| u64::from(s) * 7),
                                        },
                                        flags,
                                        grpc: grpc.clone(),
                                    };
                                    assert_writes_the_models_bytes(&span, &ending, &workload);
                                    compared += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(compared, 5 * 2 * 3 * 3 * 14 * 3 * 3);
    }

    /// Over X-Ray's limit, the writer shrinks as the model does, step by step:
    /// metadata (a huge service account), then annotations (many huge header
    /// annotations), then short URLs (a pod name just under the limit), and
    /// gives up where the model does (a pod name over it).
    #[test]
    fn oversized_documents_shrink_as_the_models_do() {
        let pod = |name: String| {
            Workload::read(
                &FakeHost::at(NOW).with_property("xds.node.metadata.NAME", &name),
                &FilterConfig::default(),
            )
        };
        let big_account = Workload::read(
            &FakeHost::at(NOW)
                .with_property("xds.node.metadata.SERVICE_ACCOUNT", &"s".repeat(70_000)),
            &FilterConfig::default(),
        );
        let many: Vec<(String, String)> = (0..60)
            .map(|i| (format!("x-h{i}"), "v".repeat(1_500)))
            .collect();
        let request = HttpRequest {
            url: Some(format!("http://a/{}", "u".repeat(240))),
            user_agent: Some("a".repeat(250)),
            ..HttpRequest::default()
        };
        let ending = Ending {
            trace_id: "1-00000000-000000000000000000000001".into(),
            start: NOW as f64,
            end: NOW as f64,
            request,
            response: HttpResponse::default(),
            flags: ResponseFlags(0),
            grpc: None,
        };
        let remote = remotes().remove(0);
        let cases = [
            (big_account, Vec::new()),
            (workloads().remove(0), many.clone()),
            (pod("p".repeat(64_986)), Vec::new()),
            (pod("p".repeat(65_600)), many),
        ];
        let mut outcomes = Vec::new();
        for (workload, annotations) in cases {
            for role in [
                Role::Segment,
                Role::ClientSegment {
                    remote: remote.clone(),
                    segment_id: span_id(9),
                },
            ] {
                let span = span(role, None, annotations.clone());
                assert_writes_the_models_bytes(&span, &ending, &workload);
                outcomes.push(document(&span, &ending, &workload));
            }
        }
        assert!(
            outcomes[..5]
                .iter()
                .all(|json| json.as_ref().is_some_and(|j| j.len() <= MAX_DOCUMENT_BYTES)),
            "{outcomes:?}"
        );
        let short_url = format!("\"url\":\"http://a/{}\"", "u".repeat(55));
        let shortened = outcomes[4].as_deref().map(String::from_utf8_lossy);
        assert!(shortened.is_some_and(|json| json.contains(&short_url)));
        assert_eq!(outcomes[6..], [None, None]);
    }
}
