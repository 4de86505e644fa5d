//! The intermediate span model both wire formats decode into.
//!
//! It keeps only what the X-Ray mapping reads, in one normalised shape: ids as core's
//! [`TraceId`] / [`SpanId`] (a 64-bit Zipkin trace id stays 64-bit and is left-padded by
//! the mapping), times in nanoseconds, every tag or attribute as text (Zipkin tags are
//! strings; OTLP attribute values are rendered the way Envoy would have written the tag),
//! and the tracer's error signal (Zipkin `error` tag, OTLP status `ERROR`) as one flag.

use std::collections::BTreeMap;

use meshray_core::ids::{SpanId, TraceId};

/// The role a tracer gave a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// The span of a request a service received (Envoy's inbound listener).
    Server,
    /// The span of a call a service made (Envoy's outbound listener).
    Client,
    /// Neither, or not given.
    Unspecified,
}

/// One span, as the mapping reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// The trace it belongs to.
    pub trace_id: TraceId,
    /// Its own id.
    pub id: SpanId,
    /// The span it hangs under; `None` for a root.
    pub parent_id: Option<SpanId>,
    /// Server, client or unspecified.
    pub kind: SpanKind,
    /// The operation name (Envoy: the route's decorator, e.g. `reviews.default.svc.cluster.local:9080/*`).
    pub name: String,
    /// The reporting service: Zipkin `localEndpoint.serviceName`, OTLP resource
    /// `service.name` (Istio sets `{canonical service}.{namespace}`).
    pub service_name: Option<String>,
    /// Zipkin `remoteEndpoint.serviceName` or the OTLP `peer.service` attribute.
    pub remote_service_name: Option<String>,
    /// Start, nanoseconds since the Unix epoch.
    pub start_nanos: u64,
    /// Duration in nanoseconds.
    pub duration_nanos: u64,
    /// The tracer marked the span as failed (Zipkin `error` tag, OTLP status `ERROR`).
    pub error: bool,
    /// Tags (Zipkin) or span attributes (OTLP), as text; the error tag is kept out.
    pub tags: BTreeMap<String, String>,
}

impl Span {
    /// The tag `key`, if set and not empty.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// A span a decoder could not turn into a [`Span`], with the reason.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[error("span {index}: {reason}")]
pub struct SpanRejection {
    /// Its position in the request (Zipkin: array index; OTLP: order across
    /// resource and scope spans).
    pub index: usize,
    /// What is wrong with it, naming the field.
    pub reason: String,
}

/// What a decoder made of one request body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DecodedSpans {
    /// The spans that decoded.
    pub spans: Vec<Span>,
    /// The ones that did not, each with its index and reason.
    pub rejected: Vec<SpanRejection>,
}

/// Parses a 16- or 32-hex trace id field.
///
/// # Errors
/// A message naming `field` and the value.
pub fn parse_trace_id(field: &str, text: &str) -> Result<TraceId, String> {
    TraceId::from_hex(text).map_err(|e| format!("`{field}` {text:?} is not a trace id: {e}"))
}

/// Parses a 16-hex span id field.
///
/// # Errors
/// A message naming `field` and the value.
pub fn parse_span_id(field: &str, text: &str) -> Result<SpanId, String> {
    SpanId::from_hex(text).map_err(|e| format!("`{field}` {text:?} is not a span id: {e}"))
}
