//! Ingest: the steps every batch of documents takes before it is queued, whether it came
//! from `POST /v1/segments` or the X-Ray daemon UDP port.
//!
//! 1. validate each document on its own (meshray-core): a bad one is rejected with its
//!    index and message, the others go on;
//! 2. reserve room in the queue for all the valid ones, or refuse the request;
//! 3. queue the documents whose X-Ray trace id is final: they never wait on the cache;
//! 4. give the others (foreign ids) their X-Ray id: with `--foreign-ids epoch`, the
//!    epoch of the trace's first document, from one epoch cache call for the whole batch;
//!    with `passthrough`, `1-{first 8 hex}-{last 24 hex}` of the id as it came;
//! 5. serialise and queue them.
//!
//! A trace id is *foreign* when it is raw hex (16 or 32 digits, as the filter sends ids
//! it could not turn into X-Ray ids) or X-Ray-shaped with an epoch outside the window
//! (`[now − 28 days, now + 5 min]`): an X-Ray SDK app behind a sidecar reports under
//! `Root=1-{first 8}-{last 24}` of the foreign id it received. Both forms of one id
//! have the same cache key (the 128-bit id), so they end up in the same X-Ray trace.
//! An epoch cache that cannot answer never refuses a batch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use meshray_core::ids::TraceId;
use meshray_core::limits::MAX_DOCUMENT_BYTES;
use meshray_core::validate::{DocumentTrace, ValidDocument, validate_json};
use serde::Serialize;
use serde_json::value::RawValue;

use tracing::warn;

use crate::config::ForeignIds;
use crate::epoch_cache::{EpochCache, Resolved};
use crate::metrics::{Metrics, as_u64, reject};
use crate::queue::{QueueError, QueueSender, QueuedDocument};

/// One reserved queue slot.
type Permit<'a> = tokio::sync::mpsc::Permit<'a, QueuedDocument>;

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
}

impl IngestError {
    /// The `reason` label of the documents this refusal turned away.
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::Draining => reject::DRAINING,
            IngestError::QueueFull { .. } | IngestError::BatchLargerThanQueue { .. } => {
                reject::QUEUE_FULL
            }
        }
    }
}

/// Validates, resolves and queues documents; shared by every HTTP handler and the UDP
/// listener.
pub struct Ingest {
    /// Where accepted documents go.
    queue: QueueSender,
    /// Binds foreign trace ids to epochs.
    cache: Arc<dyn EpochCache>,
    /// How foreign trace ids become X-Ray ids.
    foreign_ids: ForeignIds,
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
    /// Ingest into `queue`, resolving foreign ids through `cache` (`--foreign-ids epoch`).
    pub fn new(queue: QueueSender, cache: Arc<dyn EpochCache>, metrics: Arc<Metrics>) -> Self {
        Ingest {
            queue,
            cache,
            foreign_ids: ForeignIds::Epoch,
            metrics,
            draining: AtomicBool::new(false),
        }
    }

