//! The X-Ray API calls that read traces back: `GetTraceSummaries` over a time window lists
//! the trace ids, `BatchGetTraces` (5 ids per call) returns their documents.
//!
//! The reading itself, moto's `GetTraceSummaries` workaround included, is the `meshray`
//! CLI's [`XrayReader`]; [`XrayApi`] puts it on the harness's client (dummy credentials,
//! retries off: the tests poll) and turns its errors into [`HarnessError`]s.

use std::time::SystemTime;

use meshray_cli::xray::{RawEndpoint, ReadError, XrayReader};
use meshray_core::trace::Trace;

use crate::error::{HarnessError, Result};
use crate::moto::{ACCESS_KEY_ID, REGION, xray_client};

pub use meshray_cli::xray::MAX_BATCH_GET;

/// The X-Ray API the traces are read from.
#[derive(Debug, Clone)]
pub struct XrayApi {
    reader: XrayReader,
    endpoint: String,
}

impl From<ReadError> for HarnessError {
    fn from(err: ReadError) -> Self {
        match err {
            ReadError::Api { operation, reason } => HarnessError::Xray { operation, reason },
            ReadError::Document { .. } => {
                HarnessError::unexpected("segment document", err.to_string())
            }
        }
    }
}

impl XrayApi {
    /// The API at `endpoint` (e.g. `http://127.0.0.1:PORT`), with the harness's dummy
    /// credentials and region ([`crate::moto::xray_client`]).
    pub fn new(endpoint: &str) -> Self {
        Self {
            reader: XrayReader::new(
                xray_client(endpoint),
                RawEndpoint::for_local(endpoint, REGION, ACCESS_KEY_ID),
            ),
            endpoint: endpoint.trim_end_matches('/').to_owned(),
        }
    }

    /// The SDK client.
    pub fn client(&self) -> &aws_sdk_xray::Client {
        self.reader.client()
    }

    /// The CLI's reader on this API (what `meshray view` reads with).
    pub fn reader(&self) -> &XrayReader {
        &self.reader
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Ids of the finished traces that started and ended within `[from, to]`
    /// (`GetTraceSummaries`, all pages; see [`XrayReader::list_trace_ids`]).
    ///
    /// # Errors
    /// [`HarnessError::Xray`] when both the SDK call and the raw call fail.
    pub async fn list_trace_ids(&self, from: SystemTime, to: SystemTime) -> Result<Vec<String>> {
        Ok(self.reader.list_trace_ids(from, to).await?)
    }

    /// The traces with `ids`, via `BatchGetTraces` in chunks of [`MAX_BATCH_GET`].
    ///
    /// # Errors
    /// [`HarnessError::Xray`] when a call fails; [`HarnessError::Unexpected`] for a document
    /// that is not JSON.
    pub async fn batch_get_traces(&self, ids: &[String]) -> Result<Vec<Trace>> {
        Ok(self.reader.batch_get_traces(ids).await?)
    }

    /// Every trace in `[from, to]`.
    ///
    /// # Errors
    /// As [`XrayApi::list_trace_ids`] and [`XrayApi::batch_get_traces`].
    pub async fn fetch_traces(&self, from: SystemTime, to: SystemTime) -> Result<Vec<Trace>> {
        Ok(self.reader.fetch_traces(from, to).await?)
    }
}
