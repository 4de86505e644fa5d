//! The X-Ray API calls that read traces back: `GetTraceSummaries` over a time window lists
//! the trace ids, `BatchGetTraces` (5 ids per call) returns their documents.
//!
//! moto 5.2.5 answers `GetTraceSummaries` with `"Users": {}` where the API has a list,
//! which the Rust SDK refuses to deserialise; [`XrayApi::list_trace_ids`] then sends the
//! same operation as plain JSON and reads the ids from the raw answer (and keeps doing so).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_xray::primitives::DateTime;
use hyper::http::Method;
use meshray_core::trace::Trace;
use serde_json::Value;

use crate::error::{HarnessError, Result};
use crate::http::{HttpClient, header_map};
use crate::moto::{ACCESS_KEY_ID, REGION, sdk_error, xray_client};

/// `BatchGetTraces` accepts at most this many ids per call.
pub const MAX_BATCH_GET: usize = 5;
/// Timeout of the raw `GetTraceSummaries` call.
const RAW_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The X-Ray API the traces are read from: an SDK client plus its endpoint (for the raw
/// `GetTraceSummaries` fallback that moto needs).
#[derive(Debug, Clone)]
pub struct XrayApi {
    client: aws_sdk_xray::Client,
    endpoint: String,
    http: HttpClient,
    /// Set once the SDK failed to read a `GetTraceSummaries` answer: go raw from then on.
    summaries_need_raw: Arc<AtomicBool>,
}

impl XrayApi {
    /// The API at `endpoint` (e.g. `http://127.0.0.1:PORT`), with the harness's dummy
    /// credentials and region ([`crate::moto::xray_client`]).
    pub fn new(endpoint: &str) -> Self {
        Self {
            client: xray_client(endpoint),
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            http: HttpClient::new(),
            summaries_need_raw: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The SDK client.
    pub fn client(&self) -> &aws_sdk_xray::Client {
        &self.client
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Ids of the finished traces that started and ended within `[from, to]`
    /// (`GetTraceSummaries`, all pages).
    ///
    /// moto 5.2.5 answers `"Users": {}` where the API has a list, which the Rust SDK refuses
    /// to deserialise; when the SDK call fails, the same operation is sent as plain JSON
    /// (`POST /TraceSummaries`) and the ids are read from the raw answer.
    ///
    /// # Errors
    /// [`HarnessError::Xray`] when both the SDK call and the raw call fail.
    pub async fn list_trace_ids(&self, from: SystemTime, to: SystemTime) -> Result<Vec<String>> {
        let (from, to) = (epoch_secs(from), epoch_secs(to) + 1);
        let mut ids = if self.summaries_need_raw.load(Ordering::Relaxed) {
            self.list_raw(from, to).await?
        } else {
            match self.list_with_sdk(from, to).await {
                Ok(ids) => ids,
                Err(sdk_err) => {
                    let ids =
                        self.list_raw(from, to)
                            .await
                            .map_err(|raw_err| HarnessError::Xray {
                                operation: "GetTraceSummaries",
                                reason: format!("{sdk_err}; raw fallback: {raw_err}"),
                            })?;
                    self.summaries_need_raw.store(true, Ordering::Relaxed);
                    ids
                }
            }
        };
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    async fn list_with_sdk(&self, from: i64, to: i64) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let output = self
                .client
                .get_trace_summaries()
                .start_time(DateTime::from_secs(from))
                .end_time(DateTime::from_secs(to))
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|e| sdk_error("GetTraceSummaries", e))?;
            ids.extend(
                output
                    .trace_summaries()
                    .iter()
                    .filter_map(|s| s.id().map(str::to_owned)),
            );
            match output.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(ids),
            }
        }
    }

    async fn list_raw(&self, from: i64, to: i64) -> Result<Vec<String>> {
        let url = format!("{}/TraceSummaries", self.endpoint);
        // moto picks the service from the credential scope; it does not check signatures.
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/20000101/{REGION}/xray/aws4_request, \
             SignedHeaders=host, Signature=0"
        );
        let headers = header_map(&[
            ("content-type", "application/json"),
            ("authorization", &authorization),
        ])?;
        let mut ids = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let mut request = serde_json::json!({"StartTime": from, "EndTime": to});
            if let Some(token) = next_token.take() {
                request["NextToken"] = Value::String(token);
            }
            let body = bytes::Bytes::from(request.to_string());
            let response = self
                .http
                .send(Method::POST, &url, &headers, body, RAW_TIMEOUT)
                .await?;
            if response.status != 200 {
                return Err(HarnessError::unexpected(
                    format!("status of POST {url}"),
                    format!("{}: {}", response.status, response.text()),
                ));
            }
            let value: Value = serde_json::from_slice(&response.body).map_err(|e| {
                HarnessError::unexpected(format!("body of POST {url}"), e.to_string())
            })?;
            ids.extend(
                value["TraceSummaries"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s["Id"].as_str().map(str::to_owned)),
            );
            match value["NextToken"].as_str() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(ids),
            }
        }
    }

    /// The traces with `ids`, via `BatchGetTraces` in chunks of [`MAX_BATCH_GET`].
    ///
    /// # Errors
    /// [`HarnessError::Xray`] when a call fails; [`HarnessError::Unexpected`] for a document
    /// that is not JSON.
    pub async fn batch_get_traces(&self, ids: &[String]) -> Result<Vec<Trace>> {
        let mut traces = Vec::new();
        for chunk in ids.chunks(MAX_BATCH_GET) {
            let mut next_token: Option<String> = None;
            loop {
                let output = self
                    .client
                    .batch_get_traces()
                    .set_trace_ids(Some(chunk.to_vec()))
                    .set_next_token(next_token.take())
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchGetTraces", e))?;
                for trace in output.traces() {
                    let documents = trace.segments().iter().filter_map(|s| s.document());
                    traces.push(
                        Trace::parse(trace.id().unwrap_or_default(), documents).map_err(|e| {
                            HarnessError::unexpected("segment document", e.to_string())
                        })?,
                    );
                }
                match output.next_token() {
                    Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                    _ => break,
                }
            }
        }
        traces.sort_by(|a, b| a.start_time().total_cmp(&b.start_time()));
        Ok(traces)
    }

    /// Every trace in `[from, to]`.
    ///
    /// # Errors
    /// As [`XrayApi::list_trace_ids`] and [`XrayApi::batch_get_traces`].
    pub async fn fetch_traces(&self, from: SystemTime, to: SystemTime) -> Result<Vec<Trace>> {
        let ids = self.list_trace_ids(from, to).await?;
        self.batch_get_traces(&ids).await
    }
}

fn epoch_secs(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
