//! The epoch cache: which epoch a *foreign* trace id is bound to.
//!
//! A foreign id (W3C/B3 ids whose high 32 bits are not a recent epoch) has no time in
//! it, but an X-Ray trace id needs one. Every document of a trace must get the same
//! X-Ray id, wherever and whenever it arrives, so the first document seen picks the
//! epoch (its `floor(start_time)`) and every later one reuses it: first writer wins,
//! for a TTL. Key: the raw 128-bit id; value: epoch seconds.
//!
//! Every use of a binding refreshes its TTL, so a trace that keeps sending documents
//! keeps its epoch however long it runs.
//!
//! Backends implement [`EpochCache`]: [`memory::MemoryEpochCache`] for one replica;
//! for several, [`shared::SharedEpochCache`]: [`redis::RedisEpochCache`] (one Lua script
//! call per batch) behind a timeout and a [`breaker::Breaker`], falling back to a local
//! cache so that Redis being down or slow never refuses a batch. The relay makes one
//! [`EpochCache::resolve_batch`] call per request.

pub mod breaker;
pub mod memory;
pub mod redis;
pub mod shared;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tracing::{error, info};

use crate::config::{Config, EpochCacheKind};
use crate::metrics::Metrics;

/// A boxed, sendable future: what [`EpochCache`] returns so it can be used as `dyn`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The answer for one id of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// The epoch the id is bound to.
    pub epoch: u32,
    /// Whether it was already bound (`true`) or the candidate was stored now (`false`).
    pub hit: bool,
}

impl Resolved {
    /// The id was already bound to `epoch`.
    pub fn hit(epoch: u32) -> Self {
        Resolved { epoch, hit: true }
    }

    /// The id was unknown and is now bound to `epoch`, its candidate.
    pub fn miss(epoch: u32) -> Self {
        Resolved { epoch, hit: false }
    }
}

/// Why the epoch cache could not answer.
#[derive(Debug, thiserror::Error)]
pub enum EpochCacheError {
    /// The Redis server could not be reached or answered with an error.
    #[error(
        "epoch cache (redis) failed: {0}; check that the server in --epoch-cache is reachable \
         and the credentials (URL, --redis-password) and certificates (--epoch-cache-ca-file) are right"
    )]
    Redis(#[from] ::redis::RedisError),
    /// The Redis server answered with fewer or more replies than commands sent.
    #[error("epoch cache (redis) answered {got} replies to {sent} commands")]
    ReplyCount {
        /// Commands in the pipeline.
        sent: usize,
        /// Replies received.
        got: usize,
    },
}

/// Binds foreign trace ids to epochs, first writer wins.
pub trait EpochCache: Send + Sync + 'static {
    /// For each `(raw id, candidate epoch)` in order, the epoch the id is bound to: the
    /// stored one if the id was seen within the TTL (a hit), else the candidate, which is
    /// stored (a miss). An id repeated within the batch is bound by its first occurrence.
    /// The answer has one entry per input entry, in the same order.
    ///
    /// # Errors
    /// [`EpochCacheError`] when the backend cannot be reached; nothing is bound then.
    fn resolve_batch<'a>(
        &'a self,
        entries: &'a [(u128, u32)],
    ) -> BoxFuture<'a, Result<Vec<Resolved>, EpochCacheError>>;
}

/// How long the relay waits at start for Redis to answer before it starts anyway,
/// resolving locally until Redis does.
const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Builds the backend the configuration names.
///
/// A Redis that cannot be reached at start does not stop the relay: it starts with the
/// local fallback and shares as soon as Redis answers (logged at ERROR, since several
/// replicas then bind foreign ids each on their own).
///
/// # Errors
/// [`EpochCacheError`] when the Redis URL or CA certificates cannot be used.
pub async fn build(
    config: &Config,
    metrics: Arc<Metrics>,
) -> Result<Arc<dyn EpochCache>, EpochCacheError> {
    let local = memory::MemoryEpochCache::new(config.epoch_cache_capacity, config.epoch_ttl);
    match &config.epoch_cache {
        EpochCacheKind::Memory => Ok(Arc::new(local)),
        EpochCacheKind::Redis(url) => {
            let redis = redis::RedisEpochCache::new_lazy(&redis::RedisSettings {
                url: url.clone(),
                password: config
                    .redis_password
                    .as_ref()
                    .map(|p| p.expose().to_owned()),
                ca_pem: config
                    .epoch_cache_ca_file
                    .as_ref()
                    .map(|ca| ca.pem().to_vec()),
                ttl: config.epoch_ttl,
                response_timeout: Some(config.epoch_cache_timeout),
            })?;
            let answered = match tokio::time::timeout(START_TIMEOUT, redis.load_script()).await {
                Ok(Ok(())) => {
                    info!(url = %redis::redact_url(url), "Epoch cache: Redis answers.");
                    true
                }
                Ok(Err(e)) => {
                    error!(
                        url = %redis::redact_url(url), error = %e,
                        "Epoch cache: Redis does not answer at start; resolving locally until it does."
                    );
                    false
                }
                Err(_) => {
                    error!(
                        url = %redis::redact_url(url),
                        timeout_secs = START_TIMEOUT.as_secs(),
                        "Epoch cache: Redis does not answer at start; resolving locally until it does."
                    );
                    false
                }
            };
            Ok(Arc::new(shared::SharedEpochCache::new(
                redis,
                local,
                config.epoch_cache_timeout,
                metrics,
                answered,
            )))
        }
    }
}
