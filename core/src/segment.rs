//! The X-Ray segment document model and its builder.
//!
//! A sidecar produces two kinds of document: a *segment* for a request its
//! workload served (inbound) and an *independent subsegment* for a call its
//! workload made to another service (outbound, `namespace: "remote"`). A call
//! made outside any traced request becomes a segment for the local workload
//! with the remote call embedded as its only subsegment.
//!
//! Documents are written straight from these structs by a hand-built writer
//! ([`Document::write_json`], [`crate::json_writer`]: no `serde_json::Value` tree and
//! no serde serialiser; the serde derives remain for reading documents back) and
//! kept under [`MAX_DOCUMENT_BYTES`] by [`Document::to_json_within_limit`]. The
//! filter does not build this model per request: it writes the same bytes
//! straight from what it knows (`tracer::writer` of meshray-filter, tested
//! against this model).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::SpanId;
use crate::json_writer::{self, Object};
use crate::limits::{
    MAX_ANNOTATION_VALUE_CHARS, MAX_ANNOTATIONS, MAX_DOCUMENT_BYTES, MAX_HTTP_FIELD_CHARS,
    sanitize_annotation_key, sanitize_name, truncate_chars,
};

/// The `origin` of every document a sidecar emits.
pub const ORIGIN_EKS_CONTAINER: &str = "AWS::EKS::Container";
/// The `namespace` of a subsegment that calls another service.
pub const NAMESPACE_REMOTE: &str = "remote";

/// What kind of document this is; segments carry no `type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocumentKind {
    /// An independent subsegment (sent on its own, linked by `parent_id`).
    Subsegment,
}

/// An annotation value: X-Ray indexes strings, numbers and booleans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AnnotationValue {
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A string, at most [`MAX_ANNOTATION_VALUE_CHARS`] characters.
    String(String),
}

/// A segment, an independent subsegment, or a subsegment embedded in a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// The service (segment) or remote service (subsegment) name.
    pub name: String,
    /// 16 hex digits.
    pub id: String,
    /// `1-…-…`, or the raw 32-hex id of a foreign trace for the relay to resolve.
    /// Absent on embedded subsegments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The segment or subsegment this one hangs under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    /// `subsegment` for an independent subsegment.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<DocumentKind>,
    /// Epoch seconds.
    pub start_time: f64,
    /// Epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<f64>,
    /// `remote` for calls to other services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `AWS::EKS::Container` on segments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The HTTP exchange.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Http>,
    /// A 4xx answer.
    #[serde(default, skip_serializing_if = "is_false")]
    pub error: bool,
    /// A 429 answer.
    #[serde(default, skip_serializing_if = "is_false")]
    pub throttle: bool,
    /// A 5xx answer or a proxy-level failure (Envoy response flags, BlackHoleCluster).
    #[serde(default, skip_serializing_if = "is_false")]
    pub fault: bool,
    /// What went wrong, as the console shows it (Envoy response flags, gRPC status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    /// `aws.eks`: pod and cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<Aws>,
    /// Indexed annotations (legal keys only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, AnnotationValue>,
    /// Namespaced metadata (`k8s` → {…}).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, BTreeMap<String, String>>,
    /// Embedded subsegments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsegments: Vec<Document>,
}

/// `http` block of a document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Http {
    /// What the client asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HttpRequest>,
    /// What the server answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<HttpResponse>,
}

/// `http.request`; string fields at most [`MAX_HTTP_FIELD_CHARS`] characters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// Request method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Full URL: scheme, authority, path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `user-agent` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The client address (first `x-forwarded-for` hop, else the peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// Whether `client_ip` came from `x-forwarded-for`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub x_forwarded_for: bool,
}

/// `http.response`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpResponse {
    /// Status code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Response body bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_length: Option<u64>,
}

/// `cause` block: the exceptions a failed request shows in the console.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cause {
    /// At most [`MAX_EXCEPTIONS`].
    pub exceptions: Vec<Exception>,
}

