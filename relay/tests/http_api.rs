//! The HTTP surface of the relay with the `file:PATH` sink (no X-Ray needed): status
//! codes, error bodies, health endpoints, metrics, and the drain on shutdown.

// Test helpers outside `#[test]` functions: a failed unwrap here is a failed test with a
// clear location, as clippy.toml allows inside tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::let_underscore_must_use
)]

mod common;

use std::time::Duration;

use common::{Relay, read_lines, segment, test_config};
use hyper::http::Method;
use meshray_relay::SinkKind;
use meshray_test_support::http::request;
use meshray_test_support::ids::new_xray_trace_id;
use meshray_test_support::run_dir::RunDir;
use serde_json::json;

/// Bodies that are not a JSON array get 400, oversized ones 413, unknown paths 404;
/// health endpoints answer.
#[tokio::test]
async fn answers_bad_requests_clearly() {
    let dir = RunDir::new("relay-http").unwrap();
    let relay = Relay::start(meshray_relay::Config {
        sink: SinkKind::File(dir.path().join("out.jsonl")),
        max_body_bytes: 1024,
        ..test_config()
    })
    .await;

    let not_json = request(relay.addr, Method::POST, "/v1/segments", b"{nope")
        .await
        .unwrap();
    assert_eq!(not_json.status, 400);
    assert!(
        not_json.json().unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );

    let object = relay.post_segments(&json!({"name": "x"})).await;
    assert_eq!(object.status, 400);
    assert!(
        object.json().unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("JSON array")
    );

    let big = json!([{"padding": "x".repeat(2000)}]);
    let too_large = relay.post_segments(&big).await;
    assert_eq!(too_large.status, 413);
    assert!(
        too_large.json().unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("1024 bytes")
    );

    let empty = relay.post_segments(&json!([])).await;
    assert_eq!(empty.status, 200);
    assert_eq!(
        empty.json().unwrap(),
        json!({"accepted": 0, "rejected": []})
    );

    assert_eq!(relay.get("/nope").await.status, 404);
    assert_eq!(relay.get("/healthz").await.status, 200);
    assert_eq!(relay.get("/readyz").await.status, 200);
    let wrong_method = relay.get("/v1/segments").await;
    assert_eq!(wrong_method.status, 405);

    let metrics = relay.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.text().contains("meshray_relay_queue_depth 0"));
    relay.stop().await.unwrap();
}

/// The file sink gets exactly the documents that would be sent, one per line, with
/// foreign ids resolved; documents still queued at shutdown are flushed by the drain
/// (the batch interval is far longer than the test).
#[tokio::test]
async fn drain_flushes_the_queue_to_the_file_sink() {
    let dir = RunDir::new("relay-file").unwrap();
    let out = dir.path().join("out.jsonl");
    let relay = Relay::start(meshray_relay::Config {
        sink: SinkKind::File(out.clone()),
        batch_interval: Duration::from_secs(600),
        ..test_config()
    })
    .await;
    let native = new_xray_trace_id();
    let start = 1_700_000_000.75;
    let documents: Vec<_> = (0..120)
        .map(|i| {
            if i % 2 == 0 {
                segment("productpage", &native, start)
            } else {
                segment(
                    "reviews",
                    "0000000000000000463ac35c9f6413ad",
                    start + f64::from(i),
                )
            }
        })
        .collect();
    let response = relay.post_segments(&json!(documents)).await;
    assert_eq!(response.json().unwrap()["accepted"], 120);
    relay.stop().await.unwrap();

    let lines = read_lines(&out);
    assert_eq!(lines.len(), 120);
    let foreign = format!("1-{:08x}-00000000463ac35c9f6413ad", 1_700_000_001u32);
    // Documents with final X-Ray ids are queued before the foreign ones are resolved,
    // so lines are matched to documents by id, not by position.
    for line in &lines {
        let i = documents
            .iter()
            .position(|d| d["id"] == line["id"])
            .expect("a line for a document that was sent");
        let expected = if i % 2 == 0 {
            native.as_str()
        } else {
            foreign.as_str()
        };
        assert_eq!(line["trace_id"], expected, "document {i}");
    }
}
