//! `POST /api/v2/spans` (Zipkin v2) and `POST /v1/traces` (OTLP/HTTP) on a relay running
//! in-process, fed with what real Envoy 1.40 sent (`tests/fixtures/envoy`), the way Envoy
//! sends it (chunked, no content-length) and gzip-compressed.

// Test helpers outside `#[test]` functions: a failed unwrap here is a failed test with a
// clear location, as clippy.toml allows inside tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::let_underscore_must_use
)]

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use meshray_relay::{Config, SinkKind};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::{Relay, read_lines, test_config};
use meshray_test_support::run_dir::RunDir;

/// A response with its body as bytes.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// POSTs `body` with `headers`; `chunks` > 0 sends it chunked in that many pieces (as
/// Envoy's Zipkin tracer does), else with `content-length`.
async fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    chunks: usize,
) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!("POST {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if chunks == 0 {
        head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body).await.unwrap();
    } else {
        head.push_str("transfer-encoding: chunked\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let size = body.len().div_ceil(chunks).max(1);
        for piece in body.chunks(size) {
            stream
                .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                .await
                .unwrap();
            stream.write_all(piece).await.unwrap();
            stream.write_all(b"\r\n").await.unwrap();
        }
        stream.write_all(b"0\r\n\r\n").await.unwrap();
    }
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v == "chunked")
    {
        body = dechunk(&body);
    }
    Answer {
        status,
        headers,
        body,
    }
}

/// Removes chunked framing from an answer.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 4 + size..];
    }
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// The posts of a capture (body bytes), in order.
fn fixture_posts(capture: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/envoy")
        .join(capture);
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("posts.json")).unwrap()).unwrap();
    index["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| std::fs::read(dir.join(p["file"].as_str().unwrap())).unwrap())
        .collect()
}

/// A relay writing to a file sink; returns it, its run directory (keep it while the relay
/// runs) and the sink path.
async fn relay(name: &str, tweak: impl FnOnce(&mut Config)) -> (Relay, RunDir, std::path::PathBuf) {
    let dir = RunDir::new(name).unwrap();
    let sink = dir.path().join("segments.jsonl");
    let mut config = Config {
        sink: SinkKind::File(sink.clone()),
        ..test_config()
    };
    tweak(&mut config);
    (Relay::start(config).await, dir, sink)
}

