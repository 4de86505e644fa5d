//! The in-process epoch cache: an LRU of bounded size whose entries expire after the TTL.
//!
//! Correct for a single relay replica; with several, each would bind a foreign id on its
//! own, so use Redis there. Time is `tokio::time::Instant`, so tests drive expiry with
//! `tokio::time::pause()`.

use std::num::NonZeroUsize;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use lru::LruCache;
use tokio::time::Instant;

use super::{BoxFuture, EpochCache, EpochCacheError, Resolved};

/// One bound id.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The epoch the id is bound to.
    epoch: u32,
    /// When the binding lapses. Like Redis `SET … NX EX`, a hit does not extend it.
    expires_at: Instant,
}

/// LRU + TTL epoch cache.
#[derive(Debug)]
pub struct MemoryEpochCache {
    /// How long a binding lasts.
    ttl: Duration,
    /// The bindings; the lock is never held across an `.await`.
    entries: Mutex<LruCache<u128, Entry>>,
}

impl MemoryEpochCache {
    /// A cache holding at most `capacity` ids, each for `ttl`.
    pub fn new(capacity: NonZeroUsize, ttl: Duration) -> Self {
        MemoryEpochCache {
            ttl,
            entries: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// The synchronous core of [`EpochCache::resolve_batch`].
    pub fn resolve_now(&self, batch: &[(u128, u32)]) -> Vec<Resolved> {
        let now = Instant::now();
        // A panic while holding the lock cannot leave an entry half-written: use it anyway.
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        batch
            .iter()
            .map(|&(id, candidate)| match entries.get(&id) {
                Some(entry) if entry.expires_at > now => Resolved::hit(entry.epoch),
                _ => {
                    entries.put(
                        id,
                        Entry {
                            epoch: candidate,
                            expires_at: now + self.ttl,
                        },
                    );
                    Resolved::miss(candidate)
                }
            })
            .collect()
    }
}

impl EpochCache for MemoryEpochCache {
    fn resolve_batch<'a>(
        &'a self,
        entries: &'a [(u128, u32)],
    ) -> BoxFuture<'a, Result<Vec<Resolved>, EpochCacheError>> {
        Box::pin(async move { Ok(self.resolve_now(entries)) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache of `capacity` ids living `ttl_secs`.
    fn cache(capacity: usize, ttl_secs: u64) -> MemoryEpochCache {
        MemoryEpochCache::new(
            NonZeroUsize::new(capacity).unwrap(),
            Duration::from_secs(ttl_secs),
        )
    }

    /// The first document's epoch sticks; later candidates are ignored.
    #[tokio::test]
    async fn first_writer_wins() {
        let cache = cache(10, 300);
        let first = cache.resolve_batch(&[(7, 1000)]).await.unwrap();
        assert_eq!(first, [Resolved::miss(1000)]);
        let later = cache.resolve_batch(&[(7, 1005), (8, 2000)]).await.unwrap();
        assert_eq!(later, [Resolved::hit(1000), Resolved::miss(2000)]);
    }

    /// Within one batch, the first occurrence binds the id.
    #[tokio::test]
    async fn first_in_batch_wins() {
        let cache = cache(10, 300);
        let answer = cache
            .resolve_batch(&[(7, 1003), (7, 1001), (7, 1009)])
            .await
            .unwrap();
        assert_eq!(
            answer,
            [
                Resolved::miss(1003),
                Resolved::hit(1003),
                Resolved::hit(1003)
            ]
        );
    }

    /// After the TTL the id is unknown again and the next candidate binds it; a hit does
    /// not extend the TTL.
    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_ttl() {
        let cache = cache(10, 300);
        assert_eq!(cache.resolve_now(&[(1, 100)]), [Resolved::miss(100)]);
        tokio::time::advance(Duration::from_secs(299)).await;
        assert_eq!(cache.resolve_now(&[(1, 399)]), [Resolved::hit(100)]);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(cache.resolve_now(&[(1, 400)]), [Resolved::miss(400)]);
        assert_eq!(cache.resolve_now(&[(1, 401)]), [Resolved::hit(400)]);
    }

    /// The least recently used id is evicted when the cache is full.
    #[tokio::test]
    async fn evicts_least_recently_used() {
        let cache = cache(2, 300);
        cache.resolve_now(&[(1, 10), (2, 20)]);
        cache.resolve_now(&[(1, 11)]); // touches 1
        cache.resolve_now(&[(3, 30)]); // evicts 2
        assert_eq!(
            cache.resolve_now(&[(1, 12), (2, 22)]),
            [Resolved::hit(10), Resolved::miss(22)]
        );
    }
}
