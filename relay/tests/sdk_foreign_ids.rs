//! Foreign trace ids as X-Ray SDK apps report them (issue 8, item 5, the relay's side):
//! behind a sidecar, an SDK app reports under `Root=1-{first 8 hex}-{last 24 hex}` of the
//! foreign id the filter gave it, an X-Ray-shaped id whose "epoch" is no time at all. The
//! relay resolves it exactly like the raw id the sidecars send (same cache key), over
//! HTTP and the daemon's UDP port, on one replica or across replicas sharing Redis; with
//! `--foreign-ids passthrough` both forms are sent as `1-{first 8}-{last 24}`. Cache
//! entries are refreshed on use, in Redis too.

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

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Relay, read_lines, segment, test_config};
use meshray_relay::epoch_cache::redis::{RedisEpochCache, key};
use meshray_relay::epoch_cache::{EpochCache, Resolved};
use meshray_relay::{Config, EpochCacheKind, ForeignIds, SinkKind};
use meshray_test_support::ids::now_secs;
use redis_control::{ControlledRedis, RedisOptions, temp_dir};
use serde_json::Value;

/// The two foreign ids a mesh produces: a 64-bit B3 id (left-padded to 128 bits) and a
/// random W3C id whose first 8 hex digits read as a time in 2010.
fn foreign_ids() -> [String; 2] {
    [
        format!("{:032x}", fastrand::u64(1..)),
        format!("4bf92f35{:024x}", fastrand::u128(1..1 << 96)),
    ]
}

/// `Root=` of the `x-amzn-trace-id` the filter writes for the raw id: what the SDK app
/// puts in its documents.
fn sdk_trace_id(raw: &str) -> String {
    format!("1-{}-{}", &raw[..8], &raw[8..])
}

/// A relay with the daemon UDP port on, writing to `<dir>/<name>.jsonl`; returns it, the
/// UDP address and the sink file.
async fn start_relay(dir: &Path, name: &str, config: Config) -> (Relay, SocketAddr, PathBuf) {
    let out = dir.join(format!("{name}.jsonl"));
    let config = Config {
        sink: SinkKind::File(out.clone()),
        ..config
    };
    let (relay, udp) = Relay::start_with_daemon(config, &dir.join(format!("{name}.addr"))).await;
    (relay, udp, out)
}

/// Sends `document` as one X-Ray daemon datagram, as an SDK does.
async fn send_datagram(to: SocketAddr, document: &Value) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let datagram = format!("{{\"format\":\"json\",\"version\":1}}\n{document}");
    socket.send_to(datagram.as_bytes(), to).await.unwrap();
}

/// Waits until `relay` has accepted `n` documents in all.
async fn wait_accepted(relay: &Relay, n: usize) {
    for _ in 0..200 {
        if relay.metric("meshray_relay_documents_accepted_total").await >= n as f64 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the relay did not accept {n} documents");
}

/// Posts one document and checks it was accepted.
async fn post_one(relay: &Relay, document: Value) {
    let response = relay.post_segments(&Value::Array(vec![document])).await;
    assert_eq!(
        response.json().unwrap()["accepted"],
        1,
        "{}",
        response.text()
    );
}

/// Checks that each trace's `count` documents all got `1-{epoch of start}-{last 24}`.
fn assert_first_epoch(documents: &[Value], traces: &[String], start: f64, count: usize) {
    for raw in traces {
        let expected = format!("1-{:08x}-{}", start as u32, &raw[8..]);
        assert_eq!(ids_of(documents, raw), vec![expected; count], "{raw}");
    }
}

/// The trace ids written for documents whose id ends with the low 24 hex of `raw`.
fn ids_of(documents: &[Value], raw: &str) -> Vec<String> {
    documents
        .iter()
        .filter_map(|d| d["trace_id"].as_str())
        .filter(|id| id.ends_with(&raw[8..]))
        .map(str::to_owned)
        .collect()
}

/// One replica, `--foreign-ids epoch`: the sidecar's raw id over HTTP first, then the
/// SDK app's X-Ray-shaped form over UDP and over HTTP, all later and with other start
/// times: one X-Ray id per trace, with the epoch of the sidecar's document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_documents_join_the_sidecars_trace() {
    let dir = temp_dir("foreign-ids");
    let (relay, udp, out) = start_relay(&dir, "relay", test_config()).await;
    let start = now_secs() - 20.0;
    let traces = foreign_ids();
    for raw in &traces {
        post_one(&relay, segment("productpage", raw, start)).await;
        send_datagram(udp, &segment("sdk-app", &sdk_trace_id(raw), start + 3.0)).await;
        post_one(&relay, segment("sdk-app", &sdk_trace_id(raw), start + 6.0)).await;
    }
    wait_accepted(&relay, 6).await;
    relay.stop().await.unwrap();
    assert_first_epoch(&read_lines(&out), &traces, start, 3);
}

