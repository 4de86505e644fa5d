//! The upload attempt loop against a scripted fake X-Ray in this process: throttling is
//! retried, only retryable `UnprocessedTraceSegments` are sent again, permanent ones are
//! dropped and counted, and attempts are bounded.

// Test helpers outside `#[test]` functions: a failed unwrap here is a failed test with a
// clear location, as clippy.toml allows inside tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::let_underscore_must_use
)]

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use meshray_relay::metrics::Metrics;
use meshray_relay::queue::QueuedDocument;
use meshray_relay::xray::{client, service::XrayService, upload::XrayUploader};
use meshray_test_support::http::LocalServer;
use meshray_test_support::ids::new_xray_trace_id;
use meshray_test_support::moto::sdk_config;
use serde_json::{Value, json};

/// A fake X-Ray answering from a script and recording each request's documents.
struct FakeXray {
    /// `http://127.0.0.1:PORT`.
    endpoint: String,
    /// The documents of each request, in order.
    requests: Arc<Mutex<Vec<Vec<Value>>>>,
    /// Serves until dropped.
    _server: LocalServer,
}

impl FakeXray {
    /// Serves `script` (status, JSON body) in order; the last entry repeats.
    async fn start(script: Vec<(u16, Value)>) -> FakeXray {
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&requests);
        let app = Router::new().fallback(move |body: String| {
            let script = Arc::clone(&script);
            let recorded = Arc::clone(&recorded);
            async move {
                let request: Value = serde_json::from_str(&body).unwrap();
                let documents = request["TraceSegmentDocuments"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| serde_json::from_str(d.as_str().unwrap()).unwrap())
                    .collect();
                recorded.lock().unwrap().push(documents);
                let (status, body) = {
                    let mut script = script.lock().unwrap();
                    if script.len() > 1 {
                        script.pop_front().unwrap()
                    } else {
                        script.front().cloned().unwrap()
                    }
                };
                let mut response: Response =
                    (StatusCode::from_u16(status).unwrap(), body.to_string()).into_response();
                if let Some(kind) = body.get("__type").and_then(Value::as_str) {
                    response
                        .headers_mut()
                        .insert("x-amzn-errortype", kind.parse().unwrap());
                }
                response
            }
        });
        let server = LocalServer::start("fake X-Ray", app).await.unwrap();
        FakeXray {
            endpoint: format!("http://{}", server.addr()),
            requests,
            _server: server,
        }
    }

    /// An uploader on this fake with `max_attempts`.
    fn uploader(&self, max_attempts: u32, metrics: Arc<Metrics>) -> XrayUploader {
        let client = client::build(&sdk_config(&self.endpoint)).unwrap();
        XrayUploader::new(XrayService::new(client), max_attempts, metrics)
    }

    /// The ids sent in each request.
    fn sent_ids(&self) -> Vec<Vec<String>> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .map(|docs| {
                docs.iter()
                    .map(|d| d["id"].as_str().unwrap().to_owned())
                    .collect()
            })
            .collect()
    }
}

/// Queued documents with these ids.
fn documents(ids: &[&str]) -> Vec<QueuedDocument> {
    ids.iter()
        .map(|id| {
            let mut doc = common::segment("productpage", &new_xray_trace_id(), 1.7e9);
            doc["id"] = json!(id);
            QueuedDocument {
                id: Some((*id).to_owned()),
                json: doc.to_string(),
            }
        })
        .collect()
}

/// Throttled, then a partial failure, then success: every retryable document arrives,
/// the invalid one is dropped once and never sent again.
#[tokio::test]
async fn retries_throttling_and_retryable_unprocessed_only() {
    let fake = FakeXray::start(vec![
        (
            400,
            json!({"__type": "ThrottledException", "message": "Rate exceeded"}),
        ),
        (
            200,
            json!({"UnprocessedTraceSegments": [
                {"Id": "000000000000000b", "ErrorCode": "InternalFailure", "Message": "try again"},
                {"Id": "000000000000000c", "ErrorCode": "MissingParam", "Message": "no name"},
            ]}),
        ),
        (200, json!({"UnprocessedTraceSegments": []})),
    ])
    .await;
    let metrics = Arc::new(Metrics::new());
    let uploader = fake.uploader(5, Arc::clone(&metrics));
    uploader
        .deliver(documents(&[
            "000000000000000a",
            "000000000000000b",
            "000000000000000c",
        ]))
        .await;

    let all = ["000000000000000a", "000000000000000b", "000000000000000c"];
    assert_eq!(
        fake.sent_ids(),
        [all.to_vec(), all.to_vec(), vec!["000000000000000b"]]
    );
    assert_eq!(metrics.sent.get(), 2);
    assert_eq!(metrics.retried.get(), 4);
    let text = metrics.encode();
    assert!(
        text.contains("meshray_relay_documents_failed_total{reason=\"rejected_by_xray\"} 1"),
        "{text}"
    );
}

/// A server that keeps failing: exactly `max_attempts` calls, then the documents are
/// counted as failed.
#[tokio::test]
async fn gives_up_after_max_attempts() {
    let fake = FakeXray::start(vec![(
        500,
        json!({"__type": "InternalFailure", "message": "boom"}),
    )])
    .await;
    let metrics = Arc::new(Metrics::new());
    fake.uploader(3, Arc::clone(&metrics))
        .deliver(documents(&["000000000000000a"]))
        .await;
    assert_eq!(fake.sent_ids().len(), 3);
    assert_eq!(metrics.sent.get(), 0);
    assert!(
        metrics
            .encode()
            .contains("meshray_relay_documents_failed_total{reason=\"retries_exhausted\"} 1")
    );
}

/// A permanent error is not retried at all.
#[tokio::test]
async fn invalid_request_is_sent_once() {
    let fake = FakeXray::start(vec![(
        400,
        json!({"__type": "InvalidRequestException", "message": "bad"}),
    )])
    .await;
    let metrics = Arc::new(Metrics::new());
    fake.uploader(5, Arc::clone(&metrics))
        .deliver(documents(&["000000000000000a", "000000000000000b"]))
        .await;
    assert_eq!(fake.sent_ids().len(), 1);
    assert!(
        metrics
            .encode()
            .contains("meshray_relay_documents_failed_total{reason=\"non_retryable\"} 2")
    );
}