/// Waits until the sink holds `n` documents (or 10 s passed); returns them.
async fn wait_for_documents(sink: &Path, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let docs = read_lines(sink);
        if docs.len() >= n {
            return docs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    read_lines(sink)
}

/// Checks that every trace's documents share one X-Ray id and that each `parent_id`
/// names a document (or embedded subsegment) of its trace, except the external parent
/// of the incoming-context request.
fn assert_linked(docs: &[Value], traces: usize) {
    let mut by_trace: std::collections::BTreeMap<&str, Vec<&Value>> = Default::default();
    for doc in docs {
        let id = doc["trace_id"].as_str().unwrap();
        assert!(
            id.starts_with("1-") && id.len() == 35,
            "not an X-Ray id: {id}"
        );
        by_trace.entry(id).or_default().push(doc);
    }
    assert_eq!(by_trace.len(), traces, "one X-Ray trace per request");
    for (trace, docs) in by_trace {
        let ids: Vec<&str> = docs
            .iter()
            .flat_map(|d| {
                std::iter::once(d["id"].as_str().unwrap()).chain(
                    d["subsegments"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|s| s["id"].as_str().unwrap()),
                )
            })
            .collect();
        for doc in &docs {
            if let Some(parent) = doc["parent_id"].as_str() {
                assert!(
                    ids.contains(&parent) || parent == "00f067aa0ba902b7",
                    "{trace}: parent {parent} of {} is not in the trace",
                    doc["name"]
                );
            }
        }
    }
}

/// Envoy's Zipkin posts, chunked (one of them gzip), are answered 202 with every span
/// accepted; the documents reach the sink with one resolved X-Ray id per trace.
#[tokio::test]
async fn zipkin_posts_from_envoy_become_linked_documents() {
    let (relay, _dir, sink) = relay("zipkin", |_| {}).await;
    let mut spans = 0;
    for (i, body) in fixture_posts("zipkin").iter().enumerate() {
        let count = serde_json::from_slice::<Vec<Value>>(body).unwrap().len();
        spans += count;
        let answer = if i == 0 {
            let compressed = gzip(body);
            post(
                relay.addr,
                "/api/v2/spans",
                &[
                    ("content-type", "application/json"),
                    ("content-encoding", "gzip"),
                ],
                &compressed,
                2,
            )
            .await
        } else {
            post(
                relay.addr,
                "/api/v2/spans",
                &[("content-type", "application/json")],
                body,
                3,
            )
            .await
        };
        assert_eq!(
            answer.status,
            202,
            "post {i}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(
            answer.json(),
            json!({"accepted": count, "rejected": []}),
            "post {i}"
        );
    }
    let docs = wait_for_documents(&sink, spans).await;
    assert_eq!(docs.len(), spans);
    assert_linked(&docs, 6);
    assert_eq!(
        relay
            .metric("meshray_relay_endpoint_received_total{endpoint=\"zipkin\"}")
            .await,
        spans as f64
    );
    relay.stop().await.unwrap();
}

/// Envoy's OTLP protobuf posts are answered 200 with an empty protobuf response; the
/// same requests as gzip OTLP/JSON get a JSON answer; both give linked documents.
#[tokio::test]
async fn otlp_posts_from_envoy_become_linked_documents() {
    let (relay, _dir, sink) = relay("otlp", |_| {}).await;
    let mut spans = 0;
    for (i, body) in fixture_posts("otlp").iter().enumerate() {
        let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        spans += request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum::<usize>();
        let answer = post(
            relay.addr,
            "/v1/traces",
            &[("content-type", "application/x-protobuf")],
            body,
            2,
        )
        .await;
        assert_eq!(answer.status, 200, "post {i}");
        assert_eq!(
            answer.header("content-type"),
            Some("application/x-protobuf")
        );
        let response = ExportTraceServiceResponse::decode(answer.body.as_slice()).unwrap();
        assert_eq!(response.partial_success, None, "post {i}");
    }
    let docs = wait_for_documents(&sink, spans).await;
    assert_eq!(docs.len(), spans);
    assert_linked(&docs, 6);

    // The same spans again as OTLP/JSON, gzip: same trace ids, so the same X-Ray traces.
    for body in fixture_posts("otlp") {
        let request = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        let json = gzip(&serde_json::to_vec(&request).unwrap());
        let answer = post(
            relay.addr,
            "/v1/traces",
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            &json,
            0,
        )
        .await;
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(answer.header("content-type"), Some("application/json"));
        assert!(
            answer
                .json()
                .get("partialSuccess")
                .is_none_or(Value::is_null),
            "{}",
            answer.json()
        );
    }
    let docs = wait_for_documents(&sink, 2 * spans).await;
    assert_eq!(docs.len(), 2 * spans);
    assert_linked(&docs, 6);
    relay.stop().await.unwrap();
}

/// A bad span is rejected on its own: Zipkin lists it, OTLP reports a partial success
/// with the count and the reason; the good spans are queued.
#[tokio::test]
async fn bad_spans_are_rejected_one_by_one() {
    let (relay, _dir, sink) = relay("partial", |_| {}).await;
    let good = json!({"traceId": "4bf92f3577b34da6a3ce929d0e0e4736", "id": "00f067aa0ba902b7", "kind": "SERVER",
                      "timestamp": 1_764_000_000_000_000u64, "duration": 10,
                      "tags": {"upstream_cluster": "inbound|9080||", "istio.canonical_service": "reviews"}});
    let bad = json!({"traceId": "not-hex", "id": "00f067aa0ba902b7", "timestamp": 1});
    let answer = post(
        relay.addr,
        "/api/v2/spans",
        &[("content-type", "application/json")],
        json!([bad, good]).to_string().as_bytes(),
        1,
    )
    .await;
    assert_eq!(answer.status, 202);
    let report = answer.json();
    assert_eq!(report["accepted"], 1);
    assert_eq!(report["rejected"][0]["index"], 0);
    assert!(
        report["rejected"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("traceId"),
        "{report}"
    );
    // Only bad spans: nothing to accept, 400 with the report.
    let answer = post(
        relay.addr,
        "/api/v2/spans",
        &[],
        json!([bad]).to_string().as_bytes(),
        0,
    )
    .await;
    assert_eq!(answer.status, 400);

    let otlp = json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "4bf92f3577b34da6a3ce929d0e0e4737", "spanId": "00f067aa0ba902b8", "kind": 2, "startTimeUnixNano": "1764000000000000000", "endTimeUnixNano": "1764000000000100000"},
        {"traceId": "4bf92f3577b34da6", "spanId": "00f067aa0ba902b9", "startTimeUnixNano": "1764000000000000000"}
    ]}]}]});
    let answer = post(
        relay.addr,
        "/v1/traces",
        &[("content-type", "application/json")],
        otlp.to_string().as_bytes(),
        0,
    )
    .await;
    assert_eq!(answer.status, 200);
    let partial = &answer.json()["partialSuccess"];
    let rejected = partial["rejectedSpans"]
        .as_i64()
        .or_else(|| partial["rejectedSpans"].as_str()?.parse().ok());
    assert_eq!(rejected, Some(1), "{partial}");
    assert!(
        partial["errorMessage"]
            .as_str()
            .unwrap()
            .contains("traceId"),
        "{partial}"
    );
    assert_eq!(wait_for_documents(&sink, 2).await.len(), 2);
    relay.stop().await.unwrap();
}

