//! `POST /api/v2/spans` (Zipkin v2 JSON) and `POST /v1/traces` (OTLP/HTTP).
//!
//! Both read the body (gzip accepted, `--max-body` on the wire and inflated), decode it,
//! map every span and submit the documents as one batch.
//!
//! Zipkin answers (Envoy's tracer expects 202): `202 {"accepted":N,"rejected":[…]}`;
//! `400` when the body is not a JSON array of spans or no span in it is usable; `413`;
//! `415` for an encoding other than gzip or a non-JSON content type; `429`/`503` with
//! `Retry-After` when the batch cannot be queued.
//!
//! OTLP answers as the OTLP/HTTP specification says, in the request's encoding:
//! `200` with an `ExportTraceServiceResponse` whose `partial_success` counts the rejected
//! spans and says why; `400` with a `google.rpc.Status` when the body does not decode;
//! `413`, `415`; `429`/`503` with `Retry-After` (retryable).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use tracing::debug;

use super::model::DecodedSpans;
use super::otlp::{self, Encoding};
use super::{SpanReport, submit, zipkin};
use crate::body;
use crate::metrics::{Metrics, endpoint, refuse, reject};
use crate::routes::{AppState, body_error_status, error, refusal, refused_body, with_retry_after};

/// Path Envoy's Zipkin tracer posts to (`collector_endpoint`).
pub const ZIPKIN_PATH: &str = "/api/v2/spans";
/// Path of OTLP/HTTP traces.
pub const OTLP_PATH: &str = "/v1/traces";
/// Rejection reasons quoted in an OTLP partial success message.
const MAX_REASONS_QUOTED: usize = 3;

// === Zipkin ===

/// `POST /api/v2/spans`.
pub async fn post_zipkin(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let content_type = content_type(&headers);
    if !(content_type.is_empty() || content_type.starts_with("application/json")) {
        state
            .metrics
            .endpoint_rejected(endpoint::ZIPKIN, refuse::MALFORMED, 1);
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "content-type {content_type:?} is not supported; send Zipkin v2 JSON (application/json)"
            ),
        );
    }
    let bytes = match body::read(&headers, body, state.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(e) => {
            refused_body(&state.metrics, endpoint::ZIPKIN, &e);
            return error(body_error_status(&e), e.to_string());
        }
    };
    let decoded = match zipkin::decode(&bytes) {
        Ok(decoded) => decoded,
        Err(e) => {
            state
                .metrics
                .endpoint_rejected(endpoint::ZIPKIN, refuse::MALFORMED, 1);
            return error(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    match ingest(&state, endpoint::ZIPKIN, decoded).await {
        Ok(report) if report.accepted == 0 && !report.rejected.is_empty() => {
            (StatusCode::BAD_REQUEST, Json(report)).into_response()
        }
        Ok(report) => (StatusCode::ACCEPTED, Json(report)).into_response(),
        Err((status, retry_after, message)) => {
            with_retry_after(error(status, message), retry_after)
        }
    }
}

// === OTLP ===

/// `POST /v1/traces`.
pub async fn post_otlp(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let content_type = content_type(&headers);
    let Some(encoding) = Encoding::from_content_type(&content_type) else {
        state
            .metrics
            .endpoint_rejected(endpoint::OTLP, refuse::MALFORMED, 1);
        return rpc_status(
            Encoding::Json,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "content-type {content_type:?} is not supported; send application/x-protobuf or application/json"
            ),
        );
    };
    let bytes = match body::read(&headers, body, state.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(e) => {
            refused_body(&state.metrics, endpoint::OTLP, &e);
            return rpc_status(encoding, body_error_status(&e), e.to_string());
        }
    };
    let decoded = match otlp::decode(&bytes, encoding) {
        Ok(decoded) => decoded,
        Err(e) => {
            state
                .metrics
                .endpoint_rejected(endpoint::OTLP, refuse::MALFORMED, 1);
            return rpc_status(encoding, StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    match ingest(&state, endpoint::OTLP, decoded).await {
        Ok(report) => {
            let partial_success =
                (!report.rejected.is_empty()).then(|| ExportTracePartialSuccess {
                    rejected_spans: i64::try_from(report.rejected.len()).unwrap_or(i64::MAX),
                    error_message: partial_success_message(&report),
                });
            let answer = ExportTraceServiceResponse { partial_success };
            encoded(encoding, StatusCode::OK, &answer)
        }
        Err((status, retry_after, message)) => {
            with_retry_after(rpc_status(encoding, status, message), retry_after)
        }
    }
}

/// `rejected_spans` says how many; the message says why, quoting the first few.
fn partial_success_message(report: &SpanReport) -> String {
    let quoted: Vec<String> = report
        .rejected
        .iter()
        .take(MAX_REASONS_QUOTED)
        .map(ToString::to_string)
        .collect();
    let more = report.rejected.len().saturating_sub(MAX_REASONS_QUOTED);
    if more > 0 {
        format!("{}; and {more} more", quoted.join("; "))
    } else {
        quoted.join("; ")
    }
}

/// `google.rpc.Status`, the error body OTLP/HTTP specifies (code and message only).
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
struct RpcStatus {
    /// A `google.rpc.Code`.
    #[prost(int32, tag = "1")]
    code: i32,
    /// What went wrong.
    #[prost(string, tag = "2")]
    message: String,
}

/// An error answer in the request's encoding.
fn rpc_status(encoding: Encoding, status: StatusCode, message: String) -> Response {
    // google.rpc.Code: INVALID_ARGUMENT 3, RESOURCE_EXHAUSTED 8, UNAVAILABLE 14.
    let code = match status {
        StatusCode::TOO_MANY_REQUESTS | StatusCode::PAYLOAD_TOO_LARGE => 8,
        StatusCode::SERVICE_UNAVAILABLE => 14,
        _ => 3,
    };
    encoded(encoding, status, &RpcStatus { code, message })
}

/// `message` as protobuf or JSON with `status`.
fn encoded<M: Message + serde::Serialize>(
    encoding: Encoding,
    status: StatusCode,
    message: &M,
) -> Response {
    let body = match encoding {
        Encoding::Protobuf => message.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(message).unwrap_or_default(),
    };
    (
        status,
        [(header::CONTENT_TYPE, encoding.content_type())],
        body,
    )
        .into_response()
}

// === Shared ===

/// Submits decoded spans and counts them for `endpoint`; a refused batch comes back as
/// status, `Retry-After` and message.
async fn ingest(
    state: &AppState,
    endpoint: &'static str,
    decoded: DecodedSpans,
) -> Result<SpanReport, (StatusCode, Option<u32>, String)> {
    let metrics: &Metrics = &state.metrics;
    let total = decoded.spans.len() + decoded.rejected.len();
    metrics.endpoint_received(endpoint, total);
    match submit(&state.ingest, decoded).await {
        Ok(report) => {
            metrics.endpoint_rejected(endpoint, reject::INVALID, report.rejected.len());
            if let Some(first) = report.rejected.first() {
                debug!(endpoint, rejected = report.rejected.len(), first = %first, "Refused spans.");
            }
            Ok(report)
        }
        Err(e) => {
            metrics.endpoint_rejected(endpoint, e.reason(), total);
            let (status, retry_after) = refusal(&e);
            Err((status, retry_after, e.to_string()))
        }
    }
}

/// The request's content type, lowercased.
fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}
