//! Ingest: the steps every batch of documents takes before it is queued, whether it came
//! from `POST /v1/segments` or the X-Ray daemon UDP port.
//!
//! 1. validate each document on its own (meshray-core): a bad one is rejected with its
//!    index and message, the others go on;
//! 2. reserve room in the queue for all the valid ones, or refuse the request;
//! 3. resolve the epochs of foreign trace ids with one epoch cache call;
//! 4. serialise and queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use meshray_core::ids::TraceId;
use meshray_core::limits::MAX_DOCUMENT_BYTES;
use meshray_core::validate::{DocumentTrace, ValidDocument, validate_document};
use serde::Serialize;
use serde_json::Value;

use crate::epoch_cache::{EpochCache, EpochCacheError};
use crate::metrics::{Metrics, as_u64, reject};
use crate::queue::{QueueError, QueueSender, QueuedDocument};

/// One document that was not accepted, as reported to the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// Its position in the request's array.
    pub index: usize,
    /// Why, naming the field to fix.
    pub error: String,
}

/// What happened to a batch that was queued.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Documents queued for delivery.
    pub accepted: usize,
    /// Documents refused, in index order.
    pub rejected: Vec<Rejection>,
}

/// Why a whole batch was refused; the sender should retry it later or elsewhere.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The queue has no room for the batch now.
    #[error("the queue has room for {free} more documents, not {needed}; retry later")]
    QueueFull {
        /// Valid documents in the batch.
        needed: usize,
        /// Free slots.
        free: usize,
    },
    /// The batch is larger than the whole queue.
    #[error(
        "the batch has {needed} valid documents but the queue holds {capacity}; send smaller batches"
    )]
    BatchLargerThanQueue {
        /// Valid documents in the batch.
        needed: usize,
        /// The queue's capacity.
        capacity: usize,
    },
    /// The relay is shutting down.
    #[error("the relay is shutting down; retry against another replica")]
    Draining,
    /// Foreign ids could not be resolved.
    #[error(transparent)]
    EpochCache(#[from] EpochCacheError),
}

/// Validates, resolves and queues documents; shared by every HTTP handler and the UDP
/// listener.
pub struct Ingest {
    /// Where accepted documents go.
    queue: QueueSender,
    /// Binds foreign trace ids to epochs.
    cache: Arc<dyn EpochCache>,
    /// Counters.
    metrics: Arc<Metrics>,
    /// Set once shutdown began: new batches are refused with [`IngestError::Draining`].
    draining: AtomicBool,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("queue", &self.queue)
            .field("draining", &self.draining)
            .finish_non_exhaustive()
    }
}

impl Ingest {
    /// Ingest into `queue`, resolving foreign ids through `cache`.
    pub fn new(queue: QueueSender, cache: Arc<dyn EpochCache>, metrics: Arc<Metrics>) -> Self {
        Ingest {
            queue,
            cache,
            metrics,
            draining: AtomicBool::new(false),
        }
    }