/// One exception of a [`Cause`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exception {
    /// 16 hex digits, unique in the document.
    pub id: String,
    /// What a person reads: `upstream connection failure (UF)`; at most
    /// [`MAX_EXCEPTION_MESSAGE_CHARS`] characters.
    pub message: String,
    /// A short class: `EnvoyResponseFlag`, `GrpcStatus`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether the failure came from the remote service (not this proxy).
    #[serde(default, skip_serializing_if = "is_false")]
    pub remote: bool,
}

/// Most exceptions in one document's `cause`.
pub const MAX_EXCEPTIONS: usize = 4;
/// Longest exception message, in characters.
pub const MAX_EXCEPTION_MESSAGE_CHARS: usize = 300;

/// `aws` block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Aws {
    /// `aws.eks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eks: Option<Eks>,
}

/// `aws.eks`: where the workload runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Eks {
    /// The pod name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The EKS cluster name, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

// === impl Document ===

impl Document {
    /// A segment for a request the workload `name` served.
    pub fn segment(name: &str, id: SpanId, trace_id: String, start_time: f64) -> Self {
        Self {
            name: sanitize_name(name),
            id: id.to_hex(),
            trace_id: Some(trace_id),
            parent_id: None,
            kind: None,
            start_time,
            end_time: None,
            namespace: None,
            origin: Some(ORIGIN_EKS_CONTAINER.to_owned()),
            http: None,
            error: false,
            throttle: false,
            fault: false,
            cause: None,
            aws: None,
            annotations: BTreeMap::new(),
            metadata: BTreeMap::new(),
            subsegments: Vec::new(),
        }
    }

    /// An independent subsegment for a call to the remote service `name`.
    pub fn remote_subsegment(
        name: &str,
        id: SpanId,
        trace_id: String,
        parent_id: SpanId,
        start_time: f64,
    ) -> Self {
        Self {
            kind: Some(DocumentKind::Subsegment),
            parent_id: Some(parent_id.to_hex()),
            namespace: Some(NAMESPACE_REMOTE.to_owned()),
            origin: None,
            ..Self::segment(name, id, trace_id, start_time)
        }
    }

    /// Turns an independent subsegment into one embedded in a segment (no
    /// `type`, `trace_id` or `parent_id`: the enclosing segment supplies them).
    pub fn into_embedded(mut self) -> Self {
        self.kind = None;
        self.trace_id = None;
        self.parent_id = None;
        self
    }

    /// Sets `parent_id`.
    pub fn with_parent(mut self, parent_id: Option<SpanId>) -> Self {
        self.parent_id = parent_id.map(|id| id.to_hex());
        self
    }

    /// Sets the end time.
    pub fn with_end_time(mut self, end_time: f64) -> Self {
        self.end_time = Some(end_time);
        self
    }

    /// Sets `http.request`, truncating each field to X-Ray's limit.
    pub fn with_http_request(mut self, mut request: HttpRequest) -> Self {
        request.truncate_to_limit();
        self.http.get_or_insert_with(Http::default).request = Some(request);
        self
    }

    /// Sets `http.response` and the `error`/`throttle`/`fault` flags its status implies.
    pub fn with_http_response(mut self, response: HttpResponse) -> Self {
        if let Some(status) = response.status {
            self.error |= (400..500).contains(&status);
            self.throttle |= status == 429;
            self.fault |= (500..600).contains(&status);
        }
        self.http.get_or_insert_with(Http::default).response = Some(response);
        self
    }

    /// Marks a proxy-level failure (no upstream answer, black-holed request).
    pub fn with_fault(mut self) -> Self {
        self.fault = true;
        self
    }

