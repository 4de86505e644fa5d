//! Zipkin v2 JSON (`POST /api/v2/spans`) → [`Span`]s.
//!
//! The body is a JSON array of span objects (Envoy's Zipkin tracer with
//! `collector_endpoint_version: HTTP_JSON`). Each element is decoded on its own, so one
//! bad span is rejected with its index while the others go on. Ids shorter than their
//! width are left-padded with zeros, as Zipkin's own collector does; timestamps and
//! durations are microseconds. Tag values are strings in Zipkin v2; numbers and booleans
//! some clients send are kept as their JSON text.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::model::{DecodedSpans, Span, SpanKind, SpanRejection, parse_span_id, parse_trace_id};

/// Why a body was not a Zipkin v2 JSON span list.
#[derive(Debug, thiserror::Error)]
#[error("the body is not a JSON array of Zipkin v2 spans: {0}")]
pub struct ZipkinError(#[from] serde_json::Error);

/// One span as Zipkin v2 JSON has it; fields the mapping does not use are ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSpan {
    trace_id: String,
    id: String,
    #[serde(default)]
    parent_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    timestamp: Option<u64>,
    #[serde(default)]
    duration: Option<u64>,
    #[serde(default)]
    local_endpoint: Option<Endpoint>,
    #[serde(default)]
    remote_endpoint: Option<Endpoint>,
    #[serde(default)]
    tags: BTreeMap<String, TagValue>,
}

/// `localEndpoint` / `remoteEndpoint`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Endpoint {
    #[serde(default)]
    service_name: Option<String>,
}

/// A tag value: a string in Zipkin v2, tolerated as a number or boolean.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TagValue {
    Text(String),
    Other(serde_json::Value),
}

impl TagValue {
    fn into_text(self) -> String {
        match self {
            TagValue::Text(text) => text,
            TagValue::Other(value) => value.to_string(),
        }
    }
}

/// Decodes a Zipkin v2 JSON body.
///
/// # Errors
/// [`ZipkinError`] when the body is not a JSON array; bad elements are listed in
/// [`DecodedSpans::rejected`] instead.
pub fn decode(body: &[u8]) -> Result<DecodedSpans, ZipkinError> {
    let elements: Vec<&RawValue> = serde_json::from_slice(body)?;
    let mut decoded = DecodedSpans {
        spans: Vec::with_capacity(elements.len()),
        rejected: Vec::new(),
    };
    for (index, raw) in elements.into_iter().enumerate() {
        match serde_json::from_str::<WireSpan>(raw.get())
            .map_err(|e| format!("not a Zipkin v2 span: {e}"))
            .and_then(into_span)
        {
            Ok(span) => decoded.spans.push(span),
            Err(reason) => decoded.rejected.push(SpanRejection { index, reason }),
        }
    }
    Ok(decoded)
}

/// Checks ids and times and normalises one span.
fn into_span(wire: WireSpan) -> Result<Span, String> {
    let trace_id = parse_trace_id("traceId", &pad_id(&wire.trace_id))?;
    let id = parse_span_id("id", &pad_to(&wire.id, 16))?;
    let parent_id = match wire.parent_id.as_deref() {
        None | Some("") => None,
        Some(parent) => Some(parse_span_id("parentId", &pad_to(parent, 16))?),
    };
    let timestamp = wire
        .timestamp
        .filter(|t| *t > 0)
        .ok_or_else(|| "`timestamp` is missing; X-Ray needs a start time".to_owned())?;
    let kind = match wire.kind.as_deref() {
        Some("SERVER") => SpanKind::Server,
        Some("CLIENT") => SpanKind::Client,
        _ => SpanKind::Unspecified,
    };
    let mut tags: BTreeMap<String, String> = wire
        .tags
        .into_iter()
        .map(|(key, value)| (key, value.into_text()))
        .collect();
    // Zipkin marks failed spans with an `error` tag (Envoy: "true"; others: a message).
    let error = tags.remove("error").is_some_and(|v| v != "false");
    Ok(Span {
        trace_id,
        id,
        parent_id,
        kind,
        name: wire.name.unwrap_or_default(),
        service_name: wire
            .local_endpoint
            .and_then(|e| e.service_name)
            .filter(|s| !s.is_empty()),
        remote_service_name: wire
            .remote_endpoint
            .and_then(|e| e.service_name)
            .filter(|s| !s.is_empty()),
        start_nanos: timestamp.saturating_mul(1_000),
        duration_nanos: wire.duration.unwrap_or(0).saturating_mul(1_000),
        error,
        tags,
    })
}

/// Left-pads a trace id to 16 or 32 hex digits (lengths in between go to 32).
fn pad_id(id: &str) -> String {
    if id.len() <= 16 {
        pad_to(id, 16)
    } else {
        pad_to(id, 32)
    }
}

/// Left-pads `id` with zeros to `width` characters (longer ids are left as they are).
fn pad_to(id: &str, width: usize) -> String {
    if id.is_empty() || id.len() >= width {
        id.to_owned()
    } else {
        format!("{id:0>width$}")
    }
}