    /// Refuses every batch from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether shutdown began.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst) || self.queue.is_closed()
    }

    /// The queue this ingest feeds.
    pub fn queue(&self) -> &QueueSender {
        &self.queue
    }

    /// Runs `documents` through validation, epoch resolution and into the queue.
    ///
    /// # Errors
    /// [`IngestError`] when the valid documents cannot be queued at all (queue full,
    /// shutting down, epoch cache down): none of them is queued then.
    pub async fn submit(&self, documents: Vec<Value>) -> Result<Report, IngestError> {
        self.metrics.received.inc_by(as_u64(documents.len()));
        let mut rejected = Vec::new();
        let mut valid: Vec<(usize, ValidDocument)> = Vec::with_capacity(documents.len());
        for (index, value) in documents.into_iter().enumerate() {
            match validate_document(value) {
                Ok(document) => valid.push((index, document)),
                Err(error) => rejected.push(Rejection {
                    index,
                    error: error.to_string(),
                }),
            }
        }
        self.metrics.reject(reject::INVALID, rejected.len());
        if valid.is_empty() {
            return Ok(Report {
                accepted: 0,
                rejected,
            });
        }

        let needed = valid.len();
        let reservation = match self.reserve(needed) {
            Ok(reservation) => reservation,
            Err(error) => {
                let reason = match error {
                    IngestError::Draining => reject::DRAINING,
                    _ => reject::QUEUE_FULL,
                };
                self.metrics.reject(reason, needed);
                return Err(error);
            }
        };

        if let Err(error) = self.resolve_epochs(&mut valid).await {
            self.metrics.reject(reject::EPOCH_CACHE, needed);
            return Err(error.into());
        }

        let mut accepted = 0;
        for ((index, document), permit) in valid.into_iter().zip(reservation) {
            let id = document.id().to_owned();
            let json = document.into_json_string();
            // The resolved X-Ray id is 3 characters longer than a raw 32-hex id.
            if json.len() > MAX_DOCUMENT_BYTES {
                rejected.push(Rejection {
                    index,
                    error: format!(
                        "document is {} bytes with its X-Ray trace id, more than X-Ray's limit of {MAX_DOCUMENT_BYTES}",
                        json.len()
                    ),
                });
                self.metrics.reject(reject::INVALID, 1);
                continue;
            }
            permit.send(QueuedDocument { id: Some(id), json });
            accepted += 1;
        }
        rejected.sort_by_key(|r| r.index);
        self.metrics.accepted.inc_by(as_u64(accepted));
        Ok(Report { accepted, rejected })
    }

    /// Reserves room for `needed` documents.
    fn reserve(&self, needed: usize) -> Result<crate::queue::Reservation<'_>, IngestError> {
        if self.draining.load(Ordering::SeqCst) {
            return Err(IngestError::Draining);
        }
        let capacity = self.queue.capacity();
        if needed > capacity {
            return Err(IngestError::BatchLargerThanQueue { needed, capacity });
        }
        self.queue.try_reserve(needed).map_err(|e| match e {
            QueueError::Full { free } => IngestError::QueueFull { needed, free },
            QueueError::Closed => IngestError::Draining,
        })
    }

    /// Gives every document with a foreign trace id its X-Ray id, with one cache call.
    async fn resolve_epochs(
        &self,
        documents: &mut [(usize, ValidDocument)],
    ) -> Result<(), EpochCacheError> {
        let mut foreign: Vec<(usize, TraceId)> = Vec::new();
        let mut keys: Vec<(u128, u32)> = Vec::new();
        for (position, (_, document)) in documents.iter().enumerate() {
            if let DocumentTrace::Foreign(raw) = document.trace() {
                foreign.push((position, *raw));
                keys.push((raw.value(), epoch_of(document.start_time())));
            }
        }
        if keys.is_empty() {
            return Ok(());
        }
        let resolved = self.cache.resolve_batch(&keys).await?;
        for ((position, raw), answer) in foreign.into_iter().zip(resolved) {
            if answer.hit {
                self.metrics.epoch_cache_hits.inc();
            } else {
                self.metrics.epoch_cache_misses.inc();
            }
            if let Some((_, document)) = documents.get_mut(position) {
                document.set_trace_id(&raw.with_epoch(answer.epoch));
            }
        }
        Ok(())
    }
}

