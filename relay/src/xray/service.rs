//! The `PutTraceSegments` call and its error type.
//!
//! A call can fail as a whole ([`XrayError`]) or succeed with some documents listed in
//! `UnprocessedTraceSegments` ([`Unprocessed`]): a partial failure the caller handles.

use aws_sdk_xray::Client;
use aws_sdk_xray::config::http::HttpResponse;
use aws_sdk_xray::error::SdkError;
use aws_sdk_xray::operation::put_trace_segments::PutTraceSegmentsError;
use aws_smithy_types::error::display::DisplayErrorContext;

use super::request_builder;
use crate::queue::QueuedDocument;

/// A failed X-Ray call; one variant per operation the relay makes.
#[derive(Debug, thiserror::Error)]
pub enum XrayError {
    /// `PutTraceSegments` failed as a whole.
    #[error("PutTraceSegments failed: {}", DisplayErrorContext(.0))]
    Put(#[from] SdkError<PutTraceSegmentsError, HttpResponse>),
}

/// A document X-Ray did not take, as listed in `UnprocessedTraceSegments`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unprocessed {
    /// The document's `id`.
    pub id: Option<String>,
    /// X-Ray's error code, e.g. `MissingParam`.
    pub error_code: Option<String>,
    /// X-Ray's message.
    pub message: Option<String>,
}

/// Sends documents to X-Ray.
#[derive(Debug, Clone)]
pub struct XrayService {
    /// The SDK client (SDK retries off).
    client: Client,
}

impl XrayService {
    /// A service on `client`.
    pub fn new(client: Client) -> Self {
        XrayService { client }
    }

    /// Sends one request of at most 50 documents.
    ///
    /// # Errors
    /// [`XrayError::Put`] when the call failed as a whole; documents X-Ray refused one by
    /// one are returned as [`Unprocessed`] instead.
    pub async fn put(&self, documents: &[QueuedDocument]) -> Result<Vec<Unprocessed>, XrayError> {
        let output = request_builder::send(&self.client, documents).await?;
        Ok(output
            .unprocessed_trace_segments()
            .iter()
            .map(|u| Unprocessed {
                id: u.id().map(str::to_owned),
                error_code: u.error_code().map(str::to_owned),
                message: u.message().map(str::to_owned),
            })
            .collect())
    }
}
