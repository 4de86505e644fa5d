//! Reading a time window back from an X-Ray API: `GetTraceSummaries` lists the trace ids
//! (all pages), `BatchGetTraces` returns their documents (at most 5 ids per call) and
//! `GetServiceGraph` the service graph X-Ray computed.
//!
//! moto 5.2.5 answers `GetTraceSummaries` with `"Users": {}` where the API has a list,
//! which the Rust SDK refuses to deserialise. When the SDK call fails and the API is a
//! local endpoint (`AWS_ENDPOINT_URL_XRAY`, plain HTTP), [`XrayReader::list_trace_ids`]
//! sends the same operation as plain JSON and reads the ids from the raw answer (and keeps
//! doing so). An SDK interceptor cannot repair the answer instead: at
//! `modify_before_deserialization` the body is still a stream. The raw request carries a
//! placeholder signature: moto does not check signatures, and real AWS, which does, never
//! needs the fallback.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_xray::primitives::DateTime;
use aws_sdk_xray::types::Service;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::http::{Method, Request};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use meshray_core::trace::Trace;
use serde_json::Value;

/// `BatchGetTraces` accepts at most this many ids per call.
pub const MAX_BATCH_GET: usize = 5;
/// Timeout of one raw `GetTraceSummaries` call.
const RAW_TIMEOUT: Duration = Duration::from_secs(10);

/// A failed read from the X-Ray API.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// An API call failed (the SDK's error with its whole source chain).
    #[error("X-Ray {operation} failed: {reason}")]
    Api {
        /// The operation, e.g. `BatchGetTraces`.
        operation: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// A stored document is not a JSON object.
    #[error("trace {trace_id}: {source}")]
    Document {
        /// The trace it belongs to.
        trace_id: String,
        /// The parse error, with the document's text.
        #[source]
        source: meshray_core::trace::DocumentParseError,
    },
}

/// Where the raw `GetTraceSummaries` fallback goes (a local X-Ray API such as moto).
#[derive(Debug, Clone)]
pub struct RawEndpoint {
    /// `http://host:port`, no trailing slash.
    pub url: String,
    /// The region of the credential scope (moto picks the service and region from it).
    pub region: String,
    /// The access key id of the credential scope (moto picks the account from it).
    pub access_key_id: String,
}

impl RawEndpoint {
    /// The fallback for a plain-HTTP endpoint; `None` for HTTPS (real AWS, which never
    /// needs it and would refuse the unsigned request).
    pub fn for_local(url: &str, region: &str, access_key_id: &str) -> Option<Self> {
        url.starts_with("http://").then(|| Self {
            url: url.trim_end_matches('/').to_owned(),
            region: region.to_owned(),
            access_key_id: access_key_id.to_owned(),
        })
    }
}

/// Reads traces and the service graph from one X-Ray API.
#[derive(Debug, Clone)]
pub struct XrayReader {
    client: aws_sdk_xray::Client,
    raw: Option<RawEndpoint>,
    http: HttpClient<HttpConnector, Full<Bytes>>,
    /// Set once the SDK failed to read a `GetTraceSummaries` answer: go raw from then on.
    summaries_need_raw: Arc<AtomicBool>,
}