#[cfg(test)]
mod tests {
    use meshray_core::ids::IdWidth;

    use super::*;

    /// A span with every field the mapping reads.
    const FULL: &str = r#"[{
        "traceId": "a3ce929d0e0e4736", "id": "00f067aa0ba902b7", "parentId": "53995c3f42cd8ad8",
        "name": "reviews.default.svc.cluster.local:9080/*", "kind": "CLIENT",
        "timestamp": 1764000000123456, "duration": 2500, "shared": false,
        "localEndpoint": {"serviceName": "productpage.default", "ipv4": "10.0.0.1"},
        "remoteEndpoint": {"serviceName": "reviews", "port": 9080},
        "annotations": [{"timestamp": 1764000000123460, "value": "cs"}],
        "tags": {"upstream_cluster": "outbound|9080||reviews.default.svc.cluster.local",
                 "http.status_code": "503", "error": "true", "request_size": 0}
    }]"#;

    /// Every field lands in the model: ids, kind, endpoints, µs → ns, tags, error.
    #[test]
    fn decodes_every_field() {
        let decoded = decode(FULL.as_bytes()).unwrap();
        assert!(decoded.rejected.is_empty(), "{:?}", decoded.rejected);
        let span = &decoded.spans[0];
        assert_eq!(span.trace_id.width(), IdWidth::Bits64);
        assert_eq!(
            span.trace_id.to_hex128(),
            "0000000000000000a3ce929d0e0e4736"
        );
        assert_eq!(span.id.to_string(), "00f067aa0ba902b7");
        assert_eq!(span.parent_id.unwrap().to_string(), "53995c3f42cd8ad8");
        assert_eq!(span.kind, SpanKind::Client);
        assert_eq!(span.service_name.as_deref(), Some("productpage.default"));
        assert_eq!(span.remote_service_name.as_deref(), Some("reviews"));
        assert_eq!(span.start_nanos, 1_764_000_000_123_456_000);
        assert_eq!(span.duration_nanos, 2_500_000);
        assert!(span.error);
        assert!(!span.tags.contains_key("error"));
        assert_eq!(span.tag("http.status_code"), Some("503"));
        assert_eq!(span.tag("request_size"), Some("0"));
    }

    /// A bad element is rejected with its index and a reason naming the field; the
    /// others decode.
    #[test]
    fn rejects_bad_spans_one_by_one() {
        let body = r#"[
            {"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "id": "00f067aa0ba902b7", "timestamp": 1},
            {"traceId": "xyz", "id": "00f067aa0ba902b7", "timestamp": 1},
            {"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "id": "00f067aa0ba902b7"},
            {"id": "00f067aa0ba902b7", "timestamp": 1},
            "not a span",
            {"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "id": "0000000000000000", "timestamp": 1},
            {"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "id": "00f067aa0ba902b8", "parentId": "", "timestamp": 1}
        ]"#;
        let decoded = decode(body.as_bytes()).unwrap();
        assert_eq!(decoded.spans.len(), 2);
        assert_eq!(decoded.spans[1].parent_id, None);
        let rejected: Vec<(usize, &str)> = decoded
            .rejected
            .iter()
            .map(|r| (r.index, r.reason.as_str()))
            .collect();
        assert_eq!(rejected.len(), 5, "{rejected:?}");
        assert_eq!(rejected[0].0, 1);
        assert!(rejected[0].1.contains("`traceId`"), "{}", rejected[0].1);
        assert!(rejected[1].1.contains("`timestamp`"), "{}", rejected[1].1);
        assert!(rejected[2].1.contains("traceId"), "{}", rejected[2].1);
        assert!(
            rejected[3].1.contains("not a Zipkin v2 span"),
            "{}",
            rejected[3].1
        );
        assert!(rejected[4].1.contains("`id`"), "{}", rejected[4].1);
    }

    /// Short ids are left-padded as Zipkin's collector does; not-an-array is an error.
    #[test]
    fn pads_short_ids_and_refuses_non_arrays() {
        let decoded = decode(
            br#"[{"traceId": "463ac35c9f6413ad4", "id": "a2fb4a1d1a96d31", "timestamp": 5}]"#,
        )
        .unwrap();
        let span = &decoded.spans[0];
        assert_eq!(span.trace_id.to_hex(), "000000000000000463ac35c9f6413ad4");
        assert_eq!(span.id.to_string(), "0a2fb4a1d1a96d31");
        assert!(decode(br#"{"traceId": "1"}"#).is_err());
        assert!(decode(b"not json").is_err());
        assert!(decode(b"[]").unwrap().spans.is_empty());
    }

    /// `error: "false"` is not an error; any other value (a message) is.
    #[test]
    fn error_tag_values() {
        for (value, expected) in [("true", true), ("false", false), ("timeout", true)] {
            let body = format!(
                r#"[{{"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "id": "00f067aa0ba902b7", "timestamp": 1, "tags": {{"error": "{value}"}}}}]"#
            );
            assert_eq!(decode(body.as_bytes()).unwrap().spans[0].error, expected);
        }
    }
}
