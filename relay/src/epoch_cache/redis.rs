//! The shared epoch cache on Redis, for several relay replicas.
//!
//! Each id of a batch is one `SET meshray:epoch:{id} {candidate} NX EX {ttl} GET` (Redis
//! ≥ 7.0): the reply is the epoch already bound (a hit) or nil when the candidate was
//! stored (a miss). All commands of a batch go in one pipeline: one round trip per request.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{BoxFuture, EpochCache, EpochCacheError, Resolved};

/// Prefix of every key the relay writes.
pub const KEY_PREFIX: &str = "meshray:epoch:";
/// Longest wait for a Redis reply before the request is answered 503.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for a connection to Redis.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// Connection attempts per (re)connect before the error surfaces as a 503.
const CONNECT_RETRIES: usize = 2;
/// Longest wait between connection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// Checks that `url` is a Redis URL this build can use.
///
/// # Errors
/// The reason, ready for a config error message.
pub fn check_url(url: &str) -> Result<(), String> {
    let after_scheme = url.split_once("://").map_or("", |(_, rest)| rest);
    if after_scheme.is_empty() || after_scheme.starts_with('/') {
        return Err("the Redis URL needs a host, e.g. redis://redis.meshray:6379".to_owned());
    }
    if url.starts_with("rediss://") {
        return Err(
            "rediss:// (Redis over TLS) is not supported by this build; use redis://".to_owned(),
        );
    }
    redis::Client::open(url)
        .map(drop)
        .map_err(|e| format!("not a usable Redis URL: {e}"))
}

/// The key of a raw trace id.
pub fn key(id: u128) -> String {
    format!("{KEY_PREFIX}{id:032x}")
}

/// Epoch cache on a Redis server; reconnects on its own after failures.
#[derive(Clone)]
pub struct RedisEpochCache {
    /// Multiplexed connection, cheap to clone, reconnecting.
    connection: ConnectionManager,
    /// Binding lifetime in whole seconds (`EX`).
    ttl_secs: u64,
}

impl std::fmt::Debug for RedisEpochCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEpochCache")
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

impl RedisEpochCache {
    /// Connects to the server at `url`.
    ///
    /// # Errors
    /// [`EpochCacheError::Redis`] if the URL is unusable or the server unreachable.
    pub async fn connect(url: &str, ttl: Duration) -> Result<Self, EpochCacheError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_number_of_retries(CONNECT_RETRIES)
            .set_max_delay(MAX_RECONNECT_DELAY);
        let connection = ConnectionManager::new_with_config(client, config).await?;
        Ok(RedisEpochCache {
            connection,
            ttl_secs: ttl.as_secs().max(1),
        })
    }
}

impl EpochCache for RedisEpochCache {
    fn resolve_batch<'a>(
        &'a self,
        entries: &'a [(u128, u32)],
    ) -> BoxFuture<'a, Result<Vec<Resolved>, EpochCacheError>> {
        Box::pin(async move {
            if entries.is_empty() {
                return Ok(Vec::new());
            }
            let mut pipe = redis::pipe();
            for &(id, candidate) in entries {
                pipe.cmd("SET")
                    .arg(key(id))
                    .arg(candidate)
                    .arg("NX")
                    .arg("EX")
                    .arg(self.ttl_secs)
                    .arg("GET");
            }
            let mut connection = self.connection.clone();
            let replies: Vec<Option<u32>> = pipe.query_async(&mut connection).await?;
            if replies.len() != entries.len() {
                return Err(EpochCacheError::ReplyCount {
                    sent: entries.len(),
                    got: replies.len(),
                });
            }
            Ok(entries
                .iter()
                .zip(replies)
                .map(|(&(_, candidate), stored)| match stored {
                    Some(epoch) => Resolved::hit(epoch),
                    None => Resolved::miss(candidate),
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys carry the full 128-bit id, zero-padded.
    #[test]
    fn keys_are_prefixed_128_bit_hex() {
        assert_eq!(key(0xab), format!("{KEY_PREFIX}{}ab", "0".repeat(30)));
        assert_eq!(key(u128::MAX).len(), KEY_PREFIX.len() + 32);
    }

    /// Only `redis://` URLs with a host are accepted.
    #[test]
    fn urls_are_checked() {
        assert!(check_url("redis://127.0.0.1:6379/0").is_ok());
        assert!(check_url("redis://").is_err());
        assert!(check_url("redis:///0").is_err());
        assert!(check_url("http://127.0.0.1").is_err());
    }
}
