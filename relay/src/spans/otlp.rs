//! OTLP/HTTP traces (`POST /v1/traces`) → [`Span`]s.
//!
//! The body is an `ExportTraceServiceRequest`, protobuf (`application/x-protobuf`, what
//! Envoy's OpenTelemetry tracer sends) or OTLP/JSON (`application/json`: ids as hex,
//! 64-bit integers as strings), decoded with the message types of the maintained
//! `opentelemetry-proto` crate. The resource's `service.name` becomes the span's service;
//! attribute values are rendered as the text Envoy would have put in a Zipkin tag, so
//! both formats reach the mapping in the same shape. Status `ERROR` (or an `error`
//! attribute other than `false`) is the error signal.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind as WireKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message;

use super::model::{DecodedSpans, Span, SpanKind, SpanRejection};
use meshray_core::ids::{IdWidth, SpanId, TraceId};

/// The two OTLP/HTTP encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Binary protobuf, `application/x-protobuf`.
    Protobuf,
    /// OTLP/JSON, `application/json`.
    Json,
}

impl Encoding {
    /// The encoding a `content-type` names; `None` for anything else.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }

    /// The `content-type` of answers in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Why a body was not an `ExportTraceServiceRequest`.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// Not a protobuf `ExportTraceServiceRequest`.
    #[error("the body is not a protobuf ExportTraceServiceRequest: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// Not an OTLP/JSON `ExportTraceServiceRequest`.
    #[error("the body is not an OTLP/JSON ExportTraceServiceRequest: {0}")]
    Json(#[from] serde_json::Error),
}

/// Decodes a body in `encoding`.
///
/// # Errors
/// [`OtlpError`] when the body is not an `ExportTraceServiceRequest`; spans with bad ids
/// or times are listed in [`DecodedSpans::rejected`] instead.
pub fn decode(body: &[u8], encoding: Encoding) -> Result<DecodedSpans, OtlpError> {
    let request = match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body)?,
        Encoding::Json => serde_json::from_slice::<ExportTraceServiceRequest>(body)?,
    };
    Ok(from_request(request))
}

/// Flattens resource → scope → span into [`Span`]s, numbering spans in that order.
pub fn from_request(request: ExportTraceServiceRequest) -> DecodedSpans {
    let mut decoded = DecodedSpans::default();
    let mut index = 0;
    for resource_spans in request.resource_spans {
        let service_name = resource_spans.resource.as_ref().and_then(|resource| {
            resource
                .attributes
                .iter()
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .map(render)
                .filter(|s| !s.is_empty())
        });
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                match into_span(span, service_name.as_deref()) {
                    Ok(span) => decoded.spans.push(span),
                    Err(reason) => decoded.rejected.push(SpanRejection { index, reason }),
                }
                index += 1;
            }
        }
    }
    decoded
}

/// Checks ids and times and normalises one span.
fn into_span(
    span: opentelemetry_proto::tonic::trace::v1::Span,
    service_name: Option<&str>,
) -> Result<Span, String> {
    let trace_id = trace_id(&span.trace_id)?;
    let id = span_id("spanId", &span.span_id)?;
    let parent_id = if span.parent_span_id.is_empty() {
        None
    } else {
        Some(span_id("parentSpanId", &span.parent_span_id)?)
    };
    if span.start_time_unix_nano == 0 {
        return Err("`startTimeUnixNano` is missing; X-Ray needs a start time".to_owned());
    }
    let kind = match WireKind::try_from(span.kind) {
        Ok(WireKind::Server) => SpanKind::Server,
        Ok(WireKind::Client) => SpanKind::Client,
        _ => SpanKind::Unspecified,
    };
    let mut tags: BTreeMap<String, String> = span
        .attributes
        .iter()
        .filter_map(|kv: &KeyValue| kv.value.as_ref().map(|v| (kv.key.clone(), render(v))))
        .collect();
    let error_attribute = tags.remove("error").is_some_and(|v| v != "false");
    let error_status = span
        .status
        .as_ref()
        .is_some_and(|s| s.code == StatusCode::Error as i32);
    let remote_service_name = tags.get("peer.service").cloned();
    Ok(Span {
        trace_id,
        id,
        parent_id,
        kind,
        name: span.name,
        service_name: service_name.map(str::to_owned),
        remote_service_name,
        start_nanos: span.start_time_unix_nano,
        duration_nanos: span
            .end_time_unix_nano
            .saturating_sub(span.start_time_unix_nano),
        error: error_attribute || error_status,
        tags,
    })
}

/// A 16-byte trace id.
fn trace_id(bytes: &[u8]) -> Result<TraceId, String> {
    let array: [u8; 16] = bytes.try_into().map_err(|_| {
        format!(
            "`traceId` must be 16 bytes, got {}; OTLP trace ids are 128-bit",
            bytes.len()
        )
    })?;
    TraceId::new(u128::from_be_bytes(array), IdWidth::Bits128)
        .map_err(|e| format!("`traceId` is invalid: {e}"))
}

