//! The batcher: takes documents off the queue, groups them into batches of at most 50
//! (sent when full or when the oldest has waited the batch interval), and hands each
//! batch to one of N concurrent uploaders.
//!
//! When every uploader is busy the batcher waits, the queue fills, and ingest answers
//! 429: back-pressure reaches the senders instead of memory growing. On close the
//! batcher closes the queue, sends what is left without waiting for the interval, waits
//! for its uploads and returns. Aborting its task (drain deadline) drops the
//! [`JoinSet`] and with it every upload still running.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use meshray_core::limits::MAX_BATCH_DOCUMENTS;
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::error;

use crate::queue::{QueueReceiver, QueuedDocument};
use crate::sink::Sink;

/// How the batcher groups and sends.
#[derive(Debug, Clone, Copy)]
pub struct BatcherSettings {
    /// Longest wait before a partial batch is sent.
    pub interval: Duration,
    /// Concurrent deliveries.
    pub uploaders: usize,
}

/// Documents taken off the queue and not yet delivered or given up on.
#[derive(Debug, Default)]
pub struct InFlight(AtomicUsize);

impl InFlight {
    /// Documents in flight now.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Runs the batcher until `close` fires (or its sender is dropped) and the queue is empty.
pub async fn run_batcher(
    mut queue: QueueReceiver,
    sink: Arc<Sink>,
    settings: BatcherSettings,
    in_flight: Arc<InFlight>,
    mut close: oneshot::Receiver<()>,
) {
    // One permit per uploader: a batch is only taken when an uploader is free.
    let uploaders = Arc::new(Semaphore::new(settings.uploaders.max(1)));
    let mut uploads = JoinSet::new();
    let mut batch: Vec<QueuedDocument> = Vec::with_capacity(MAX_BATCH_DOCUMENTS);
    let mut deadline: Option<Instant> = None;
    let mut closing = false;
    loop {
        let room = MAX_BATCH_DOCUMENTS.saturating_sub(batch.len()).max(1);
        tokio::select! {
            biased;
            _ = &mut close, if !closing => {
                closing = true;
                queue.close();
            }
            received = queue.recv_many(&mut batch, room) => {
                if received == 0 {
                    break; // closed and empty
                }
                if batch.len() >= MAX_BATCH_DOCUMENTS {
                    deadline = None;
                    send(&mut batch, &sink, &uploaders, &mut uploads, &in_flight).await;
                } else if deadline.is_none() {
                    deadline = Some(Instant::now() + settings.interval);
                }
            }
            () = sleep_until(deadline), if deadline.is_some() => {
                deadline = None;
                send(&mut batch, &sink, &uploaders, &mut uploads, &in_flight).await;
            }
        }
        if closing && !batch.is_empty() && queue.is_empty() {
            // Draining: do not wait for the interval.
            deadline = None;
            send(&mut batch, &sink, &uploaders, &mut uploads, &in_flight).await;
        }
        reap(&mut uploads);
    }
    send(&mut batch, &sink, &uploaders, &mut uploads, &in_flight).await;
    while let Some(result) = uploads.join_next().await {
        log_join_error(result);
    }
}

/// Sleeps until `deadline`; only polled when it is set.
async fn sleep_until(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline).await;
    }
}

/// Hands the batch to an uploader, waiting for one to be free.
async fn send(
    batch: &mut Vec<QueuedDocument>,
    sink: &Arc<Sink>,
    uploaders: &Arc<Semaphore>,
    uploads: &mut JoinSet<()>,
    in_flight: &Arc<InFlight>,
) {
    if batch.is_empty() {
        return;
    }
    let Ok(permit) = uploaders.clone().acquire_owned().await else {
        return; // never closed
    };
    let documents = std::mem::replace(batch, Vec::with_capacity(MAX_BATCH_DOCUMENTS));
    let count = documents.len();
    in_flight.0.fetch_add(count, Ordering::SeqCst);
    let sink = Arc::clone(sink);
    let in_flight = Arc::clone(in_flight);
    uploads.spawn(async move {
        sink.deliver(documents).await;
        in_flight.0.fetch_sub(count, Ordering::SeqCst);
        drop(permit);
    });
}

/// Collects finished uploads so the set does not grow.
fn reap(uploads: &mut JoinSet<()>) {
    while let Some(result) = uploads.try_join_next() {
        log_join_error(result);
    }
}

/// Logs an upload task that panicked.
fn log_join_error(result: Result<(), tokio::task::JoinError>) {
    if let Err(e) = result
        && e.is_panic()
    {
        error!(error = %e, "An upload task panicked; its documents are lost.");
    }
}
