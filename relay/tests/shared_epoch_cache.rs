//! The shared epoch cache with real `redis-server`s on ephemeral ports (issue 10):
//! several replicas give a foreign trace one X-Ray id in the X-Ray API, one Redis round
//! trip per batch (counted by Redis), a Redis outage loses nothing and sharing comes
//! back, `rediss://` with a password and a private CA, and a start while Redis is down.

// Test helpers outside `#[test]` functions: a failed unwrap here is a failed test with a
// clear location, as clippy.toml allows inside tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::let_underscore_must_use
)]

mod common;
mod redis_control;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use common::{Relay, read_lines, segment, test_config};
use meshray_relay::config::{CaCertificates, Secret};
use meshray_relay::{Config, EpochCacheKind, SinkKind};
use meshray_test_support::ids::{new_xray_trace_id, now_secs};
use meshray_test_support::moto::Moto;
use redis_control::{ControlledRedis, RedisOptions, temp_dir};
use serde_json::Value;

/// A foreign 32-hex id: random, with its first 8 hex digits a time before 2004 (so it
/// carries no usable epoch).
fn foreign_id() -> String {
    format!(
        "{:08x}{:024x}",
        fastrand::u32(1..0x4000_0000),
        fastrand::u128(1..1 << 96)
    )
}

/// The X-Ray id a foreign `raw` id gets when bound to the epoch of `start`.
fn xray_id(raw: &str, start: f64) -> String {
    format!("1-{:08x}-{}", start as u32, &raw[8..])
}

/// A relay config on the Redis at `url`, writing to a file sink in `dir`.
fn file_relay(url: &str, dir: &std::path::Path, name: &str) -> (PathBuf, Config) {
    let out = dir.join(format!("{name}.jsonl"));
    let config = Config {
        sink: SinkKind::File(out.clone()),
        ..shared_config(url)
    };
    (out, config)
}

/// A test config on the Redis at `url`, with a timeout generous enough for a busy test
/// machine (the outage tests kill or freeze Redis; they do not rely on slowness).
fn shared_config(url: &str) -> Config {
    Config {
        epoch_cache: EpochCacheKind::Redis(url.to_owned()),
        epoch_cache_timeout: Duration::from_secs(2),
        ..test_config()
    }
}

/// Posts `documents` to `relay` and checks that every one was accepted.
async fn post_all(relay: &Relay, documents: Vec<Value>) {
    let n = documents.len();
    let response = relay.post_segments(&Value::Array(documents)).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        response.json().unwrap()["accepted"],
        n,
        "{}",
        response.text()
    );
}

/// Three replicas on one Redis: the documents of each foreign trace are spread across
/// them in different orders, in batches mixing several traces; every trace ends up as
/// one X-Ray trace in the X-Ray API, with the epoch of the document that came first
/// (not the earliest `start_time`). Then traces whose three documents reach the three
/// replicas at the same moment: still one X-Ray trace each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_one_xray_trace_per_foreign_trace() {
    let dir = temp_dir("ha-xray");
    let redis = ControlledRedis::start(&dir, RedisOptions::default()).await;
    let moto = Moto::start(&dir).await.unwrap();
    let client = moto.client();
    let mut relays = Vec::new();
    for _ in 0..3 {
        relays.push(
            Relay::start(Config {
                aws: Some(moto.sdk_config()),
                ..shared_config(&redis.url())
            })
            .await,
        );
    }

    // Replica orders, one per trace; the document posted first starts 2 s after the
    // trace's earliest document, so "first seen" and "earliest" differ.
    let orders = [
        [0, 1, 2],
        [2, 0, 1],
        [1, 2, 0],
        [2, 1, 0],
        [0, 2, 1],
        [1, 0, 2],
    ];
    let base = now_secs() - 120.0;
    let offsets = [2.0, 0.0, 1.0];
    let traces: Vec<String> = orders.iter().map(|_| foreign_id()).collect();
    for round in 0..3 {
        let mut batches: Vec<Vec<Value>> = vec![Vec::new(); 3];
        for (trace, order) in traces.iter().zip(&orders) {
            let name = ["productpage", "reviews", "ratings"][round];
            batches[order[round]].push(segment(name, trace, base + offsets[round]));
        }
        let posts = relays
            .iter()
            .zip(batches)
            .map(|(relay, batch)| post_all(relay, batch));
        futures_join_all(posts).await;
    }

    // Races: each trace's three documents go to the three replicas at once.
    let races: Vec<String> = (0..4).map(|_| foreign_id()).collect();
    let posts = relays.iter().enumerate().map(|(r, relay)| {
        let batch = races
            .iter()
            .map(|trace| segment("race", trace, base + r as f64 * 10.0))
            .collect();
        post_all(relay, batch)
    });
    futures_join_all(posts).await;

    for trace in &traces {
        let expected = xray_id(trace, base + offsets[0]);
        let documents = wait_for_trace(&client, &expected, 3).await;
        assert_eq!(documents.len(), 3, "{expected}");
        for other in [base, base + 1.0] {
            assert!(
                trace_documents(&client, &xray_id(trace, other))
                    .await
                    .is_empty()
            );
        }
    }
    for trace in &races {
        let candidates: Vec<String> = (0..3)
            .map(|r| xray_id(trace, base + f64::from(r) * 10.0))
            .collect();
        let mut found = Vec::new();
        for _ in 0..100 {
            found.clear();
            for candidate in &candidates {
                let n = trace_documents(&client, candidate).await.len();
                if n > 0 {
                    found.push((candidate.clone(), n));
                }
            }
            if found.iter().map(|(_, n)| n).sum::<usize>() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(found.len(), 1, "one X-Ray trace for {trace}: {found:?}");
        assert_eq!(found[0].1, 3, "{found:?}");
    }
    for relay in &relays {
        assert_eq!(
            relay
                .metric("meshray_relay_epoch_cache_fallback_total")
                .await,
            0.0
        );
    }
    for relay in relays {
        relay.stop().await.unwrap();
    }
}

