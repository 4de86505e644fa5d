//! Micro-benchmarks of the per-request and per-document hot paths (`make bench-micro`):
//! propagation header parsing, cluster classification, building and serialising a
//! document (what the filter does per request), and validating a received document
//! (what the relay does per document).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use meshray_core::cluster::classify;
use meshray_core::ids::{SpanId, TraceId};
use meshray_core::json_writer;
use meshray_core::propagation::{PropagationHeaders, extract};
use meshray_core::segment::{Document, HttpRequest, HttpResponse};
use meshray_core::validate::{read_batch, validate_document, validate_json, validate_text};
use serde_json::value::RawValue;

/// Headers of an inbound request from a caller whose sidecar wrote B3 and W3C context.
fn inbound_headers() -> Vec<(&'static str, &'static str)> {
    vec![
        (":authority", "reviews:9080"),
        (":path", "/reviews/0"),
        (":method", "GET"),
        ("user-agent", "python-requests/2.31.0"),
        ("x-request-id", "2c2f2bf6-55a5-9ad8-b8a0-3c1b2b6a6a11"),
        (
            "traceparent",
            "00-6b0e8dd984b70bd7662896c6e022cc5c-00f067aa0ba902b7-01",
        ),
        ("x-b3-traceid", "6b0e8dd984b70bd7662896c6e022cc5c"),
        ("x-b3-spanid", "00f067aa0ba902b7"),
        ("x-b3-sampled", "1"),
        (
            "x-amzn-trace-id",
            "Root=1-6b0e8dd9-84b70bd7662896c6e022cc5c;Parent=00f067aa0ba902b7;Sampled=1",
        ),
    ]
}

fn propagation(c: &mut Criterion) {
    let headers = inbound_headers();
    c.bench_function("propagation: pick + extract (4 formats present)", |b| {
        b.iter(|| {
            extract(&PropagationHeaders::from_pairs(
                black_box(&headers).iter().copied(),
            ))
        })
    });
    let none = vec![
        (":authority", "reviews:9080"),
        (":path", "/"),
        ("user-agent", "curl/8"),
    ];
    c.bench_function("propagation: pick + extract (no context)", |b| {
        b.iter(|| {
            extract(&PropagationHeaders::from_pairs(
                black_box(&none).iter().copied(),
            ))
        })
    });
}

fn classification(c: &mut Criterion) {
    let names = [
        "outbound|9080|v1|reviews.default.svc.cluster.local",
        "inbound|9080||",
        "outbound|443||api.example.com",
        "PassthroughCluster",
    ];
    c.bench_function("cluster: classify 4 names", |b| {
        b.iter(|| {
            for name in names {
                black_box(classify(
                    Some(black_box(name)),
                    || Some(2),
                    Some("reviews:9080"),
                ));
            }
        })
    });
}

/// An inbound segment as the filter builds it.
fn segment() -> Document {
    Document::segment(
        "reviews",
        SpanId::from_random(0x00f0_67aa_0ba9_02b7),
        "1-6b0e8dd9-84b70bd7662896c6e022cc5c".to_owned(),
        1_796_115_929.850_102,
    )
    .with_parent(Some(SpanId::from_random(0x1234_5678_9abc_def0)))
    .with_end_time(1_796_115_929.929_612)
    .with_http_request(HttpRequest {
        method: Some("GET".to_owned()),
        url: Some("http://reviews:9080/reviews/0".to_owned()),
        user_agent: Some("python-requests/2.31.0".to_owned()),
        client_ip: Some("10.0.0.12".to_owned()),
        x_forwarded_for: false,
    })
    .with_http_response(HttpResponse {
        status: Some(200),
        content_length: Some(95),
    })
    .with_eks(Some("reviews-v1-6b9f8".to_owned()), None)
    .with_annotation("istio_canonical_service", "reviews")
    .with_annotation("istio_canonical_revision", "v1")
    .with_annotation("istio_namespace", "default")
    .with_metadata("k8s", "namespace", "default")
    .with_metadata("k8s", "workload", "reviews-v1")
    .with_metadata("k8s", "service_account", "bookinfo-reviews")
}

fn documents(c: &mut Criterion) {
    c.bench_function("segment: build + serialise within the limit", |b| {
        b.iter(|| black_box(segment()).to_json_within_limit())
    });
    c.bench_function("segment: build only", |b| b.iter(|| black_box(segment())));
    let built = segment();
    c.bench_function(
        "segment: serialise with serde_json (before the writer)",
        |b| b.iter(|| serde_json::to_vec(black_box(&built))),
    );
    c.bench_function("segment: serialise with the hand-built writer", |b| {
        b.iter(|| black_box(&built).to_json())
    });
    let bytes = segment().to_json_within_limit().unwrap_or_default();
    c.bench_function(
        "validate: parse + validate + serialise one received document",
        |b| {
            b.iter(|| {
                let value: serde_json::Value =
                    serde_json::from_slice(black_box(&bytes)).unwrap_or_default();
                validate_document(value).map(|valid| valid.into_json_string())
            })
        },
    );
}

