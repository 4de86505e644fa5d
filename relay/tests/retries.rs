//! The upload attempt loop against a scripted fake X-Ray in this process: throttling is
//! retried, only retryable `UnprocessedTraceSegments` are sent again, permanent ones are
//! dropped and counted, and retries are bounded in time (`--retry-for`).

// Test helpers outside `#[test]` functions: a failed unwrap here is a failed test with a
// clear location, as clippy.toml allows inside tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::let_underscore_must_use
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::fake_xray::FakeXray;
use meshray_relay::metrics::Metrics;
use meshray_relay::queue::QueuedDocument;
use meshray_relay::xray::{client, service::XrayService, upload::XrayUploader};
use meshray_test_support::ids::new_xray_trace_id;
use meshray_test_support::moto::sdk_config;
use serde_json::json;

/// An uploader on `fake` retrying for `retry_for`.
fn uploader(fake: &FakeXray, retry_for: Duration, metrics: Arc<Metrics>) -> XrayUploader {
    let client = client::build(&sdk_config(&fake.endpoint)).unwrap();
    XrayUploader::new(XrayService::new(client), retry_for, metrics)
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
    let uploader = uploader(&fake, Duration::from_secs(30), Arc::clone(&metrics));
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

/// A server that keeps failing: retried until the budget would be exceeded (at least
/// once: the first backoff is at most 200 ms of the 1 s budget), then the documents are
/// counted as failed.
#[tokio::test]
async fn gives_up_after_the_retry_budget() {
    let fake = FakeXray::start(vec![(
        500,
        json!({"__type": "InternalFailure", "message": "boom"}),
    )])
    .await;
    let metrics = Arc::new(Metrics::new());
    uploader(&fake, Duration::from_secs(1), Arc::clone(&metrics))
        .deliver(documents(&["000000000000000a"]))
        .await;
    let attempts = fake.sent_ids().len();
    assert!(attempts >= 2, "retried {attempts} times");
    assert_eq!(metrics.retried.get(), attempts as u64 - 1);
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
    uploader(&fake, Duration::from_secs(30), Arc::clone(&metrics))
        .deliver(documents(&["000000000000000a", "000000000000000b"]))
        .await;
    assert_eq!(fake.sent_ids().len(), 1);
    assert!(
        metrics
            .encode()
            .contains("meshray_relay_documents_failed_total{reason=\"non_retryable\"} 2")
    );
}

/// The relay writes the `PutTraceSegments` body itself: the SDK signs exactly those bytes
/// (the fake checks SigV4 like X-Ray and answers 403 otherwise), also on a retry and for
/// a document whose text needs escaping (quotes, backslashes, control characters,
/// non-ASCII), and X-Ray reads back the document as it was queued.
#[tokio::test]
async fn requests_are_signed_over_the_body_the_relay_wrote() {
    let fake = FakeXray::start(vec![
        (
            400,
            json!({"__type": "ThrottledException", "message": "Rate exceeded"}),
        ),
        (200, json!({"UnprocessedTraceSegments": []})),
    ])
    .await;
    let metrics = Arc::new(Metrics::new());
    let uploader = uploader(&fake, Duration::from_secs(30), Arc::clone(&metrics));
    let mut queued = documents(&["000000000000000a", "000000000000000b"]);
    let mut awkward = common::segment("productpage", &new_xray_trace_id(), 1.7e9);
    awkward["id"] = json!("000000000000000c");
    awkward["annotations"] = json!({"path": "/a\"b\\c\n\t\u{1}é✓"});
    queued.push(QueuedDocument {
        id: Some("000000000000000c".to_owned()),
        json: awkward.to_string(),
    });
    uploader.deliver(queued).await;

    assert_eq!(fake.bad_signatures(), Vec::<String>::new());
    let seen = fake.seen();
    assert_eq!(seen.len(), 2, "the throttled call and its retry");
    assert_eq!(seen[1].documents[2], awkward);
    assert_eq!(metrics.sent.get(), 3);
}