/// Every batch is one round trip to Redis whatever its size, counted by Redis itself
/// (`INFO commandstats`: one `EVALSHA` per batch, no other command); batches whose
/// documents all carry X-Ray ids do not touch Redis at all; and the relay never sends
/// a `CONFIG` or `CLIENT` command (ElastiCache refuses some).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_round_trip_per_batch() {
    let dir = temp_dir("ha-round-trips");
    let redis = ControlledRedis::start(&dir, RedisOptions::default()).await;
    let (out, config) = file_relay(&redis.url(), &dir, "relay");
    let relay = Relay::start(config).await;
    let start = now_secs() - 10.0;

    // Start-up (over once the relay answers): the script is loaded once; nothing else.
    assert_eq!(relay.get("/healthz").await.status, 200);
    let at_start = redis.command_calls().await;
    assert_eq!(
        at_start,
        BTreeMap::from([("script|load".to_owned(), 1)]),
        "commands sent at start"
    );

    redis.reset_stats().await;
    let mut batches_with_foreign_ids = 0;
    let mut documents = 0;
    let (mut foreign_documents, mut foreign_traces) = (0, 0);
    for size in [1_usize, 7, 50, 333] {
        let traces: Vec<String> = (0..size.div_ceil(3)).map(|_| foreign_id()).collect();
        let batch: Vec<Value> = (0..size)
            .map(|i| segment("reviews", &traces[i % traces.len()], start + i as f64))
            .collect();
        post_all(&relay, batch).await;
        batches_with_foreign_ids += 1;
        documents += size;
        foreign_documents += size;
        foreign_traces += traces.len();
    }
    for _ in 0..3 {
        let xray = new_xray_trace_id();
        post_all(
            &relay,
            vec![segment("a", &xray, start), segment("b", &xray, start)],
        )
        .await;
        documents += 2;
    }
    let mixed = vec![
        segment("a", &new_xray_trace_id(), start),
        segment("b", &foreign_id(), start),
    ];
    post_all(&relay, mixed).await;
    batches_with_foreign_ids += 1;
    documents += 2;
    foreign_documents += 1;
    foreign_traces += 1;

    // `INFO commandstats` also counts the commands the script runs inside Redis: one
    // GET per foreign document, a SET per new trace, an EXPIRE (TTL refresh) per hit.
    let calls = redis.command_calls().await;
    let as_u64 = |n: usize| u64::try_from(n).unwrap();
    assert_eq!(
        calls,
        BTreeMap::from([
            ("evalsha".to_owned(), batches_with_foreign_ids),
            ("get".to_owned(), as_u64(foreign_documents)),
            ("set".to_owned(), as_u64(foreign_traces)),
            (
                "expire".to_owned(),
                as_u64(foreign_documents - foreign_traces)
            ),
        ]),
        "commands for {batches_with_foreign_ids} batches with foreign ids and 3 without"
    );
    relay.stop().await.unwrap();
    assert_eq!(read_lines(&out).len(), documents);
}

