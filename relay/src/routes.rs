//! The HTTP endpoints: `POST /v1/segments`, `POST /api/v2/spans` (Zipkin), `POST /v1/traces`
//! (OTLP; both in [`crate::spans::endpoints`]), `GET /healthz`, `GET /readyz`, `GET /metrics`.
//!
//! Status codes of `POST /v1/segments`: 200 with `{"accepted":N,"rejected":[…]}` (bad
//! documents are listed, the others queued — a document nested deeper than
//! [`MAX_NESTING_DEPTH`](meshray_core::limits::MAX_NESTING_DEPTH) is such a document);
//! 400 when the body is not a JSON array; 413
//! when it exceeds the configured limit; 429 (queue full) or 503 (shutting down, epoch
//! cache down) with `Retry-After`. Every other answer is `{"error":"…"}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::de::IgnoredAny;
use serde_json::json;
use serde_json::value::RawValue;

use crate::body::BodyError;
use crate::ingest::{Ingest, IngestError};
use crate::metrics::{Metrics, endpoint, refuse, reject};
use crate::spans::endpoints::{OTLP_PATH, ZIPKIN_PATH, post_otlp, post_zipkin};

/// Path the meshray filter posts to.
pub const SEGMENTS_PATH: &str = "/v1/segments";
/// `Retry-After` seconds when the queue is full.
const RETRY_AFTER_FULL_SECS: u32 = 1;
/// `Retry-After` seconds while shutting down.
const RETRY_AFTER_DRAINING_SECS: u32 = 5;

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// Validation, epoch resolution, queue.
    pub ingest: Arc<Ingest>,
    /// Counters, encoded by `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Largest accepted body in bytes.
    pub max_body_bytes: usize,
    /// `false` once shutdown began: `/readyz` answers 503.
    pub ready: AtomicBool,
}

/// The relay's router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(SEGMENTS_PATH, post(post_segments))
        .route(ZIPKIN_PATH, post(post_zipkin))
        .route(OTLP_PATH, post(post_otlp))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(state)
}

/// `POST /v1/segments`.
async fn post_segments(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let bytes = match crate::body::read(&headers, body, state.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(e) => {
            refused_body(&state.metrics, endpoint::SEGMENTS, &e);
            return body_error(&e);
        }
    };
    let malformed = |message: String| {
        state
            .metrics
            .endpoint_rejected(endpoint::SEGMENTS, refuse::MALFORMED, 1);
        error(StatusCode::BAD_REQUEST, message)
    };
    // Each document is kept as its text, borrowed from the body; only what is checked
    // is parsed (ingest).
    // The body is read without a depth limit (each document's text is skipped over
    // without recursion, in memory bounded by the body); a document nested too deep is
    // refused on its own by validation.
    let documents = match serde_json::from_slice::<Vec<&RawValue>>(&bytes) {
        Ok(documents) => documents,
        Err(e) => return malformed(body_fault(&bytes, &e)),
    };
    let count = documents.len();
    match state.ingest.submit(&documents).await {
        Ok(report) => {
            state.metrics.endpoint_received(endpoint::SEGMENTS, count);
            state.metrics.endpoint_rejected(
                endpoint::SEGMENTS,
                reject::INVALID,
                report.rejected.len(),
            );
            (StatusCode::OK, Json(report)).into_response()
        }
        Err(e) => {
            state.metrics.endpoint_received(endpoint::SEGMENTS, count);
            state
                .metrics
                .endpoint_rejected(endpoint::SEGMENTS, e.reason(), count);
            let (status, retry_after) = refusal(&e);
            with_retry_after(error(status, e.to_string()), retry_after)
        }
    }
}

/// Why a `/v1/segments` body could not be read as an array of documents: not JSON (a
/// syntax fault, such as invalid UTF-8 in a string, or an early end), or JSON of
/// another shape.
fn body_fault(bytes: &[u8], error: &serde_json::Error) -> String {
    let not_json = |e: &serde_json::Error| format!("the body is not valid JSON: {e}");
    if !error.is_data() {
        return not_json(error);
    }
    // Refused for its shape, perhaps before the parser saw the rest: is the rest JSON?
    match serde_json::from_slice::<IgnoredAny>(bytes) {
        Ok(_) => "the body must be a JSON array of X-Ray segment documents".to_owned(),
        Err(e) => not_json(&e),
    }
}

/// Status and `Retry-After` seconds of a batch refused as a whole.
pub fn refusal(e: &IngestError) -> (StatusCode, Option<u32>) {
    match e {
        IngestError::QueueFull { .. } => {
            (StatusCode::TOO_MANY_REQUESTS, Some(RETRY_AFTER_FULL_SECS))
        }
        IngestError::BatchLargerThanQueue { .. } => (StatusCode::PAYLOAD_TOO_LARGE, None),
        IngestError::Draining => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some(RETRY_AFTER_DRAINING_SECS),
        ),
    }
}

/// Adds `Retry-After` when there is one.
pub fn with_retry_after(mut response: Response, retry_after: Option<u32>) -> Response {
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// `GET /healthz`: the process is up.
async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// `GET /readyz`: 200 while taking documents, 503 once shutdown began.
async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.ready.load(Ordering::SeqCst) && !state.ingest.is_draining() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    }
}

/// `GET /metrics`: Prometheus/OpenMetrics text.
async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let depth = state.ingest.queue().depth();
    state
        .metrics
        .queue_depth
        .set(i64::try_from(depth).unwrap_or(i64::MAX));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// Any other path.
async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!(
            "no such endpoint; the relay serves POST {SEGMENTS_PATH}, POST {ZIPKIN_PATH}, POST {OTLP_PATH}, GET /healthz, GET /readyz, GET /metrics"
        ),
    )
}

/// Counts a body that could not be read (one refused request: its items are unknown).
pub fn refused_body(metrics: &Metrics, endpoint: &'static str, e: &BodyError) {
    let reason = match e {
        BodyError::TooLarge { .. } => refuse::TOO_LARGE,
        _ => refuse::MALFORMED,
    };
    metrics.endpoint_rejected(endpoint, reason, 1);
}

/// The status a body error is answered with.
pub fn body_error_status(e: &BodyError) -> StatusCode {
    match e {
        BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        BodyError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        BodyError::Read(_) | BodyError::Gzip(_) => StatusCode::BAD_REQUEST,
    }
}

/// A body error as `{"error": …}`.
fn body_error(e: &BodyError) -> Response {
    error(body_error_status(e), e.to_string())
}

/// `{"error": message}` with `status`.
pub fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}