    /// Where a remote call went, as `istio` metadata: `destination_host`,
    /// `destination_namespace`, `destination_subset`, `destination_port` and the Envoy
    /// `upstream_cluster` it was routed to.
    pub fn with_destination(
        mut self,
        remote: &crate::cluster::RemoteService,
        upstream_cluster: Option<&str>,
    ) -> Self {
        self = self.with_metadata("istio", "destination_host", &remote.host);
        if let Some(namespace) = &remote.namespace {
            self = self.with_metadata("istio", "destination_namespace", namespace);
        }
        if let Some(subset) = &remote.subset {
            self = self.with_metadata("istio", "destination_subset", subset);
        }
        if let Some(port) = remote.port {
            self = self.with_metadata("istio", "destination_port", &port.to_string());
        }
        if let Some(cluster) = upstream_cluster {
            self = self.with_metadata("istio", "upstream_cluster", cluster);
        }
        self
    }

    /// Sets `aws.eks`.
    pub fn with_eks(mut self, pod: Option<String>, cluster_name: Option<String>) -> Self {
        if pod.is_some() || cluster_name.is_some() {
            self.aws = Some(Aws {
                eks: Some(Eks { pod, cluster_name }),
            });
        }
        self
    }

    /// Adds a string annotation; the key is made legal, the value truncated,
    /// and annotations past [`MAX_ANNOTATIONS`] are left out.
    pub fn with_annotation(mut self, key: &str, value: &str) -> Self {
        if self.annotations.len() < MAX_ANNOTATIONS {
            self.annotations.insert(
                sanitize_annotation_key(key),
                AnnotationValue::String(
                    truncate_chars(value, MAX_ANNOTATION_VALUE_CHARS).to_owned(),
                ),
            );
        }
        self
    }

    /// Adds an integer annotation (e.g. `grpc_status`), within [`MAX_ANNOTATIONS`].
    pub fn with_int_annotation(mut self, key: &str, value: i64) -> Self {
        if self.annotations.len() < MAX_ANNOTATIONS {
            self.annotations
                .insert(sanitize_annotation_key(key), AnnotationValue::Int(value));
        }
        self
    }

    /// Adds an exception to `cause`: its message is cut to
    /// [`MAX_EXCEPTION_MESSAGE_CHARS`], exceptions past [`MAX_EXCEPTIONS`] are left
    /// out. Its id is derived from the document's id and its position.
    pub fn with_exception(mut self, kind: &str, message: &str, remote: bool) -> Self {
        let cause = self.cause.get_or_insert_with(Cause::default);
        if cause.exceptions.len() < MAX_EXCEPTIONS {
            let own = u64::from_str_radix(&self.id, 16).unwrap_or(1);
            let nth = cause.exceptions.len() as u64 + 1;
            let id = (own ^ (0x9e37_79b9_7f4a_7c15_u64.wrapping_mul(nth))).max(1);
            cause.exceptions.push(Exception {
                id: format!("{id:016x}"),
                message: truncate_chars(message, MAX_EXCEPTION_MESSAGE_CHARS).to_owned(),
                kind: kind.to_owned(),
                remote,
            });
        }
        self
    }

    /// Records a gRPC status: annotation `grpc_status`, and `error` / `throttle` /
    /// `fault` as the X-Ray SDKs map it ([`crate::grpc::GrpcStatus::outcome`]).
    /// `message` (`grpc-message`) becomes the cause of a failure.
    pub fn with_grpc_status(
        mut self,
        status: crate::grpc::GrpcStatus,
        message: Option<&str>,
    ) -> Self {
        use crate::grpc::Outcome;
        self = self.with_int_annotation("grpc_status", i64::from(status.code()));
        let outcome = status.outcome();
        match outcome {
            Outcome::Ok => return self,
            Outcome::Throttle => {
                self.throttle = true;
                self.error = true;
            }
            Outcome::Fault => self.fault = true,
            Outcome::Error => self.error = true,
        }
        let text = match message.filter(|m| !m.is_empty()) {
            Some(message) => format!("gRPC {} ({}): {message}", status.name(), status.code()),
            None => format!("gRPC {} ({})", status.name(), status.code()),
        };
        self.with_exception("GrpcStatus", &text, true)
    }

    /// Adds `metadata.{namespace}.{key} = value`.
    pub fn with_metadata(mut self, namespace: &str, key: &str, value: &str) -> Self {
        self.metadata
            .entry(namespace.to_owned())
            .or_default()
            .insert(key.to_owned(), value.to_owned());
        self
    }