/// Two replicas; Redis is killed in the middle and started again, empty, on the same
/// port. During the outage every batch is accepted (none refused, none lost), the ids
/// are resolved locally and counted, and a trace bound before the outage keeps its
/// epoch on the replica that saw it. Once Redis is back the replicas share again and
/// stop falling back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_loses_nothing_and_sharing_comes_back() {
    let dir = temp_dir("ha-outage");
    let mut redis = ControlledRedis::start(&dir, RedisOptions::default()).await;
    let (out_a, config_a) = file_relay(&redis.url(), &dir, "a");
    let (out_b, config_b) = file_relay(&redis.url(), &dir, "b");
    let a = Relay::start(config_a).await;
    let b = Relay::start(config_b).await;
    let start = now_secs() - 60.0;
    let mut sent = 0;

    // Shared: B's document of T1 gets A's epoch.
    let t1 = foreign_id();
    post_all(&a, vec![segment("productpage", &t1, start)]).await;
    post_all(&b, vec![segment("reviews", &t1, start + 5.0)]).await;
    sent += 2;
    assert_eq!(b.metric("meshray_relay_epoch_cache_hits_total").await, 1.0);

    // Outage.
    redis.stop().await;
    let mut foreign_on_a = 0;
    for round in 0..5 {
        let t = foreign_id();
        let xray = new_xray_trace_id();
        let batch = vec![
            segment("productpage", &t, start + f64::from(round)),
            segment("productpage", &xray, start),
            segment("details", &t1, start + 30.0),
        ];
        post_all(&a, batch).await;
        foreign_on_a += 2;
        post_all(&b, vec![segment("reviews", &t, start + 9.0)]).await;
        sent += 4;
    }
    assert_eq!(
        a.metric("meshray_relay_epoch_cache_fallback_total").await,
        f64::from(foreign_on_a)
    );
    assert_eq!(
        b.metric("meshray_relay_epoch_cache_fallback_total").await,
        5.0
    );

    // Back, empty: sharing resumes within the breaker's backoff.
    redis.resume().await;
    let hits_before = b.metric("meshray_relay_epoch_cache_hits_total").await;
    let mut shared_again = false;
    for _ in 0..100 {
        let t = foreign_id();
        post_all(&a, vec![segment("productpage", &t, start)]).await;
        post_all(&b, vec![segment("reviews", &t, start + 7.0)]).await;
        sent += 2;
        if b.metric("meshray_relay_epoch_cache_hits_total").await > hits_before {
            shared_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        shared_again,
        "the replicas did not share again after Redis came back"
    );
    let fallback_a = a.metric("meshray_relay_epoch_cache_fallback_total").await;
    let fallback_b = b.metric("meshray_relay_epoch_cache_fallback_total").await;
    let t_after = foreign_id();
    post_all(&a, vec![segment("productpage", &t_after, start)]).await;
    post_all(&b, vec![segment("reviews", &t_after, start + 3.0)]).await;
    sent += 2;
    assert_eq!(
        a.metric("meshray_relay_epoch_cache_fallback_total").await,
        fallback_a
    );
    assert_eq!(
        b.metric("meshray_relay_epoch_cache_fallback_total").await,
        fallback_b
    );

    a.stop().await.unwrap();
    b.stop().await.unwrap();
    let documents: Vec<Value> = read_lines(&out_a)
        .into_iter()
        .chain(read_lines(&out_b))
        .collect();
    assert_eq!(documents.len(), sent, "documents lost");
    let t1_ids: HashSet<&str> = documents
        .iter()
        .filter_map(|d| d["trace_id"].as_str())
        .filter(|id| id.ends_with(&t1[8..]))
        .collect();
    assert_eq!(t1_ids, HashSet::from([xray_id(&t1, start).as_str()]));
    let after_ids: HashSet<&str> = documents
        .iter()
        .filter_map(|d| d["trace_id"].as_str())
        .filter(|id| id.ends_with(&t_after[8..]))
        .collect();
    assert_eq!(
        after_ids,
        HashSet::from([xray_id(&t_after, start).as_str()])
    );
}