fn relay_validation(c: &mut Criterion) {
    // A batch as the filter posts it: segments with their subsegments, parsed the two ways
    // the relay can (a `Value` tree per document, or each document's text kept).
    let call = Document::segment(
        "ratings",
        SpanId::from_random(0x0a0b_0c0d_0e0f_1011),
        "1-6b0e8dd9-84b70bd7662896c6e022cc5c".to_owned(),
        1_796_115_929.860_102,
    )
    .with_end_time(1_796_115_929.9)
    .with_metadata(
        "istio",
        "destination_host",
        "ratings.default.svc.cluster.local",
    );
    let one = String::from_utf8(
        segment()
            .with_subsegment(call)
            .to_json_within_limit()
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    let body = format!("[{}]", vec![one.as_str(); 50].join(","));
    c.bench_function(
        "relay validation: 50-document body, Value tree + validate_document + serialise",
        |b| {
            b.iter(|| {
                let documents: Vec<serde_json::Value> =
                    serde_json::from_str(black_box(&body)).unwrap_or_default();
                documents
                    .into_iter()
                    .filter_map(|d| validate_document(d).ok())
                    .map(|valid| valid.into_json_string().len())
                    .sum::<usize>()
            })
        },
    );
    c.bench_function(
        "relay validation: 50-document body, texts kept + validate_json (fast path)",
        |b| {
            b.iter(|| {
                let documents: Vec<&RawValue> =
                    serde_json::from_str(black_box(&body)).unwrap_or_default();
                documents
                    .into_iter()
                    .filter_map(|d| validate_json(d).ok())
                    .map(|valid| valid.into_json_string().len())
                    .sum::<usize>()
            })
        },
    );
    c.bench_function(
        "relay validation: 50-document body, one pass (read_batch + validate_text)",
        |b| {
            b.iter(|| {
                read_batch(black_box(body.as_bytes()))
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|d| validate_text(d).ok())
                    .map(|valid| valid.into_json_string().len())
                    .sum::<usize>()
            })
        },
    );
}

/// The byte-at-a-time escape the relay wrote `PutTraceSegments` bodies with before
/// `json_writer::escaped` (kept here only as the comparison's reference).
fn escape_byte_at_a_time(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    let mut start = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0C => b"\\f",
            0..=0x1F => &[],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..at]);
        if escape.is_empty() {
            out.extend_from_slice(format!("\\u{byte:04x}").as_bytes());
        } else {
            out.extend_from_slice(escape);
        }
        start = at + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// What the relay does per `PutTraceSegments` call and per document besides validation:
/// escaping 50 documents into the request body, and reading ids.
fn relay_upload(c: &mut Criterion) {
    let call = Document::segment(
        "ratings",
        SpanId::from_random(0x0a0b_0c0d_0e0f_1011),
        "1-6b0e8dd9-84b70bd7662896c6e022cc5c".to_owned(),
        1_796_115_929.860_102,
    )
    .with_end_time(1_796_115_929.9);
    let one = String::from_utf8(
        segment()
            .with_subsegment(call)
            .to_json_within_limit()
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    let documents = vec![one; 50];
    let mut body = Vec::with_capacity(64 * 1024);
    c.bench_function(
        "relay upload: PutTraceSegments body of 50 documents, word-at-a-time escape",
        |b| {
            b.iter(|| {
                body.clear();
                for document in black_box(&documents) {
                    json_writer::string(&mut body, document);
                }
                body.len()
            })
        },
    );
    c.bench_function(
        "relay upload: PutTraceSegments body of 50 documents, byte-at-a-time escape (before)",
        |b| {
            b.iter(|| {
                body.clear();
                for document in black_box(&documents) {
                    body.push(b'"');
                    escape_byte_at_a_time(&mut body, document);
                    body.push(b'"');
                }
                body.len()
            })
        },
    );
    // A raw trace id and two span ids: the digits the relay reads per document.
    let (trace, spans) = (
        "6b0e8dd984b70bd7662896c6e022cc5c",
        ["00f067aa0ba902b7", "70de5b6f19ff9a0a"],
    );
    c.bench_function("ids: parse a 32-hex trace id and two span ids", |b| {
        b.iter(|| {
            usize::from(TraceId::from_hex(black_box(trace)).is_ok())
                + spans
                    .iter()
                    .filter(|id| SpanId::from_hex(black_box(id)).is_ok())
                    .count()
        })
    });
    c.bench_function(
        "ids: the same digits checked + u128::from_str_radix (the parse before)",
        |b| {
            b.iter(|| {
                std::iter::once(trace)
                    .chain(spans)
                    .filter(|digits| {
                        let digits = black_box(digits);
                        digits.bytes().all(|b| b.is_ascii_hexdigit())
                            && u128::from_str_radix(digits, 16).is_ok()
                    })
                    .count()
            })
        },
    );
}

criterion_group!(
    hot_paths,
    propagation,
    classification,
    documents,
    relay_validation,
    relay_upload
);
criterion_main!(hot_paths);
