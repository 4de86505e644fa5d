//! Table-driven tests of the whole mapping on what real Envoy 1.40 sent: the posts in
//! `relay/tests/fixtures/envoy/` were captured from three Istio-shaped sidecars
//! (productpage → reviews → ratings) with Envoy's Zipkin tracer, its OpenTelemetry
//! tracer, and the Zipkin tracer with Istio 1.7's names (see `capture.py` there).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use meshray_core::validate::validate_document;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status};
use prost::Message;
use serde_json::Value;

use super::mapping::to_document;
use super::model::{Span, SpanKind};
use super::otlp::{self, Encoding};
use super::zipkin;

/// Clock for the mapping: the captures' own time, so trace ids are judged as on the day.
const CAPTURED_AT: u64 = 1_796_112_500;

/// The capture directory of `name`.
fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/envoy")
        .join(name)
}

/// Every post of a capture, in order, with its `content-type`.
fn posts(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fixture_dir(name);
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("posts.json")).unwrap()).unwrap();
    index["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|post| {
            let file = post["file"].as_str().unwrap();
            let content_type = post["headers"]["content-type"].as_str().unwrap().to_owned();
            (content_type, std::fs::read(dir.join(file)).unwrap())
        })
        .collect()
}

/// Decodes every post of a capture; no span may be rejected.
fn spans(name: &str) -> Vec<Span> {
    let mut all = Vec::new();
    for (content_type, body) in posts(name) {
        let decoded = match Encoding::from_content_type(&content_type) {
            Some(Encoding::Protobuf) => otlp::decode(&body, Encoding::Protobuf).unwrap(),
            _ => zipkin::decode(&body).unwrap(),
        };
        assert!(
            decoded.rejected.is_empty(),
            "{name}: {:?}",
            decoded.rejected
        );
        all.extend(decoded.spans);
    }
    all
}

/// The documents of `spans`, each checked by the relay's validator.
fn documents(spans: &[Span]) -> Vec<Value> {
    spans
        .iter()
        .map(|span| {
            let doc = serde_json::to_value(to_document(span, CAPTURED_AT)).unwrap();
            validate_document(doc.clone()).unwrap_or_else(|e| panic!("{e}: {doc}"));
            doc
        })
        .collect()
}

/// One line per document (and embedded subsegment): kind, name, what its parent is, status
/// and flags; parents are resolved to the document they name within the trace.
fn outline(trace: &[Value]) -> BTreeSet<String> {
    let mut by_id: BTreeMap<&str, String> = BTreeMap::new();
    for doc in trace {
        by_id.insert(doc["id"].as_str().unwrap(), label(doc));
        for sub in doc["subsegments"].as_array().into_iter().flatten() {
            by_id.insert(sub["id"].as_str().unwrap(), label(sub));
        }
    }
    let mut lines = BTreeSet::new();
    for doc in trace {
        let parent = match doc["parent_id"].as_str() {
            None => "root".to_owned(),
            Some(id) => by_id
                .get(id)
                .cloned()
                .unwrap_or_else(|| format!("external {id}")),
        };
        lines.insert(format!("{} <- {parent}{}", label(doc), flags(doc)));
        for sub in doc["subsegments"].as_array().into_iter().flatten() {
            lines.insert(format!(
                "{} <- embedded in {}{}",
                label(sub),
                label(doc),
                flags(sub)
            ));
        }
    }
    lines
}

/// `segment productpage` / `subsegment reviews`.
fn label(doc: &Value) -> String {
    let kind = if doc["namespace"] == "remote" {
        "subsegment"
    } else {
        "segment"
    };
    format!("{kind} {}", doc["name"].as_str().unwrap())
}

/// ` 503 fault UH` and the like.
fn flags(doc: &Value) -> String {
    let mut out = String::new();
    if let Some(status) = doc["http"]["response"]["status"].as_u64() {
        out.push_str(&format!(" {status}"));
    }
    for flag in ["error", "throttle", "fault"] {
        if doc[flag] == true {
            out.push_str(&format!(" {flag}"));
        }
    }
    if let Some(response_flags) = doc["annotations"]["response_flags"].as_str() {
        out.push_str(&format!(" {response_flags}"));
    }
    out
}