    /// Embeds a subsegment.
    pub fn with_subsegment(mut self, subsegment: Document) -> Self {
        self.subsegments.push(subsegment.into_embedded());
        self
    }

    /// Serialises the document, keeping it within [`MAX_DOCUMENT_BYTES`]: first
    /// metadata is dropped, then annotations, then the HTTP strings are cut
    /// short. `None` only if even the stripped document is too large, which
    /// cannot happen for documents built through this module.
    pub fn to_json_within_limit(&mut self) -> Option<Vec<u8>> {
        let shrink_steps: [fn(&mut Document); 3] = [
            |doc| strip(doc, |d| d.metadata.clear()),
            |doc| strip(doc, |d| d.annotations.clear()),
            |doc| {
                strip(doc, |d| {
                    if let Some(request) = d.http.as_mut().and_then(|h| h.request.as_mut()) {
                        for field in [&mut request.url, &mut request.user_agent] {
                            truncate_field(field, 64);
                        }
                    }
                })
            },
        ];
        let mut json = self.to_json();
        for shrink in shrink_steps {
            if json.len() <= MAX_DOCUMENT_BYTES {
                return Some(json);
            }
            shrink(self);
            json = self.to_json();
        }
        (json.len() <= MAX_DOCUMENT_BYTES).then_some(json)
    }

    /// The document as JSON (what `serde_json::to_vec` gives for it).
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        self.write_json(&mut out);
        out
    }

    /// Appends the document as JSON to `out`: the fields of the serde derive, in
    /// its order, with the same ones left out.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let mut doc = Object::open(out);
        doc.string("name", &self.name);
        doc.string("id", &self.id);
        doc.optional_string("trace_id", self.trace_id.as_deref());
        doc.optional_string("parent_id", self.parent_id.as_deref());
        if let Some(DocumentKind::Subsegment) = self.kind {
            doc.string("type", "subsegment");
        }
        json_writer::number(doc.key("start_time"), self.start_time);
        if let Some(end_time) = self.end_time {
            json_writer::number(doc.key("end_time"), end_time);
        }
        doc.optional_string("namespace", self.namespace.as_deref());
        doc.optional_string("origin", self.origin.as_deref());
        if let Some(http) = &self.http {
            http.write_json(doc.key("http"));
        }
        doc.flag("error", self.error);
        doc.flag("throttle", self.throttle);
        doc.flag("fault", self.fault);
        if let Some(cause) = &self.cause {
            cause.write_json(doc.key("cause"));
        }
        if let Some(aws) = &self.aws {
            let mut block = Object::open(doc.key("aws"));
            if let Some(eks) = &aws.eks {
                let mut eks_block = Object::open(block.key("eks"));
                eks_block.optional_string("pod", eks.pod.as_deref());
                eks_block.optional_string("cluster_name", eks.cluster_name.as_deref());
                eks_block.close();
            }
            block.close();
        }
        if !self.annotations.is_empty() {
            let mut annotations = Object::open(doc.key("annotations"));
            for (key, value) in &self.annotations {
                let out = annotations.key(key);
                match value {
                    AnnotationValue::Bool(b) => json_writer::boolean(out, *b),
                    AnnotationValue::Int(i) => json_writer::signed(out, *i),
                    AnnotationValue::String(s) => json_writer::string(out, s),
                }
            }
            annotations.close();
        }
        if !self.metadata.is_empty() {
            let mut metadata = Object::open(doc.key("metadata"));
            for (namespace, entries) in &self.metadata {
                let mut block = Object::open(metadata.key(namespace));
                for (key, value) in entries {
                    block.string(key, value);
                }
                block.close();
            }
            metadata.close();
        }
        if !self.subsegments.is_empty() {
            let out = doc.key("subsegments");
            out.push(b'[');
            for (i, sub) in self.subsegments.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                sub.write_json(out);
            }
            out.push(b']');
        }
        doc.close();
    }
}

