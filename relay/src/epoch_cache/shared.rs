//! The epoch cache several replicas share: Redis in front, the local cache behind it.
//!
//! Every batch asks Redis once ([`RedisEpochCache`], one round trip) within
//! `--epoch-cache-timeout`. When Redis fails, is slower than that, or is not connected
//! yet, the batch is resolved from the replica's own [`MemoryEpochCache`] instead (first
//! writer wins locally), counted in `meshray_relay_epoch_cache_fallback_total` and
//! logged at most once per [`OUTAGE_LOG_INTERVAL`]: a batch is never refused because of
//! Redis. A [`Breaker`] then keeps batches away from Redis until a backoff has passed, so
//! a dead Redis costs no timeout per batch; one probe batch finds out when it is back.
//!
//! The local cache mirrors every answer Redis gives, and proposes its own bindings as
//! candidates, so a trace keeps its epoch across an outage on the replica that saw it,
//! and a trace first seen during an outage keeps the epoch this replica gave it unless
//! another replica bound it in Redis first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::{Instant, timeout};
use tracing::{info, warn};

use super::breaker::{Breaker, Route};
use super::memory::MemoryEpochCache;
use super::redis::RedisEpochCache;
use super::{BoxFuture, EpochCache, EpochCacheError, Resolved};
use crate::metrics::{Metrics, as_u64};

/// Shortest time between two "Redis unavailable" warnings.
pub const OUTAGE_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// Redis with a timeout, a circuit breaker and a local fallback; never fails.
pub struct SharedEpochCache {
    /// The shared store.
    redis: RedisEpochCache,
    /// This replica's bindings: the fallback, and a mirror of Redis' answers.
    local: MemoryEpochCache,
    /// Whether batches ask Redis now.
    breaker: Breaker,
    /// Longest wait for Redis per batch.
    timeout: Duration,
    /// `epoch_cache_fallback` lives here.
    metrics: Arc<Metrics>,
    /// When the last outage warning was logged.
    last_warning: Mutex<Option<Instant>>,
    /// Ids resolved locally since the last warning, for the next one.
    fallback_since_warning: AtomicU64,
}

impl std::fmt::Debug for SharedEpochCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedEpochCache")
            .field("redis", &self.redis)
            .field("breaker", &self.breaker)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Why a batch was resolved locally.
#[derive(Debug)]
enum FallbackCause {
    /// Redis answered with an error or could not be reached.
    Error(EpochCacheError),
    /// Redis did not answer within the timeout.
    Timeout(Duration),
}

impl std::fmt::Display for FallbackCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FallbackCause::Error(e) => write!(f, "{e}"),
            FallbackCause::Timeout(after) => write!(
                f,
                "no answer within {} ms (--epoch-cache-timeout)",
                after.as_millis()
            ),
        }
    }
}

impl SharedEpochCache {
    /// Shares `redis`, falling back to `local`. `redis_answered_at_start` says whether
    /// Redis could be reached when the relay started; if not, batches start local and
    /// the first probe goes after the breaker's minimum backoff.
    pub fn new(
        redis: RedisEpochCache,
        local: MemoryEpochCache,
        timeout: Duration,
        metrics: Arc<Metrics>,
        redis_answered_at_start: bool,
    ) -> Self {
        // A probe is given up on (another may go) a little after its timeout.
        let probe_expiry = timeout + Duration::from_millis(100);
        let breaker = if redis_answered_at_start {
            Breaker::new(probe_expiry)
        } else {
            Breaker::new_open(probe_expiry, Instant::now())
        };
        SharedEpochCache {
            redis,
            local,
            breaker,
            timeout,
            metrics,
            last_warning: Mutex::new(None),
            fallback_since_warning: AtomicU64::new(0),
        }
    }

    /// Whether batches currently go to Redis.
    pub fn is_shared(&self) -> bool {
        self.breaker.is_closed()
    }

