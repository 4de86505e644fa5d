//! Targets for the relay's ingest: HTTP bodies through its real router (validation,
//! epoch resolution, queueing) — X-Ray segments, Zipkin v2, OTLP protobuf and JSON —
//! and daemon UDP frames.

use std::num::NonZeroUsize;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use meshray_core::limits::MAX_NESTING_DEPTH;
use meshray_core::validate::nesting::text_nests_deeper_than;
use meshray_core::validate::{
    DocumentError, DocumentText, read_batch, validate_document, validate_json,
};
use meshray_relay::daemon::parse_datagram;
use meshray_relay::epoch_cache::memory::MemoryEpochCache;
use meshray_relay::ingest::Ingest;
use meshray_relay::metrics::Metrics;
use meshray_relay::queue::{self, QueueReceiver};
use meshray_relay::routes::{self, AppState};
use meshray_relay::spans::endpoints::{OTLP_PATH, ZIPKIN_PATH};
use serde_json::Value;
use serde_json::value::RawValue;
use tower::ServiceExt;

/// Largest body the fuzzed relay takes (its default is larger; small keeps runs fast
/// and still reaches the 413 path).
const MAX_BODY_BYTES: usize = 256 * 1024;
/// Queue slots: more than a fuzz input holds documents, fewer than some batches.
const QUEUE_CAPACITY: usize = 1_000;

/// One runtime for all runs (building one per input would dominate the run time).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => unreachable_runtime(&e),
        }
    })
}

/// A fuzz harness without a runtime cannot run at all; say why.
#[allow(clippy::panic)]
fn unreachable_runtime(error: &std::io::Error) -> ! {
    panic!("cannot build a tokio runtime for the fuzz target: {error}")
}

/// A fresh relay front end: router, ingest, queue and in-memory epoch cache.
fn relay() -> (axum::Router, QueueReceiver) {
    let metrics = Arc::new(Metrics::new());
    let (queue_tx, queue_rx) = queue::channel(QUEUE_CAPACITY);
    let capacity = NonZeroUsize::MIN.saturating_add(63);
    let cache = Arc::new(MemoryEpochCache::new(capacity, Duration::from_secs(300)));
    let ingest = Arc::new(Ingest::new(queue_tx, cache, Arc::clone(&metrics)));
    let state = Arc::new(AppState {
        ingest,
        metrics,
        max_body_bytes: MAX_BODY_BYTES,
        ready: AtomicBool::new(true),
    });
    (routes::router(state), queue_rx)
}

/// What the relay answered, and what it queued.
struct Answer {
    /// Response status.
    status: StatusCode,
    /// Response body.
    body: Vec<u8>,
    /// The queued documents' JSON.
    queued: Vec<String>,
}

/// Sends one POST with `body` to `path` and collects the answer.
fn post(path: &str, content_type: &str, body: &[u8]) -> Option<Answer> {
    runtime().block_on(async {
        let (router, mut queued_rx) = relay();
        let request = Request::post(path)
            .header("content-type", content_type)
            .body(Body::from(body.to_vec()))
            .ok()?;
        let response = router.oneshot(request).await.ok()?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .ok()?
            .to_bytes()
            .to_vec();
        let mut queued = Vec::new();
        while let Ok(document) = queued_rx.try_recv() {
            queued.push(document.json);
        }
        Some(Answer {
            status,
            body,
            queued,
        })
    })
}

/// A `POST /v1/segments` body.
///
/// Checks: the relay's one-pass body reader finds what a full parse finds; the answer is
/// 200, 400, 413 or 429 — never a 5xx; with 200, every element
/// of the array is either accepted or rejected with its index (none lost, none twice),
/// and exactly the accepted ones were queued, each a document the relay's own
/// validation accepts again (what X-Ray gets is valid).
pub fn segments(data: &[u8]) {
    // The relay's one-pass reader finds exactly the documents serde_json's full parse of
    // the array finds, or leaves the body to that parse.
    if let Some(documents) = read_batch(data) {
        let texts: Vec<&str> = documents.iter().map(DocumentText::text).collect();
        let parsed = serde_json::from_slice::<Vec<&RawValue>>(data)
            .map(|all| all.iter().map(|raw| raw.get()).collect::<Vec<_>>());
        assert_eq!(parsed.ok(), Some(texts), "the one-pass reader disagrees");
    }
    let Some(answer) = post(routes::SEGMENTS_PATH, "application/json", data) else {
        return;
    };
    check_status(&answer, StatusCode::OK);
    if answer.status != StatusCode::OK {
        return;
    }
    let sent = array_elements(data);
    assert!(sent.is_some(), "200 for a body that is not a JSON array");
    let sent = sent.unwrap_or_default();
    let report = serde_json::from_slice::<Value>(&answer.body).unwrap_or_default();
    let accepted = report["accepted"].as_u64().unwrap_or(u64::MAX);
    let rejected: Vec<u64> = report["rejected"]
        .as_array()
        .map(|r| r.iter().filter_map(|e| e["index"].as_u64()).collect())
        .unwrap_or_default();
    let mut indexes = rejected.clone();
    indexes.dedup();
    assert_eq!(
        indexes, rejected,
        "rejections out of order or repeated: {report}"
    );
    assert_eq!(
        usize::try_from(accepted).ok().map(|a| a + rejected.len()),
        Some(sent),
        "documents unaccounted for: {report}"
    );
    assert_eq!(
        answer.queued.len(),
        usize::try_from(accepted).unwrap_or(usize::MAX)
    );
    queued_documents_are_valid(&answer);
}

