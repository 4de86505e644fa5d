//! The HTTP endpoints: `POST /v1/segments`, `GET /healthz`, `GET /readyz`, `GET /metrics`.
//!
//! Status codes of `POST /v1/segments`: 200 with `{"accepted":N,"rejected":[…]}` (bad
//! documents are listed, the others queued); 400 when the body is not a JSON array; 413
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
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{Value, json};

use crate::ingest::{Ingest, IngestError};
use crate::metrics::Metrics;

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
    let max = state.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > crate::metrics::as_u64(max)) {
        return too_large(max);
    }
    let bytes = match Limited::new(body, max).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return too_large(max),
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("could not read the request body: {e}"),
            );
        }
    };
    let documents = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Array(documents)) => documents,
        Ok(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "the body must be a JSON array of X-Ray segment documents".to_owned(),
            );
        }
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not valid JSON: {e}"),
            );
        }
    };
    match state.ingest.submit(documents).await {
        Ok(report) => (StatusCode::OK, Json(report)).into_response(),
        Err(e) => {
            let (status, retry_after) = match &e {
                IngestError::QueueFull { .. } => {
                    (StatusCode::TOO_MANY_REQUESTS, Some(RETRY_AFTER_FULL_SECS))
                }
                IngestError::BatchLargerThanQueue { .. } => (StatusCode::PAYLOAD_TOO_LARGE, None),
                IngestError::Draining => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some(RETRY_AFTER_DRAINING_SECS),
                ),
            };
            let mut response = error(status, e.to_string());
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            response
        }
    }
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
            "no such endpoint; the relay serves POST {SEGMENTS_PATH}, GET /healthz, GET /readyz, GET /metrics"
        ),
    )
}

/// 413 naming the limit.
fn too_large(max: usize) -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is larger than {max} bytes (--max-body); send smaller batches"),
    )
}

/// `{"error": message}` with `status`.
fn error(status: StatusCode, message: String) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}
