//! The shared epoch cache on Redis, for several relay replicas.
//!
//! A whole batch is **one round trip**: one `EVALSHA` of [`RESOLVE_SCRIPT`], which for
//! each id in order returns the epoch already bound (a hit, whose TTL it refreshes) or
//! binds the candidate (a miss). The script runs atomically, so first writer wins across
//! replicas and within the batch. It uses only `GET`, `SET … EX` and `EXPIRE`, so it runs
//! on Redis ≥ 2.6, Valkey and ElastiCache; no `CONFIG` or `CLIENT` command is ever sent
//! (the client's `CLIENT SETINFO` is switched off). Keys of one batch hash to different
//! slots, so use a non-cluster endpoint (ElastiCache "cluster mode disabled", primary
//! endpoint).
//!
//! `redis://` and `rediss://` (TLS through rustls, the system's root certificates or
//! `--epoch-cache-ca-file`) URLs are accepted; the password comes from the URL or
//! `--redis-password` / `MESHRAY_REDIS_PASSWORD`, the user (Redis ACL, ElastiCache RBAC)
//! from the URL.
//!
//! This backend reports every failure; [`super::shared::SharedEpochCache`] wraps it with
//! the timeout, circuit breaker and local fallback.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, IntoConnectionInfo, Script};

use super::{BoxFuture, EpochCache, EpochCacheError, Resolved};

/// Prefix of every key the relay writes.
pub const KEY_PREFIX: &str = "meshray:epoch:";
/// Longest wait for a (re)connection to Redis, TLS handshake included.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// Connection attempts per reconnect; the circuit breaker spaces the reconnects.
const CONNECT_RETRIES: usize = 1;
/// Longest wait between connection attempts of one reconnect.
const MAX_RECONNECT_DELAY: Duration = Duration::from_millis(200);

/// Resolves a batch. `KEYS[i]`: the key of id i; `ARGV[1]`: the TTL in seconds;
/// `ARGV[i + 1]`: id i's candidate epoch. Returns, per key, the bound epoch (hit, TTL
/// refreshed) or `false` (nil) when the candidate was bound now (miss).
pub const RESOLVE_SCRIPT: &str = r"
local ttl = ARGV[1]
local bound = {}
for i, key in ipairs(KEYS) do
  local epoch = redis.call('GET', key)
  if epoch then
    redis.call('EXPIRE', key, ttl)
    bound[i] = epoch
  else
    redis.call('SET', key, ARGV[i + 1], 'EX', ttl)
    bound[i] = false
  end
end
return bound
";

/// How to reach Redis.
#[derive(Clone, Default)]
pub struct RedisSettings {
    /// `redis://[USER[:PASSWORD]@]HOST[:PORT][/DB]` or `rediss://…`.
    pub url: String,
    /// `AUTH` password when the URL carries none.
    pub password: Option<String>,
    /// PEM certificates of the CA that signed the server's certificate (`rediss://`);
    /// `None`: the system's root certificates.
    pub ca_pem: Option<Vec<u8>>,
    /// Lifetime of a binding after its last use (`EX`, whole seconds, at least 1).
    pub ttl: Duration,
    /// Longest wait for one reply; `None`: the connection's default.
    pub response_timeout: Option<Duration>,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redact_url(&self.url))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .field("ttl", &self.ttl)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}

/// `url` with any password replaced by `<redacted>`, for logs and `Debug`.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((credentials, host)) => match credentials.split_once(':') {
                Some((user, _password)) => format!("{scheme}://{user}:<redacted>@{host}"),
                None => format!("{scheme}://{credentials}@{host}"),
            },
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Checks that `url` is a Redis URL this build can use.
///
/// # Errors
/// The reason, ready for a config error message.
pub fn check_url(url: &str) -> Result<(), String> {
    let after_scheme = url.split_once("://").map_or("", |(_, rest)| rest);
    if after_scheme.is_empty() || after_scheme.starts_with('/') {
        return Err("the Redis URL needs a host, e.g. redis://redis.meshray:6379".to_owned());
    }
    url.into_connection_info()
        .map(drop)
        .map_err(|e| format!("not a usable Redis URL: {e}"))
}

/// Whether `url` carries a password.
pub fn url_has_password(url: &str) -> bool {
    url.into_connection_info()
        .is_ok_and(|info| info.redis_settings().password().is_some())
}

/// The key of a raw trace id.
pub fn key(id: u128) -> String {
    format!("{KEY_PREFIX}{id:032x}")
}

