//! Ingest throughput of the span endpoints on this machine: spans/s through
//! `POST /api/v2/spans` (Zipkin v2 JSON) and `POST /v1/traces` (OTLP protobuf), end to end
//! in one process (HTTP, decoding, mapping, validation, epoch cache, queue, a sink
//! writing to /dev/null), from the payloads real Envoy sent (`relay/tests/fixtures/envoy`).
//!
//! `cargo run --release -p meshray-relay --example ingest_throughput [-- SECONDS_PER_ROUND]`
//!
//! Rounds alternate Zipkin and OTLP (4 each, default 3 s) on 4 keep-alive connections;
//! every post carries fresh trace ids (64 distinct bodies per format), so the epoch cache
//! sees misses as in a live mesh. Prints each round and the medians. The machine is shared
//! and noisy: compare the two formats within one run.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::let_underscore_must_use
)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use meshray_relay::{Config, SinkKind};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::Value;
use tokio::net::TcpListener;

/// Concurrent connections posting.
const CONNECTIONS: usize = 4;
/// Distinct bodies per format (each with its own trace ids).
const BODIES: usize = 64;
/// Rounds per format.
const ROUNDS: usize = 4;

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/envoy");
    let (zipkin_bodies, zipkin_spans) = zipkin_bodies(&fixtures.join("zipkin"));
    let (otlp_bodies, otlp_spans) = otlp_bodies(&fixtures.join("otlp"));

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Config {
        listen: addr,
        sink: SinkKind::File("/dev/null".into()),
        daemon_listen: None,
        queue_capacity: 1_000_000,
        batch_interval: Duration::from_millis(20),
        ..Config::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(meshray_relay::run(listener, config, async {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_millis(200)).await;

    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let round = Duration::from_secs(seconds);
    let mut zipkin = Vec::new();
    let mut otlp = Vec::new();
    for i in 0..ROUNDS {
        let z = run_round(
            &client,
            &format!("http://{addr}/api/v2/spans"),
            "application/json",
            &zipkin_bodies,
            zipkin_spans,
            round,
        )
        .await;
        let o = run_round(
            &client,
            &format!("http://{addr}/v1/traces"),
            "application/x-protobuf",
            &otlp_bodies,
            otlp_spans,
            round,
        )
        .await;
        println!(
            "round {}: zipkin {z:>9.0} spans/s   otlp {o:>9.0} spans/s",
            i + 1
        );
        zipkin.push(z);
        otlp.push(o);
    }
    let (z, o) = (median(&mut zipkin), median(&mut otlp));
    println!(
        "median: zipkin {z:.0} spans/s, otlp {o:.0} spans/s (otlp/zipkin {:.2}); {zipkin_spans} spans per Zipkin post, {otlp_spans} per OTLP post, {CONNECTIONS} connections",
        o / z
    );
    let _ = stop.send(());
    let _ = relay.await;
}

/// Posts bodies round-robin on [`CONNECTIONS`] tasks for `length`; spans accepted per second.
async fn run_round(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    url: &str,
    content_type: &'static str,
    bodies: &[Bytes],
    spans_per_body: usize,
    length: Duration,
) -> f64 {
    let posted = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + length;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..CONNECTIONS {
        let client = client.clone();
        let url: hyper::Uri = url.parse().unwrap();
        let bodies = bodies.to_vec();
        let posted = Arc::clone(&posted);
        tasks.push(tokio::spawn(async move {
            let mut n = worker;
            while Instant::now() < deadline {
                let request = hyper::Request::post(url.clone())
                    .header("content-type", content_type)
                    .body(Full::new(bodies[n % bodies.len()].clone()))
                    .unwrap();
                let response = client.request(request).await.unwrap();
                let status = response.status();
                let _ = response.into_body().collect().await;
                if status.is_success() {
                    posted.fetch_add(1, Ordering::Relaxed);
                } else {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                n += CONNECTIONS;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    posted.load(Ordering::Relaxed) as f64 * spans_per_body as f64 / started.elapsed().as_secs_f64()
}

/// All captured Zipkin spans in one array, [`BODIES`] times with fresh trace ids.
fn zipkin_bodies(dir: &Path) -> (Vec<Bytes>, usize) {
    let mut spans: Vec<Value> = Vec::new();
    for post in posts(dir) {
        let batch: Vec<Value> = serde_json::from_slice(&post).unwrap();
        spans.extend(batch);
    }
    let count = spans.len();
    let bodies = (0..BODIES)
        .map(|i| {
            let fresh: Vec<Value> = spans
                .iter()
                .map(|span| {
                    let mut span = span.clone();
                    let id = span["traceId"].as_str().unwrap().to_owned();
                    span["traceId"] = Value::from(fresh_trace_id(&id, i));
                    span
                })
                .collect();
            Bytes::from(serde_json::to_vec(&fresh).unwrap())
        })
        .collect();
    (bodies, count)
}

/// All captured OTLP requests merged into one, [`BODIES`] times with fresh trace ids.
fn otlp_bodies(dir: &Path) -> (Vec<Bytes>, usize) {
    let mut merged = ExportTraceServiceRequest::default();
    for post in posts(dir) {
        let request = ExportTraceServiceRequest::decode(post.as_slice()).unwrap();
        merged.resource_spans.extend(request.resource_spans);
    }
    let count = merged
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    let bodies = (0..BODIES)
        .map(|i| {
            let mut fresh = merged.clone();
            for span in fresh
                .resource_spans
                .iter_mut()
                .flat_map(|r| &mut r.scope_spans)
                .flat_map(|s| &mut s.spans)
            {
                span.trace_id[0] ^= (i as u8).wrapping_add(1);
            }
            Bytes::from(fresh.encode_to_vec())
        })
        .collect();
    (bodies, count)
}

/// `id` with its first byte changed by `i` (same length, still hex).
fn fresh_trace_id(id: &str, i: usize) -> String {
    let first = u8::from_str_radix(&id[..2], 16).unwrap() ^ (i as u8).wrapping_add(1);
    format!("{first:02x}{}", &id[2..])
}

/// The post bodies of a capture directory, in order.
fn posts(dir: &Path) -> Vec<Vec<u8>> {
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("posts.json")).unwrap()).unwrap();
    index["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| std::fs::read(dir.join(p["file"].as_str().unwrap())).unwrap())
        .collect()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    }
}