impl XrayReader {
    /// A reader on `client`; `raw` enables moto's `GetTraceSummaries` fallback.
    pub fn new(client: aws_sdk_xray::Client, raw: Option<RawEndpoint>) -> Self {
        Self {
            client,
            raw,
            http: HttpClient::builder(TokioExecutor::new()).build_http(),
            summaries_need_raw: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The SDK client.
    pub fn client(&self) -> &aws_sdk_xray::Client {
        &self.client
    }

    /// Ids of the finished traces that started and ended within `[from, to]`
    /// (`GetTraceSummaries`, all pages), sorted and without duplicates.
    ///
    /// # Errors
    /// [`ReadError::Api`] when the SDK call fails and there is no raw fallback, or both fail.
    pub async fn list_trace_ids(
        &self,
        from: SystemTime,
        to: SystemTime,
    ) -> Result<Vec<String>, ReadError> {
        let (from, to) = (epoch_secs(from), epoch_secs(to) + 1);
        let mut ids = match (&self.raw, self.summaries_need_raw.load(Ordering::Relaxed)) {
            (Some(raw), true) => self.list_raw(raw, from, to).await?,
            (raw, _) => match self.list_with_sdk(from, to).await {
                Ok(ids) => ids,
                Err(sdk_err) => {
                    let Some(raw) = raw else { return Err(sdk_err) };
                    let ids = self.list_raw(raw, from, to).await.map_err(|raw_err| {
                        api_error(
                            "GetTraceSummaries",
                            format!("{sdk_err}; raw fallback: {raw_err}"),
                        )
                    })?;
                    self.summaries_need_raw.store(true, Ordering::Relaxed);
                    ids
                }
            },
        };
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    async fn list_with_sdk(&self, from: i64, to: i64) -> Result<Vec<String>, ReadError> {
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

    async fn list_raw(
        &self,
        raw: &RawEndpoint,
        from: i64,
        to: i64,
    ) -> Result<Vec<String>, ReadError> {
        let url = format!("{}/TraceSummaries", raw.url);
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/20000101/{}/xray/aws4_request, \
             SignedHeaders=host, Signature=0",
            raw.access_key_id, raw.region
        );
        let mut ids = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let mut body = serde_json::json!({"StartTime": from, "EndTime": to});
            if let Some(token) = next_token.take() {
                body["NextToken"] = Value::String(token);
            }
            let value = self.post_json(&url, &authorization, body).await?;
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

    async fn post_json(
        &self,
        url: &str,
        authorization: &str,
        body: Value,
    ) -> Result<Value, ReadError> {
        let fail = |reason: String| api_error("GetTraceSummaries", format!("POST {url}: {reason}"));
        let request = Request::builder()
            .method(Method::POST)
            .uri(url)
            .header("content-type", "application/json")
            .header("authorization", authorization)
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| fail(e.to_string()))?;
        let exchange = async {
            let response = self
                .http
                .request(request)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| fail(e.to_string()))?
                .to_bytes();
            if !status.is_success() {
                return Err(fail(format!(
                    "{status}: {}",
                    String::from_utf8_lossy(&body)
                )));
            }
            serde_json::from_slice(&body).map_err(|e| fail(format!("answer is not JSON: {e}")))
        };
        tokio::time::timeout(RAW_TIMEOUT, exchange)
            .await
            .map_err(|_| fail(format!("no answer within {RAW_TIMEOUT:?}")))?
    }

    /// The traces with `ids`, via `BatchGetTraces` in chunks of [`MAX_BATCH_GET`], oldest
    /// first. `progress` is called after each call with the number of traces read so far.
    ///
    /// # Errors
    /// [`ReadError::Api`] when a call fails; [`ReadError::Document`] for a document that is
    /// not a JSON object.
    pub async fn batch_get_traces_with_progress(
        &self,
        ids: &[String],
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<Trace>, ReadError> {
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
                    let id = trace.id().unwrap_or_default();
                    let documents = trace.segments().iter().filter_map(|s| s.document());
                    traces.push(Trace::parse(id, documents).map_err(|source| {
                        ReadError::Document {
                            trace_id: id.to_owned(),
                            source,
                        }
                    })?);
                }
                match output.next_token() {
                    Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                    _ => break,
                }
            }
            progress(traces.len());
        }
        traces.sort_by(|a, b| a.start_time().total_cmp(&b.start_time()));
        Ok(traces)
    }

    /// [`XrayReader::batch_get_traces_with_progress`] without progress reports.
    ///
    /// # Errors
    /// As [`XrayReader::batch_get_traces_with_progress`].
    pub async fn batch_get_traces(&self, ids: &[String]) -> Result<Vec<Trace>, ReadError> {
        self.batch_get_traces_with_progress(ids, |_| ()).await
    }

    /// Every trace in `[from, to]`.
    ///
    /// # Errors
    /// As [`XrayReader::list_trace_ids`] and [`XrayReader::batch_get_traces`].
    pub async fn fetch_traces(
        &self,
        from: SystemTime,
        to: SystemTime,
    ) -> Result<Vec<Trace>, ReadError> {
        let ids = self.list_trace_ids(from, to).await?;
        self.batch_get_traces(&ids).await
    }

    /// The services X-Ray computed for `[from, to]` (`GetServiceGraph`, all pages); empty
    /// when the API computes none (moto).
    ///
    /// # Errors
    /// [`ReadError::Api`] when a call fails.
    pub async fn service_graph(
        &self,
        from: SystemTime,
        to: SystemTime,
    ) -> Result<Vec<Service>, ReadError> {
        let mut services = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let output = self
                .client
                .get_service_graph()
                .start_time(DateTime::from_secs(epoch_secs(from)))
                .end_time(DateTime::from_secs(epoch_secs(to) + 1))
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|e| sdk_error("GetServiceGraph", e))?;
            services.extend(output.services().iter().cloned());
            match output.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(services),
            }
        }
    }
}

fn api_error(operation: &'static str, reason: String) -> ReadError {
    ReadError::Api { operation, reason }
}

/// Wraps an SDK error of `operation`, keeping its whole source chain in the message.
fn sdk_error<E>(operation: &'static str, err: E) -> ReadError
where
    E: std::error::Error + 'static,
{
    api_error(
        operation,
        aws_sdk_xray::error::DisplayErrorContext(err).to_string(),
    )
}

/// Whole seconds since the epoch (0 before it).
pub fn epoch_secs(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_fallback_only_for_plain_http() {
        let raw = RawEndpoint::for_local("http://127.0.0.1:5000/", "us-east-1", "k").unwrap();
        assert_eq!(raw.url, "http://127.0.0.1:5000");
        assert!(RawEndpoint::for_local("https://xray.us-east-1.amazonaws.com", "r", "k").is_none());
    }
}