/// A Redis that stops answering (frozen, connections open) costs a batch at most the
/// `--epoch-cache-timeout`, then the breaker keeps batches local: all accepted, all
/// counted; when it answers again the relay shares again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_never_refuses_a_batch() {
    let dir = temp_dir("ha-hung");
    let redis = ControlledRedis::start(&dir, RedisOptions::default()).await;
    let (out, config) = file_relay(&redis.url(), &dir, "relay");
    let relay = Relay::start(Config {
        epoch_cache_timeout: Duration::from_millis(100),
        ..config
    })
    .await;
    let start = now_secs() - 30.0;
    let trace = foreign_id();
    post_all(&relay, vec![segment("productpage", &trace, start)]).await;
    redis.freeze();
    for i in 0..10 {
        post_all(
            &relay,
            vec![segment("reviews", &trace, start + f64::from(i))],
        )
        .await;
    }
    assert_eq!(
        relay
            .metric("meshray_relay_epoch_cache_fallback_total")
            .await,
        10.0
    );
    redis.unfreeze();
    let mut shared = false;
    let mut sent = 11;
    for _ in 0..100 {
        let before = relay
            .metric("meshray_relay_epoch_cache_fallback_total")
            .await;
        post_all(&relay, vec![segment("ratings", &trace, start + 50.0)]).await;
        sent += 1;
        if relay
            .metric("meshray_relay_epoch_cache_fallback_total")
            .await
            == before
        {
            shared = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(shared, "the relay did not go back to Redis");
    relay.stop().await.unwrap();
    let documents = read_lines(&out);
    assert_eq!(documents.len(), sent);
    let expected = xray_id(&trace, start);
    assert!(documents.iter().all(|d| d["trace_id"] == expected.as_str()));
}

/// `rediss://` with `--redis-password` and `--epoch-cache-ca-file`: two replicas share
/// through a TLS Redis that requires a password; a replica with the wrong password
/// still accepts everything, resolving locally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_password_and_private_ca() {
    let dir = temp_dir("ha-tls");
    let redis = ControlledRedis::start(
        &dir,
        RedisOptions {
            tls: true,
            password: Some("s3cret-token".to_owned()),
        },
    )
    .await;
    let ca_path = redis.ca_file();
    let ca = CaCertificates {
        pem: std::fs::read(&ca_path).unwrap(),
        path: ca_path,
    };
    let relay = |name: &str, password: &str| {
        let (out, config) = file_relay(&redis.url(), &dir, name);
        let config = Config {
            redis_password: Some(Secret::new(password.to_owned())),
            epoch_cache_ca_file: Some(ca.clone()),
            ..config
        };
        (out, Relay::start(config))
    };
    let (out_a, a) = relay("a", "s3cret-token");
    let (out_b, b) = relay("b", "s3cret-token");
    let (out_c, c) = relay("c", "wrong");
    let (a, b, c) = (a.await, b.await, c.await);
    let start = now_secs() - 30.0;
    let trace = foreign_id();
    post_all(&a, vec![segment("productpage", &trace, start)]).await;
    post_all(&b, vec![segment("reviews", &trace, start + 4.0)]).await;
    post_all(&c, vec![segment("ratings", &trace, start + 8.0)]).await;
    assert_eq!(b.metric("meshray_relay_epoch_cache_hits_total").await, 1.0);
    assert_eq!(
        a.metric("meshray_relay_epoch_cache_fallback_total").await,
        0.0
    );
    assert_eq!(
        c.metric("meshray_relay_epoch_cache_fallback_total").await,
        1.0
    );
    for relay in [a, b, c] {
        relay.stop().await.unwrap();
    }
    let expected = xray_id(&trace, start);
    assert_eq!(read_lines(&out_a)[0]["trace_id"], expected.as_str());
    assert_eq!(read_lines(&out_b)[0]["trace_id"], expected.as_str());
    assert_eq!(read_lines(&out_c).len(), 1, "accepted without Redis");
}

/// A relay whose Redis is down at start starts anyway, accepts foreign ids (resolved
/// locally, counted), and shares once Redis is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_while_redis_is_down() {
    let dir = temp_dir("ha-start");
    let mut redis = ControlledRedis::start(&dir, RedisOptions::default()).await;
    redis.stop().await;
    let (out, config) = file_relay(&redis.url(), &dir, "relay");
    let relay = Relay::start(config).await;
    let start = now_secs() - 30.0;
    post_all(&relay, vec![segment("productpage", &foreign_id(), start)]).await;
    assert_eq!(
        relay
            .metric("meshray_relay_epoch_cache_fallback_total")
            .await,
        1.0
    );
    redis.resume().await;
    let mut sent = 1;
    let mut shared = false;
    for _ in 0..100 {
        post_all(&relay, vec![segment("productpage", &foreign_id(), start)]).await;
        sent += 1;
        if redis.command_calls().await.contains_key("evalsha") {
            shared = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(shared, "the relay never asked Redis once it was up");
    relay.stop().await.unwrap();
    assert_eq!(read_lines(&out).len(), sent);
}

/// The documents of `trace_id` stored in X-Ray (empty if none yet).
async fn trace_documents(client: &aws_sdk_xray::Client, trace_id: &str) -> Vec<Value> {
    let output = client
        .batch_get_traces()
        .trace_ids(trace_id)
        .send()
        .await
        .unwrap();
    output
        .traces()
        .iter()
        .filter(|t| t.id() == Some(trace_id))
        .flat_map(|t| t.segments())
        .filter_map(|s| s.document())
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// Polls until `trace_id` has `count` documents in X-Ray (20 s at most).
async fn wait_for_trace(client: &aws_sdk_xray::Client, trace_id: &str, count: usize) -> Vec<Value> {
    let mut documents = Vec::new();
    for _ in 0..200 {
        documents = trace_documents(client, trace_id).await;
        if documents.len() >= count {
            return documents;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    documents
}

/// Waits for every future (in order; they run concurrently as tasks on the runtime).
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>)
where
    F: std::future::Future<Output = ()>,
{
    let futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut pending = futures;
    // Poll all of them together until each is done.
    std::future::poll_fn(|cx| {
        pending.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if pending.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}