/// A daemon UDP datagram (`{"format":"json","version":1}\n{document}`).
///
/// Checks: a datagram that parses is validated like any document, and the relay's fast
/// path (checking the document's text) judges it exactly as the full parse does; a
/// document the tree parser cannot build is refused for its depth when it nests deeper
/// than the relay's limit, and otherwise (a number beyond `f64` in a field the relay does
/// not read) either kept as it came or refused as not JSON; one that does not parse is
/// refused with a message; none panics.
pub fn daemon_datagram(data: &[u8]) {
    match parse_datagram(data) {
        Ok(document) => {
            let fast = validate_json(&document);
            match serde_json::from_str::<Value>(document.get()) {
                Ok(value) => assert_eq!(
                    fast.as_ref().map(|_| ()).map_err(ToString::to_string),
                    validate_document(value)
                        .as_ref()
                        .map(|_| ())
                        .map_err(ToString::to_string),
                    "the text path and the tree path disagree on {}",
                    document.get()
                ),
                Err(parse) if text_nests_deeper_than(document.get(), MAX_NESTING_DEPTH) => {
                    assert_eq!(
                        fast.as_ref().err(),
                        Some(&DocumentError::TooDeep),
                        "{parse}"
                    );
                }
                Err(parse) => match &fast {
                    Ok(kept) => assert!(kept.is_unchanged_text(), "{parse}"),
                    Err(refused) => assert_eq!(
                        refused,
                        &DocumentError::NotJson(parse.to_string()),
                        "{}",
                        document.get()
                    ),
                },
            }
            if let Err(error) = fast {
                assert!(!error.to_string().is_empty());
            }
        }
        Err(error) => assert!(!error.to_string().is_empty()),
    }
}

/// Checks the answer is `success` or a 4xx the relay uses for bad or unwelcome bodies
/// (400, 413, 429) — never a 5xx — and that a refused body queued nothing.
fn check_status(answer: &Answer, success: StatusCode) {
    let allowed = [
        success,
        StatusCode::BAD_REQUEST,
        StatusCode::PAYLOAD_TOO_LARGE,
        StatusCode::TOO_MANY_REQUESTS,
    ];
    assert!(
        allowed.contains(&answer.status),
        "status {} for {:?}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    if answer.status != success {
        assert!(answer.queued.is_empty(), "a refused body queued documents");
    }
}

/// The number of elements of a JSON array body, counted as the relay reads the array:
/// element by element and without a depth limit, so an element no tree can hold (nested
/// too deep, a number beyond `f64`) is one element, refused on its own. `None` when the
/// body is not a JSON array.
fn array_elements(data: &[u8]) -> Option<usize> {
    serde_json::from_slice::<Vec<&RawValue>>(data)
        .ok()
        .map(|body| body.len())
}

/// Checks every queued document is one the relay's validation accepts again.
fn queued_documents_are_valid(answer: &Answer) {
    for json in &answer.queued {
        let value = serde_json::from_str::<Value>(json).unwrap_or_default();
        assert!(
            validate_document(value).is_ok(),
            "queued an invalid document: {json}"
        );
    }
}

/// A Zipkin v2 JSON body at `POST /api/v2/spans`, as Envoy's Zipkin tracer posts it.
///
/// Checks: 202, 400, 413 or 429 — never a 5xx; with 202, every span is accepted or
/// rejected with its index; what was queued is valid.
pub fn zipkin(data: &[u8]) {
    let Some(answer) = post(ZIPKIN_PATH, "application/json", data) else {
        return;
    };
    check_status(&answer, StatusCode::ACCEPTED);
    if answer.status == StatusCode::ACCEPTED {
        let spans = array_elements(data);
        let report = serde_json::from_slice::<Value>(&answer.body).unwrap_or_default();
        let accepted = report["accepted"]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok());
        let rejected = report["rejected"].as_array().map(Vec::len);
        assert_eq!(
            accepted.zip(rejected).map(|(a, r)| a + r),
            spans,
            "spans unaccounted for: {report}"
        );
    }
    queued_documents_are_valid(&answer);
}

/// An OTLP/HTTP protobuf body at `POST /v1/traces`, as Envoy's OpenTelemetry tracer
/// posts it.
///
/// Checks: 200, 400, 413 or 429 — never a 5xx; what was queued is valid.
pub fn otlp_protobuf(data: &[u8]) {
    otlp(data, "application/x-protobuf");
}

/// An OTLP/HTTP JSON body at `POST /v1/traces`. Same checks as [`otlp_protobuf`].
pub fn otlp_json(data: &[u8]) {
    otlp(data, "application/json");
}

/// One OTLP body with `content_type`.
fn otlp(data: &[u8], content_type: &str) {
    let Some(answer) = post(OTLP_PATH, content_type, data) else {
        return;
    };
    check_status(&answer, StatusCode::OK);
    queued_documents_are_valid(&answer);
}