/// Epoch cache on a Redis server; (re)connects on its own.
#[derive(Clone)]
pub struct RedisEpochCache {
    /// Multiplexed connection, cheap to clone, reconnecting in the background after I/O
    /// errors; replaced by [`RedisEpochCache::reset_connection`] after other failures
    /// (a refused `AUTH` is never retried by the manager itself).
    connection: Arc<Mutex<ConnectionManager>>,
    /// What a fresh connection manager is built from.
    client: Client,
    /// Timeouts and retries of the connection manager.
    manager_config: ConnectionManagerConfig,
    /// [`RESOLVE_SCRIPT`] and its SHA1 (`EVALSHA`; loaded again if Redis lost it).
    script: Script,
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
    /// Connects to the server at `url` (no extra password or CA) and loads the script.
    ///
    /// # Errors
    /// [`EpochCacheError::Redis`] if the URL is unusable or the server unreachable.
    pub async fn connect(url: &str, ttl: Duration) -> Result<Self, EpochCacheError> {
        let cache = Self::new_lazy(&RedisSettings {
            url: url.to_owned(),
            ttl,
            ..RedisSettings::default()
        })?;
        cache.load_script().await?;
        Ok(cache)
    }

    /// A cache that connects on first use (and again after failures), so the relay
    /// starts while Redis is away.
    ///
    /// # Errors
    /// [`EpochCacheError::Redis`] if the URL or the CA certificates are unusable.
    pub fn new_lazy(settings: &RedisSettings) -> Result<Self, EpochCacheError> {
        let mut info = settings.url.as_str().into_connection_info()?;
        let mut redis_settings = info.redis_settings().clone().set_skip_set_lib_name();
        if let Some(password) = &settings.password
            && redis_settings.password().is_none()
        {
            redis_settings = redis_settings.set_password(password);
        }
        info = info.set_redis_settings(redis_settings);
        let client = match &settings.ca_pem {
            Some(pem) => Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            )?,
            None => Client::open(info)?,
        };
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(settings.response_timeout)
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_number_of_retries(CONNECT_RETRIES)
            .set_max_delay(MAX_RECONNECT_DELAY);
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?;
        Ok(RedisEpochCache {
            connection: Arc::new(Mutex::new(connection)),
            client,
            manager_config: config,
            script: Script::new(RESOLVE_SCRIPT),
            ttl_secs: settings.ttl.as_secs().max(1),
        })
    }

    /// Connects (if not yet) and loads [`RESOLVE_SCRIPT`], so the first batch is one
    /// `EVALSHA`.
    ///
    /// # Errors
    /// [`EpochCacheError::Redis`] when Redis cannot be reached or refuses.
    pub async fn load_script(&self) -> Result<(), EpochCacheError> {
        let mut connection = self.connection();
        self.script.load_async(&mut connection).await?;
        Ok(())
    }

    /// Drops the connection and starts over with a fresh one on next use; for when the
    /// old one may be stuck on an error it does not retry (a refused `AUTH`, a server
    /// that was still loading).
    pub fn reset_connection(&self) {
        if let Ok(fresh) = ConnectionManager::new_lazy_with_config(
            self.client.clone(),
            self.manager_config.clone(),
        ) {
            *self
                .connection
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = fresh;
        }
    }

    /// A handle on the current connection (cheap; the lock is not held while it is used).
    fn connection(&self) -> ConnectionManager {
        self.connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// One `EVALSHA` resolving `entries`; see [`EpochCache::resolve_batch`].
    async fn resolve(&self, entries: &[(u128, u32)]) -> Result<Vec<Resolved>, EpochCacheError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(self.ttl_secs);
        for &(id, candidate) in entries {
            invocation.key(key(id)).arg(candidate);
        }
        let mut connection = self.connection();
        let replies: Vec<Option<u32>> = invocation.invoke_async(&mut connection).await?;
        if replies.len() != entries.len() {
            return Err(EpochCacheError::ReplyCount {
                sent: entries.len(),
                got: replies.len(),
            });
        }
        Ok(entries
            .iter()
            .zip(replies)
            .map(|(&(_, candidate), bound)| match bound {
                Some(epoch) => Resolved::hit(epoch),
                None => Resolved::miss(candidate),
            })
            .collect())
    }
}

impl EpochCache for RedisEpochCache {
    fn resolve_batch<'a>(
        &'a self,
        entries: &'a [(u128, u32)],
    ) -> BoxFuture<'a, Result<Vec<Resolved>, EpochCacheError>> {
        Box::pin(self.resolve(entries))
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

    /// `redis://` and `rediss://` URLs with a host are accepted.
    #[test]
    fn urls_are_checked() {
        assert!(check_url("redis://127.0.0.1:6379/0").is_ok());
        assert!(check_url("rediss://meshray:secret@cache.example:6379").is_ok());
        assert!(check_url("redis://").is_err());
        assert!(check_url("redis:///0").is_err());
        assert!(check_url("http://127.0.0.1").is_err());
    }

    /// Passwords never reach a log line.
    #[test]
    fn urls_are_redacted() {
        for (url, shown) in [
            ("redis://h:6379", "redis://h:6379"),
            ("rediss://u:p@h:6379/0", "rediss://u:<redacted>@h:6379/0"),
            ("redis://:p@h", "redis://:<redacted>@h"),
            ("redis://u@h", "redis://u@h"),
        ] {
            assert_eq!(redact_url(url), shown);
        }
        assert!(url_has_password("redis://:p@h"));
        assert!(!url_has_password("redis://u@h"));
    }
}