impl HttpRequest {
    /// Cuts each string field to X-Ray's limit, [`MAX_HTTP_FIELD_CHARS`] characters.
    pub fn truncate_to_limit(&mut self) {
        for field in [
            &mut self.method,
            &mut self.url,
            &mut self.user_agent,
            &mut self.client_ip,
        ] {
            truncate_field(field, MAX_HTTP_FIELD_CHARS);
        }
    }
}

impl Http {
    fn write_json(&self, out: &mut Vec<u8>) {
        write_http_json(out, self.request.as_ref(), self.response.as_ref());
    }
}

/// Appends an `http` block made of `request` and `response`, as a [`Document`]
/// writes its [`Http`] (the filter writes the documents of plain requests
/// without building a [`Document`]).
pub fn write_http_json(
    out: &mut Vec<u8>,
    request: Option<&HttpRequest>,
    response: Option<&HttpResponse>,
) {
    let mut http = Object::open(out);
    if let Some(request) = request {
        let mut block = Object::open(http.key("request"));
        block.optional_string("method", request.method.as_deref());
        block.optional_string("url", request.url.as_deref());
        block.optional_string("user_agent", request.user_agent.as_deref());
        block.optional_string("client_ip", request.client_ip.as_deref());
        block.flag("x_forwarded_for", request.x_forwarded_for);
        block.close();
    }
    if let Some(response) = response {
        let mut block = Object::open(http.key("response"));
        if let Some(status) = response.status {
            json_writer::unsigned(block.key("status"), u64::from(status));
        }
        if let Some(length) = response.content_length {
            json_writer::unsigned(block.key("content_length"), length);
        }
        block.close();
    }
    http.close();
}

impl Cause {
    fn write_json(&self, out: &mut Vec<u8>) {
        let mut cause = Object::open(out);
        let list = cause.key("exceptions");
        list.push(b'[');
        for (i, exception) in self.exceptions.iter().enumerate() {
            if i > 0 {
                list.push(b',');
            }
            let mut block = Object::open(list);
            block.string("id", &exception.id);
            block.string("message", &exception.message);
            block.string("type", &exception.kind);
            block.flag("remote", exception.remote);
            block.close();
        }
        list.push(b']');
        cause.close();
    }
}

/// Applies `step` to a document and all its embedded subsegments.
fn strip(doc: &mut Document, step: fn(&mut Document)) {
    step(doc);
    for sub in &mut doc.subsegments {
        strip(sub, step);
    }
}

