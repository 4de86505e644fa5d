//! The Redis epoch cache (`redis-server` on an ephemeral port): first writer wins across
//! relay replicas and within a batch. (A Redis that is down at start no longer stops
//! the relay: see `shared_epoch_cache.rs`.)

// Test helpers outside `#[test]` functions: a failed unwrap here is a failed test with a
// clear location, as clippy.toml allows inside tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::let_underscore_must_use
)]

mod common;

use std::time::Duration;

use common::{Relay, read_lines, segment, test_config};
use meshray_relay::epoch_cache::EpochCache;
use meshray_relay::epoch_cache::Resolved;
use meshray_relay::epoch_cache::redis::RedisEpochCache;
use meshray_relay::{EpochCacheKind, SinkKind};
use meshray_test_support::ids::random_hex;
use meshray_test_support::redis::RedisServer;
use meshray_test_support::run_dir::RunDir;
use serde_json::json;

/// `SET NX EX GET` semantics through the trait: the first candidate binds, within and
/// across batches.
#[tokio::test]
async fn first_writer_wins_in_redis() {
    let dir = RunDir::new("relay-redis").unwrap();
    let server = RedisServer::start(dir.path()).await.unwrap();
    let cache = RedisEpochCache::connect(server.url(), Duration::from_secs(300))
        .await
        .unwrap();
    let id = u128::from(fastrand::u64(..)) << 64 | 1;
    let first = cache
        .resolve_batch(&[(id, 1000), (id, 1001), (id + 1, 2000)])
        .await
        .unwrap();
    assert_eq!(
        first,
        [
            Resolved::miss(1000),
            Resolved::hit(1000),
            Resolved::miss(2000)
        ]
    );
    let later = cache.resolve_batch(&[(id, 1500)]).await.unwrap();
    assert_eq!(later, [Resolved::hit(1000)]);
    assert!(cache.resolve_batch(&[]).await.unwrap().is_empty());
}

/// Two replicas sharing one Redis give a foreign trace the same X-Ray id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_first_epoch() {
    let dir = RunDir::new("relay-redis").unwrap();
    let server = RedisServer::start(dir.path()).await.unwrap();
    let relay = |name: &str| {
        let out = dir.path().join(name);
        let config = meshray_relay::Config {
            sink: SinkKind::File(out.clone()),
            epoch_cache: EpochCacheKind::Redis(server.url().to_owned()),
            // Slower answers fall back to the local cache; this test is about sharing.
            epoch_cache_timeout: Duration::from_secs(2),
            ..test_config()
        };
        (out, Relay::start(config))
    };
    let (out_a, relay_a) = relay("a.jsonl");
    let (out_b, relay_b) = relay("b.jsonl");
    let (relay_a, relay_b) = (relay_a.await, relay_b.await);
    let raw = format!("{}{}", "00000000", random_hex(24));
    let first_start = 1_700_000_123.5;
    let a = relay_a
        .post_segments(&json!([segment("productpage", &raw, first_start)]))
        .await;
    assert_eq!(a.json().unwrap()["accepted"], 1);
    let b = relay_b
        .post_segments(&json!([segment("reviews", &raw, first_start + 40.0)]))
        .await;
    assert_eq!(b.json().unwrap()["accepted"], 1);
    relay_a.stop().await.unwrap();
    relay_b.stop().await.unwrap();

    let expected = format!("1-{:08x}-{}", 1_700_000_123u32, &raw[8..]);
    assert_eq!(read_lines(&out_a)[0]["trace_id"], expected.as_str());
    assert_eq!(read_lines(&out_b)[0]["trace_id"], expected.as_str());
}
