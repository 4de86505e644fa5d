//! The attempt loop for one batch: send, then retry what is worth retrying.
//!
//! A call that fails as a whole is retried when [`classify`] says so. A call that
//! succeeds with `UnprocessedTraceSegments` sends again only the documents whose error
//! code is retryable ([`classify_unprocessed`]); the others are logged and counted as
//! failed. Retries are bounded in time (`--retry-for`), with full-jitter backoff between
//! them: an X-Ray outage shorter than the budget loses nothing (while an uploader
//! retries, the queue fills and senders are told 429, keeping their documents), and
//! nothing is retried forever.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, error, warn};

use super::request_builder;
use super::retry::{RetryClass, backoff, classify, classify_unprocessed};
use super::service::{Unprocessed, XrayService};
use crate::metrics::{Metrics, as_u64, fail};
use crate::queue::QueuedDocument;

/// Delivers batches to X-Ray with retries.
#[derive(Debug)]
pub struct XrayUploader {
    /// The X-Ray call.
    service: XrayService,
    /// How long a batch is retried after its first attempt failed.
    retry_for: Duration,
    /// Counters.
    metrics: Arc<Metrics>,
}

impl XrayUploader {
    /// An uploader retrying each batch for at most `retry_for` after its first attempt.
    pub fn new(service: XrayService, retry_for: Duration, metrics: Arc<Metrics>) -> Self {
        XrayUploader {
            service,
            retry_for,
            metrics,
        }
    }

    /// Delivers `documents`, in requests of at most 50, until each is sent or given up on.
    pub async fn deliver(&self, documents: Vec<QueuedDocument>) {
        let mut documents = documents;
        while !documents.is_empty() {
            let rest =
                documents.split_off(documents.len().min(request_builder::MAX_BATCH_DOCUMENTS));
            self.deliver_request(documents).await;
            documents = rest;
        }
    }

    /// Delivers one request's worth of documents.
    async fn deliver_request(&self, mut pending: Vec<QueuedDocument>) {
        let give_up_at = Instant::now() + self.retry_for;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = std::time::Instant::now();
            let result = self.service.put(&pending).await;
            self.metrics
                .put_latency
                .observe(started.elapsed().as_secs_f64());
            let class = match result {
                Ok(unprocessed) if unprocessed.is_empty() => {
                    self.metrics.sent.inc_by(as_u64(pending.len()));
                    return;
                }
                Ok(unprocessed) => {
                    let (retry, class) = self.split_unprocessed(&mut pending, unprocessed);
                    self.metrics.sent.inc_by(as_u64(pending.len()));
                    pending = retry;
                    if pending.is_empty() {
                        return;
                    }
                    class
                }
                Err(err) => match classify(&err) {
                    RetryClass::NonRetryable => {
                        error!(documents = pending.len(), error = %err, "PutTraceSegments failed and cannot be retried; dropping the batch.");
                        self.metrics.fail(fail::NON_RETRYABLE, pending.len());
                        return;
                    }
                    class => {
                        warn!(documents = pending.len(), attempt, error = %err, "PutTraceSegments failed; retrying.");
                        class
                    }
                },
            };
            let wait = backoff(attempt, class, fastrand::f64());
            if Instant::now() + wait > give_up_at {
                error!(
                    documents = pending.len(),
                    attempts = attempt,
                    retry_for_secs = self.retry_for.as_secs(),
                    "PutTraceSegments kept failing for the whole retry budget (--retry-for); dropping the documents."
                );
                self.metrics.fail(fail::RETRIES_EXHAUSTED, pending.len());
                return;
            }
            self.metrics.retried.inc_by(as_u64(pending.len()));
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes the unprocessed documents out of `sent`: returns those to retry and how to
    /// wait; counts and logs the others as failed. What stays in `sent` was accepted.
    fn split_unprocessed(
        &self,
        sent: &mut Vec<QueuedDocument>,
        unprocessed: Vec<Unprocessed>,
    ) -> (Vec<QueuedDocument>, RetryClass) {
        let mut retry = Vec::new();
        let mut wait = RetryClass::Retryable;
        for entry in unprocessed {
            let position = sent
                .iter()
                .position(|d| d.id.is_some() && d.id == entry.id)
                .or_else(|| (entry.id.is_none() && !sent.is_empty()).then_some(0));
            let Some(position) = position else {
                debug!(id = ?entry.id, "X-Ray listed an unprocessed document that was not sent.");
                continue;
            };
            let document = sent.remove(position);
            match classify_unprocessed(entry.error_code.as_deref()) {
                RetryClass::NonRetryable => {
                    warn!(
                        id = ?entry.id,
                        code = ?entry.error_code,
                        message = ?entry.message,
                        "X-Ray refused a document; dropping it."
                    );
                    self.metrics.fail(fail::REJECTED, 1);
                }
                class => {
                    if let RetryClass::Throttled(_) = class {
                        wait = class;
                    }
                    retry.push(document);
                }
            }
        }
        (retry, wait)
    }
}