/// Documents grouped by trace, keyed by the query of the request that started it
/// (`incoming=…` requests are keyed `incoming`, whatever the propagation format).
fn traces_by_request(docs: &[Value]) -> BTreeMap<String, Vec<Value>> {
    let mut by_trace: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for doc in docs {
        by_trace
            .entry(doc["trace_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(doc.clone());
    }
    by_trace
        .into_values()
        .map(|trace| {
            let url = trace
                .iter()
                .find(|d| d["name"] == "productpage" && d["namespace"] != "remote")
                .and_then(|d| d["http"]["request"]["url"].as_str())
                .unwrap_or_default()
                .to_owned();
            let query = url.split_once('?').map_or("", |(_, q)| q);
            let key = if query.starts_with("incoming=") {
                "incoming".to_owned()
            } else {
                query.to_owned()
            };
            (key, trace)
        })
        .collect()
}

/// What each captured request must look like in X-Ray, in every capture.
fn expected_outlines() -> BTreeMap<&'static str, Vec<&'static str>> {
    BTreeMap::from([
        (
            "",
            vec![
                "segment productpage <- root 200",
                "subsegment reviews <- segment productpage 200",
                "segment reviews <- subsegment reviews 200",
                "subsegment ratings <- segment reviews 200",
                "segment ratings <- subsegment ratings 200",
            ],
        ),
        (
            "ratings_status=503",
            vec![
                "segment productpage <- root 503 fault",
                "subsegment reviews <- segment productpage 503 fault",
                "segment reviews <- subsegment reviews 503 fault",
                "subsegment ratings <- segment reviews 503 fault",
                "segment ratings <- subsegment ratings 503 fault",
            ],
        ),
        (
            "ratings_status=404",
            vec![
                "segment productpage <- root 404 error",
                "subsegment reviews <- segment productpage 404 error",
                "segment reviews <- subsegment reviews 404 error",
                "subsegment ratings <- segment reviews 404 error",
                "segment ratings <- subsegment ratings 404 error",
            ],
        ),
        (
            "ratings_status=429",
            vec![
                "segment productpage <- root 429 error throttle",
                "subsegment reviews <- segment productpage 429 error throttle",
                "segment reviews <- subsegment reviews 429 error throttle",
                "subsegment ratings <- segment reviews 429 error throttle",
                "segment ratings <- subsegment ratings 429 error throttle",
            ],
        ),
        (
            "unknown_host=1",
            vec![
                "segment productpage <- root 503 fault",
                "subsegment unknown.example.com <- segment productpage 503 fault UH",
            ],
        ),
        (
            "incoming",
            vec![
                "segment productpage <- external 00f067aa0ba902b7 200",
                "subsegment reviews <- segment productpage 200",
                "segment reviews <- subsegment reviews 200",
                "subsegment ratings <- segment reviews 200",
                "segment ratings <- subsegment ratings 200",
            ],
        ),
    ])
}

/// Each capture's requests become one trace each, shaped and flagged as expected.
#[test]
fn captured_traffic_maps_to_linked_traces() {
    for capture in ["zipkin", "otlp", "zipkin-istio-1.7"] {
        let docs = documents(&spans(capture));
        let traces = traces_by_request(&docs);
        let expected = expected_outlines();
        assert_eq!(
            traces.keys().map(String::as_str).collect::<Vec<_>>(),
            expected.keys().copied().collect::<Vec<_>>(),
            "{capture}: one trace per request"
        );
        for (request, trace) in &traces {
            let want: BTreeSet<String> = expected[request.as_str()]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
            assert_eq!(outline(trace), want, "{capture}, request {request:?}");
        }
    }
}

/// The 64-bit B3 id of the Zipkin capture is left-padded for the epoch cache; the
/// tracers' random 128-bit ids are sent raw too (their high bits are no epoch).
#[test]
fn captured_trace_ids_go_to_the_epoch_cache() {
    let docs = documents(&spans("zipkin"));
    assert!(
        docs.iter()
            .any(|d| d["trace_id"] == "0000000000000000a3ce929d0e0e4736")
    );
    for doc in docs {
        let id = doc["trace_id"].as_str().unwrap();
        assert!(
            id.len() == 32 && !id.starts_with("1-"),
            "raw id expected: {id}"
        );
    }
}

/// Zipkin and OTLP captures of the same requests give the same documents, apart from
/// what differs between any two runs: ids, times, x-request-id, the front door's port.
#[test]
fn zipkin_and_otlp_captures_give_the_same_documents() {
    let normalise = |docs: Vec<Value>| -> BTreeMap<String, BTreeSet<String>> {
        traces_by_request(&docs)
            .into_iter()
            .map(|(request, trace)| {
                let shapes = trace
                    .into_iter()
                    .map(|doc| shape(&doc).to_string())
                    .collect();
                (request, shapes)
            })
            .collect()
    };
    let zipkin = normalise(documents(&spans("zipkin")));
    let otlp = normalise(documents(&spans("otlp")));
    assert_eq!(
        zipkin.keys().collect::<Vec<_>>(),
        otlp.keys().collect::<Vec<_>>()
    );
    for (request, shapes) in &zipkin {
        let from_otlp = &otlp[request];
        let only_zipkin: Vec<_> = shapes.difference(from_otlp).collect();
        let only_otlp: Vec<_> = from_otlp.difference(shapes).collect();
        assert!(
            only_zipkin.is_empty() && only_otlp.is_empty(),
            "request {request:?}: only from Zipkin {only_zipkin:#?}, only from OTLP {only_otlp:#?}"
        );
    }
}

/// A document with run-specific values blanked.
fn shape(doc: &Value) -> Value {
    let mut doc = doc.clone();
    blank(&mut doc);
    doc
}

fn blank(doc: &mut Value) {
    for key in ["id", "parent_id", "trace_id", "start_time", "end_time"] {
        if doc.get(key).is_some() {
            doc[key] = Value::from("…");
        }
    }
    if doc["annotations"].get("request_id").is_some() {
        doc["annotations"]["request_id"] = Value::from("…");
    }
    if let Some(url) = doc["http"]["request"]["url"].as_str() {
        // The front door is 127.0.0.1:<ephemeral port>; the query differs for `incoming`.
        let without_query = url.split('?').next().unwrap_or(url);
        let normalised = match without_query.find("/productpage") {
            Some(at) if without_query.contains("127.0.0.1") => &without_query[at..],
            _ => without_query,
        };
        doc["http"]["request"]["url"] = Value::from(normalised.to_owned());
    }
    if let Some(subs) = doc.get_mut("subsegments").and_then(Value::as_array_mut) {
        for sub in subs {
            blank(sub);
        }
    }
}

/// The same spans sent as Zipkin and as OTLP (protobuf and JSON) give byte-identical
/// documents: each captured Zipkin span is re-encoded as Envoy's OpenTelemetry tracer
/// encodes a span (the tags as string attributes, `service.name` on the resource, status
/// ERROR where the error tag was set and, as OTel does, on CLIENT spans of 4xx answers).
#[test]
fn the_same_spans_as_zipkin_and_otlp_give_identical_documents() {
    let from_zipkin = spans("zipkin");
    let request = as_otlp(&from_zipkin);
    let protobuf = otlp::decode(&request.encode_to_vec(), Encoding::Protobuf).unwrap();
    let json = otlp::decode(&serde_json::to_vec(&request).unwrap(), Encoding::Json).unwrap();
    assert_eq!(protobuf, json);
    assert!(protobuf.rejected.is_empty());
    // OTLP has no 64-bit trace ids: compare the 128-bit ones.
    let padded: Vec<Span> = from_zipkin
        .iter()
        .map(|s| Span {
            trace_id: meshray_core::ids::TraceId::new(
                s.trace_id.value(),
                meshray_core::ids::IdWidth::Bits128,
            )
            .unwrap(),
            ..s.clone()
        })
        .collect();
    let by_id = |mut docs: Vec<Value>| {
        docs.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        docs
    };
    assert_same(
        &by_id(documents(&padded)),
        &by_id(documents(&protobuf.spans)),
    );
}

/// Equal lists, or a panic showing the first pair that differs.
fn assert_same<T: PartialEq + std::fmt::Debug>(left: &[T], right: &[T]) {
    for (i, (l, r)) in left.iter().zip(right).enumerate() {
        assert_eq!(l, r, "element {i} differs");
    }
    assert_eq!(left.len(), right.len(), "lengths differ");
}

/// Envoy's OpenTelemetry encoding of `spans`, one resource per reporting service.
fn as_otlp(spans: &[Span]) -> ExportTraceServiceRequest {
    let text = |s: &str| AnyValue {
        value: Some(any_value::Value::StringValue(s.to_owned())),
    };
    let mut by_service: BTreeMap<String, Vec<opentelemetry_proto::tonic::trace::v1::Span>> =
        BTreeMap::new();
    for span in spans {
        let status = span.tag("http.status_code").unwrap_or_default();
        let client_4xx = span.kind == SpanKind::Client && status.starts_with('4');
        let mut attributes: Vec<KeyValue> = span
            .tags
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.clone(),
                value: Some(text(v)),
                ..KeyValue::default()
            })
            .collect();
        if span.error {
            attributes.push(KeyValue {
                key: "error".to_owned(),
                value: Some(text("true")),
                ..KeyValue::default()
            });
        }
        let wire = opentelemetry_proto::tonic::trace::v1::Span {
            trace_id: span.trace_id.value().to_be_bytes().to_vec(),
            span_id: span.id.value().to_be_bytes().to_vec(),
            parent_span_id: span
                .parent_id
                .map(|p| p.value().to_be_bytes().to_vec())
                .unwrap_or_default(),
            name: span.name.clone(),
            kind: match span.kind {
                SpanKind::Server => 2,
                SpanKind::Client => 3,
                SpanKind::Unspecified => 0,
            },
            start_time_unix_nano: span.start_nanos,
            end_time_unix_nano: span.start_nanos + span.duration_nanos,
            attributes,
            status: (span.error || client_4xx).then(|| Status {
                code: 2,
                message: String::new(),
            }),
            ..Default::default()
        };
        by_service
            .entry(span.service_name.clone().unwrap_or_default())
            .or_default()
            .push(wire);
    }
    ExportTraceServiceRequest {
        resource_spans: by_service
            .into_iter()
            .map(|(service, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".to_owned(),
                        value: Some(text(&service)),
                        ..KeyValue::default()
                    }],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            })
            .collect(),
    }
}

/// The captured OTLP protobuf re-encoded as OTLP/JSON decodes to the same spans.
#[test]
fn captured_otlp_protobuf_and_its_json_agree() {
    for (_, body) in posts("otlp") {
        let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        let json = serde_json::to_vec(&request).unwrap();
        assert_eq!(
            otlp::decode(&body, Encoding::Protobuf).unwrap(),
            otlp::decode(&json, Encoding::Json).unwrap()
        );
    }
}