    /// Sets how foreign trace ids become X-Ray ids.
    pub fn with_foreign_ids(mut self, foreign_ids: ForeignIds) -> Self {
        self.foreign_ids = foreign_ids;
        self
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

    /// Runs `documents` (each one JSON document's text, as received) through validation,
    /// epoch resolution and into the queue. A document that needs no mending is queued as
    /// the text it came as, its trace id rewritten in place when it was foreign.
    ///
    /// # Errors
    /// [`IngestError`] when the valid documents cannot be queued at all (queue full,
    /// shutting down): none of them is queued then.
    pub async fn submit(&self, documents: &[&RawValue]) -> Result<Report, IngestError> {
        self.metrics.received.inc_by(as_u64(documents.len()));
        let mut rejected = Vec::new();
        let mut valid: Vec<(usize, ValidDocument)> = Vec::with_capacity(documents.len());
        for (index, document) in documents.iter().enumerate() {
            match validate_json(document) {
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

        let mut permits = reservation;
        let mut accepted = 0;
        let now_secs = unix_now_secs();
        // Documents whose X-Ray id is final go first: they never wait on the epoch cache.
        let mut foreign: Vec<(usize, ValidDocument, TraceId)> = Vec::new();
        for (index, document) in valid {
            match foreign_id(document.trace(), now_secs) {
                Some(raw) => foreign.push((index, document, raw)),
                None => accepted += self.queue_one(index, document, permits.next(), &mut rejected),
            }
        }
        self.resolve_foreign(&mut foreign).await;
        for (index, document, _) in foreign {
            accepted += self.queue_one(index, document, permits.next(), &mut rejected);
        }
        rejected.sort_by_key(|r| r.index);
        self.metrics.accepted.inc_by(as_u64(accepted));
        Ok(Report { accepted, rejected })
    }

    /// Serialises `document` into its reserved slot; 1 if it was queued, 0 if it is too
    /// large (reported in `rejected`).
    fn queue_one(
        &self,
        index: usize,
        document: ValidDocument,
        permit: Option<Permit<'_>>,
        rejected: &mut Vec<Rejection>,
    ) -> usize {
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
            return 0;
        }
        // One slot was reserved per valid document, so there is always a permit.
        match permit {
            Some(permit) => {
                permit.send(QueuedDocument { id: Some(id), json });
                1
            }
            None => 0,
        }
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

    /// Gives every document with a foreign trace id its X-Ray id: with one cache call
    /// for the batch (`epoch`), or by splitting the id (`passthrough`).
    async fn resolve_foreign(&self, documents: &mut [(usize, ValidDocument, TraceId)]) {
        if documents.is_empty() {
            return;
        }
        if self.foreign_ids == ForeignIds::Passthrough {
            for (_, document, raw) in documents.iter_mut() {
                document.set_trace_id(&raw.with_epoch(high_32_bits(raw)));
            }
            return;
        }
        let keys: Vec<(u128, u32)> = documents
            .iter()
            .map(|(_, document, raw)| (raw.value(), epoch_of(document.start_time())))
            .collect();
        let resolved = match self.cache.resolve_batch(&keys).await {
            Ok(resolved) if resolved.len() == keys.len() => resolved,
            // The shared cache falls back on its own; this is for a backend that cannot:
            // each id keeps its own document's epoch rather than the batch being lost.
            other => {
                let error = other.err().map(|e| e.to_string());
                warn!(
                    error = error.as_deref().unwrap_or("wrong number of answers"),
                    documents = keys.len(),
                    "The epoch cache could not resolve a batch; using each document's own epoch."
                );
                self.metrics.epoch_cache_fallback.inc_by(as_u64(keys.len()));
                keys.iter()
                    .map(|&(_, candidate)| Resolved::miss(candidate))
                    .collect()
            }
        };
        for ((_, document, raw), answer) in documents.iter_mut().zip(resolved) {
            if answer.hit {
                self.metrics.epoch_cache_hits.inc();
            } else {
                self.metrics.epoch_cache_misses.inc();
            }
            document.set_trace_id(&raw.with_epoch(answer.epoch));
        }
    }
}

/// The raw id behind a document's trace id if it has no usable epoch: a raw hex id, or
/// an X-Ray-shaped id whose epoch lies outside the window around `now_secs` (the same
/// 128 bits, so the same cache key). `None`: the X-Ray id is final.
pub fn foreign_id(trace: &DocumentTrace, now_secs: u64) -> Option<TraceId> {
    match trace {
        DocumentTrace::Foreign(raw) => Some(*raw),
        DocumentTrace::Xray(xray) => {
            let raw = xray.to_trace_id();
            raw.embedded_epoch(now_secs).is_none().then_some(raw)
        }
    }
}

/// The first 32 of an id's 128 bits: what `passthrough` puts where the epoch goes.
fn high_32_bits(raw: &TraceId) -> u32 {
    u32::try_from(raw.value() >> 96).unwrap_or(u32::MAX)
}

/// Seconds since the Unix epoch (0 if the clock is before it).
fn unix_now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
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

    use serde_json::{Value, json};

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

    /// Submits `documents` as the texts the endpoints hand over.
    async fn submit_values(ingest: &Ingest, documents: Vec<Value>) -> Result<Report, IngestError> {
        let texts: Vec<Box<RawValue>> = documents
            .iter()
            .map(|d| serde_json::value::to_raw_value(d).unwrap())
            .collect();
        let refs: Vec<&RawValue> = texts.iter().map(AsRef::as_ref).collect();
        ingest.submit(&refs).await
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
        let report = submit_values(
            &ingest,
            vec![
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
            ],
        )
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
        submit_values(
            &ingest,
            vec![segment("70de5b6f19ff9a0a", raw, 1_600_000_000.9)],
        )
        .await
        .unwrap();
        submit_values(
            &ingest,
            vec![
                segment("70de5b6f19ff9a0b", raw, 1_600_000_042.0),
                segment(
                    "70de5b6f19ff9a0c",
                    "00000000000000000123456789abcdef",
                    1_600_000_100.0,
                ),
            ],
        )
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
        assert_eq!(
            submit_values(&ingest, vec![doc(1)]).await.unwrap().accepted,
            1
        );
        assert!(matches!(
            submit_values(&ingest, vec![doc(2), doc(3)]).await,
            Err(IngestError::QueueFull { needed: 2, free: 1 })
        ));
        assert!(matches!(
            submit_values(&ingest, vec![doc(4), doc(5), doc(6)]).await,
            Err(IngestError::BatchLargerThanQueue { .. })
        ));
        ingest.start_draining();
        assert!(matches!(
            submit_values(&ingest, vec![doc(7)]).await,
            Err(IngestError::Draining)
        ));
        // Invalid-only batches still get their report.
        let report = submit_values(&ingest, vec![json!(1)]).await.unwrap();
        assert_eq!(report.rejected.len(), 1);
    }

    /// A cache that answers only when told to, or fails.
    struct ScriptedCache {
        /// Released once per batch to answer.
        release: tokio::sync::Semaphore,
        /// Whether to answer with an error.
        fail: bool,
    }

    impl EpochCache for ScriptedCache {
        fn resolve_batch<'a>(
            &'a self,
            entries: &'a [(u128, u32)],
        ) -> crate::epoch_cache::BoxFuture<
            'a,
            Result<Vec<Resolved>, crate::epoch_cache::EpochCacheError>,
        > {
            Box::pin(async move {
                self.release.acquire().await.unwrap().forget();
                if self.fail {
                    return Err(crate::epoch_cache::EpochCacheError::ReplyCount {
                        sent: 1,
                        got: 0,
                    });
                }
                Ok(entries.iter().map(|&(_, c)| Resolved::miss(c)).collect())
            })
        }
    }

    /// An ingest whose cache is scripted.
    fn scripted_ingest(
        fail: bool,
    ) -> (Arc<Ingest>, QueueReceiver, Arc<Metrics>, Arc<ScriptedCache>) {
        let (tx, rx) = queue::channel(10);
        let metrics = Arc::new(Metrics::new());
        let cache = Arc::new(ScriptedCache {
            release: tokio::sync::Semaphore::new(0),
            fail,
        });
        let ingest = Arc::new(Ingest::new(tx, cache.clone(), metrics.clone()));
        (ingest, rx, metrics, cache)
    }

    /// Now, as epoch seconds with a fraction.
    fn now() -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    }