    /// Resolves `entries` through Redis, or locally when Redis is unavailable.
    pub async fn resolve(&self, entries: &[(u128, u32)]) -> Vec<Resolved> {
        if entries.is_empty() {
            return Vec::new();
        }
        let route = self.breaker.route(Instant::now());
        if route == Route::Local {
            return self.resolve_locally(entries);
        }
        let candidates = self.local.candidates(entries);
        let outcome = match timeout(self.timeout, self.redis.resolve_batch(&candidates)).await {
            Ok(Ok(answers)) => Ok(answers),
            Ok(Err(error)) => Err(FallbackCause::Error(error)),
            Err(_elapsed) => Err(FallbackCause::Timeout(self.timeout)),
        };
        match outcome {
            Ok(answers) => {
                if self.breaker.on_success() {
                    info!("Epoch cache (Redis) answers again; foreign trace ids are shared.");
                }
                self.local.remember(entries, &answers);
                answers
            }
            Err(cause) => {
                self.breaker.on_failure(Instant::now());
                if route == Route::Probe {
                    // Still failing after a backoff: start the next probe on a fresh
                    // connection rather than one that may be stuck.
                    self.redis.reset_connection();
                }
                self.warn_outage(&cause);
                self.resolve_locally(entries)
            }
        }
    }

    /// Resolves `entries` from the local cache and counts them.
    fn resolve_locally(&self, entries: &[(u128, u32)]) -> Vec<Resolved> {
        let n = as_u64(entries.len());
        self.metrics.epoch_cache_fallback.inc_by(n);
        self.fallback_since_warning.fetch_add(n, Ordering::Relaxed);
        self.local.resolve_now(entries)
    }

    /// Logs `cause` unless a warning went out less than [`OUTAGE_LOG_INTERVAL`] ago.
    fn warn_outage(&self, cause: &FallbackCause) {
        let now = Instant::now();
        {
            let mut last = self
                .last_warning
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.is_some_and(|at| now < at + OUTAGE_LOG_INTERVAL) {
                return;
            }
            *last = Some(now);
        }
        let resolved_locally = self.fallback_since_warning.swap(0, Ordering::Relaxed);
        warn!(
            error = %cause,
            resolved_locally,
            interval_secs = OUTAGE_LOG_INTERVAL.as_secs(),
            "Epoch cache (Redis) unavailable; resolving foreign trace ids locally (counted in \
             meshray_relay_epoch_cache_fallback_total, logged at most once per interval)."
        );
    }
}

impl EpochCache for SharedEpochCache {
    /// Never fails: see [`SharedEpochCache::resolve`].
    fn resolve_batch<'a>(
        &'a self,
        entries: &'a [(u128, u32)],
    ) -> BoxFuture<'a, Result<Vec<Resolved>, EpochCacheError>> {
        Box::pin(async move { Ok(self.resolve(entries).await) })
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;

    use super::*;
    use crate::epoch_cache::redis::RedisSettings;

    /// Redis on a port nobody listens on: batches are resolved locally (first writer
    /// wins there too), counted, and the breaker opens.
    #[tokio::test]
    async fn unreachable_redis_falls_back_locally() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let redis = RedisEpochCache::new_lazy(&RedisSettings {
            url: format!("redis://127.0.0.1:{port}"),
            ttl: Duration::from_secs(300),
            response_timeout: Some(Duration::from_millis(50)),
            ..RedisSettings::default()
        })
        .unwrap();
        let local = MemoryEpochCache::new(NonZeroUsize::new(10).unwrap(), Duration::from_secs(300));
        let metrics = Arc::new(Metrics::new());
        let cache = SharedEpochCache::new(
            redis,
            local,
            Duration::from_millis(50),
            Arc::clone(&metrics),
            true,
        );
        assert!(cache.is_shared());
        let first = cache.resolve(&[(1, 100), (1, 105)]).await;
        assert_eq!(first, [Resolved::miss(100), Resolved::hit(100)]);
        assert!(!cache.is_shared());
        let second = cache.resolve(&[(1, 200), (2, 300)]).await;
        assert_eq!(second, [Resolved::hit(100), Resolved::miss(300)]);
        assert_eq!(metrics.epoch_cache_fallback.get(), 4);
        assert!(cache.resolve(&[]).await.is_empty());
    }
}
