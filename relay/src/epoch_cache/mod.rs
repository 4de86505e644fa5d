//! The epoch cache: which epoch a *foreign* trace id is bound to.
//!
//! A foreign id (W3C/B3 ids whose high 32 bits are not a recent epoch) has no time in
//! it, but an X-Ray trace id needs one. Every document of a trace must get the same
//! X-Ray id, wherever and whenever it arrives, so the first document seen picks the
//! epoch (its `floor(start_time)`) and every later one reuses it: first writer wins,
//! for a TTL. Key: the raw 128-bit id; value: epoch seconds.
//!
//! Backends implement [`EpochCache`]: [`memory::MemoryEpochCache`] for one replica,
//! [`redis::RedisEpochCache`] (`SET key v NX EX ttl GET`, pipelined) for several.
//! The relay makes one [`EpochCache::resolve_batch`] call per request.

pub mod memory;
pub mod redis;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::config::{Config, EpochCacheKind};

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
    #[error("epoch cache (redis) failed: {0}; check that the server in --epoch-cache is reachable")]
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

/// Builds the backend the configuration names.
///
/// # Errors
/// [`EpochCacheError`] when the Redis server cannot be reached at start.
pub async fn build(config: &Config) -> Result<Arc<dyn EpochCache>, EpochCacheError> {
    match &config.epoch_cache {
        EpochCacheKind::Memory => Ok(Arc::new(memory::MemoryEpochCache::new(
            config.epoch_cache_capacity,
            config.epoch_ttl,
        ))),
        EpochCacheKind::Redis(url) => Ok(Arc::new(
            redis::RedisEpochCache::connect(url, config.epoch_ttl).await?,
        )),
    }
}