/// An 8-byte span id.
fn span_id(field: &str, bytes: &[u8]) -> Result<SpanId, String> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| format!("`{field}` must be 8 bytes, got {}", bytes.len()))?;
    SpanId::new(u64::from_be_bytes(array)).map_err(|e| format!("`{field}` is invalid: {e}"))
}

/// An attribute value as tag text: strings as they are, numbers and booleans as
/// literals, arrays and maps as JSON-like text.
fn render(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(bytes)) => {
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }
        Some(any_value::Value::ArrayValue(array)) => {
            let items: Vec<String> = array.values.iter().map(render).collect();
            format!("[{}]", items.join(","))
        }
        Some(any_value::Value::KvlistValue(list)) => {
            let items: Vec<String> = list
                .values
                .iter()
                .map(|kv| {
                    format!(
                        "{}={}",
                        kv.key,
                        kv.value.as_ref().map(render).unwrap_or_default()
                    )
                })
                .collect();
            format!("{{{}}}", items.join(","))
        }
        Some(any_value::Value::StringValueStrindex(_)) | None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An OTLP/JSON request as the spec shows it: hex ids, nanosecond strings, kind 2.
    const JSON: &str = r#"{"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "reviews.default"}}]},
        "scopeSpans": [{"scope": {"name": "envoy"}, "spans": [
          {"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "00f067aa0ba902b7",
           "parentSpanId": "53995c3f42cd8ad8", "name": "reviews.default.svc.cluster.local:9080/*",
           "kind": 2, "startTimeUnixNano": "1764000000123456789", "endTimeUnixNano": "1764000000125956789",
           "attributes": [
             {"key": "upstream_cluster", "value": {"stringValue": "inbound|9080||"}},
             {"key": "http.status_code", "value": {"intValue": "503"}},
             {"key": "sampled", "value": {"boolValue": true}},
             {"key": "error", "value": {"stringValue": "true"}}],
           "status": {"code": 2, "message": "upstream failed"}},
          {"traceId": "4bf92f3577b34da6", "spanId": "00f067aa0ba902b8", "startTimeUnixNano": "1"},
          {"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "spanId": "00f067aa0ba902b9"}
        ]}]
    }]}"#;

    /// Every field lands in the model; bad spans are rejected with their index.
    #[test]
    fn decodes_json() {
        let decoded = decode(JSON.as_bytes(), Encoding::Json).unwrap();
        assert_eq!(decoded.spans.len(), 1);
        let span = &decoded.spans[0];
        assert_eq!(span.trace_id.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span.id.to_string(), "00f067aa0ba902b7");
        assert_eq!(span.parent_id.unwrap().to_string(), "53995c3f42cd8ad8");
        assert_eq!(span.kind, SpanKind::Server);
        assert_eq!(span.service_name.as_deref(), Some("reviews.default"));
        assert_eq!(span.start_nanos, 1_764_000_000_123_456_789);
        assert_eq!(span.duration_nanos, 2_500_000);
        assert!(span.error);
        assert_eq!(span.tag("http.status_code"), Some("503"));
        assert_eq!(span.tag("sampled"), Some("true"));
        assert!(!span.tags.contains_key("error"));
        let rejected: Vec<usize> = decoded.rejected.iter().map(|r| r.index).collect();
        assert_eq!(rejected, [1, 2]);
        assert!(decoded.rejected[0].reason.contains("16 bytes"));
        assert!(decoded.rejected[1].reason.contains("startTimeUnixNano"));
    }

    /// The same request as protobuf decodes to the same spans.
    #[test]
    fn protobuf_and_json_agree() {
        let request: ExportTraceServiceRequest = serde_json::from_str(JSON).unwrap();
        let bytes = request.encode_to_vec();
        assert_eq!(
            decode(&bytes, Encoding::Protobuf).unwrap(),
            decode(JSON.as_bytes(), Encoding::Json).unwrap()
        );
        assert!(decode(b"\xff\xff\xff", Encoding::Protobuf).is_err());
        assert!(decode(b"\"spans\"", Encoding::Json).is_err());
    }

    /// Content types with parameters and case; others are not OTLP.
    #[test]
    fn content_types() {
        for (text, expected) in [
            ("application/x-protobuf", Some(Encoding::Protobuf)),
            ("application/protobuf", Some(Encoding::Protobuf)),
            ("Application/JSON; charset=utf-8", Some(Encoding::Json)),
            ("text/plain", None),
            ("", None),
        ] {
            assert_eq!(Encoding::from_content_type(text), expected, "{text:?}");
        }
    }
}