    /// An X-Ray-shaped id whose epoch is outside the window is the raw id it came from:
    /// the SDK app's document and the sidecar's land in one trace; an id in the window
    /// is left alone.
    #[tokio::test]
    async fn xray_shaped_ids_outside_the_window_are_foreign() {
        let (ingest, mut rx, metrics) = ingest(10);
        let start = now();
        let epoch = epoch_of(start);
        let in_window = format!("1-{epoch:08x}-0123456789abcdef01234567");
        submit_values(
            &ingest,
            vec![
                // A 64-bit B3 id as the filter sends it, and as an SDK app reports it.
                segment(
                    "70de5b6f19ff9a01",
                    "0000000000000000463ac35c9f6413ad",
                    start,
                ),
                segment(
                    "70de5b6f19ff9a02",
                    "1-00000000-00000000463ac35c9f6413ad",
                    start + 9.0,
                ),
                // A random W3C id (its first 8 hex read as 2010), in both forms.
                segment(
                    "70de5b6f19ff9a03",
                    "1-4bf92f35-77b34da6a3ce929d0e0e4736",
                    start + 1.0,
                ),
                segment(
                    "70de5b6f19ff9a04",
                    "4bf92f3577b34da6a3ce929d0e0e4736",
                    start + 7.0,
                ),
                segment("70de5b6f19ff9a05", &in_window, start - 5.0),
            ],
        )
        .await
        .unwrap();
        let ids: std::collections::HashMap<String, String> = drain(&mut rx)
            .into_iter()
            .map(|d| {
                (
                    d["id"].as_str().unwrap().to_owned(),
                    d["trace_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let b3 = format!("1-{epoch:08x}-00000000463ac35c9f6413ad");
        let w3c = format!("1-{:08x}-77b34da6a3ce929d0e0e4736", epoch_of(start + 1.0));
        assert_eq!(ids["70de5b6f19ff9a01"], b3);
        assert_eq!(ids["70de5b6f19ff9a02"], b3);
        assert_eq!(ids["70de5b6f19ff9a03"], w3c);
        assert_eq!(ids["70de5b6f19ff9a04"], w3c);
        assert_eq!(ids["70de5b6f19ff9a05"], in_window);
        assert_eq!(metrics.epoch_cache_misses.get(), 2);
        assert_eq!(metrics.epoch_cache_hits.get(), 2);
    }

    /// `passthrough`: both forms of a foreign id become `1-{first 8}-{last 24}`, unchanged,
    /// and the cache is not asked.
    #[tokio::test]
    async fn passthrough_keeps_the_raw_id() {
        let (ingest, mut rx, metrics, _cache) = scripted_ingest(true);
        let ingest = Arc::try_unwrap(ingest)
            .unwrap()
            .with_foreign_ids(ForeignIds::Passthrough);
        let start = now();
        let report = submit_values(
            &ingest,
            vec![
                segment(
                    "70de5b6f19ff9a01",
                    "0000000000000000463ac35c9f6413ad",
                    start,
                ),
                segment(
                    "70de5b6f19ff9a02",
                    "1-00000000-00000000463ac35c9f6413ad",
                    start,
                ),
                segment(
                    "70de5b6f19ff9a03",
                    "4bf92f3577b34da6a3ce929d0e0e4736",
                    start,
                ),
            ],
        )
        .await
        .unwrap();
        assert_eq!(report.accepted, 3);
        let ids: Vec<String> = drain(&mut rx)
            .iter()
            .map(|d| d["trace_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            ids,
            [
                "1-00000000-00000000463ac35c9f6413ad",
                "1-00000000-00000000463ac35c9f6413ad",
                "1-4bf92f35-77b34da6a3ce929d0e0e4736"
            ]
        );
        assert_eq!(
            metrics.epoch_cache_misses.get() + metrics.epoch_cache_hits.get(),
            0
        );
    }

    /// Documents with a final X-Ray id are queued before the cache answers.
    #[tokio::test]
    async fn xray_ids_never_wait_for_the_cache() {
        let (ingest, mut rx, _metrics, cache) = scripted_ingest(false);
        let start = now();
        let xray = format!("1-{:08x}-0123456789abcdef01234567", epoch_of(start));
        let submit = tokio::spawn({
            let ingest = Arc::clone(&ingest);
            async move {
                submit_values(
                    &ingest,
                    vec![
                        segment(
                            "70de5b6f19ff9a01",
                            "4bf92f3577b34da6a3ce929d0e0e4736",
                            start,
                        ),
                        segment("70de5b6f19ff9a02", &xray, start),
                    ],
                )
                .await
            }
        });
        let first = rx.recv().await.unwrap();
        assert_eq!(first.id.as_deref(), Some("70de5b6f19ff9a02"));
        assert!(
            !submit.is_finished(),
            "the foreign document waits for the cache"
        );
        cache.release.add_permits(1);
        assert_eq!(submit.await.unwrap().unwrap().accepted, 2);
        assert_eq!(
            rx.recv().await.unwrap().id.as_deref(),
            Some("70de5b6f19ff9a01")
        );
    }

    /// A cache that fails never refuses the batch: each document keeps its own epoch and
    /// the fallback is counted.
    #[tokio::test]
    async fn a_failing_cache_never_refuses() {
        let (ingest, mut rx, metrics, cache) = scripted_ingest(true);
        cache.release.add_permits(1);
        let report = submit_values(
            &ingest,
            vec![segment(
                "70de5b6f19ff9a01",
                "4bf92f3577b34da6a3ce929d0e0e4736",
                1_600_000_000.5,
            )],
        )
        .await
        .unwrap();
        assert_eq!(report.accepted, 1);
        assert_eq!(
            drain(&mut rx)[0]["trace_id"],
            "1-5f5e1000-77b34da6a3ce929d0e0e4736"
        );
        assert_eq!(metrics.epoch_cache_fallback.get(), 1);
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
