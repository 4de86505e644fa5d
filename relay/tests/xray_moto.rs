//! The relay against a local X-Ray API (`moto_server`): documents posted over HTTP and
//! sent over the daemon UDP protocol arrive in X-Ray, bad ones are rejected one by one,
//! and documents sharing a foreign trace id end up in one X-Ray trace whose epoch is the
//! first document's.

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

use common::{Relay, segment, test_config};
use meshray_test_support::ids::{new_xray_trace_id, now_secs, random_hex};
use meshray_test_support::moto::{Moto, sdk_config};
use meshray_test_support::run_dir::RunDir;
use meshray_test_support::xray::wait_for_documents;
use serde_json::json;

/// Valid, invalid and foreign-id documents in one request, then more of the same
/// foreign trace in a second request and over UDP: everything valid is delivered, and
/// the foreign trace gets one X-Ray id with the epoch of its first document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_to_xray_and_unifies_foreign_ids() {
    let dir = RunDir::new("relay-xray").unwrap();
    let moto = Moto::start(dir.path()).await.unwrap();
    let address_file = dir.path().join("addresses");
    let relay = Relay::start(meshray_relay::Config {
        aws: Some(moto.sdk_config()),
        daemon_listen: Some("127.0.0.1:0".parse().unwrap()),
        address_file: Some(address_file.clone()),
        ..test_config()
    })
    .await;

    let now = now_secs();
    let first_start = now - 30.5;
    let raw = format!("{}{}", "4bf92f35", random_hex(24));
    let expected_foreign = format!("1-{:08x}-{}", first_start as u32, &raw[8..]);
    let native = new_xray_trace_id();

    let response = relay
        .post_segments(&json!([
            segment("productpage", &native, now),
            {"name": "no-id", "trace_id": native, "start_time": now, "end_time": now},
            segment("productpage", &raw, first_start),
            segment("reviews", &raw, first_start + 3.0),
            "not a document",
        ]))
        .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let report = response.json().unwrap();
    assert_eq!(report["accepted"], 3, "{report}");
    let rejected = report["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 2, "{report}");
    assert_eq!(rejected[0]["index"], 1);
    assert!(
        rejected[0]["error"].as_str().unwrap().contains("`id`"),
        "{report}"
    );
    assert_eq!(rejected[1]["index"], 4);

    // A later document of the same foreign trace, in another request.
    let response = relay
        .post_segments(&json!([segment("ratings", &raw, first_start + 20.0)]))
        .await;
    assert_eq!(response.json().unwrap()["accepted"], 1);

    // And one over the X-Ray daemon protocol, to the UDP address from the address file.
    let addresses = std::fs::read_to_string(&address_file).unwrap();
    let lines: Vec<&str> = addresses.lines().collect();
    assert_eq!(lines.len(), 2, "{addresses:?}");
    assert_eq!(lines[0], relay.addr.to_string());
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let datagram = format!(
        "{{\"format\": \"json\", \"version\": 1}}\n{}",
        segment("details", &raw, first_start + 25.0)
    );
    udp.send_to(datagram.as_bytes(), lines[1]).await.unwrap();

    let api = moto.api();
    let native_docs = wait_for_documents(&api, &native, 1, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(native_docs[0]["name"], "productpage");
    let foreign_docs = wait_for_documents(&api, &expected_foreign, 4, Duration::from_secs(20))
        .await
        .unwrap();
    let mut names: Vec<&str> = foreign_docs
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["details", "productpage", "ratings", "reviews"]);
    for document in &foreign_docs {
        assert_eq!(document["trace_id"], expected_foreign.as_str());
    }

    assert_eq!(
        relay.metric("meshray_relay_documents_sent_total").await,
        5.0
    );
    assert_eq!(
        relay.metric("meshray_relay_epoch_cache_misses_total").await,
        1.0
    );
    assert_eq!(
        relay.metric("meshray_relay_epoch_cache_hits_total").await,
        3.0
    );
    relay.stop().await.unwrap();
}

/// X-Ray unreachable (a server that accepts and never answers): uploads hang, the queue
/// fills, the relay answers 429 with `Retry-After`; on shutdown the drain deadline
/// bounds the wait and the lost documents are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_answers_429_and_drain_is_bounded() {
    // A black hole: accepts connections and keeps them open without a word.
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole_addr = hole.local_addr().unwrap();
    let black_hole = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = hole.accept().await {
            held.push(stream);
        }
    });
    let sdk = sdk_config(&format!("http://{hole_addr}"));
    let relay = Relay::start(meshray_relay::Config {
        aws: Some(sdk),
        uploaders: 1,
        queue_capacity: 60,
        batch_interval: Duration::from_secs(60),
        drain_deadline: Duration::from_secs(1),
        ..test_config()
    })
    .await;
    let trace = new_xray_trace_id();
    let batch = |n: usize| {
        json!(
            (0..n)
                .map(|_| segment("productpage", &trace, now_secs()))
                .collect::<Vec<_>>()
        )
    };
    let queue_empty = || async {
        for _ in 0..100 {
            if relay.metric("meshray_relay_queue_depth").await == 0.0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the batcher did not take the documents");
    };

    // 50 documents: a full batch, taken by the only uploader, which hangs.
    assert_eq!(relay.post_segments(&batch(50)).await.status, 200);
    queue_empty().await;
    // 50 more: the next batch, held by the batcher waiting for a free uploader.
    assert_eq!(relay.post_segments(&batch(50)).await.status, 200);
    queue_empty().await;
    // 60 more fill the queue; then there is no room.
    assert_eq!(relay.post_segments(&batch(60)).await.status, 200);
    let full = relay.post_segments(&batch(1)).await;
    assert_eq!(full.status, 429, "{}", full.text());
    assert_eq!(full.header("retry-after"), Some("1"));
    assert!(
        full.json().unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("retry later")
    );
    // A batch larger than the whole queue can never fit: 413, not 429.
    assert_eq!(relay.post_segments(&batch(61)).await.status, 413);

    let started = std::time::Instant::now();
    relay.stop().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "drain took {:?}",
        started.elapsed()
    );
    black_hole.abort();
}
