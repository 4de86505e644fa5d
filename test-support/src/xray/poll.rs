//! Polling the X-Ray API until what a test expects has arrived.
//!
//! [`wait_for_traces`] waits for a number of complete traces in a time window and, on
//! timeout, returns what it has so the failure can show it; [`wait_for_documents`] waits
//! for the documents of one known trace id.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use meshray_core::trace::Trace;
use serde_json::Value;

use super::api::XrayApi;
use crate::error::{HarnessError, Result};

/// How far around the expected times the summary window reaches (clock steps, epochs).
const WINDOW_SLACK: Duration = Duration::from_secs(120);
/// Poll period of [`wait_for_traces`].
const POLL_EVERY: Duration = Duration::from_millis(300);
/// Poll period of [`wait_for_documents`].
const POLL_ONE_EVERY: Duration = Duration::from_millis(100);

/// What [`wait_for_traces`] waits for.
#[derive(Debug, Clone, Copy)]
pub struct Expectation {
    /// At least this many traces …
    pub traces: usize,
    /// … each with at least this many top-level documents.
    pub documents_per_trace: usize,
}

/// What [`wait_for_traces`] found.
#[derive(Debug, Clone)]
pub struct Collected {
    /// The traces, oldest first.
    pub traces: Vec<Trace>,
    /// Whether the expectation was met (false: timed out).
    pub complete: bool,
    /// How long the wait took.
    pub waited: Duration,
    /// The last error from the API while polling, if any.
    pub last_error: Option<String>,
}

impl Collected {
    /// A description for failure messages: counts, documents per trace, the first traces.
    pub fn describe(&self) -> String {
        let sizes: Vec<usize> = self.traces.iter().map(|t| t.documents.len()).collect();
        let mut out = format!(
            "{} traces after {:.1?} (complete: {}), documents per trace: {sizes:?}\n",
            self.traces.len(),
            self.waited,
            self.complete
        );
        if let Some(err) = &self.last_error {
            out.push_str(&format!("last API error: {err}\n"));
        }
        for trace in self.traces.iter().take(3) {
            out.push_str(&trace.render());
        }
        if self.traces.len() > 3 {
            out.push_str(&format!("… and {} more traces\n", self.traces.len() - 3));
        }
        out
    }
}

/// Polls the X-Ray API until `expect` is met or `timeout` passes, for traces that started
/// after `since`. Once met, it waits `settle` more and fetches again, so late or extra
/// documents and traces show up in the result (tests that expect *exactly* N need that).
/// Never fails: errors while polling end up in [`Collected::last_error`].
pub async fn wait_for_traces(
    api: &XrayApi,
    since: SystemTime,
    expect: Expectation,
    timeout: Duration,
    settle: Duration,
) -> Collected {
    let started = Instant::now();
    let from = since.checked_sub(WINDOW_SLACK).unwrap_or(UNIX_EPOCH);
    let mut traces = Vec::new();
    let mut last_error = None;
    let mut complete = false;
    loop {
        let to = SystemTime::now() + WINDOW_SLACK;
        match api.fetch_traces(from, to).await {
            Ok(found) => traces = found,
            Err(err) => last_error = Some(err.to_string()),
        }
        let full = traces
            .iter()
            .filter(|t| t.documents.len() >= expect.documents_per_trace)
            .count();
        if full >= expect.traces {
            complete = true;
            break;
        }
        if started.elapsed() >= timeout {
            break;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    if complete && !settle.is_zero() {
        tokio::time::sleep(settle).await;
        match api
            .fetch_traces(from, SystemTime::now() + WINDOW_SLACK)
            .await
        {
            Ok(found) => traces = found,
            Err(err) => last_error = Some(err.to_string()),
        }
    }
    Collected {
        traces,
        complete,
        waited: started.elapsed(),
        last_error,
    }
}

/// Polls `BatchGetTraces` until trace `trace_id` has at least `count` documents, for up to
/// `timeout`; returns them as JSON.
///
/// # Errors
/// [`HarnessError::Timeout`] naming how many documents arrived (and the last API error).
pub async fn wait_for_documents(
    api: &XrayApi,
    trace_id: &str,
    count: usize,
    timeout: Duration,
) -> Result<Vec<Value>> {
    let started = Instant::now();
    let mut documents = Vec::new();
    let mut last_error = String::new();
    loop {
        match api.batch_get_traces(&[trace_id.to_owned()]).await {
            Ok(traces) => {
                documents = traces
                    .into_iter()
                    .filter(|t| t.id == trace_id)
                    .flat_map(|t| t.documents)
                    .map(|d| d.raw)
                    .collect();
            }
            Err(err) => last_error = format!("; last API error: {err}"),
        }
        if documents.len() >= count {
            return Ok(documents);
        }
        if started.elapsed() >= timeout {
            return Err(HarnessError::Timeout {
                what: format!(
                    "trace {trace_id} to have {count} documents in X-Ray (it has {}{last_error})",
                    documents.len()
                ),
                after: timeout,
            });
        }
        tokio::time::sleep(POLL_ONE_EVERY).await;
    }
}