fn truncate_field(field: &mut Option<String>, max_chars: usize) {
    if let Some(text) = field {
        let cut = truncate_chars(text, max_chars).len();
        text.truncate(cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(v: u64) -> SpanId {
        SpanId::new(v).unwrap()
    }

    /// The hand-built writer gives what serde gives, for every kind of field.
    fn assert_written_as_serde_writes(doc: &Document) {
        let written: serde_json::Value = serde_json::from_slice(&doc.to_json()).unwrap();
        assert_eq!(written, serde_json::to_value(doc).unwrap());
        assert_eq!(
            doc.to_json(),
            serde_json::to_vec(doc).unwrap(),
            "same bytes, field order included"
        );
    }

    #[test]
    fn the_writer_writes_what_serde_writes() {
        let full = Document::segment(
            "shop \"front\"\n",
            span(0xabc),
            "1-5f000000-000000000000000000000001".into(),
            1_796_115_929.850_102,
        )
        .with_parent(Some(span(2)))
        .with_end_time(1_796_115_929.929_612)
        .with_http_request(HttpRequest {
            method: Some("GET".into()),
            url: Some("http://shop/ü?q=\u{1}".into()),
            user_agent: Some("curl/8".into()),
            client_ip: Some("10.0.0.1".into()),
            x_forwarded_for: true,
        })
        .with_http_response(HttpResponse {
            status: Some(429),
            content_length: Some(0),
        })
        .with_eks(Some("pod-1".into()), Some("prod".into()))
        .with_annotation("tier", "gold")
        .with_int_annotation("grpc_status", -3)
        .with_metadata("k8s", "namespace", "default")
        .with_metadata("istio", "destination_host", "a.b")
        .with_exception("EnvoyResponseFlag", "upstream reset (UR)", true)
        .with_exception("GrpcStatus", "gRPC UNAVAILABLE (14)", false);
        let mut with_bool = full.clone();
        with_bool
            .annotations
            .insert("flag".into(), AnnotationValue::Bool(true));
        let sub = Document::remote_subsegment("reviews", span(3), "t".into(), span(1), 1.0)
            .with_end_time(2.0)
            .with_fault();
        let bare = Document::segment("s", span(1), "t".into(), 0.0);
        let mut empty_cause = bare.clone();
        empty_cause.cause = Some(Cause::default());
        empty_cause.aws = Some(Aws { eks: None });
        empty_cause.start_time = f64::NAN;
        for doc in [
            full.clone(),
            with_bool,
            sub.clone(),
            bare.clone()
                .with_subsegment(sub.clone())
                .with_subsegment(sub),
            bare,
            empty_cause,
        ] {
            assert_written_as_serde_writes(&doc);
        }
    }

    #[test]
    fn segment_serialises_as_xray_expects() {
        let doc = Document::segment(
            "productpage",
            span(1),
            "1-5f000000-000000000000000000000001".into(),
            1.5,
        )
        .with_parent(Some(span(2)))
        .with_end_time(2.0)
        .with_http_request(HttpRequest {
            method: Some("GET".into()),
            url: Some("http://productpage:9080/productpage".into()),
            ..HttpRequest::default()
        })
        .with_http_response(HttpResponse {
            status: Some(503),
            content_length: Some(12),
        })
        .with_eks(Some("productpage-v1-abc".into()), None)
        .with_annotation("istio.namespace", "default")
        .with_metadata("k8s", "namespace", "default");
        let json: serde_json::Value = serde_json::to_value(&doc).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "productpage",
                "id": "0000000000000001",
                "trace_id": "1-5f000000-000000000000000000000001",
                "parent_id": "0000000000000002",
                "start_time": 1.5,
                "end_time": 2.0,
                "origin": "AWS::EKS::Container",
                "http": {
                    "request": {"method": "GET", "url": "http://productpage:9080/productpage"},
                    "response": {"status": 503, "content_length": 12}
                },
                "fault": true,
                "aws": {"eks": {"pod": "productpage-v1-abc"}},
                "annotations": {"istio_namespace": "default"},
                "metadata": {"k8s": {"namespace": "default"}}
            })
        );
    }

    #[test]
    fn remote_subsegment_has_type_namespace_and_parent() {
        let doc = Document::remote_subsegment("reviews", span(3), "t".into(), span(1), 1.0);
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["type"], "subsegment");
        assert_eq!(json["namespace"], "remote");
        assert_eq!(json["parent_id"], "0000000000000001");
        assert!(json.get("origin").is_none());
        let embedded = serde_json::to_value(
            Document::segment("a", span(9), "t".into(), 1.0).with_subsegment(doc),
        )
        .unwrap();
        assert!(embedded["subsegments"][0].get("type").is_none());
        assert!(embedded["subsegments"][0].get("trace_id").is_none());
    }

    #[test]
    fn status_sets_error_throttle_fault() {
        for (status, error, throttle, fault) in [
            (200, false, false, false),
            (404, true, false, false),
            (429, true, true, false),
            (500, false, false, true),
            (503, false, false, true),
        ] {
            let doc =
                Document::segment("s", span(1), "t".into(), 0.0).with_http_response(HttpResponse {
                    status: Some(status),
                    content_length: None,
                });
            assert_eq!(
                (doc.error, doc.throttle, doc.fault),
                (error, throttle, fault),
                "{status}"
            );
        }
    }

    /// gRPC codes map as in the X-Ray SDKs; the HTTP status stays as it was.
    #[test]
    fn grpc_status_sets_flags_and_cause() {
        use crate::grpc::GrpcStatus;
        for (code, error, throttle, fault) in [
            (0, false, false, false),
            (8, true, true, false),
            (2, false, false, true),
            (4, false, false, true),
            (12, false, false, true),
            (13, false, false, true),
            (14, false, false, true),
            (15, false, false, true),
            (5, true, false, false),
            (16, true, false, false),
            (99, true, false, false),
        ] {
            let doc = Document::segment("s", span(1), "t".into(), 0.0)
                .with_http_response(HttpResponse {
                    status: Some(200),
                    content_length: None,
                })
                .with_grpc_status(GrpcStatus::new(code), Some("backend down"));
            assert_eq!(
                (doc.error, doc.throttle, doc.fault),
                (error, throttle, fault),
                "{code}"
            );
            assert_eq!(
                doc.annotations["grpc_status"],
                AnnotationValue::Int(i64::from(code))
            );
            assert_eq!(doc.cause.is_some(), code != 0, "{code}");
        }
        let doc = Document::segment("s", span(1), "t".into(), 0.0)
            .with_grpc_status(GrpcStatus::new(14), Some("connection refused"));
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(
            json["cause"]["exceptions"][0]["message"],
            "gRPC UNAVAILABLE (14): connection refused"
        );
        assert_eq!(json["cause"]["exceptions"][0]["type"], "GrpcStatus");
        assert_eq!(
            json["cause"]["exceptions"][0]["id"].as_str().unwrap().len(),
            16
        );
    }

    /// A cause stays bounded: messages cut, at most [`MAX_EXCEPTIONS`], distinct ids.
    #[test]
    fn causes_are_bounded() {
        let mut doc = Document::segment("s", span(7), "t".into(), 0.0);
        for _ in 0..10 {
            doc = doc.with_exception("EnvoyResponseFlag", &"x".repeat(5000), false);
        }
        let exceptions = &doc.cause.as_ref().unwrap().exceptions;
        assert_eq!(exceptions.len(), MAX_EXCEPTIONS);
        assert_eq!(exceptions[0].message.len(), MAX_EXCEPTION_MESSAGE_CHARS);
        let mut ids: Vec<&str> = exceptions.iter().map(|e| e.id.as_str()).collect();
        ids.dedup();
        assert_eq!(ids.len(), MAX_EXCEPTIONS);
        assert!(ids.iter().all(|id| *id != doc.id));
    }

    #[test]
    fn oversized_documents_lose_metadata_then_are_truncated() {
        let mut doc = Document::segment("s", span(1), "t".into(), 0.0)
            .with_metadata("k8s", "big", &"m".repeat(70_000))
            .with_annotation("keep", "small");
        let json = doc.to_json_within_limit().unwrap();
        assert!(json.len() <= MAX_DOCUMENT_BYTES);
        assert!(doc.metadata.is_empty());
        assert_eq!(
            doc.annotations.len(),
            1,
            "annotations kept once metadata made room"
        );

        let mut many = Document::segment("s", span(1), "t".into(), 0.0);
        for i in 0..40 {
            many = many.with_annotation(&format!("k{i}"), &"v".repeat(2_000));
        }
        let json = many.to_json_within_limit().unwrap();
        assert!(json.len() <= MAX_DOCUMENT_BYTES);
    }

    #[test]
    fn names_and_fields_are_sanitised() {
        let doc = Document::segment("bad|name<>", span(1), "t".into(), 0.0)
            .with_http_request(HttpRequest {
                url: Some("u".repeat(1000)),
                ..HttpRequest::default()
            })
            .with_annotation("x-user-tier", &"v".repeat(5000));
        assert_eq!(doc.name, "badname");
        let url = doc
            .http
            .as_ref()
            .unwrap()
            .request
            .as_ref()
            .unwrap()
            .url
            .as_ref()
            .unwrap();
        assert_eq!(url.len(), MAX_HTTP_FIELD_CHARS);
        assert_eq!(
            doc.annotations["x_user_tier"],
            AnnotationValue::String("v".repeat(MAX_ANNOTATION_VALUE_CHARS))
        );
    }
}