/// Path, request headers, body, expected status.
type Refusal = (
    &'static str,
    Vec<(&'static str, &'static str)>,
    Vec<u8>,
    u16,
);

/// What is not a span list is refused with a status saying why, and counted.
#[tokio::test]
async fn malformed_bodies_are_refused() {
    let (relay, _dir, _sink) = relay("malformed", |c| c.max_body_bytes = 4096).await;
    let zipkin = "/api/v2/spans";
    let cases: [Refusal; 6] = [
        (
            zipkin,
            vec![("content-type", "application/json")],
            b"{not json".to_vec(),
            400,
        ),
        (
            zipkin,
            vec![("content-type", "application/x-protobuf")],
            b"\x0a\x00".to_vec(),
            415,
        ),
        (
            zipkin,
            vec![("content-encoding", "br")],
            b"[]".to_vec(),
            415,
        ),
        (
            zipkin,
            vec![("content-encoding", "gzip")],
            gzip(&vec![b' '; 100_000]),
            413,
        ),
        (
            "/v1/traces",
            vec![("content-type", "application/x-protobuf")],
            b"\xff\xff\xff\xff".to_vec(),
            400,
        ),
        (
            "/v1/traces",
            vec![("content-type", "text/plain")],
            b"x".to_vec(),
            415,
        ),
    ];
    for (path, headers, body, status) in cases {
        let answer = post(relay.addr, path, &headers, &body, 0).await;
        assert_eq!(
            answer.status,
            status,
            "{path} {headers:?}: {}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    // OTLP errors are google.rpc.Status in the request's encoding.
    let answer = post(
        relay.addr,
        "/v1/traces",
        &[("content-type", "application/json")],
        b"[1]",
        0,
    )
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json()["code"], 3, "{}", answer.json());
    assert!(
        relay
            .metric(
                "meshray_relay_endpoint_rejected_total{endpoint=\"zipkin\",reason=\"malformed\"}"
            )
            .await
            >= 3.0
    );
    assert_eq!(
        relay
            .metric(
                "meshray_relay_endpoint_rejected_total{endpoint=\"zipkin\",reason=\"too_large\"}"
            )
            .await,
        1.0
    );
    relay.stop().await.unwrap();
}

/// A batch larger than the whole queue is refused whole (413: send smaller batches).
#[tokio::test]
async fn a_batch_larger_than_the_queue_is_refused_whole() {
    let (relay, _dir, _sink) = relay("full", |c| c.queue_capacity = 2).await;
    let body = &fixture_posts("zipkin")[0];
    let answer = post(
        relay.addr,
        "/api/v2/spans",
        &[("content-type", "application/json")],
        body,
        0,
    )
    .await;
    assert_eq!(answer.status, 413, "a batch larger than the whole queue");
    let otlp = &fixture_posts("otlp")[0];
    let answer = post(
        relay.addr,
        "/v1/traces",
        &[("content-type", "application/x-protobuf")],
        otlp,
        0,
    )
    .await;
    assert_eq!(answer.status, 413);
    relay.stop().await.unwrap();
}
