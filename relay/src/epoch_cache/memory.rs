//! The in-process epoch cache: an LRU of bounded size whose entries expire after the TTL,
//! refreshed each time they are used.
//!
//! On its own it is the `memory` backend, correct for a single relay replica (with
//! several, each would bind a foreign id on its own: use Redis there). With Redis it is
//! the local copy [`super::shared::SharedEpochCache`] falls back to. Time is
//! `tokio::time::Instant`, so tests drive expiry with `tokio::time::pause()`.

use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use lru::LruCache;
use tokio::time::Instant;

use super::{BoxFuture, EpochCache, EpochCacheError, Resolved};

/// One bound id.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// The epoch the id is bound to.
    epoch: u32,
    /// When the binding lapses unless the id is used again: each use sets it to now + TTL,
    /// so a trace longer than the TTL keeps its epoch while documents keep coming.
    expires_at: Instant,
}

/// LRU + TTL epoch cache.
#[derive(Debug)]
pub struct MemoryEpochCache {
    /// How long a binding lasts after its last use.
    ttl: Duration,
    /// The bindings; the lock is never held across an `.await`.
    entries: Mutex<LruCache<u128, Entry>>,
}

impl MemoryEpochCache {
    /// A cache holding at most `capacity` ids, each for `ttl` after its last use.
    pub fn new(capacity: NonZeroUsize, ttl: Duration) -> Self {
        MemoryEpochCache {
            ttl,
            entries: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// The synchronous core of [`EpochCache::resolve_batch`]: first writer wins, and
    /// every hit refreshes the binding's TTL.
    pub fn resolve_now(&self, batch: &[(u128, u32)]) -> Vec<Resolved> {
        let now = Instant::now();
        let expires_at = now + self.ttl;
        let mut entries = self.lock();
        batch
            .iter()
            .map(|&(id, candidate)| match entries.get_mut(&id) {
                Some(entry) if entry.expires_at > now => {
                    entry.expires_at = expires_at;
                    Resolved::hit(entry.epoch)
                }
                _ => {
                    entries.put(
                        id,
                        Entry {
                            epoch: candidate,
                            expires_at,
                        },
                    );
                    Resolved::miss(candidate)
                }
            })
            .collect()
    }

    /// `batch` with each candidate replaced by the epoch bound here, where there is one
    /// (nothing is bound or refreshed). What a replica proposes to the shared cache, so
    /// a trace it bound alone while Redis was away keeps that epoch if Redis never heard
    /// of it.
    pub fn candidates(&self, batch: &[(u128, u32)]) -> Vec<(u128, u32)> {
        let now = Instant::now();
        let entries = self.lock();
        batch
            .iter()
            .map(|&(id, candidate)| match entries.peek(&id) {
                Some(entry) if entry.expires_at > now => (id, entry.epoch),
                _ => (id, candidate),
            })
            .collect()
    }

    /// Binds each id to the epoch the shared cache answered, replacing what is bound
    /// here: the shared answer is the one every replica agrees on.
    pub fn remember(&self, ids: &[(u128, u32)], answers: &[Resolved]) {
        let expires_at = Instant::now() + self.ttl;
        let mut entries = self.lock();
        for (&(id, _), answer) in ids.iter().zip(answers) {
            entries.put(
                id,
                Entry {
                    epoch: answer.epoch,
                    expires_at,
                },
            );
        }
    }

    /// The bindings, even after a panic while holding the lock: an entry is written in one
    /// assignment, so it is never half-written.
    fn lock(&self) -> MutexGuard<'_, LruCache<u128, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
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

    /// An id unused for the TTL is unknown again and the next candidate binds it.
    #[tokio::test(start_paused = true)]
    async fn entries_expire_after_ttl() {
        let cache = cache(10, 300);
        assert_eq!(cache.resolve_now(&[(1, 100)]), [Resolved::miss(100)]);
        tokio::time::advance(Duration::from_secs(299)).await;
        assert_eq!(cache.resolve_now(&[(1, 399)]), [Resolved::hit(100)]);
        tokio::time::advance(Duration::from_secs(300)).await;
        assert_eq!(cache.resolve_now(&[(1, 700)]), [Resolved::miss(700)]);
        assert_eq!(cache.resolve_now(&[(1, 701)]), [Resolved::hit(700)]);
    }

    /// Each use restarts the TTL: a trace that keeps sending documents keeps its epoch
    /// for longer than the TTL.
    #[tokio::test(start_paused = true)]
    async fn use_refreshes_the_ttl() {
        let cache = cache(10, 300);
        assert_eq!(cache.resolve_now(&[(1, 100)]), [Resolved::miss(100)]);
        for minute in 1..=20 {
            tokio::time::advance(Duration::from_secs(60)).await;
            assert_eq!(
                cache.resolve_now(&[(1, 100 + minute * 60)]),
                [Resolved::hit(100)],
                "after {minute} minutes"
            );
        }
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

    /// Candidates come from the local bindings where there are some; remembered shared
    /// answers replace local ones.
    #[tokio::test]
    async fn candidates_and_remembered_answers() {
        let cache = cache(10, 300);
        cache.resolve_now(&[(1, 100)]);
        assert_eq!(
            cache.candidates(&[(1, 150), (2, 200)]),
            [(1, 100), (2, 200)]
        );
        assert_eq!(cache.candidates(&[(2, 250)]), [(2, 250)], "nothing bound");
        cache.remember(
            &[(1, 100), (2, 200)],
            &[Resolved::hit(90), Resolved::miss(200)],
        );
        assert_eq!(
            cache.resolve_now(&[(1, 1), (2, 2)]),
            [Resolved::hit(90), Resolved::hit(200)]
        );
    }
}