/// The epoch a document proposes for its trace: `floor(start_time)`, saturated to `u32`.
pub fn epoch_of(start_time: f64) -> u32 {
    if start_time.is_nan() || start_time <= 0.0 {
        0
    } else if start_time >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        // In range and non-negative: the cast truncates, which is floor here.
        start_time.floor() as u32
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::epoch_cache::memory::MemoryEpochCache;
    use crate::queue::{self, QueueReceiver};

    /// An ingest on a fresh queue and memory cache.
    fn ingest(capacity: usize) -> (Ingest, QueueReceiver, Arc<Metrics>) {
        let (tx, rx) = queue::channel(capacity);
        let metrics = Arc::new(Metrics::new());
        let cache = Arc::new(MemoryEpochCache::new(
            NonZeroUsize::new(100).unwrap(),
            Duration::from_secs(300),
        ));
        (Ingest::new(tx, cache, metrics.clone()), rx, metrics)
    }

    /// A minimal segment.
    fn segment(id: &str, trace_id: &str, start: f64) -> Value {
        json!({
            "name": "productpage",
            "id": id,
            "trace_id": trace_id,
            "start_time": start,
            "end_time": start + 0.25,
        })
    }

    /// Everything queued so far, as JSON.
    fn drain(rx: &mut QueueReceiver) -> Vec<Value> {
        let mut out = Vec::new();
        while let Ok(doc) = rx.try_recv() {
            out.push(serde_json::from_str(&doc.json).unwrap());
        }
        out
    }

    /// Bad documents are rejected one by one with their index; the rest are queued.
    #[tokio::test]
    async fn rejects_individually() {
        let (ingest, mut rx, metrics) = ingest(10);
        let report = ingest
            .submit(vec![
                segment(
                    "70de5b6f19ff9a0a",
                    "1-5f8e1a2b-0123456789abcdef01234567",
                    1.6e9,
                ),
                json!("not an object"),
                segment("nothex", "1-5f8e1a2b-0123456789abcdef01234567", 1.6e9),
                json!({"name": "x"}),
                segment(
                    "70de5b6f19ff9a0b",
                    "1-5f8e1a2b-0123456789abcdef01234567",
                    1.6e9,
                ),
            ])
            .await
            .unwrap();
        assert_eq!(report.accepted, 2);
        let indexes: Vec<usize> = report.rejected.iter().map(|r| r.index).collect();
        assert_eq!(indexes, [1, 2, 3]);
        assert!(report.rejected[0].error.contains("not a JSON object"));
        assert!(report.rejected[1].error.contains("`id`"));
        assert!(report.rejected[2].error.contains("trace_id"));
        assert_eq!(drain(&mut rx).len(), 2);
        assert_eq!(metrics.received.get(), 5);
        assert_eq!(metrics.accepted.get(), 2);
    }

    /// Documents with the same foreign id get one X-Ray id, with the first one's epoch.
    #[tokio::test]
    async fn foreign_ids_share_the_first_epoch() {
        let (ingest, mut rx, metrics) = ingest(10);
        let raw = "4bf92f3577b34da6a3ce929d0e0e4736";
        ingest
            .submit(vec![segment("70de5b6f19ff9a0a", raw, 1_600_000_000.9)])
            .await
            .unwrap();
        ingest
            .submit(vec![
                segment("70de5b6f19ff9a0b", raw, 1_600_000_042.0),
                segment(
                    "70de5b6f19ff9a0c",
                    "00000000000000000123456789abcdef",
                    1_600_000_100.0,
                ),
            ])
            .await
            .unwrap();
        let docs = drain(&mut rx);
        let expected = format!("1-{:08x}-{}", 1_600_000_000u32, &raw[8..]);
        assert_eq!(docs[0]["trace_id"], expected);
        assert_eq!(docs[1]["trace_id"], expected);
        assert_eq!(
            docs[2]["trace_id"],
            format!("1-{:08x}-000000000123456789abcdef", 1_600_000_100u32)
        );
        assert_eq!(metrics.epoch_cache_hits.get(), 1);
        assert_eq!(metrics.epoch_cache_misses.get(), 2);
    }

    /// A batch that does not fit is refused whole; one larger than the queue is told so.
    #[tokio::test]
    async fn refuses_when_full_or_draining() {
        let (ingest, _rx, _) = ingest(2);
        let doc = |n: u8| {
            segment(
                &format!("70de5b6f19ff9a{n:02x}"),
                "1-5f8e1a2b-0123456789abcdef01234567",
                1.6e9,
            )
        };
        assert_eq!(ingest.submit(vec![doc(1)]).await.unwrap().accepted, 1);
        assert!(matches!(
            ingest.submit(vec![doc(2), doc(3)]).await,
            Err(IngestError::QueueFull { needed: 2, free: 1 })
        ));
        assert!(matches!(
            ingest.submit(vec![doc(4), doc(5), doc(6)]).await,
            Err(IngestError::BatchLargerThanQueue { .. })
        ));
        ingest.start_draining();
        assert!(matches!(
            ingest.submit(vec![doc(7)]).await,
            Err(IngestError::Draining)
        ));
        // Invalid-only batches still get their report.
        let report = ingest.submit(vec![json!(1)]).await.unwrap();
        assert_eq!(report.rejected.len(), 1);
    }

    /// The candidate epoch is floor(start_time), saturated into `u32`.
    #[test]
    fn epoch_is_floor_of_start_time() {
        assert_eq!(epoch_of(1_600_000_000.999), 1_600_000_000);
        assert_eq!(epoch_of(-5.0), 0);
        assert_eq!(epoch_of(f64::NAN), 0);
        assert_eq!(epoch_of(1e12), u32::MAX);
    }
}