/// Two replicas sharing Redis: the sidecar's document reaches one, the SDK app's
/// datagram the other; both get the same X-Ray id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_documents_join_across_replicas() {
    let dir = temp_dir("foreign-ids-redis");
    let redis = ControlledRedis::start(&dir, RedisOptions::default()).await;
    let config = || Config {
        epoch_cache: EpochCacheKind::Redis(redis.url()),
        epoch_cache_timeout: Duration::from_secs(2),
        ..test_config()
    };
    let (a, _, out_a) = start_relay(&dir, "a", config()).await;
    let (b, udp_b, out_b) = start_relay(&dir, "b", config()).await;
    let start = now_secs() - 20.0;
    let traces = foreign_ids();
    for raw in &traces {
        post_one(&a, segment("productpage", raw, start)).await;
        send_datagram(udp_b, &segment("sdk-app", &sdk_trace_id(raw), start + 3.0)).await;
    }
    wait_accepted(&b, 2).await;
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    let documents: Vec<Value> = read_lines(&out_a)
        .into_iter()
        .chain(read_lines(&out_b))
        .collect();
    assert_first_epoch(&documents, &traces, start, 2);
}

/// A burst of SDK datagrams (which the relay takes in batches, one cache call each):
/// every one accepted, every one in the sidecar's trace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_datagrams_joins_one_trace() {
    let dir = temp_dir("foreign-ids-burst");
    let (relay, udp, out) = start_relay(&dir, "relay", test_config()).await;
    let start = now_secs() - 20.0;
    let [raw, _] = foreign_ids();
    post_one(&relay, segment("productpage", &raw, start)).await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..40 {
        let document = segment("sdk-app", &sdk_trace_id(&raw), start + f64::from(i));
        let datagram = format!("{{\"format\":\"json\",\"version\":1}}\n{document}");
        socket.send_to(datagram.as_bytes(), udp).await.unwrap();
    }
    wait_accepted(&relay, 41).await;
    relay.stop().await.unwrap();
    assert_first_epoch(&read_lines(&out), &[raw], start, 41);
}

/// `--foreign-ids passthrough`: the raw id and its X-Ray-shaped form both become
/// `1-{first 8 hex}-{last 24 hex}` of the id, whatever the start times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_sends_foreign_ids_unchanged() {
    let dir = temp_dir("foreign-ids-passthrough");
    let config = Config {
        foreign_ids: ForeignIds::Passthrough,
        ..test_config()
    };
    let (relay, udp, out) = start_relay(&dir, "relay", config).await;
    let start = now_secs() - 20.0;
    let traces = foreign_ids();
    for raw in &traces {
        post_one(&relay, segment("productpage", raw, start)).await;
        send_datagram(udp, &segment("sdk-app", &sdk_trace_id(raw), start + 3.0)).await;
    }
    wait_accepted(&relay, 4).await;
    assert_eq!(
        relay.metric("meshray_relay_epoch_cache_misses_total").await,
        0.0,
        "passthrough asks no cache"
    );
    relay.stop().await.unwrap();
    let documents = read_lines(&out);
    for raw in &traces {
        assert_eq!(ids_of(&documents, raw), vec![sdk_trace_id(raw); 2], "{raw}");
    }
}

/// A hit in Redis restarts the entry's TTL, so a trace that keeps sending documents
/// keeps its epoch for longer than `--epoch-ttl`.
#[tokio::test]
async fn redis_entries_are_refreshed_on_use() {
    let dir = temp_dir("foreign-ids-ttl");
    let redis = ControlledRedis::start(&dir, RedisOptions::default()).await;
    let cache = RedisEpochCache::connect(&redis.url(), Duration::from_secs(300))
        .await
        .unwrap();
    let id = fastrand::u128(1..);
    assert_eq!(
        cache.resolve_batch(&[(id, 1000)]).await.unwrap(),
        [Resolved::miss(1000)]
    );
    let mut connection = redis.connection().await;
    let ttl = |mut connection: redis::aio::MultiplexedConnection| async move {
        redis::cmd("TTL")
            .arg(key(id))
            .query_async::<i64>(&mut connection)
            .await
            .unwrap()
    };
    assert!(ttl(connection.clone()).await > 290);
    // As if most of the TTL had passed.
    let _: () = redis::cmd("EXPIRE")
        .arg(key(id))
        .arg(5)
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(ttl(connection.clone()).await <= 5);
    assert_eq!(
        cache.resolve_batch(&[(id, 1290)]).await.unwrap(),
        [Resolved::hit(1000)]
    );
    assert!(ttl(connection).await > 290, "a hit restarts the TTL");
}
